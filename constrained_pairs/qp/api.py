"""One entry point, :func:`solve_qp`, for every backend of the differentiable QP layer (SPEC §3)."""

from __future__ import annotations

from dataclasses import replace

import torch

from constrained_pairs._validation import check_choice, check_flag
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError, UnsupportedOptionError
from constrained_pairs.qp._bounds import problem_span
from constrained_pairs.qp.convexity import (
    convexifying_shift,
    nonconvex_problems,
    recession_certificate,
)
from constrained_pairs.qp.info import QPInfo, build_info
from constrained_pairs.qp.native import solve_native
from constrained_pairs.qp.problem import QPProblem, check_options, make_problem

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
    check_convexity: bool | None = None,
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
        check_convexity: compute λ_min(Q) of every problem up front (float64 eigenvalues).
            None (default): ``"native"`` checks only the problems whose free-block
            factorisation fails (every non-PSD Q fails at its first, unconstrained, step), the
            external backends always check before the call; False: no check for them.
        return_info: also return a :class:`QPInfo`.

    Returns:
        ``z`` of shape ``(B, n)`` (``(n,)`` for unbatched inputs), in Q's floating dtype and on
        Q's device; with ``return_info=True`` the pair ``(z, info)``.

    Raises:
        InvalidArgumentError: (a ``ValueError``) for non-square Q, mismatched shapes or batch
            sizes, ``lower > upper``, infeasible equalities, non-finite data or bad options.

    Every problem whose status is not ``"optimal"`` is flagged in ``info.status`` and with a
    ``RuntimeWarning``: ``"max_iter"`` / ``"optimal_inaccurate"`` (not converged),
    ``"nonconvex"`` (Q not PSD: no minimiser is computed) and ``"unbounded"`` (a PSD Q with a
    descent direction of its null space that the bounds leave open). The z of such problems is
    the last (feasible for nonconvex) point, not a minimiser.
    ``"qpth"`` runs in float64 and ``"cvxpylayers"`` in float64 on the CPU; both cast back.

    Example:
        >>> z = solve_qp(Q, p, lower=0.0, upper=1.0)            # (B, n)
        >>> z, info = solve_qp(Q, p, lower=0.0, return_info=True)
    """
    check_choice("backend", backend, BACKENDS)
    if check_convexity is not None:
        check_flag("check_convexity", check_convexity)
    return_info = check_flag("return_info", return_info)
    problem = make_problem(Q, p, lower, upper, A, b, check_q=backend != "native")
    tol, max_iter = check_options(tol, max_iter, problem.p.dtype)
    if max_iter is None:
        max_iter = _DEFAULT_MAX_ITER[backend]
    extra = {}
    if backend == "native":  # symmetrises Q inside its autograd.Function
        z, result = solve_native(
            problem.Q,
            problem.p,
            problem.lower,
            problem.upper,
            problem.A,
            problem.b,
            tol=tol,
            max_iter=max_iter,
            check_convexity=bool(check_convexity),
        )
        residual, iterations = result.residual.clone(), result.iterations.clone()
        hit_max_iter, nonconvex, unbounded = ~result.done, result.nonconvex, result.unbounded
        failed = None
        if result.min_eigenvalue is not None:
            extra["min_eigenvalue"] = result.min_eigenvalue.clone()
    else:
        z, residual, iterations, nonconvex, unbounded, failed, extra = _solve_external(
            backend, problem, tol, max_iter, check_convexity is not False
        )
        hit_max_iter = None
    info = build_info(
        residual.detach(),
        iterations,
        tol,
        backend,
        hit_max_iter,
        nonconvex=nonconvex,
        unbounded=unbounded,
        failed=failed,
        extra=extra,
    )
    if not problem.batched:
        z = z.squeeze(0)
    return (z, info) if return_info else z


def _solve_external(backend: str, problem: QPProblem, tol: float, max_iter: int, check: bool):
    """qpth / cvxpylayers, behind the convexity and boundedness checks they lack (SPEC §7).

    Non-convex problems of the batch are passed on with a convexifying diagonal shift (status
    ``nonconvex``). A non-converged point that certifies a recession direction is reported
    ``unbounded``; when the external solver fails outright, the native solver classifies the
    batch and its unbounded problems are passed on inside a far box (±1e6 × their scale); when
    it fails on a batch without unbounded problems, the native point is returned with status
    ``solver_error`` (:func:`_native_fallback`).
    """
    sym = problem.symmetrized()
    B, n = sym.size
    nonconvex = torch.zeros(B, dtype=torch.bool, device=sym.p.device)
    extra = {}
    if check:
        nonconvex, lam = nonconvex_problems(sym.Q, sym.Q.dtype)
        extra["min_eigenvalue"] = lam
        if bool(nonconvex.any()):
            shift = convexifying_shift(lam).to(sym.Q.dtype)
            eye = torch.eye(n, dtype=sym.Q.dtype, device=sym.Q.device)
            sym = replace(sym, Q=sym.Q + shift[:, None, None] * eye)
    if backend == "qpth":
        from constrained_pairs.qp.qpth_backend import solve_qpth as solve
    else:
        from constrained_pairs.qp.cvxpylayers_backend import solve_cvxpylayers as solve
    known = torch.zeros_like(nonconvex)
    failed = torch.zeros_like(nonconvex)
    try:
        z, residual, iterations = solve(sym, tol=tol, max_iter=max_iter)
    except (InvalidArgumentError, InvalidTypeError):
        raise
    except Exception as exc:  # the solver gave up on the batch: is some problem unbounded?
        with torch.no_grad():
            _, native = solve_native(
                sym.Q, sym.p, sym.lower, sym.upper, sym.A, sym.b, tol=tol, max_iter=50
            )
        known = native.unbounded & ~nonconvex
        if not bool(known.any()):
            return _native_fallback(backend, sym, tol, nonconvex, known, exc, extra)
        far = 1e6 * problem_span(sym)
        sym = replace(
            sym,
            lower=torch.where(known.unsqueeze(-1) & ~sym.lower.isfinite(), -far, sym.lower),
            upper=torch.where(known.unsqueeze(-1) & ~sym.upper.isfinite(), far, sym.upper),
        )
        try:
            z, residual, iterations = solve(sym, tol=tol, max_iter=max_iter)
        except (InvalidArgumentError, InvalidTypeError):
            raise
        except Exception as again:
            return _native_fallback(backend, sym, tol, nonconvex, known, again, extra)
    unbounded = known | (
        ~nonconvex
        & ~(residual <= tol)
        & recession_certificate(sym.Q, sym.p, problem.lower, problem.upper, sym.A, z)
    )
    return z, residual, iterations, nonconvex, unbounded, failed, extra


def _native_fallback(
    backend: str,
    sym: QPProblem,
    tol: float,
    nonconvex: torch.Tensor,
    unbounded: torch.Tensor,
    exc: Exception,
    extra: dict,
):
    """The external solver failed on the batch: the native solver's point instead, with status
    ``solver_error`` for every problem not already classified ``nonconvex`` or ``unbounded``,
    and the failure in ``extra`` (``"solver_error"``, ``"fallback"``, ``"fallback_converged"``:
    whether the native point meets ``tol``).

    A documented limitation of the backend (``UnsupportedOptionError``, e.g. qpth's LU of a
    singular Q) is an input the backend does not take: it is raised, not hidden.
    """
    if isinstance(exc, UnsupportedOptionError):
        raise UnsupportedOptionError(f"backend={backend!r} failed on this batch: {exc}") from exc
    cap = max(_DEFAULT_MAX_ITER["native"], 2 * sym.size[1])  # active-set steps, not SCS's
    z, result = solve_native(
        sym.Q, sym.p, sym.lower, sym.upper, sym.A, sym.b, tol=tol, max_iter=cap
    )
    residual = result.residual.clone()
    extra = {
        **extra,
        "solver_error": f"{type(exc).__name__}: {exc}",
        "fallback": "native",
        "fallback_converged": (residual <= tol) & result.done & ~result.nonconvex,
    }
    failed = ~nonconvex & ~unbounded
    return z, residual, result.iterations.clone(), nonconvex, unbounded, failed, extra
