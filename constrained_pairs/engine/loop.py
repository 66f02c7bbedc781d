"""The one training loop (SPEC §7): steps over epochs, history, stopping, divergence, progress,
callbacks and checkpoints. What a step does is the :class:`Task`'s business."""

from __future__ import annotations

import abc
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from constrained_pairs.distributed.collectives import all_reduce_mean_, is_distributed, is_main
from constrained_pairs.engine.checkpoint import Checkpointer
from constrained_pairs.engine.history import History, Record
from constrained_pairs.engine.seeding import global_rng_state, set_global_rng_state
from constrained_pairs.status import Status


class Task(abc.ABC):
    """One training problem as the loop sees it.

    Attributes:
        records_start_point: a record's values describe the point its step started from (as
            ``solve()``'s objective does), so that point is what a finite record verifies and
            what a divergence restores; False: the point the step reached (epoch losses).
    """

    records_start_point: bool = False

    @abc.abstractmethod
    def stateful(self) -> dict[str, Any]:
        """Everything with ``state_dict``/``load_state_dict`` a checkpoint must hold (modules,
        optimizers, :class:`~constrained_pairs.engine.seeding.GeneratorState` s, ...)."""

    @abc.abstractmethod
    def step(self, iteration: int, epoch: int, log: bool) -> dict[str, Any]:
        """Take one update. Returns the monitored value (a tensor or float, under the loop's
        ``monitor`` key) and, when ``log``, every value the record should hold."""

    def lr(self) -> float | None:
        """The base learning rate now, for the record (None if the task has none)."""
        return None

    def modules(self) -> dict[str, nn.Module]:
        return {k: v for k, v in self.stateful().items() if isinstance(v, nn.Module)}

    def finite(self) -> bool:
        """Whether every parameter and buffer is finite."""
        return all(
            bool(torch.isfinite(t).all())
            for m in self.modules().values()
            for t in m.state_dict().values()
            if torch.is_tensor(t) and t.is_floating_point()
        )

    def snapshot(self) -> dict[str, Any]:
        """A copy of the modules' state, to restore after a divergence."""
        return {k: copy.deepcopy(m.state_dict()) for k, m in self.modules().items()}

    def restore(self, snapshot: dict[str, Any]) -> None:
        for key, module in self.modules().items():
            module.load_state_dict(snapshot[key])


@dataclass
class LoopSettings:
    """How the loop logs and stops.

    Attributes:
        monitor: the value whose finiteness is checked every step and whose change decides
            convergence (``"objective"``, ``"loss"``).
        log_every: record every this many iterations (and the last one).
        tol: converged when, over ``patience`` iterations, the relative change of ``monitor``
            and every value named in ``feasibility`` are below it; None: never.
        patience: see ``tol``.
        feasibility: values that must be below ``tol`` for convergence (``"max_violation"``).
        blowup: a logged ``monitor`` whose magnitude exceeds ``blowup`` times that of the first
            record (at least 1) ends the run as ``diverged`` too: an exploding run is not a
            finite result. None: only non-finite values count.
        progress: show a tqdm bar (rank 0 only).
        callback: ``callback(record) -> bool | None``; True stops the run.
    """

    monitor: str = "loss"
    log_every: int = 1
    tol: float | None = None
    patience: int = 50
    feasibility: tuple[str, ...] = ()
    blowup: float | None = 1e12
    progress: bool = False
    callback: Callable[[Record], bool | None] | None = None


@dataclass
class RunOutcome:
    """What :func:`run` returns.

    Attributes:
        status: ``converged``, ``max_iter`` or ``diverged``.
        history: the logged records.
        iterations: updates taken (resumed ones included).
        elapsed: training seconds (resumed runs included).
        extra: ``stopped_by`` (``"callback"``) and the like.
    """

    status: Status
    history: History
    iterations: int
    elapsed: float
    extra: dict[str, Any] = field(default_factory=dict)


def _converged(history: History, settings: LoopSettings) -> bool:
    if settings.tol is None:
        return False
    window = max(1, settings.patience // settings.log_every)
    if len(history) <= window:
        return False
    last, before = history[-1][settings.monitor], history[-1 - window][settings.monitor]
    change = abs(last - before) / max(1.0, abs(last))
    return change < settings.tol and all(
        history[-1][k] < settings.tol for k in settings.feasibility
    )


def _floats(values: dict[str, Any]) -> dict[str, float]:
    """The values as floats, averaged across ranks (one collective for all of them)."""
    keys = list(values)
    like = next((v for v in values.values() if torch.is_tensor(v)), None)
    device = like.device if like is not None else torch.device("cpu")
    stacked = torch.stack(
        [torch.as_tensor(values[k], dtype=torch.float64, device=device).detach() for k in keys]
    )
    if is_distributed():
        all_reduce_mean_([stacked])
    return dict(zip(keys, stacked.tolist()))


def run(
    task: Task,
    *,
    total: int,
    per_epoch: int,
    settings: LoopSettings,
    checkpointer: Checkpointer | None = None,
    resume: bool = False,
    desc: str = "",
) -> RunOutcome:
    """Run ``task`` for ``total`` iterations (``per_epoch`` of them an epoch).

    Call it inside :func:`~constrained_pairs.engine.seeding.scoped_seed`; the global RNG state
    travels in the checkpoint so that a resumed run is bitwise the uninterrupted one.
    """
    history, start, elapsed = History(), 0, 0.0
    saved_status: str | None = None
    state = checkpointer.load() if checkpointer is not None and resume else None
    if state is not None:
        for key, obj in task.stateful().items():
            obj.load_state_dict(state["state"][key])
        set_global_rng_state(state["rng"])
        history.load_state_dict(state["history"])
        start, elapsed, saved_status = state["iteration"], state["elapsed"], state["status"]
    if saved_status is not None:  # a finished run: its result, not a second run
        return RunOutcome(Status(saved_status), history, start, elapsed, dict(state["extra"]))

    bar = None
    if settings.progress and is_main():
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc=desc, leave=False)
    status, extra = Status.MAX_ITER, {}
    began = time.perf_counter() - elapsed
    snapshot = task.snapshot()
    finite_flag = None
    baseline = state.get("baseline") if state is not None else None
    done = start

    def save(final: Status | None) -> None:
        checkpointer.save(
            {
                "iteration": done,
                "elapsed": time.perf_counter() - began,
                "history": history.state_dict(),
                "state": {k: v.state_dict() for k, v in task.stateful().items()},
                "rng": global_rng_state(),
                "status": None if final is None else final.value,
                "baseline": baseline,
                "extra": extra,
            }
        )

    for iteration in range(start, total):
        epoch = iteration // per_epoch
        log = (iteration + 1) % settings.log_every == 0 or iteration + 1 == total
        # When a record checks the point its step started from, that point (not the one the
        # step moves to) becomes the last verified point once the record is finite.
        candidate = task.snapshot() if log and task.records_start_point else None
        values = task.step(iteration, epoch, log)
        watched = torch.as_tensor(values[settings.monitor]).detach()
        if baseline is None:  # the run's first value: the scale an explosion is measured against
            baseline = float(watched)
        bad = ~torch.isfinite(watched)
        finite_flag = bad if finite_flag is None else finite_flag | bad  # no sync between logs
        done = iteration + 1
        if log:
            numbers = _floats({**values, "_bad": finite_flag.to(torch.float64)})
            finite_flag = None
            exploded = False
            if settings.blowup is not None:
                first = max(1.0, abs(baseline))
                exploded = abs(numbers[settings.monitor]) > settings.blowup * first
            if numbers.pop("_bad") > 0 or exploded or not task.finite():
                status = Status.DIVERGED
                task.restore(snapshot)
                extra["diverged_at"] = iteration
                break
            snapshot = candidate if task.records_start_point else task.snapshot()
            record = Record(iteration, epoch, time.perf_counter() - began, task.lr(), numbers)
            history.append(record)
            if bar is not None:
                bar.update(done - bar.n)
                bar.set_postfix({k: f"{v:.4g}" for k, v in numbers.items()}, refresh=False)
            if settings.callback is not None and settings.callback(record):
                extra["stopped_by"] = "callback"
                break
            if _converged(history, settings):
                status = Status.CONVERGED
                break
        if checkpointer is not None and done % per_epoch == 0 and done < total:
            if checkpointer.due(done // per_epoch):
                save(None)
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - began
    if checkpointer is not None:  # a callback's stop is an interruption: it stays resumable
        save(None if "stopped_by" in extra else status)
        if is_distributed():  # no rank reads the file before rank 0 has replaced it
            torch.distributed.barrier()
    return RunOutcome(status, history, done, elapsed, extra)


def lr_factor(iteration: int, total: int, final: float) -> float:
    """Cosine decay from 1 to ``final`` over ``total`` iterations."""
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * iteration / max(1, total)))
