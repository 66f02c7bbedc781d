"""Random and planted QP instances and an independent CVXPY reference for the QP-layer tests."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import torch


def random_spd(B: int, n: int, *, rank: int | None = None, ridge: float = 0.1, dtype=torch.float64):
    """``(B, n, n)`` matrices ``X Xᵀ / n + ridge·I`` (PSD-not-PD with ``rank < n, ridge = 0``)."""
    X = torch.randn(B, n, rank or n, dtype=torch.float64)
    Q = X @ X.mT / n + ridge * torch.eye(n, dtype=torch.float64)
    return Q.to(dtype)


def mmcl_problem(B: int, *, rho: float = 0.1, sigma: float = 5.0, dtype=torch.float64):
    """The SPEC §3 reduced SVM dual: B problems of B−1 variables with an RBF kernel."""
    x = torch.nn.functional.normalize(torch.randn(B, 16, dtype=torch.float64), dim=1)
    K = torch.exp(-(torch.cdist(x, x) ** 2) / sigma)
    idx = torch.stack([torch.cat([torch.arange(t), torch.arange(t + 1, B)]) for t in range(B)])
    Kn = K[idx[:, :, None], idx[:, None, :]]
    kt = K[torch.arange(B)[:, None], idx]
    Q = 1 + rho * torch.eye(B - 1, dtype=torch.float64) + Kn - kt[:, :, None] - kt[:, None, :]
    p = torch.full((B, B - 1), -2.0, dtype=torch.float64)
    return Q.to(dtype), p.to(dtype)


def planted_box_problem(B: int, n: int, *, weakly_active: int = 2, dtype=torch.float64):
    """A box QP in [0, 1]^n whose solution ``z*`` is known by construction (SPEC §3 KKT).

    ``p = −Q z* + μ`` with multipliers μ > 0 on variables at 0, μ < 0 at 1 and μ = 0 elsewhere;
    ``weakly_active`` variables sit at a bound with a zero multiplier (a degenerate active set).
    """
    Q = random_spd(B, n)
    z = torch.rand(B, n, dtype=torch.float64) * 0.8 + 0.1
    mu = torch.zeros(B, n, dtype=torch.float64)
    kind = torch.rand(B, n).argsort(-1)
    at_lower = kind < n // 4
    at_upper = (kind >= n // 4) & (kind < n // 2)
    weak = (kind >= n // 2) & (kind < n // 2 + weakly_active)
    z = torch.where(at_lower | weak, 0.0, torch.where(at_upper, 1.0, z))
    mu = torch.where(at_lower, 0.5 + torch.rand(B, n, dtype=torch.float64), mu)
    mu = torch.where(at_upper, -0.5 - torch.rand(B, n, dtype=torch.float64), mu)
    p = -(Q @ z.unsqueeze(-1)).squeeze(-1) + mu
    return Q.to(dtype), p.to(dtype), z.to(dtype)


def cvxpy_reference(Q, p, lower=None, upper=None, A=None, b=None) -> np.ndarray:
    """Solve every problem of the batch with CVXPY + Clarabel at tight tolerances."""
    Q, p = Q.detach().double().numpy(), p.detach().double().numpy()

    def per_problem(value, i):
        if value is None:
            return None
        arr = value.detach().double().numpy() if isinstance(value, torch.Tensor) else value
        arr = np.asarray(arr, dtype=np.float64)
        return arr[i] if arr.ndim == 2 or (arr.ndim == 3) else arr

    out = []
    for i in range(Q.shape[0]):
        z = cp.Variable(Q.shape[-1])
        cons = []
        lo, up = per_problem(lower, i), per_problem(upper, i)
        if lo is not None:
            keep = np.isfinite(np.broadcast_to(lo, z.shape))
            cons.append(z[keep] >= np.broadcast_to(lo, z.shape)[keep])
        if up is not None:
            keep = np.isfinite(np.broadcast_to(up, z.shape))
            cons.append(z[keep] <= np.broadcast_to(up, z.shape)[keep])
        if A is not None:
            cons.append(per_problem(A, i) @ z == per_problem(b, i))
        objective = 0.5 * cp.quad_form(z, cp.psd_wrap(Q[i])) + p[i] @ z
        problem = cp.Problem(cp.Minimize(objective), cons)
        problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
        assert problem.status == cp.OPTIMAL, problem.status
        out.append(z.value)
    return np.stack(out)
