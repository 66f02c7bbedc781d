"""Shared test references: brute-force and CVXPY optima, QP cases, multi-process workers."""
