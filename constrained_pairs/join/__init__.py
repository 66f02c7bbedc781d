"""The Distributionally Robust Data Join objective (SPEC §2).

``problem`` (the data and options) → ``pairs`` / ``blocks`` (M and its mini-batch blocks) →
``objective`` (Ω^A / Ω^P, streamed; hinges in ``hinges``) → ``constraints`` (C^A / C^P) →
``diagnostics`` (pathologies; W₁ in ``wasserstein``) → ``result`` (what methods return);
``scaling`` gives the scale-normalised form.
"""

from constrained_pairs.join.blocks import Block, iter_blocks, sample_block
from constrained_pairs.join.constraints import (
    CONSTRAINT_NAMES,
    constraint_names,
    constraint_residuals,
    restore_feasibility,
    theta1_norm,
    theta2_norm,
    violations,
)
from constrained_pairs.join.diagnostics import (
    Diagnostics,
    check_bounded,
    diagnose,
    mean_distance,
)
from constrained_pairs.join.objective import features, objective
from constrained_pairs.join.pairs import PairSet, sample_pairs
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.result import Result
from constrained_pairs.join.scaling import data_scale, rescale, scale_point_back
from constrained_pairs.join.wasserstein import (
    WassersteinEstimate,
    wasserstein_estimate,
    wasserstein_radius,
)

__all__ = [
    "CONSTRAINT_NAMES",
    "Block",
    "Diagnostics",
    "PairProblem",
    "PairSet",
    "Result",
    "WassersteinEstimate",
    "check_bounded",
    "constraint_names",
    "constraint_residuals",
    "data_scale",
    "diagnose",
    "features",
    "iter_blocks",
    "mean_distance",
    "objective",
    "rescale",
    "restore_feasibility",
    "sample_block",
    "sample_pairs",
    "scale_point_back",
    "theta1_norm",
    "theta2_norm",
    "violations",
    "wasserstein_estimate",
    "wasserstein_radius",
]
