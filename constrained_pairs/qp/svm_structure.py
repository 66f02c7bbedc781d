"""The shared structure of MMCL's B reduced SVM duals (SPEC §3): Q_t from one kernel matrix.

For a batch kernel matrix K (B, B) and anchor t, the dual over the negatives j ≠ t is

    Q_t[i, j] = K_tt + ρ δ_ij + K_ij - K_ti - K_tj,   β_t = argmin_{0 ≤ β ≤ C} ½ βᵀQ_tβ - 2·1ᵀβ.

SPEC §3 writes ``1`` for K_tt: they agree for the RBF and linear kernels on unit vectors; for the
polynomial kernel K_tt = (1 + c)^p is the value the general SVM dual gives, and it keeps
Q_t = ρI + Gram(φ_i - φ_t) positive definite.

Every β_t is stored as row t of a (B, B) matrix with a zero diagonal (β_tt is pinned at 0).
Because Q_t is K + ρI updated by rank two, the products Q_t β_t of all anchors cost one B×B
matmul (:func:`batched_q_times`).
"""

from __future__ import annotations

import torch


def batched_q_times(
    kernel: torch.Tensor, v: torch.Tensor, rho: float, anchors: torch.Tensor | None = None
) -> torch.Tensor:
    """Rows ``Q_t v_t`` for every anchor t, for v (T, B) zero at each row's anchor: one matmul.

    (Q_t v)_i = K_tt s + ρ v_i + (Kv)_i - K_ti s - K_t·v, with s = Σ_j v_j (SPEC §3). Row r
    belongs to anchor ``anchors[r]`` (default: row t is anchor t, T = B); the entry of the
    anchor itself is meaningless and must be ignored by the caller.
    """
    s = v.sum(1, keepdim=True)
    rows = kernel if anchors is None else kernel[anchors]
    k_tt = kernel.diagonal()[:, None] if anchors is None else kernel.diagonal()[anchors][:, None]
    return k_tt * s + rho * v + v @ kernel - rows * s - (v * rows).sum(1, keepdim=True)


def anchor_mask(size: int, anchors: torch.Tensor | None, device) -> torch.Tensor:
    """(T, B) bool mask of each row's own anchor (the identity when ``anchors`` is None)."""
    if anchors is None:
        return torch.eye(size, dtype=torch.bool, device=device)
    mask = torch.zeros(len(anchors), size, dtype=torch.bool, device=device)
    return mask.scatter_(1, anchors.unsqueeze(1), True)


def negatives_index(size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(B, B-1) indices: row t lists the negatives j ≠ t of anchor t in increasing order."""
    keep = ~torch.eye(size, dtype=torch.bool, device=device)
    return torch.arange(size, device=device).expand(size, size)[keep].view(size, size - 1)


def explicit_q(kernel: torch.Tensor, rho: float) -> torch.Tensor:
    """The B matrices Q_t (B, B-1, B-1) written out, for the generic QP backends and checks."""
    size = kernel.shape[0]
    return q_on(
        kernel, torch.arange(size, device=kernel.device), negatives_index(size, kernel.device), rho
    )


def q_on(kernel: torch.Tensor, rows: torch.Tensor, idx: torch.Tensor, rho: float) -> torch.Tensor:
    """Q_t for the anchors ``rows`` (T,) restricted to their index lists idx (T, f): (T, f, f)."""
    count, width = idx.shape
    k_ti = torch.gather(kernel[rows], 1, idx)
    # Rows F_t of K, then columns F_t: faster than one two-index gather.
    k_rows = kernel.index_select(0, idx.reshape(-1)).view(count, width, -1)
    q = torch.gather(k_rows, 2, idx[:, None, :].expand(-1, width, -1))
    q = q.sub_(k_ti[:, :, None]).sub_(k_ti[:, None, :]).add_(kernel.diagonal()[rows][:, None, None])
    q.diagonal(dim1=1, dim2=2).add_(rho)
    return q


def lipschitz_bound(kernel: torch.Tensor, rho: float) -> torch.Tensor:
    """Upper bound ρ + ‖Q_t - ρI‖_F ≥ λ_max(Q_t) for every anchor, in O(B²) (closed form)."""
    size = kernel.shape[0]
    k_tt, row = kernel.diagonal(), kernel.sum(1)
    # Σ_ij (K_ij - a_i - a_j + c)² with a = K_t, c = K_tt, expanded into batch-shared sums.
    fro2 = (
        (kernel * kernel).sum()
        + 2 * size * (kernel * kernel).sum(1)
        + 2 * row**2
        + size**2 * k_tt**2
        - 4 * kernel @ row
        + 2 * k_tt * row.sum()
        - 4 * size * k_tt * row
    )
    return rho + fro2.clamp(min=0).sqrt()
