"""``backend="qpth"``: the batched interior-point layer ``qpth.qp.QPFunction`` (Amos & Kolter).

The box becomes inequality rows ``G z ≤ h`` (``-z ≤ -lower`` and ``z ≤ upper``, only for
variables with a finite bound); qpth differentiates its own KKT system in the backward pass.
qpth always runs in float64 (its interior point stalls near 1e-3 in float32); the result is
cast back to the input dtype.
"""

from __future__ import annotations

import torch

from constrained_pairs.errors import UnsupportedOptionError
from constrained_pairs.qp._bounds import finite_bound_columns, finite_bound_values, problem_span
from constrained_pairs.qp.problem import QPProblem
from constrained_pairs.qp.residual import external_solution_report


def _import_qpth():
    try:
        from qpth.qp import QPFunction, QPSolvers
    except ImportError as exc:  # pragma: no cover - qpth is installed by the Makefile
        raise UnsupportedOptionError(
            "backend='qpth' needs the qpth package: pip install --no-deps qpth==0.0.18"
        ) from exc
    return QPFunction, QPSolvers


def inequality_rows(problem: QPProblem) -> tuple[torch.Tensor, torch.Tensor]:
    """``G (B, m, n)`` and ``h (B, m)`` encoding the finite bounds (one dummy row if none)."""
    B, n = problem.size
    dtype, device = problem.p.dtype, problem.p.device
    eye = torch.eye(n, dtype=dtype, device=device)
    span = problem_span(problem)
    G_parts, h_parts = [], []
    lo_cols = finite_bound_columns(problem.lower)
    if lo_cols.numel():
        G_parts.append(-eye[lo_cols])
        h_parts.append(-finite_bound_values(problem.lower, lo_cols, span))
    up_cols = finite_bound_columns(problem.upper)
    if up_cols.numel():
        G_parts.append(eye[up_cols])
        h_parts.append(finite_bound_values(problem.upper, up_cols, span))
    if not G_parts:  # qpth needs at least one inequality: 0·z ≤ 1 is always slack
        G_parts.append(torch.zeros(1, n, dtype=dtype, device=device))
        h_parts.append(torch.ones(B, 1, dtype=dtype, device=device))
    G = torch.cat(G_parts, 0).expand(B, -1, -1)
    return G, torch.cat(h_parts, -1)


def solve_qpth(problem: QPProblem, *, tol: float, max_iter: int):
    """Solve with qpth; return ``(z, kkt_residual, iterations)``."""
    QPFunction, QPSolvers = _import_qpth()
    G, h = inequality_rows(problem)
    if problem.A is None:
        A = b = torch.empty(0, dtype=problem.p.dtype, device=problem.p.device)
    else:
        A, b = problem.A, problem.b
    layer = QPFunction(
        eps=min(tol, 1e-12),
        verbose=-1,
        maxIter=max_iter,
        solver=QPSolvers.PDIPM_BATCHED,
        check_Q_spd=False,
    )
    # qpth's interior point stalls around 1e-3 in float32: it always runs in float64
    wide = [t.to(torch.float64) for t in (problem.Q, problem.p, G, h, A, b)]
    try:
        z = layer(*wide).to(problem.p.dtype)
    except RuntimeError as exc:  # qpth LU-factors Q itself: a singular (PSD) Q fails there
        raise UnsupportedOptionError(
            "backend='qpth' needs a positive definite Q (its LU factorisation of Q failed: Q is "
            "singular); use backend='native' or 'cvxpylayers' for a PSD, singular Q"
        ) from exc
    return (z, *external_solution_report(problem, z))
