"""What a QP solve reports besides its solution: convergence, iterations, KKT residual (SPEC §3)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

SOLVED = "solved"
MAX_ITER = "max_iter_reached"
INACCURATE = "inaccurate"


@dataclass(frozen=True)
class QPInfo:
    """Per-problem report of :func:`constrained_pairs.qp.solve_qp`.

    Every field has one entry per batch element (length 1 for an unbatched call).

    Attributes:
        converged: ``(B,)`` bool tensor, ``kkt_residual <= tol``.
        iterations: ``(B,)`` int64 tensor, active-set iterations of each problem for
            ``"native"``; -1 for ``"qpth"`` and ``"cvxpylayers"``, which do not report them.
        kkt_residual: ``(B,)`` tensor, the relative KKT residual of the returned point (see
            :func:`natural_residual`).
        status: one string per problem: ``"solved"``, ``"max_iter_reached"`` or ``"inaccurate"``.
        backend: the backend that produced the solution.
        tol: the tolerance ``converged`` was judged against.
    """

    converged: torch.Tensor
    iterations: torch.Tensor
    kkt_residual: torch.Tensor
    status: tuple[str, ...]
    backend: str
    tol: float

    @property
    def all_converged(self) -> bool:
        """True when every problem of the batch converged."""
        return bool(self.converged.all())


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
    Qz = (z.unsqueeze(-2) @ Q).squeeze(-2)  # Q is symmetric
    g = Qz + p
    scale = torch.maximum(p.abs().amax(-1), Qz.abs().amax(-1))
    if A is not None:
        At_nu = (A.mT @ nu.unsqueeze(-1)).squeeze(-1)
        g = g + At_nu
        scale = torch.maximum(scale, At_nu.abs().amax(-1))
    # z − clamp(z − g, lower, upper), written as clamp(g, z − upper, z − lower) so that a huge z
    # (a diverging, unbounded problem) cannot absorb g in round-off
    step = torch.minimum(torch.maximum(g, z - upper), z - lower)
    res = step.abs().amax(-1) / (1 + scale)
    box = (z - torch.minimum(torch.maximum(z, lower), upper)).abs().amax(-1)
    res = torch.maximum(res, box / (1 + z.abs().amax(-1)))
    if A is not None:
        eq = ((A @ z.unsqueeze(-1)).squeeze(-1) - b).abs().amax(-1) / (1 + b.abs().amax(-1))
        res = torch.maximum(res, eq)
    return res


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


def build_info(
    residual: torch.Tensor,
    iterations: torch.Tensor,
    tol: float,
    backend: str,
    hit_max_iter: torch.Tensor | None = None,
) -> QPInfo:
    """Assemble a :class:`QPInfo` and warn when some problem did not converge."""
    converged = residual <= tol
    if hit_max_iter is None:
        hit_max_iter = torch.zeros_like(converged)
    codes = torch.where(converged, 0, torch.where(hit_max_iter, 1, 2)).tolist()
    names = (SOLVED, MAX_ITER, INACCURATE)
    status = tuple(names[c] for c in codes)
    info = QPInfo(converged, iterations, residual, status, backend, tol)
    failed = sum(1 for s in status if s != SOLVED)
    if failed:
        worst = float(residual.max())
        warnings.warn(
            f"solve_qp(backend={backend!r}): {failed} of {len(status)} problems did not converge "
            f"(largest KKT residual {worst:.3g} > tol {tol:.3g}); see QPInfo.status",
            RuntimeWarning,
            stacklevel=3,
        )
    return info
