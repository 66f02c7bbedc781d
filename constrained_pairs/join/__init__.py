"""The Distributionally Robust Data Join objective (SPEC §2).

``problem`` (the data and options) → ``objective`` (Ω^A / Ω^P, streamed over ``pairs``) →
``constraints`` (C^A / C^P) → ``diagnostics`` (pathologies) → ``result`` (what methods return).
"""

from constrained_pairs.join.constraints import constraint_residuals, theta1_norm, violations
from constrained_pairs.join.diagnostics import (
    Diagnostics,
    check_bounded,
    diagnose,
    mean_distance,
    wasserstein_radius,
)
from constrained_pairs.join.objective import features, objective
from constrained_pairs.join.pairs import PairSet, sample_pairs
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.result import Result

__all__ = [
    "Diagnostics",
    "PairProblem",
    "PairSet",
    "Result",
    "check_bounded",
    "constraint_residuals",
    "diagnose",
    "features",
    "mean_distance",
    "objective",
    "sample_pairs",
    "theta1_norm",
    "violations",
    "wasserstein_radius",
]
