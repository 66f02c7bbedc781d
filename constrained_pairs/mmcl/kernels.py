"""Kernels of MMCL (SPEC §3): linear, RBF and polynomial, as dense Gram matrices."""

from __future__ import annotations

import torch

from constrained_pairs._validation import check_choice

KERNELS = ("rbf", "linear", "poly")


def kernel_matrix(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str = "rbf",
    *,
    sigma: float = 5.0,
    degree: int = 3,
    coef0: float = 0.5,
) -> torch.Tensor:
    """Gram matrix ``K[i, j] = k(x_i, y_j)`` of shape (n, m) for x (n, d) and y (m, d).

    Kernels: ``"linear"`` xᵀy, ``"rbf"`` exp(-‖x - y‖² / sigma), ``"poly"`` (xᵀy + coef0)^degree.
    """
    check_choice("kernel", kernel, KERNELS)
    inner = x @ y.T
    if kernel == "linear":
        return inner
    if kernel == "poly":
        return (inner + coef0) ** degree
    # ‖x - y‖² from inner products keeps one matmul; clamp the rounding below zero.
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * inner
    return torch.exp(-sq.clamp(min=0) / sigma)
