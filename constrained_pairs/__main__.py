"""Command line: ``python -m constrained_pairs demo``."""

import sys

from constrained_pairs.demo import main

if __name__ == "__main__":
    sys.exit(main())
