"""The scale-normalised form of the data-join problem (SPEC §7, numerics).

Ω is invariant when x, aux and the radii are scaled together. With x' = x/s, aux' = aux/s,
r' = r/s and κ_P' = κ_P/s (so d' = d/s), the substitution θ' = sθ, α' = sα, b' = b gives

    θ'x' = θx,  α'r' = αr,  α_P'κ_P' = α_Pκ_P,  α'd' = αd,
    ‖θ₁'‖ <= α_A' + α_P'  ⇔  ‖θ₁‖ <= α_A + α_P,  ‖θ₂'‖ <= κ_A α_A'  ⇔  ‖θ₂‖ <= κ_A α_A,

so Ω'(θ', b, α') = Ω(θ, b, α) on corresponding feasible points and the optimum maps back as
θ = θ'/s, α = α'/s, b unchanged. Solvers work at s = :func:`data_scale`, where the entries are
O(1), whatever the user's units (1e-30 … 1e30).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from constrained_pairs._validation import check_nonnegative
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.join.problem import PairProblem


def data_scale(problem: PairProblem) -> float:
    """The largest |entry| of x_a, x_p and aux_a (1 if all are zero).

    Exactly that value, not a nearby power of two: the same data in any unit then rescales to
    the same numbers up to one rounding, so first-order methods follow the same iterates.
    """
    parts = [problem.x_a.abs().max(), problem.x_p.abs().max()]
    if problem.has_aux:
        parts.append(problem.aux_a.abs().max())
    value = float(torch.stack([p.to(torch.float64) for p in parts]).max())
    return value if value > 0 else 1.0


def rescale(problem: PairProblem, s: float) -> PairProblem:
    """``problem`` in units of ``s`` (module docstring); a float or median distance ``scale``
    becomes the original divisor, a callable distance d becomes d'(a', p') = d(s a', s p')/s.

    The pairs are kept as they are (k-nearest neighbours do not depend on the unit).
    """
    s = check_nonnegative("s", s)
    if not (s > 0 and math.isfinite(s)):
        raise InvalidArgumentError(f"s must be a finite number > 0, got {s}")
    options = problem.options()
    options.update(r_a=problem.r_a / s, r_p=problem.r_p / s, kappa_p=problem.kappa_p / s)
    if problem.scale is not None:
        options["scale"] = float(problem.distance_scale())
    if callable(problem.distance):
        fn = problem.distance
        options["distance"] = lambda a, p: fn(a * s, p * s) / s
    aux = problem.aux_a / s if problem.has_aux else None
    return PairProblem(problem.x_a / s, problem.x_p / s, problem.y_p, aux, **options)


def scale_point_back(s: float, **point: Any) -> dict[str, Any]:
    """Map a point of ``problem.rescaled(s)`` back to ``problem``: θ₁ = θ₁'/s, θ₂ = θ₂'/s,
    α = α'/s, the bias unchanged (keys ``theta1``, ``theta2``, ``alpha_a``, ``alpha_p``,
    ``bias``, others pass through; None values pass through). For linear heads."""
    scaled = {"theta1", "theta2", "alpha_a", "alpha_p"}
    return {k: (v / s if k in scaled and v is not None else v) for k, v in point.items()}
