"""What a QP solve reports besides its solution: status, iterations, KKT residual (SPEC §3, §7).

Every solver of :mod:`constrained_pairs.qp` (:func:`~constrained_pairs.qp.solve_qp` on each
backend and :func:`~constrained_pairs.qp.svm_duals`) reports through :func:`build_info`, with the
one status vocabulary :class:`constrained_pairs.status.Status` and the one residual definition
(:func:`constrained_pairs.qp.residual.natural_residual`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from constrained_pairs.qp.residual import natural_residual
from constrained_pairs.status import Status

__all__ = ["QPInfo", "build_info", "default_tol", "natural_residual"]


def default_tol(dtype: torch.dtype) -> float:
    """KKT tolerance used when ``tol=None``: 1e-8 in float64, 1e-5 in float32."""
    return 1e-8 if dtype == torch.float64 else 1e-5


@dataclass(frozen=True)
class QPInfo:
    """Per-problem report of :func:`~constrained_pairs.qp.solve_qp` and
    :func:`~constrained_pairs.qp.svm_duals`.

    Every tensor field has one entry per batch element (length 1 for an unbatched call).

    Attributes:
        converged: ``(B,)`` bool tensor: ``kkt_residual <= tol`` on a convex, bounded problem.
        iterations: ``(B,)`` int64 tensor: active-set iterations of each problem (``"native"``,
            ``"structured"``); -1 for ``"qpth"`` and ``"cvxpylayers"``, which do not report them.
        kkt_residual: ``(B,)`` tensor, the relative KKT residual of the returned point (see
            :func:`~constrained_pairs.qp.natural_residual`).
        status: one :class:`~constrained_pairs.status.Status` per problem: ``optimal``
            (converged), ``max_iter`` (the iteration cap came first), ``optimal_inaccurate`` (the
            solver stopped above ``tol``), ``nonconvex`` (Q has a negative eigenvalue),
            ``unbounded`` (a recession direction of Q's null space decreases the objective) or
            ``solver_error`` (the solver failed: a non-finite point, or an external backend's
            error, whose message and fallback point are in ``extra``). Only ``optimal``
            returns a certified minimiser.
        backend: the backend that produced the solution.
        tol: the tolerance ``converged`` was judged against.
        extra: explanations, e.g. ``"min_eigenvalue"`` ``(B,)`` where a convexity check ran;
            after an external backend's failure ``"solver_error"`` (its message),
            ``"fallback"`` (``"native"``, whose point is returned) and ``"fallback_converged"``
            ``(B,)`` (whether that point meets ``tol``).
    """

    converged: torch.Tensor
    iterations: torch.Tensor
    kkt_residual: torch.Tensor
    status: tuple[Status, ...]
    backend: str
    tol: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def all_converged(self) -> bool:
        """True when every problem of the batch converged."""
        return bool(self.converged.all())


_MESSAGES = {
    Status.MAX_ITER: "did not converge within max_iter",
    Status.OPTIMAL_INACCURATE: "did not converge to tol",
    Status.NONCONVEX: "are not convex (Q has a negative eigenvalue; Q must be PSD)",
    Status.UNBOUNDED: "are unbounded below (a direction of Q's null space decreases the "
    "objective inside the bounds)",
    Status.SOLVER_ERROR: "failed (a solver error or a non-finite solution; see QPInfo.extra)",
}


def build_info(
    residual: torch.Tensor,
    iterations: torch.Tensor,
    tol: float,
    backend: str,
    hit_max_iter: torch.Tensor | None = None,
    *,
    nonconvex: torch.Tensor | None = None,
    unbounded: torch.Tensor | None = None,
    failed: torch.Tensor | None = None,
    extra: dict[str, Any] | None = None,
    caller: str = "solve_qp",
    stacklevel: int = 3,
) -> QPInfo:
    """Assemble a :class:`QPInfo` and warn (``RuntimeWarning``) about every problem that is not
    ``optimal``; the warning names the statuses and says where to look. ``failed`` marks the
    problems the solver reported an error on (status ``solver_error``, unless nonconvex or
    unbounded)."""
    finite = torch.isfinite(residual)
    converged = (residual <= tol) & finite
    false = torch.zeros_like(converged)
    nonconvex = false if nonconvex is None else nonconvex.to(converged.device)
    unbounded = false if unbounded is None else unbounded.to(converged.device) & ~nonconvex
    hit_max_iter = false if hit_max_iter is None else hit_max_iter
    failed = false if failed is None else failed.to(converged.device)
    converged = converged & ~nonconvex & ~unbounded & ~failed
    names = (
        Status.OPTIMAL,
        Status.MAX_ITER,
        Status.OPTIMAL_INACCURATE,
        Status.NONCONVEX,
        Status.UNBOUNDED,
        Status.SOLVER_ERROR,
    )
    if bool(converged.all()):  # the common case: no per-problem codes to work out
        status = (Status.OPTIMAL,) * converged.numel()
    else:
        codes = torch.where(converged, 0, torch.where(hit_max_iter, 1, 2))
        codes = torch.where(finite & ~failed, codes, 5)
        codes = torch.where(unbounded, 4, codes)
        codes = torch.where(nonconvex, 3, codes).tolist()
        status = tuple(names[c] for c in codes)
    info = QPInfo(converged, iterations, residual, status, backend, tol, dict(extra or {}))
    counts = {s: status.count(s) for s in names[1:] if s in status}
    if counts:
        worst = residual[torch.isfinite(residual)]
        worst = float(worst.max()) if worst.numel() else float("nan")
        parts = "; ".join(
            f"{c} of {len(status)} problems {_MESSAGES[s]} (status {s.value!r})"
            for s, c in counts.items()
        )
        warnings.warn(
            f"{caller}(backend={backend!r}): {parts}; largest KKT residual {worst:.3g} "
            f"(tol {tol:.3g}); see QPInfo.status",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
    return info
