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

from constrained_pairs.qp.info import natural_residual
from constrained_pairs.qp.kkt import KKTFactor, factorize, kkt_solve, matvec, refined_solve

_CHECK_RESIDUAL_AFTER = 15  # iterations after which a small KKT residual alone stops the loop


def _lagrangian_gradient(Q, p, A, z, nu):
    g = matvec(Q, z, p)
    if A is not None:
        g = g + (A.mT @ nu.unsqueeze(-1)).squeeze(-1)
    return g


@dataclass
class NativeResult:
    """Solution, multipliers, final active set and factorisation of a native solve."""

    z: torch.Tensor
    nu: torch.Tensor | None
    at_lower: torch.Tensor
    at_upper: torch.Tensor
    factor: KKTFactor
    residual: torch.Tensor
    iterations: torch.Tensor
    done: torch.Tensor
    jittered: bool


def active_set_solve(Q, p, lower, upper, A, b, *, tol: float, max_iter: int) -> NativeResult:
    """Primal-dual active-set iterations on a batch of box (+ equality) constrained QPs.

    All tensors are batched and share one dtype/device: Q ``(B, n, n)`` (symmetric PSD), p, lower,
    upper ``(B, n)`` (bounds may be ±inf), A ``(B, k, n)`` and b ``(B, k)`` or None. One host
    synchronisation per iteration decides whether every active set has settled.
    """
    B, n = p.shape
    dtype, device = p.dtype, p.device
    eps = torch.finfo(dtype).eps
    jitter = None  # regularisation of the free block, only once a factorisation fails (PSD Q)
    at_lower = torch.zeros(B, n, dtype=torch.bool, device=device)
    at_upper = torch.zeros_like(at_lower)
    z = torch.zeros_like(p)
    nu = None if A is None else torch.zeros_like(b)
    margin = 1e-2 * tol
    neg_g_tol = -margin * (1 + p.abs().amax(-1, keepdim=True))
    finite_bounds = torch.cat([lower, upper], -1)
    finite_bounds = torch.where(finite_bounds.isfinite(), finite_bounds.abs(), 0.0)
    z_tol = margin * (1 + finite_bounds.amax(-1, keepdim=True))
    below_lower, above_upper = lower - z_tol, upper + z_tol
    free_mask = torch.ones(B, n, dtype=torch.bool, device=device)
    sizes = (n, n)
    history = []  # per iteration: which problems changed their active set
    for it in range(1, max_iter + 1):
        x = torch.where(at_lower, lower, torch.where(at_upper, upper, z))
        fac, failed = factorize(Q, free_mask, A, jitter, sizes)
        # Newton step on the KKT system of the current active set (exact once it is right);
        # each step starts from the last point, so it also refines the previous solve
        g = _lagrangian_gradient(Q, p, A, x, nu)
        r_bot = None if A is None else b - (A @ x.unsqueeze(-1)).squeeze(-1)
        x, dnu = kkt_solve(fac, g.neg(), r_bot, base=x)
        nu_new = None if nu is None else nu + dnu
        g = _lagrangian_gradient(Q, p, A, x, nu_new)
        # active-set update from the primal values (free variables) and multiplier signs (fixed)
        new_lower = torch.where(free_mask, x < below_lower, at_lower & (g > neg_g_tol))
        new_upper = torch.where(free_mask, x > above_upper, at_upper & (g < -neg_g_tol))
        changed = ((new_lower ^ at_lower) | (new_upper ^ at_upper)).any(-1)
        new_free = ~(new_lower | new_upper)
        count = new_free.sum(-1)
        stats = torch.stack([count.min(), count.max(), changed.sum(), failed.sum()]).tolist()
        if stats[3] and it < max_iter:  # singular free block: retry with a larger jitter
            if jitter is None:
                diag = Q.diagonal(dim1=-2, dim2=-1).abs().amax(-1, keepdim=True)
                jitter = torch.zeros_like(diag)
                base = n * eps * torch.where(diag > 0, diag, torch.ones_like(diag))
            bumped = torch.maximum(jitter * 1e3, base)
            jitter = torch.where(failed.unsqueeze(-1), bumped, jitter)
            continue
        z, nu = x, nu_new
        used = (fac, at_lower, at_upper)  # the active set z was computed with
        history.append(changed)
        # converged: no active set changes; after many iterations also accept a point whose
        # KKT residual is below tol (degenerate variables may flip within round-off)
        if stats[2] == 0 or it >= _CHECK_RESIDUAL_AFTER:
            residual = natural_residual(Q, p, lower, upper, A, b, z, nu)
            unfinished = residual > tol
            if not bool(unfinished.any()):
                break
            if stats[2] == 0:  # right active set, inexact step (jittered PSD block): refine
                history[-1] = unfinished
        at_lower, at_upper, free_mask = new_lower, new_upper, new_free
        sizes = (stats[0], stats[1])
    else:
        residual = natural_residual(Q, p, lower, upper, A, b, z, nu)
    done = residual <= tol
    # iterations until the active set stopped changing: one past the last change
    steps = torch.arange(1, len(history) + 1, device=device).unsqueeze(-1)
    last_change = (torch.stack(history) * steps).amax(0)
    iterations = torch.clamp(last_change + 1, max=len(history))
    z = torch.minimum(torch.maximum(z, lower), upper)
    fac, at_lower, at_upper = used
    jittered = jitter is not None
    return NativeResult(z, nu, at_lower, at_upper, fac, residual, iterations, done, jittered)


class NativeQPFunction(torch.autograd.Function):
    """``z*(Q, p, lower, upper, A, b)`` with the implicit-function-theorem backward."""

    @staticmethod
    def forward(ctx, Q, p, lower, upper, A, b, tol, max_iter, out):
        # ½zᵀQz sees only ½(Q + Qᵀ); the gradient below is symmetric, hence also the gradient
        # with respect to the unsymmetrised Q
        Q = (Q + Q.mT).mul_(0.5)
        res = active_set_solve(Q, p, lower, upper, A, b, tol=tol, max_iter=max_iter)
        out.append(res)
        ctx.save_for_backward(Q, A, res.z)
        ctx.res = res
        return res.z

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_z):
        Q, A, z = ctx.saved_tensors
        res: NativeResult = ctx.res
        fac = res.factor
        # [w; w_nu] solves the reduced KKT system against the free part of the incoming gradient;
        # w is zero on fixed variables, so w and w_nu carry every parameter's gradient
        r_bot = None if A is None else torch.zeros_like(res.nu)
        # a jittered (PSD) factorisation is refined against the exact reduced KKT matrix
        w, w_nu = refined_solve(Q, A, fac, grad_z, r_bot, steps=int(res.jittered))
        grads = [None] * 9
        need = ctx.needs_input_grad
        if need[0]:  # -½(w zᵀ + z wᵀ), without a transposed (strided) pass
            half = -0.5 * w
            outer = half.unsqueeze(-1) * z.unsqueeze(-2)
            grads[0] = outer.addcmul_(z.unsqueeze(-1), half.unsqueeze(-2))
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


def solve_native(Q, p, lower, upper, A, b, *, tol: float, max_iter: int):
    """Solve the batch and return ``(z, NativeResult)``; z is differentiable in every input."""
    out: list[NativeResult] = []
    z = NativeQPFunction.apply(Q, p, lower, upper, A, b, tol, max_iter, out)
    return z, out[0]
