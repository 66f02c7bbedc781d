"""The KKT residual every QP solver of this package reports, and multiplier refits (SPEC §3).

One definition serves :func:`~constrained_pairs.qp.solve_qp` (every backend) and
:func:`~constrained_pairs.qp.svm_duals`: the natural-map residual of the box constraints, scaled
by the size of the terms of the gradient (:func:`box_residual`).
"""

from __future__ import annotations

import torch


def box_residual(
    z: torch.Tensor,
    g: torch.Tensor,
    lower: torch.Tensor | float,
    upper: torch.Tensor | float,
    scale: torch.Tensor,
) -> torch.Tensor:
    """``‖z − clamp(z − g, lower, upper)‖∞ / (1 + scale)`` per problem, plus the bound violation.

    ``g`` is the gradient of the Lagrangian at ``z`` and ``scale`` ``(B,)`` the size of its terms
    (``max(‖p‖∞, ‖Qz‖∞, ‖Aᵀnu‖∞)``), so the residual is relative to what rounding can resolve.
    The natural map is written ``clamp(g, z − upper, z − lower)`` so that a huge z (a diverging,
    unbounded problem) cannot absorb g in round-off. The bound violation enters as
    ``‖z − clamp(z, lower, upper)‖∞ / (1 + ‖z‖∞)``.
    """
    step = torch.minimum(torch.maximum(g, z - upper), z - lower)
    res = step.abs().amax(-1) / (1 + scale)
    box = (z - torch.clamp(z, lower, upper)).abs().amax(-1)
    return torch.maximum(res, box / (1 + z.abs().amax(-1)))


def natural_residual(
    Q: torch.Tensor,
    p: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    A: torch.Tensor | None,
    b: torch.Tensor | None,
    z: torch.Tensor,
    nu: torch.Tensor | None,
) -> torch.Tensor:
    """Relative KKT residual of ``(z, nu)`` for each problem, shape ``(B,)``.

    With ``g = Qz + p + Aᵀnu`` the gradient of the Lagrangian, the residual is the largest of

    * ``‖z − clamp(z − g, lower, upper)‖∞ / (1 + max(‖p‖∞, ‖Qz‖∞, ‖Aᵀnu‖∞))`` (stationarity and
      complementarity through the natural map, zero exactly at a KKT point of the box part),
    * ``‖Az − b‖∞ / (1 + ‖b‖∞)`` (equality feasibility),
    * the bound violation ``‖z − clamp(z, lower, upper)‖∞ / (1 + ‖z‖∞)``.
    """
    return residual_and_gradient(Q, p, lower, upper, A, b, z, nu)[0]


def residual_and_gradient(Q, p, lower, upper, A, b, z, nu) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`natural_residual` and the gradient ``g = Qz + p + Aᵀnu`` it was computed from."""
    Qz = (z.unsqueeze(-2) @ Q).squeeze(-2)  # Q is symmetric
    g = Qz + p
    scale = torch.maximum(p.abs().amax(-1), Qz.abs().amax(-1))
    if A is not None:
        At_nu = (A.mT @ nu.unsqueeze(-1)).squeeze(-1)
        g = g + At_nu
        scale = torch.maximum(scale, At_nu.abs().amax(-1))
    res = box_residual(z, g, lower, upper, scale)
    if A is not None:
        eq = ((A @ z.unsqueeze(-1)).squeeze(-1) - b).abs().amax(-1) / (1 + b.abs().amax(-1))
        res = torch.maximum(res, eq)
    return res, g


def fit_multiplier(
    Q: torch.Tensor,
    p: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    A: torch.Tensor,
    z: torch.Tensor,
    steps: int = 10,
) -> torch.Tensor:
    """Equality multipliers that best certify ``z`` (for backends that do not return them).

    Starts from the least-squares fit of ``(Qz + p + Aᵀnu)_I = 0`` over the variables ``I``
    strictly inside their bounds, then takes Gauss-Newton steps on the natural-map residual
    ``r(nu) = z − clamp(z − g0 − Aᵀnu, lower, upper)`` (linear in ``nu`` where the clamp is
    inactive), and returns the iterate with the smallest ``‖r‖∞`` for each problem.
    """
    k = A.shape[-2]
    g0 = (z.unsqueeze(-2) @ Q).squeeze(-2) + p
    eye = torch.eye(k, dtype=z.dtype, device=z.device)

    def gauss_newton_step(rows: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        J = A.mT * rows.to(z.dtype).unsqueeze(-1)
        normal = J.mT @ J
        jitter = torch.finfo(z.dtype).eps * (1 + normal.diagonal(dim1=-2, dim2=-1).amax(-1))
        return torch.linalg.solve(normal + jitter[:, None, None] * eye, J.mT @ r.unsqueeze(-1))

    width = (upper - lower).clamp_max(1.0)
    interior = torch.minimum(z - lower, upper - z) > 1e-6 * width
    nu = -gauss_newton_step(interior, g0).squeeze(-1)
    best, best_norm = nu, torch.full_like(nu[:, 0], float("inf"))
    for _ in range(steps):
        y = z - g0 - (A.mT @ nu.unsqueeze(-1)).squeeze(-1)
        r = z - torch.minimum(torch.maximum(y, lower), upper)
        norm = r.abs().amax(-1)
        better = norm < best_norm
        best = torch.where(better.unsqueeze(-1), nu, best)
        best_norm = torch.where(better, norm, best_norm)
        nu = nu - gauss_newton_step((y > lower) & (y < upper), r).squeeze(-1)
    return best


def external_solution_report(problem, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """KKT residual and iteration counts (-1: not reported) for a solution from an external
    backend (qpth, cvxpylayers), whose multipliers are refitted from z."""
    with torch.no_grad():
        nu = None
        if problem.A is not None:
            nu = fit_multiplier(problem.Q, problem.p, problem.lower, problem.upper, problem.A, z)
        residual = natural_residual(
            problem.Q, problem.p, problem.lower, problem.upper, problem.A, problem.b, z, nu
        )
    iterations = torch.full((z.shape[0],), -1, dtype=torch.long, device=z.device)
    return residual, iterations
