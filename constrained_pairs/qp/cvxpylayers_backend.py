"""``backend="cvxpylayers"``: a DPP-compliant CVXPY problem differentiated by cvxpylayers.

The conic solver behind cvxpylayers cannot take a parametric quadratic form ``zᵀQz``, so the
layer is parametrised by a factor ``L`` with ``Q = L Lᵀ`` and minimises ``½‖Lᵀz‖² + pᵀz``
(DPP: a parameter times the variable). ``L`` is a Cholesky factor of ``Q + δI`` with a jitter
``δ`` at round-off level, so the gradient flows back to Q through the factorisation.
"""

from __future__ import annotations

import functools

import torch

from constrained_pairs.errors import UnsupportedOptionError
from constrained_pairs.qp._bounds import finite_bound_columns, finite_bound_values, problem_span
from constrained_pairs.qp.problem import QPProblem
from constrained_pairs.qp.residual import external_solution_report


@functools.lru_cache(maxsize=32)
def _layer(n: int, k: int, n_lower: int, n_upper: int, lower_cols: tuple, upper_cols: tuple):
    """Build (once per structure) the CvxpyLayer of ``min ½‖Lᵀz‖² + pᵀz`` over the constraints."""
    try:
        import cvxpy as cp
        from cvxpylayers.torch import CvxpyLayer
    except ImportError as exc:  # pragma: no cover - both are install requirements
        raise UnsupportedOptionError("backend='cvxpylayers' needs cvxpy and cvxpylayers") from exc
    z = cp.Variable(n)
    L = cp.Parameter((n, n))
    p = cp.Parameter(n)
    params, constraints = [L, p], []
    if n_lower:
        lo = cp.Parameter(n_lower)
        constraints.append(z[list(lower_cols)] >= lo)
        params.append(lo)
    if n_upper:
        up = cp.Parameter(n_upper)
        constraints.append(z[list(upper_cols)] <= up)
        params.append(up)
    if k:
        A = cp.Parameter((k, n))
        b = cp.Parameter(k)
        constraints.append(A @ z == b)
        params += [A, b]
    objective = cp.Minimize(0.5 * cp.sum_squares(L.T @ z) + p @ z)
    problem = cp.Problem(objective, constraints)
    assert problem.is_dpp()
    return CvxpyLayer(problem, parameters=params, variables=[z])


def quadratic_factor(Q: torch.Tensor) -> torch.Tensor:
    """Differentiable ``L`` with ``L Lᵀ ≈ Q``: Cholesky of ``Q + δI``, δ raised until it exists."""
    n = Q.shape[-1]
    eps = torch.finfo(Q.dtype).eps
    scale = Q.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(eps)
    eye = torch.eye(n, dtype=Q.dtype, device=Q.device)
    jitter = n * eps * scale
    for _ in range(8):
        L, info = torch.linalg.cholesky_ex(Q + jitter[:, None, None] * eye)
        failed = info > 0
        if not bool(failed.any()):
            return L
        jitter = torch.where(failed, jitter * 100, jitter)
    raise UnsupportedOptionError("backend='cvxpylayers' could not factor Q (is it PSD?)")


def solve_cvxpylayers(problem: QPProblem, *, tol: float, max_iter: int):
    """Solve with cvxpylayers (diffcp + SCS); return ``(z, kkt_residual, iterations)``."""
    _, n = problem.size
    span = problem_span(problem)
    lo_cols = finite_bound_columns(problem.lower)
    up_cols = finite_bound_columns(problem.upper)
    k = 0 if problem.A is None else problem.A.shape[-2]
    layer = _layer(
        n,
        k,
        lo_cols.numel(),
        up_cols.numel(),
        tuple(lo_cols.tolist()),
        tuple(up_cols.tolist()),
    )
    device, dtype = problem.p.device, problem.p.dtype
    args = [quadratic_factor(problem.Q), problem.p]
    if lo_cols.numel():
        args.append(finite_bound_values(problem.lower, lo_cols, span))
    if up_cols.numel():
        args.append(finite_bound_values(problem.upper, up_cols, span))
    if k:
        args += [problem.A, problem.b]
    # the layer runs on CPU in float64; gradients flow back through the conversions
    args = [a.to("cpu", torch.float64) for a in args]
    solver_args = {"eps_abs": min(tol, 1e-9), "eps_rel": min(tol, 1e-9), "max_iters": max_iter}
    (z,) = layer(*args, solver_args=solver_args)
    z = z.to(device, dtype)
    return (z, *external_solution_report(problem, z))
