"""The few collectives every training loop needs (SPEC §6); each is a no-op in one process.

All of them read the default process group of ``torch.distributed``: nothing here starts one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
import torch.distributed as dist

_LOCAL: ContextVar[bool] = ContextVar("constrained_pairs_local", default=False)


def is_distributed() -> bool:
    """Whether a default process group is initialised (and has more than one rank), outside a
    :func:`local` block."""
    if _LOCAL.get():
        return False
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


@contextmanager
def local() -> Iterator[None]:
    """Within the block every rank works alone (``distributed=False`` of the entry points)."""
    token = _LOCAL.set(True)
    try:
        yield
    finally:
        _LOCAL.reset(token)


def rank() -> int:
    """This process's rank (0 without a process group or in a :func:`local` block)."""
    if _LOCAL.get() or not (dist.is_available() and dist.is_initialized()):
        return 0
    return dist.get_rank()


def world_size() -> int:
    """Number of ranks (1 without a process group or in a :func:`local` block)."""
    if _LOCAL.get() or not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


def is_main() -> bool:
    """Whether this process writes checkpoints, bars and logs (rank 0)."""
    return rank() == 0


def all_reduce_mean_(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Average ``tensors`` in place across ranks with one flattened ``all_reduce``.

    Tensors of one dtype and device are concatenated, reduced once and written back, so a step
    costs one collective whatever the number of parameters.
    """
    if not is_distributed() or not tensors:
        return tensors
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    size = world_size()
    for group in groups.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        flat /= size
        offset = 0
        for t in group:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()
    return tensors


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (pickled; for small objects)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """The ranks' ``tensor`` concatenated along dim 0, in rank order (no gradient; equal shapes)."""
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


__all__ = [
    "all_gather_cat",
    "all_reduce_mean_",
    "broadcast_object",
    "is_distributed",
    "is_main",
    "local",
    "rank",
    "world_size",
]
