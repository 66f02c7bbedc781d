"""Inference by batches: apply a network in eval mode without gradients, concatenate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from constrained_pairs._validation import check_positive_int

__all__ = ["apply_batched", "embed", "module_device", "module_dtype"]


def module_device(module: nn.Module, default: torch.device | None = None) -> torch.device | None:
    """Device of the module's first parameter or buffer (``default`` for a stateless module)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return default


def module_dtype(module: nn.Module, default: torch.dtype | None = None) -> torch.dtype | None:
    """Dtype of the module's first parameter when floating (else, or without one, ``default``)."""
    first = next(module.parameters(), None)
    return first.dtype if first is not None and first.is_floating_point() else default


@torch.no_grad()
def apply_batched(
    module: nn.Module,
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], Any] | None = None,
    *,
    batch_size: int = 1024,
) -> Any:
    """``fn`` (default ``module``) on batches of ``x``, in ``module``'s eval mode, concatenated.

    Batches are moved to the module's device (a stateless module runs on x's device); the
    module's training mode is restored afterwards, also on error. Tuple outputs are
    concatenated element-wise.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    fn = module if fn is None else fn
    device = module_device(module, x.device)
    was_training = module.training
    module.eval()
    try:
        outs = [fn(x[i : i + batch_size].to(device)) for i in range(0, x.shape[0], batch_size)]
    finally:
        module.train(was_training)
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outs))
    return torch.cat(outs)


def embed(encoder: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Embeddings of ``x`` by the frozen ``encoder`` (eval mode, no gradient), by batches."""
    return apply_batched(encoder, x, batch_size=batch_size)
