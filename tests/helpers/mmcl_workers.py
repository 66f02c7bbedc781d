"""Functions run by ``launch`` in the MMCL data-parallel tests (module level, for spawn)."""

from __future__ import annotations

import torch

from constrained_pairs.losses import info_nce
from constrained_pairs.mmcl import MMCLLoss

#: (name, MMCLLoss options) of the losses every rank evaluates on its slice of the batch
LOSSES = [
    ("structured-detach", {}),
    ("structured-implicit", {"grad": "implicit", "kernel": "poly", "C": 0.6}),
    ("native-implicit", {"grad": "implicit", "backend": "native", "C": 0.6}),
]


def local_losses(z1: torch.Tensor, z2: torch.Tensor, gather: bool | None) -> dict:
    """Value and input gradients of every loss on (z1, z2); with gathering, of the global loss."""
    out = {}
    for name, options in LOSSES:
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        loss_fn = MMCLLoss(gather=gather, **options)
        value = loss_fn(a, b)
        value.backward()
        out[name] = (value.detach(), a.grad, b.grad, loss_fn.last_info.all_converged)
    for reduction in ("mean", "sum"):
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        value = info_nce(a, b, 0.3, reduction, gather=gather)
        value.backward()
        out[f"info_nce-{reduction}"] = (value.detach(), a.grad, b.grad, True)
    out["info_nce-none"] = (info_nce(z1, z2, 0.3, "none", gather=gather), None, None, True)
    return out


def sharded(rank: int, z1: torch.Tensor, z2: torch.Tensor) -> dict:
    """This rank's half of the batch through the gathering losses (gather=None: automatic)."""
    half = z1.shape[0] // 2
    rows = slice(rank * half, (rank + 1) * half)
    return local_losses(z1[rows], z2[rows], None)
