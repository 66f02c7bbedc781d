"""One entry point, :func:`solve_qp`, for every backend of the differentiable QP layer (SPEC §3)."""

from __future__ import annotations

import torch

from constrained_pairs._validation import check_choice
from constrained_pairs.qp.info import QPInfo, build_info
from constrained_pairs.qp.native import solve_native
from constrained_pairs.qp.problem import check_options, make_problem

BACKENDS = ("native", "qpth", "cvxpylayers")
_DEFAULT_MAX_ITER = {"native": 50, "qpth": 50, "cvxpylayers": 10_000}


def solve_qp(
    Q,
    p,
    lower=None,
    upper=None,
    A=None,
    b=None,
    *,
    backend: str = "native",
    tol: float | None = None,
    max_iter: int | None = None,
    return_info: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, QPInfo]:
    """Solve ``min ½zᵀQz + pᵀz  s.t. lower ≤ z ≤ upper, Az = b`` for every problem of a batch.

    The solution is differentiable with respect to ``Q``, ``p``, ``lower``, ``upper``, ``A`` and
    ``b`` by implicit differentiation of the KKT conditions (never by unrolling iterations).

    Args:
        Q: ``(B, n, n)`` or ``(n, n)`` symmetric positive (semi)definite matrices. Only the
            symmetric part ``½(Q + Qᵀ)`` enters the objective.
        p: ``(B, n)`` or ``(n,)`` linear terms.
        lower: None (no lower bound), a number, or an ``(n,)`` / ``(B, n)`` tensor (``-inf``
            entries mean unbounded).
        upper: like ``lower`` (``+inf`` entries mean unbounded).
        A: ``(B, k, n)`` or ``(k, n)`` equality rows (k small), or None.
        b: ``(B, k)`` or ``(k,)`` right-hand sides, given exactly when ``A`` is.
        backend: ``"native"`` (batched primal-dual active set, this package), ``"qpth"``
            (``qpth.qp.QPFunction``) or ``"cvxpylayers"`` (a DPP CVXPY problem).
        tol: KKT residual under which a problem counts as converged; default 1e-8 in float64 and
            1e-5 in float32 (see :func:`constrained_pairs.qp.info.natural_residual`).
        max_iter: iteration cap (native: active-set iterations, default 50; qpth: interior-point
            iterations, default 50; cvxpylayers: solver iterations).
        return_info: also return a :class:`QPInfo`.

    Returns:
        ``z`` of shape ``(B, n)`` (``(n,)`` for unbatched inputs), in Q's floating dtype and on
        Q's device; with ``return_info=True`` the pair ``(z, info)``.

    Raises:
        InvalidArgumentError: (a ``ValueError``) for non-square Q, mismatched shapes or batch
            sizes, ``lower > upper``, infeasible equalities, non-finite data or bad options.

    Problems that do not converge (including unbounded ones: a PSD Q with a descent direction
    the bounds leave open) are flagged in ``info.status`` and with a ``RuntimeWarning``.
    ``"qpth"`` runs in float64 and ``"cvxpylayers"`` in float64 on the CPU; both cast back.

    Example:
        >>> z = solve_qp(Q, p, lower=0.0, upper=1.0)            # (B, n)
        >>> z, info = solve_qp(Q, p, lower=0.0, return_info=True)
    """
    check_choice("backend", backend, BACKENDS)
    problem = make_problem(Q, p, lower, upper, A, b)
    tol, max_iter = check_options(tol, max_iter, problem.p.dtype)
    if max_iter is None:
        max_iter = _DEFAULT_MAX_ITER[backend]
    if backend == "native":  # symmetrises Q inside its autograd.Function
        z, result = solve_native(
            problem.Q, problem.p, problem.lower, problem.upper, problem.A, problem.b,
            tol=tol, max_iter=max_iter,
        )
        residual, iterations = result.residual, result.iterations
        hit_max_iter = ~result.done
    elif backend == "qpth":
        from constrained_pairs.qp.qpth_backend import solve_qpth

        z, residual, iterations = solve_qpth(problem.symmetrized(), tol=tol, max_iter=max_iter)
        hit_max_iter = None
    else:
        from constrained_pairs.qp.cvxpylayers_backend import solve_cvxpylayers

        z, residual, iterations = solve_cvxpylayers(
            problem.symmetrized(), tol=tol, max_iter=max_iter
        )
        hit_max_iter = None
    info = build_info(residual.detach(), iterations, tol, backend, hit_max_iter)
    if not problem.batched:
        z = z.squeeze(0)
    return (z, info) if return_info else z
