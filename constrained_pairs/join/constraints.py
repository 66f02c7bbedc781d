"""The feasible sets C^A / C^P of SPEC §2: norms, residuals g(θ, α) <= 0, their names, and the
smallest α that makes a given θ feasible.

With a backbone of certified Lipschitz constant L_φ the θ₁ constraint reads
L_φ‖θ₁‖_* <= α_A + α_P (SPEC §2, "Deep backbones"); ``lipschitz`` is that L_φ (1 for the linear
model).
"""

from __future__ import annotations

import torch

from constrained_pairs._validation import check_choice, check_nonnegative
from constrained_pairs.join.problem import AUX_NORMS, NORMS, PairProblem

#: Every constraint, in a fixed order; ``theta2_norm`` exists only with auxiliary features.
CONSTRAINT_NAMES = ("theta1_norm", "theta2_norm", "alpha_order", "alpha_a_nonneg", "alpha_p_nonneg")


def constraint_names(problem: PairProblem) -> tuple[str, ...]:
    """The constraints of ``problem``: :data:`CONSTRAINT_NAMES` without ``theta2_norm`` when it
    has no auxiliary features."""
    return tuple(n for n in CONSTRAINT_NAMES if problem.has_aux or n != "theta2_norm")


def lipschitz_seminorm(theta: torch.Tensor) -> torch.Tensor:
    """max_{k<l} ‖θ[k] − θ[l]‖₂: the exact Lipschitz constant of the cross-entropy of θx in x
    under an ℓ2 cost (zero when all rows are equal; for C = 2 it is ‖θ[1] − θ[0]‖₂)."""
    rows = theta.shape[0]
    first, second = torch.triu_indices(rows, rows, offset=1, device=theta.device)
    return (theta[first] - theta[second]).norm(dim=1).max()


def theta1_norm(theta1: torch.Tensor, norm: str = "nuclear") -> torch.Tensor:
    """‖θ₁‖_* for the norm options of SPEC §2 (``"lipschitz"``: :func:`lipschitz_seminorm`)."""
    check_choice("norm", norm, NORMS)
    if norm == "nuclear":
        return torch.linalg.matrix_norm(theta1, ord="nuc")
    if norm == "frobenius":
        return torch.linalg.matrix_norm(theta1, ord="fro")
    if norm == "spectral":
        return torch.linalg.matrix_norm(theta1, ord=2)
    return lipschitz_seminorm(theta1)


def theta2_norm(theta2: torch.Tensor, aux_norm: str = "frobenius") -> torch.Tensor:
    """‖θ₂‖: Frobenius (default) or the Lipschitz seminorm."""
    check_choice("aux_norm", aux_norm, AUX_NORMS)
    return theta2.norm() if aux_norm == "frobenius" else lipschitz_seminorm(theta2)


def constraint_residuals(
    problem: PairProblem,
    *,
    theta1: torch.Tensor,
    theta2: torch.Tensor | None,
    alpha_a: torch.Tensor,
    alpha_p: torch.Tensor,
    regime: str,
    lipschitz: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Every constraint of C^A (or C^P) as a residual that is <= 0 when it holds.

    Keys (:func:`constraint_names`): ``theta1_norm`` (L‖θ₁‖_* − α_A − α_P), ``theta2_norm``
    (‖θ₂‖ − κ_A α_A, only with θ₂), ``alpha_order`` (α_A − α_P in regime A, α_P − α_A in regime
    P), ``alpha_a_nonneg`` (−α_A) and ``alpha_p_nonneg`` (−α_P).
    """
    lipschitz = check_nonnegative("lipschitz", lipschitz)
    residuals = {"theta1_norm": lipschitz * theta1_norm(theta1, problem.norm) - alpha_a - alpha_p}
    if theta2 is not None:
        residuals["theta2_norm"] = theta2_norm(theta2, problem.aux_norm) - problem.kappa_a * alpha_a
    residuals["alpha_order"] = alpha_a - alpha_p if regime == "A" else alpha_p - alpha_a
    residuals["alpha_a_nonneg"] = -alpha_a
    residuals["alpha_p_nonneg"] = -alpha_p
    return residuals


def violations(residuals: dict[str, torch.Tensor]) -> dict[str, float]:
    """max(g, 0) of each residual, as floats."""
    return {name: max(float(value), 0.0) for name, value in residuals.items()}


@torch.no_grad()
def restore_feasibility(
    problem: PairProblem,
    theta1: torch.Tensor,
    theta2: torch.Tensor | None,
    alpha_a: torch.Tensor,
    alpha_p: torch.Tensor,
    regime: str,
    lipschitz: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest raise of (α_A, α_P) that makes the given θ feasible (θ unchanged).

    Regime A (α_A <= α_P): α_A' = max(α_A, 0, ‖θ₂‖/κ_A), α_P' = max(α_P, α_A', L‖θ₁‖_* − α_A').
    Regime P (α_P <= α_A): α_P' = max(α_P, 0), α_A' = max(α_A, α_P', ‖θ₂‖/κ_A, L‖θ₁‖_* − α_P').
    With κ_A = 0 a nonzero θ₂ cannot be repaired through α and stays a violation.

    Returns:
        ``(alpha_a, alpha_p)`` as 0-dim tensors.
    """
    check_choice("regime", regime, ("A", "P"))
    lipschitz = check_nonnegative("lipschitz", lipschitz)
    alpha_a = torch.as_tensor(alpha_a, dtype=theta1.dtype, device=theta1.device).reshape(())
    alpha_p = torch.as_tensor(alpha_p, dtype=theta1.dtype, device=theta1.device).reshape(())
    norm1 = lipschitz * theta1_norm(theta1, problem.norm)
    zero = torch.zeros_like(norm1)
    theta2_floor = zero
    if theta2 is not None and problem.kappa_a > 0:
        theta2_floor = theta2_norm(theta2, problem.aux_norm) / problem.kappa_a
    if regime == "A":
        new_a = torch.stack([alpha_a, zero, theta2_floor]).max()
        new_p = torch.stack([alpha_p, new_a, norm1 - new_a]).max()
    else:
        new_p = torch.stack([alpha_p, zero]).max()
        new_a = torch.stack([alpha_a, new_p, theta2_floor, norm1 - new_p]).max()
    return new_a, new_p
