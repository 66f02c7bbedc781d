"""The feasible sets C^A / C^P of SPEC §2, written as residuals g(θ, α) <= 0."""

from __future__ import annotations

import torch

from constrained_pairs._validation import check_choice
from constrained_pairs.join.problem import NORMS, PairProblem


def theta1_norm(theta1: torch.Tensor, norm: str = "nuclear") -> torch.Tensor:
    """‖θ₁‖_* for the norm options of SPEC §2.

    ``"lipschitz"`` is max_{k<l} ‖θ₁[k] − θ₁[l]‖₂, the exact Lipschitz constant of the
    cross-entropy of θ₁x in x under an ℓ2 cost (a seminorm: zero when all rows are equal).
    """
    check_choice("norm", norm, NORMS)
    if norm == "nuclear":
        return torch.linalg.matrix_norm(theta1, ord="nuc")
    if norm == "frobenius":
        return torch.linalg.matrix_norm(theta1, ord="fro")
    if norm == "spectral":
        return torch.linalg.matrix_norm(theta1, ord=2)
    rows = theta1.shape[0]
    first, second = torch.triu_indices(rows, rows, offset=1, device=theta1.device)
    return (theta1[first] - theta1[second]).norm(dim=1).max()


def constraint_residuals(
    problem: PairProblem,
    *,
    theta1: torch.Tensor,
    theta2: torch.Tensor | None,
    alpha_a: torch.Tensor,
    alpha_p: torch.Tensor,
    regime: str,
) -> dict[str, torch.Tensor]:
    """Every constraint of C^A (or C^P) as a residual that is <= 0 when it holds.

    Keys: ``theta1_norm`` (‖θ₁‖_* − α_A − α_P), ``theta2_norm`` (‖θ₂‖_F − κ_A α_A, only with
    θ₂), ``alpha_order`` (α_A − α_P in regime A, α_P − α_A in regime P), ``alpha_a_nonneg``
    (−α_A) and ``alpha_p_nonneg`` (−α_P).
    """
    residuals = {"theta1_norm": theta1_norm(theta1, problem.norm) - alpha_a - alpha_p}
    if theta2 is not None:
        residuals["theta2_norm"] = theta2.norm() - problem.kappa_a * alpha_a
    residuals["alpha_order"] = alpha_a - alpha_p if regime == "A" else alpha_p - alpha_a
    residuals["alpha_a_nonneg"] = -alpha_a
    residuals["alpha_p_nonneg"] = -alpha_p
    return residuals


def violations(residuals: dict[str, torch.Tensor]) -> dict[str, float]:
    """max(g, 0) of each residual, as floats."""
    return {name: max(float(value), 0.0) for name, value in residuals.items()}
