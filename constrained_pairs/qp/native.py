"""Native batched QP solver: primal-dual active set with an implicit-differentiation backward.

Solves ``min ½zᵀQz + pᵀz  s.t. lower ≤ z ≤ upper, Az = b`` for a batch of problems (SPEC §3).
Each iteration fixes a guess of the active bounds and takes a Newton step on the reduced KKT
system of the remaining ("free") variables (:mod:`constrained_pairs.qp.kkt`: one batched
Cholesky per iteration for the whole batch). The guess is then updated from the primal values
of the free variables and the signs of the multipliers ``g = Qz + p + Aᵀnu`` of the fixed ones
(primal-dual active set, Hintermüller, Ito & Kunisch, 2003); it stops once no active set
changes and the KKT residual is below ``tol``. The first iteration (nothing fixed) is the
unconstrained solve, so the method starts from the clamp approximation's active set.

Backward (active set fixed, F free, L/U at lower/upper): with ``v = ∂ℓ/∂z`` solve
``[[Q_FF, A_Fᵀ], [A_F, 0]] [w_F; w_nu] = [v_F; 0]`` with the forward's factorisation, ``w = 0``
off F. Then ``∂ℓ/∂p = −w``, ``∂ℓ/∂Q = −½(w zᵀ + z wᵀ)``, ``∂ℓ/∂b = w_nu``,
``∂ℓ/∂A = −(nu wᵀ + w_nu zᵀ)``, and ``∂ℓ/∂lower`` (on L), ``∂ℓ/∂upper`` (on U) equal
``v − Q w − Aᵀ w_nu`` there (zero elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from constrained_pairs.qp.convexity import (
    convexifying_shift,
    nonconvex_problems,
    recession_certificate,
)
from constrained_pairs.qp.kkt import (
    KKTFactor,
    factorize,
    matvec,
    minus_rows_times,
    newton_step,
    refined_solve,
    symmetric_part,
    take_step,
    times_free,
)
from constrained_pairs.qp.residual import residual_and_gradient

_CHECK_RESIDUAL_AFTER = 15  # iterations after which a small KKT residual alone stops the loop


@dataclass
class NativeResult:
    """Solution, multipliers, final active set and factorisation of a native solve.

    ``nonconvex`` flags problems whose Q is not PSD (found when a factorisation failed, or by the
    up-front check), ``unbounded`` those whose last step certifies unboundedness
    (:func:`~constrained_pairs.qp.convexity.recession_certificate`); ``min_eigenvalue`` holds
    λ_min(Q) where it was computed (NaN elsewhere; None when it was computed nowhere); ``Q`` is
    the matrix solved (Q + sI with a convexifying shift s on the non-convex problems).
    """

    z: torch.Tensor
    nu: torch.Tensor | None
    at_lower: torch.Tensor
    at_upper: torch.Tensor
    factor: KKTFactor
    residual: torch.Tensor
    iterations: torch.Tensor
    done: torch.Tensor
    jittered: bool
    nonconvex: torch.Tensor
    unbounded: torch.Tensor
    min_eigenvalue: torch.Tensor | None
    Q: torch.Tensor


def active_set_solve(
    Q,
    p,
    lower,
    upper,
    A,
    b,
    *,
    tol: float,
    max_iter: int,
    shift: torch.Tensor | None = None,
    nonconvex: torch.Tensor | None = None,
    min_eigenvalue: torch.Tensor | None = None,
) -> NativeResult:
    """Primal-dual active-set iterations on a batch of box (+ equality) constrained QPs.

    All tensors are batched and share one dtype/device: Q ``(B, n, n)`` (symmetric PSD), p, lower,
    upper ``(B, n)`` (bounds may be ±inf), A ``(B, k, n)`` and b ``(B, k)`` or None. One host
    synchronisation per iteration decides whether every active set has settled. The gradient
    ``g = Qz + p + Aᵀnu`` is updated from the rows of the free set (and of the variables that
    moved to a bound) instead of a full product each iteration, and recomputed exactly whenever
    convergence is checked. ``shift`` ``(B,)`` (with ``nonconvex`` flags and ``min_eigenvalue``
    from an up-front check) regularises non-convex problems so that the batch carries on.
    """
    B, n = p.shape
    dtype, device = p.dtype, p.device
    eps = torch.finfo(dtype).eps
    false = torch.zeros(B, dtype=torch.bool, device=device)
    nonconvex = false if nonconvex is None else nonconvex
    checked = ~false if min_eigenvalue is not None else false.clone()
    lam_min = None if min_eigenvalue is None else min_eigenvalue.clone()  # where computed
    if shift is not None and bool(nonconvex.any()):  # solve Q + sI on the non-convex problems
        Q = _shifted(Q, shift.to(dtype))
    jitter = None  # regularisation of the free block, once a factorisation fails (PSD Q)
    at_lower = torch.zeros(B, n, dtype=torch.bool, device=device)
    at_upper = torch.zeros_like(at_lower)
    z = torch.zeros_like(p)
    nu = None if A is None else torch.zeros_like(b)
    g = p  # the gradient of the Lagrangian at (z, nu) = (0, 0)
    step = None  # the last compact step (of z_fac)
    margin = 1e-2 * tol
    pos_g_tol = margin * (1 + p.abs().amax(-1, keepdim=True))
    neg_g_tol = -pos_g_tol
    bound_size = torch.cat([lower, upper], -1).abs().nan_to_num_(posinf=0.0)
    z_tol = margin * (1 + bound_size.amax(-1, keepdim=True))
    below_lower, above_upper = lower - z_tol, upper + z_tol
    free_mask = torch.ones(B, n, dtype=torch.bool, device=device)
    sizes, positions = (n, n), None
    history = []  # per iteration: which problems changed their active set
    z_fac = None  # the factorisation z was computed with
    residual = None
    for it in range(1, max_iter + 1):
        # fixed variables at their bounds (z is there already, but for those that just left F)
        x = z if it == 1 else torch.clamp(z, lower, upper)
        fac, failed = factorize(Q, free_mask, A, jitter, sizes, positions)
        # Newton step on the KKT system of the current active set (exact once it is right);
        # each step starts from the last point, so it also refines the previous solve
        # x − z lives on the variables that left z's free set: the rows of z's factor give Q(x − z)
        if z_fac is None:  # nothing is fixed before the first step (or Q was just shifted)
            g_x = g if it == 1 else matvec(Q, x - z, g)
        else:
            g_x = times_free(z_fac, Q, x - z, g)
        r_bot = None if A is None else b - (A @ x.unsqueeze(-1)).squeeze(-1)
        d, dnu = newton_step(fac, g_x, r_bot)
        x = take_step(fac, x, d)
        nu_new = None if nu is None else nu + dnu
        if it == 1 and jitter is None:  # the unconstrained Newton step zeroes the gradient
            g_new = torch.zeros_like(g_x)
        else:
            g_new = minus_rows_times(fac, Q, d, g_x)
            if A is not None:
                g_new = g_new + (A.mT @ dnu.unsqueeze(-1)).squeeze(-1)
        # active-set update from the primal values (free variables) and multiplier signs (fixed);
        # a fixed variable sits on its bound, so only a free one can pass the primal tests
        if it == 1:  # nothing is fixed yet
            new_lower, new_upper = x < below_lower, x > above_upper
            new_free = ~(new_lower | new_upper)
            changed = ~new_free.all(-1)
        else:
            new_lower = torch.where(at_lower, g_new > neg_g_tol, x < below_lower)
            new_upper = torch.where(at_upper, g_new < pos_g_tol, x > above_upper)
            new_free = ~(new_lower | new_upper)
            changed = ((new_lower ^ at_lower) | (new_upper ^ at_upper)).any(-1)
        positions = new_free.cumsum(-1)
        stats = torch.cat(
            [positions[:, -1].amax(0, True), changed.sum(0, True), failed.sum(0, True)]
        ).tolist()
        if stats[2]:  # a failed factorisation: non-convex Q, or a singular PSD free block
            fresh = failed & ~checked
            if bool(fresh.any()):
                bad, lam = nonconvex_problems(Q[fresh], dtype)
                if lam_min is None:
                    lam_min = torch.full((B,), float("nan"), dtype=torch.float64, device=device)
                lam_min[fresh] = lam
                new_bad = torch.zeros_like(fresh)
                new_bad[fresh] = bad
                checked = checked | fresh
                if bool(new_bad.any()):  # from now on solve Q + sI there (status: nonconvex)
                    nonconvex = nonconvex | new_bad
                    shift = torch.where(new_bad, convexifying_shift(lam_min.nan_to_num()), 0.0)
                    Q = _shifted(Q, shift.to(dtype))
                    g = (
                        matvec(Q, z, p)
                        if nu is None
                        else matvec(Q, z, p) + (A.mT @ nu.unsqueeze(-1)).squeeze(-1)
                    )
                    failed = failed & ~new_bad
                    z_fac = None  # its rows are those of the unshifted Q
            if it < max_iter:  # retry (a jitter on the singular PSD blocks)
                if bool(failed.any()):
                    if jitter is None:
                        diag = Q.diagonal(dim1=-2, dim2=-1).abs().amax(-1, keepdim=True)
                        base = n * eps * torch.where(diag > 0, diag, torch.ones_like(diag))
                        jitter = torch.zeros_like(diag)
                    bumped = torch.maximum(jitter * 1e3, base)
                    jitter = torch.where(failed.unsqueeze(-1), bumped, jitter)
                continue
        z, nu, g, step, z_fac = x, nu_new, g_new, d, fac
        used = (fac, at_lower, at_upper)  # the active set z was computed with
        history.append(changed)
        # converged: no active set changes; after many iterations also accept a point whose
        # KKT residual is below tol (degenerate variables may flip within round-off)
        if stats[1] == 0 or it >= _CHECK_RESIDUAL_AFTER:
            residual, g = residual_and_gradient(Q, p, lower, upper, A, b, z, nu)
            unfinished = residual > tol
            if not bool(unfinished.any()):
                break
            if stats[1] == 0:  # right active set, inexact step (jittered PSD block): refine
                history[-1] = unfinished
        residual = None
        at_lower, at_upper, free_mask = new_lower, new_upper, new_free
        sizes = (0, stats[0])  # (a free set of all n variables is gathered like any other)
    if residual is None:
        residual, _ = residual_and_gradient(Q, p, lower, upper, A, b, z, nu)
    done = residual <= tol
    # iterations until the active set stopped changing: one past the last change
    steps = torch.arange(1, len(history) + 1, device=device).unsqueeze(-1)
    last_change = (torch.stack(history) * steps).amax(0)
    iterations = torch.clamp(last_change + 1, max=len(history))
    unbounded = false
    if jitter is not None and not bool(done.all()):  # only a singular Q can be unbounded
        candidates = ~done & ~nonconvex
        direction = torch.zeros_like(p)  # the last step, in the full layout
        direction = direction if step is None else take_step(z_fac, direction, step)
        unbounded = candidates & (
            recession_certificate(Q, p, lower, upper, A, direction)
            | recession_certificate(Q, p, lower, upper, A, z)
        )
    z = torch.clamp(z, lower, upper)
    fac, at_lower, at_upper = used
    jittered = jitter is not None
    return NativeResult(
        z,
        nu,
        at_lower,
        at_upper,
        fac,
        residual,
        iterations,
        done,
        jittered,
        nonconvex,
        unbounded,
        lam_min,
        Q,
    )


def _shifted(Q: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``Q + diag(shift)`` per problem, as a new tensor."""
    Q = Q.clone()
    Q.diagonal(dim1=-2, dim2=-1).add_(shift.unsqueeze(-1))
    return Q


class NativeQPFunction(torch.autograd.Function):
    """``z*(Q, p, lower, upper, A, b)`` with the implicit-function-theorem backward."""

    @staticmethod
    def forward(ctx, Q, p, lower, upper, A, b, tol, max_iter, check_convexity, out):
        # ½zᵀQz sees only ½(Q + Qᵀ); the gradient below is symmetric, hence also the gradient
        # with respect to the unsymmetrised Q
        Q = symmetric_part(Q)
        shift = nonconvex = lam = None
        if check_convexity:
            nonconvex, lam = nonconvex_problems(Q, Q.dtype)
            shift = convexifying_shift(lam)
        # the iterations create many small tensors that autograd never sees: inference mode
        # skips their version counters; what leaves the solver is cloned out of it
        with torch.inference_mode():
            res = active_set_solve(
                Q,
                p,
                lower,
                upper,
                A,
                b,
                tol=tol,
                max_iter=max_iter,
                shift=shift,
                nonconvex=nonconvex,
                min_eigenvalue=lam,
            )
        z = res.z.clone()
        out.append(res)
        ctx.save_for_backward(A, z)
        ctx.Q, ctx.res = res.Q, res  # Q may be an inference tensor (a shifted copy)
        return z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_z):
        A, z = ctx.saved_tensors
        Q, res = ctx.Q, ctx.res
        fac = res.factor
        # [w; w_nu] solves the reduced KKT system against the free part of the incoming gradient;
        # w is zero on fixed variables, so w and w_nu carry every parameter's gradient
        r_bot = None if A is None else torch.zeros_like(res.nu)
        # a jittered (PSD) factorisation is refined against the exact reduced KKT matrix
        w, w_nu = refined_solve(Q, A, fac, grad_z, r_bot, steps=int(res.jittered))
        grads = [None] * 10
        need = ctx.needs_input_grad
        if need[0]:  # -½(w zᵀ + z wᵀ) = [-½w, z] [z, -½w]ᵀ: one product, one pass over Q's size
            half = -0.5 * w
            grads[0] = torch.stack([half, z], -1) @ torch.stack([z, half], -2)
        if need[1]:
            grads[1] = -w
        if need[2] or need[3]:
            bound = grad_z - matvec(Q, w)
            if A is not None:
                bound = bound - (A.mT @ w_nu.unsqueeze(-1)).squeeze(-1)
            zero = torch.zeros_like(bound)
            grads[2] = torch.where(res.at_lower, bound, zero) if need[2] else None
            grads[3] = torch.where(res.at_upper, bound, zero) if need[3] else None
        if A is not None and need[4]:
            grads[4] = -(
                res.nu.unsqueeze(-1) * w.unsqueeze(-2) + w_nu.unsqueeze(-1) * z.unsqueeze(-2)
            )
        if A is not None and need[5]:
            grads[5] = w_nu
        return tuple(grads)


def solve_native(
    Q, p, lower, upper, A, b, *, tol: float, max_iter: int, check_convexity: bool = False
):
    """Solve the batch and return ``(z, NativeResult)``; z is differentiable in every input.

    ``check_convexity``: compute every λ_min(Q) up front (otherwise only for the problems whose
    factorisation fails, which every non-PSD Q does at the first, unconstrained, iteration).
    """
    out: list[NativeResult] = []
    z = NativeQPFunction.apply(Q, p, lower, upper, A, b, tol, max_iter, check_convexity, out)
    return z, out[0]
