"""Certificates that a QP has no minimiser to return: non-convexity and unboundedness (SPEC §7).

A batch problem ``min ½zᵀQz + pᵀz s.t. lower ≤ z ≤ upper, Az = b`` is

* **non-convex** when its (symmetric) Q has an eigenvalue below ``-100·n·eps·‖Q‖₂`` (round-off
  of a PSD matrix built in the input precision stays above that), computed in float64;
* **unbounded** when a direction d with ``Qd = 0``, ``Ad = 0``, ``pᵀd < 0`` lies in the
  recession cone of the box (``d_i ≥ 0`` where only ``lower_i`` is finite, ``d_i ≤ 0`` where only
  ``upper_i`` is, ``d_i = 0`` where both are): the objective decreases without bound along d.
  Solvers propose the direction (their diverging step or iterate); :func:`recession_certificate`
  checks it, so the status is never a guess.
"""

from __future__ import annotations

import torch


def eigenvalue_bounds(Q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(λ_min, max |λ|)`` of every symmetric ``Q (B, n, n)``, in float64, shape ``(B,)``."""
    lam = torch.linalg.eigvalsh(Q.detach().to(torch.float64))
    return lam[:, 0], lam.abs().amax(-1)


def nonconvex_problems(Q: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Flags ``(B,)`` of the problems whose Q is not PSD, and the smallest eigenvalues.

    ``dtype`` is the precision Q was given in: the threshold allows its round-off.
    """
    n = Q.shape[-1]
    lam_min, lam_abs = eigenvalue_bounds(Q)
    threshold = 100 * n * torch.finfo(dtype).eps * lam_abs.clamp_min(torch.finfo(dtype).tiny)
    return lam_min < -threshold, lam_min


def convexifying_shift(lam_min: torch.Tensor, lam_abs: torch.Tensor | None = None) -> torch.Tensor:
    """A diagonal shift ``s ≥ 0`` per problem that makes ``Q + sI`` positive definite (its
    eigenvalues then lie in ``[max|λ|, 2 max|λ| − 2 λ_min]``: well conditioned).

    Solvers use it to carry on with the non-convex problems of a batch (reported ``nonconvex``,
    their point is feasible but no minimiser), so the rest of the batch is solved normally.
    """
    scale = lam_min.abs() if lam_abs is None else lam_abs
    return torch.where(lam_min < 0, scale - lam_min, torch.zeros_like(lam_min))


def recession_certificate(
    Q: torch.Tensor,
    p: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    A: torch.Tensor | None,
    d: torch.Tensor,
) -> torch.Tensor:
    """``(B,)`` flags: is ``d`` (a proposed direction per problem) a certificate of unboundedness?

    Checked in float64 after scaling ``d`` to ``‖d‖∞ = 1``, with a tolerance ``τ = √eps`` of the
    input precision: ``‖Qd‖∞ ≤ τ(1 + max|Q|)``, ``‖Ad‖∞ ≤ τ(1 + max|A|)``, the sign conditions
    of the recession cone up to ``τ``, and a descent ``pᵀd < −√τ·(1 + ‖p‖∞)`` (along d the
    objective falls at least until ``t ≈ |pᵀd| / (n τ ‖Q‖)``, far beyond any sensible scale).
    """
    tau = torch.finfo(p.dtype).eps ** 0.5
    f64 = torch.float64
    d = d.detach().to(f64)
    norm = d.abs().amax(-1, keepdim=True)
    ok = torch.isfinite(norm.squeeze(-1)) & (norm.squeeze(-1) > 0)
    d = torch.where(ok.unsqueeze(-1), d / torch.where(norm > 0, norm, 1.0), 0.0)
    d = torch.nan_to_num(d)
    Q64, p64 = Q.detach().to(f64), p.detach().to(f64)
    lo_fin, up_fin = torch.isfinite(lower), torch.isfinite(upper)
    ok &= ~(lo_fin & (d < -tau)).any(-1) & ~(up_fin & (d > tau)).any(-1)
    # entries in a bounded coordinate's rounding band are not directions: drop them
    d = torch.where((lo_fin & (d < 0)) | (up_fin & (d > 0)), 0.0, d)
    Qd = (d.unsqueeze(-2) @ Q64).squeeze(-2)
    ok &= Qd.abs().amax(-1) <= tau * (1 + Q64.abs().amax((-2, -1)))
    if A is not None:
        A64 = A.detach().to(f64)
        Ad = (A64 @ d.unsqueeze(-1)).squeeze(-1)
        ok &= Ad.abs().amax(-1) <= tau * (1 + A64.abs().amax((-2, -1)))
    ok &= (p64 * d).sum(-1) < -(tau**0.5) * (1 + p64.abs().amax(-1))
    return ok
