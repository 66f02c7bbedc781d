"""The start-up and the run of one sample-batched training call on the engine, shared by the
NCD fits and the NCD and MMCL pretraining loops: the vocabulary checks, the distributed mode,
the seeded batch order, the checkpointer and the loop (SPEC §6, §7)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from constrained_pairs._validation import as_real_tensor
from constrained_pairs.distributed.collectives import is_distributed, world_size
from constrained_pairs.engine import (
    Checkpointer,
    GeneratorState,
    LoopSettings,
    RunOutcome,
    Task,
    check_bool,
    check_callback,
    check_device,
    check_dtype,
    check_float,
    check_int,
    check_seed,
    fingerprint,
    make_generator,
    resolve_progress,
    scoped_seed,
)
from constrained_pairs.engine import run as run_loop
from constrained_pairs.errors import (
    InvalidArgumentError,
    InvalidTypeError,
    UnsupportedOptionError,
)
from constrained_pairs.vision.training import EpochBatches, MinibatchTask, broadcast_state_

__all__ = ["TrainingCall", "check_even_batches", "float_inputs", "seeded", "use_distributed"]


def use_distributed(distributed: bool | None) -> bool:
    """Whether to shard across the default process group (None: when one with > 1 rank exists)."""
    check_bool("distributed", distributed, optional=True)
    active = is_distributed()
    if distributed and not active:
        raise InvalidArgumentError(
            "distributed=True needs an initialised process group with more than one rank: start "
            "the script with torchrun (and call constrained_pairs.distributed.init_from_env()) or "
            "run it through constrained_pairs.distributed.launch"
        )
    if distributed is False and active:
        raise UnsupportedOptionError(
            "distributed=False inside a process group of several ranks: the training loop "
            "synchronises its records across the group; run it outside the group instead"
        )
    return active


def check_even_batches(batch_size: int, n: int) -> None:
    """Distributed mean-loss loops split each global batch evenly: ``batch_size`` must be a
    multiple of the world size and at most ``n`` (the last incomplete batch is dropped)."""
    world = world_size()
    if batch_size % world or batch_size > n:
        raise InvalidArgumentError(
            f"batch_size must be a multiple of the world size {world} (the global batch, split "
            f"evenly across the ranks) and at most the {n} samples, got {batch_size}"
        )


def float_inputs(name: str, x: Any) -> torch.Tensor:
    """``x`` as a tensor; integer data (e.g. uint8 images) in the default float dtype, never
    truncated."""
    x = as_real_tensor(name, x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return x


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The global RNG seeded for this call and restored afterwards; each rank of a distributed
    run draws its own stream (rank 0 draws what one process draws)."""
    from constrained_pairs.distributed.sharding import rank_seed

    with scoped_seed(rank_seed(seed) if is_distributed() else seed):
        yield


class TrainingCall:
    """The start-up and the run of one sample-batched training call.

    The constructor checks the shared vocabulary (README, "One vocabulary"), given
    positionally in the order every training function's signature lists it, before any work
    and resolves ``distributed``; :meth:`schedule`, :meth:`place`, :meth:`batches`,
    :meth:`checkpoint_for` and :meth:`run` (or :meth:`minibatch`) then take the call through
    its loop, in that order.

    Attributes:
        settings: the engine's loop settings (one record per epoch once :meth:`batches` ran).
        device, dtype: the checked ``device`` and ``dtype``.
        shard: whether the call shards its batches across the default process group.
        epochs, batch_size, lr: the checked schedule (set by :meth:`schedule`).
        generator, epoch_batches: the batch order (set by :meth:`batches`).
        checkpointer: the run's checkpointer (None until :meth:`checkpoint_for`, or without a
            path).
    """

    def __init__(
        self,
        seed: Any,
        device: Any,
        dtype: Any,
        progress: Any,
        checkpoint: str | os.PathLike | None,
        checkpoint_every: Any,
        resume: Any,
        callback: Any,
        distributed: Any,
    ) -> None:
        check_seed(seed)
        self.device, self.dtype = check_device(device), check_dtype(dtype)
        check_int("checkpoint_every", checkpoint_every)
        check_bool("resume", resume)
        check_callback(callback)
        if resume and checkpoint is None:
            raise InvalidArgumentError("resume=True needs checkpoint=path")
        self.seed, self.checkpoint, self.checkpoint_every = seed, checkpoint, checkpoint_every
        self.resume = resume
        self.settings = LoopSettings(
            monitor="loss", progress=resolve_progress(progress), callback=callback
        )
        self.shard = use_distributed(distributed)
        self.checkpointer: Checkpointer | None = None

    def place(self, module: nn.Module, augment: Any = None) -> None:
        """Check ``augment`` (callable or None), move ``module`` to the checked device and dtype
        (when given) and start every rank from rank 0's ``module`` (one fingerprint too)."""
        if augment is not None and not callable(augment):
            raise InvalidTypeError(
                f"augment must be callable or None, got {type(augment).__name__}"
            )
        if self.device is not None or self.dtype is not None:
            module.to(device=self.device, dtype=self.dtype)
        broadcast_state_(module)

    def schedule(
        self, epochs: Any, batch_size: Any, lr: Any, *, minimum: int = 1, optional: bool = False
    ) -> int | None:
        """Check and keep ``epochs``, ``batch_size`` (>= ``minimum``; None allowed when
        ``optional``) and ``lr`` (finite, > 0); returns the batch size."""
        self.epochs = check_int("epochs", epochs, optional=False)
        self.batch_size = check_int("batch_size", batch_size, minimum=minimum, optional=optional)
        check_float("lr", lr, positive=True, optional=False)
        self.lr = lr
        return self.batch_size

    def batches(
        self, n: int, batch: int, *, min_size: int = 1, even: bool = False, drop_last: bool = False
    ) -> EpochBatches:
        """The epochs' batches of ``batch`` of the ``n`` samples, from the call's generator.

        ``even``: a mean-loss loop whose global batches split evenly across the ranks when
        sharded (:func:`check_even_batches`; the last incomplete batch is then dropped).
        """
        if even and self.shard:
            check_even_batches(batch, n)
        self.generator = make_generator(self.seed)
        drop_last = drop_last or (even and self.shard)
        self.epoch_batches = EpochBatches(n, batch, self.generator, min_size, drop_last)
        self.settings.log_every = self.epoch_batches.per_epoch
        return self.epoch_batches

    def checkpoint_for(
        self, kind: str, data: list[torch.Tensor | None], **options: Any
    ) -> Checkpointer | None:
        """The run's checkpointer (None without a path; the folder is checked now), whose
        fingerprint holds ``options``, the schedule, the seed and the world size."""
        if self.checkpoint is None:
            return None
        options = dict(
            options,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            world_size=world_size(),
        )
        fingerprinted = fingerprint(kind, data, options)
        self.checkpointer = Checkpointer(self.checkpoint, fingerprinted, self.checkpoint_every)
        return self.checkpointer

    def seeded(self) -> contextlib.AbstractContextManager[None]:
        """:func:`seeded` with the call's seed."""
        return seeded(self.seed)

    def generator_state(self) -> GeneratorState:
        """The batch order's generator, checkpointed."""
        return GeneratorState(self.generator)

    def run(self, task: Task, desc: str) -> RunOutcome:
        """Run ``task`` for the scheduled epochs of :meth:`batches` (resuming when asked)."""
        per_epoch = self.epoch_batches.per_epoch
        return run_loop(
            task,
            total=self.epochs * per_epoch,
            per_epoch=per_epoch,
            settings=self.settings,
            checkpointer=self.checkpointer,
            resume=self.resume,
            desc=desc,
        )

    def minibatch(
        self,
        modules: dict[str, nn.Module],
        loss: Callable[[torch.Tensor], torch.Tensor],
        desc: str,
    ) -> RunOutcome:
        """Adam at the scheduled ``lr`` on all the modules' parameters from rank 0's start, one
        :class:`MinibatchTask` step a batch."""
        params = [p for module in modules.values() for p in module.parameters()]
        optimizer = torch.optim.Adam(params, lr=self.lr)
        broadcast_state_(*modules.values())
        task = MinibatchTask(modules, optimizer, self.generator_state(), self.epoch_batches, loss)
        return self.run(task, desc)
