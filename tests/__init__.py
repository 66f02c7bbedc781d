"""The test suite; one folder per package, shared references in helpers/."""
