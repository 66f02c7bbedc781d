"""Bounded-memory sums over chunks of pairs.

Each chunk's contribution is computed under activation checkpointing when gradients are needed, so
backward recomputes one chunk at a time instead of keeping every chunk's intermediates alive:
memory stays O(chunk) for any number of pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint


def stream_sum(
    fn: Callable[..., torch.Tensor], chunks: Iterable[Any], *tensors: Any
) -> torch.Tensor:
    """Return ``sum(fn(chunk, *tensors) for chunk in chunks)`` with O(chunk) autograd memory."""
    needs_grad = torch.is_grad_enabled() and any(
        isinstance(t, torch.Tensor) and t.requires_grad for t in tensors
    )
    total: torch.Tensor | None = None
    for chunk in chunks:
        if needs_grad:
            part = checkpoint(fn, chunk, *tensors, use_reentrant=False)
        else:
            part = fn(chunk, *tensors)
        total = part if total is None else total + part
    if total is None:
        raise RuntimeError("stream_sum over no chunks")
    return total
