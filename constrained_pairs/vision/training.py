"""Sample-batched training on the engine, shared by the NCD fits and the NCD and MMCL
pretraining loops: epochs of shuffled batches sharded across ranks, gradient and buffer
synchronisation, and gathered inference (SPEC §6, §7); the start-up of a call is
:class:`~constrained_pairs.vision.call.TrainingCall`.

Distributed runs (a default process group, SPEC §6): every rank holds the same data and draws
the same batch order from a generator seeded identically; rank r trains on the positions
r, r + W, ... of each global batch. A loss written as the rank's *share* of the global batch
mean (local sum / global batch size) has gradients whose sum over the ranks is the global
batch's gradient: :func:`sync_gradients` all-reduces them, so every rank takes the same step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from constrained_pairs.distributed.collectives import (
    all_gather_cat,
    all_reduce_mean_,
    is_distributed,
    rank,
    world_size,
)
from constrained_pairs.engine import GeneratorState, Task
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.vision.batched import apply_batched

__all__ = [
    "EpochBatches",
    "MinibatchTask",
    "TensorState",
    "broadcast_state_",
    "gather_apply",
    "global_sum",
    "local_positions",
    "sync_buffers_",
    "sync_gradients",
]


class TensorState:
    """Named tensors (or None) kept by a task across epochs, checkpointed like a module.

    Args:
        device: where loaded tensors go (a checkpoint is read on the CPU).
        **tensors: the initial values.
    """

    def __init__(self, device: torch.device | None = None, **tensors: torch.Tensor | None) -> None:
        self.device = device
        self.tensors = dict(tensors)

    def __getitem__(self, key: str) -> torch.Tensor | None:
        return self.tensors[key]

    def __setitem__(self, key: str, value: torch.Tensor | None) -> None:
        self.tensors[key] = value

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return dict(self.tensors)

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        self.tensors = {
            k: v.to(self.device) if torch.is_tensor(v) and self.device is not None else v
            for k, v in state.items()
        }


@dataclass
class EpochBatches:
    """Shuffled mini-batches of ``range(n)``, one permutation per epoch from ``generator``.

    A batch smaller than ``min_size`` (the last one of an epoch) is dropped; ``drop_last``
    drops any incomplete last batch. ``per_epoch`` is the number of batches an epoch trains.
    """

    n: int
    batch_size: int
    generator: torch.Generator
    min_size: int = 1
    drop_last: bool = False

    def __post_init__(self) -> None:
        full, rest = divmod(self.n, self.batch_size)
        keep = 0 if self.drop_last else int(rest >= self.min_size)
        self.per_epoch = full + keep
        if self.per_epoch == 0:
            raise InvalidArgumentError(
                f"batch_size={self.batch_size} leaves no batch of at least {self.min_size} of "
                f"the {self.n} samples"
            )
        self._order: torch.Tensor | None = None

    def batch(self, iteration: int) -> torch.Tensor:
        """The global batch of ``iteration`` (indices on the CPU); draws the epoch's order at
        its first batch, exactly as ``randperm(n, generator).split(batch_size)`` would."""
        position = iteration % self.per_epoch
        if position == 0 or self._order is None:
            self._order = torch.randperm(self.n, generator=self.generator)
        return self._order[position * self.batch_size : (position + 1) * self.batch_size]


def local_positions(count: int) -> torch.Tensor:
    """Positions of this rank's share of a global batch of ``count`` (strided)."""
    return torch.arange(rank(), count, world_size())


def sync_gradients(parameters: list[nn.Parameter]) -> None:
    """Sum the ranks' gradients (one flattened all-reduce); a missing gradient counts as zero."""
    if not is_distributed():
        return
    grads = []
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    all_reduce_mean_(grads)
    scale = float(world_size())
    for g in grads:
        g.mul_(scale)


def global_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over the ranks (``tensor`` itself in one process)."""
    if not is_distributed():
        return tensor
    total = tensor.clone()
    all_reduce_mean_([total])
    return total * world_size()


def sync_buffers_(module: nn.Module) -> None:
    """Average the floating buffers (batch-norm statistics) across ranks."""
    if is_distributed():
        all_reduce_mean_([b for b in module.buffers() if b.is_floating_point()])


@torch.no_grad()
def broadcast_state_(*modules: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (a common start, like DDP's)."""
    if not is_distributed():
        return
    import torch.distributed as dist

    for module in modules:
        for tensor in module.state_dict().values():
            if torch.is_tensor(tensor):
                dist.broadcast(tensor, src=0)


def gather_apply(
    module: nn.Module,
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    *,
    batch_size: int = 1024,
) -> torch.Tensor:
    """:func:`apply_batched` over all rows of ``x``; distributed, each rank computes a
    contiguous slice and the slices are all-gathered, so every rank holds the same result."""
    if not is_distributed():
        return apply_batched(module, x, fn, batch_size=batch_size)
    n, world = x.shape[0], world_size()
    chunk = math.ceil(n / world)
    start = min(rank() * chunk, n)
    local = x[start : start + chunk]
    if local.shape[0] == 0:  # fewer rows than ranks: compute one row to learn the shape
        out = apply_batched(module, x[:1], fn, batch_size=batch_size)[:0]
    else:
        out = apply_batched(module, local, fn, batch_size=batch_size)
    padded = out.new_zeros((chunk, *out.shape[1:]))
    padded[: out.shape[0]] = out
    return all_gather_cat(padded)[:n]


class MinibatchTask(Task):
    """One optimizer step on one mini-batch of sample indices, for loops whose loss is a mean
    over the batch (contrastive, autoencoder and MMCL pretraining).

    ``loss(indices)`` gets this rank's indices of the global batch (CPU int64) and returns the
    mean loss over them; in a distributed run the gradients (and floating buffers) are averaged
    across ranks, DDP's convention. A record per epoch holds ``loss``, the mean of the steps'
    losses, and ``step_seconds``, the mean wall time of a step.

    Args:
        modules: the trained modules (checkpointed by name).
        optimizer: their optimizer.
        generator: the batch order's generator.
        batches: the epochs' batches.
        loss: see above.
    """

    def __init__(
        self,
        modules: dict[str, nn.Module],
        optimizer: torch.optim.Optimizer,
        generator: GeneratorState,
        batches: EpochBatches,
        loss: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        self._modules, self.optimizer, self.generator = modules, optimizer, generator
        self.batches, self.loss = batches, loss
        self.distributed = is_distributed()
        self._total: torch.Tensor | None = None
        self._began = 0.0

    def stateful(self) -> dict[str, Any]:
        return {**self._modules, "optimizer": self.optimizer, "generator": self.generator}

    def lr(self) -> float | None:
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, iteration: int, epoch: int, log: bool) -> dict[str, Any]:
        if iteration % self.batches.per_epoch == 0:
            for module in self._modules.values():
                module.train()
            self._total, self._began = None, time.perf_counter()
        indices = self.batches.batch(iteration)
        if self.distributed:
            indices = indices[local_positions(indices.numel())]
        value = self.loss(indices)
        self.optimizer.zero_grad(set_to_none=True)
        value.backward()
        if self.distributed:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            all_reduce_mean_([p.grad for p in params])
            for module in self._modules.values():
                sync_buffers_(module)
        self.optimizer.step()
        value = value.detach()
        self._total = value.clone() if self._total is None else self._total + value
        if not log:
            return {"loss": value}
        steps = self.batches.per_epoch
        return {
            "loss": float(self._total) / steps,
            "step_seconds": (time.perf_counter() - self._began) / steps,
        }
