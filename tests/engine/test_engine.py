"""The training engine: scoped seeding, divergence, stopping, checkpoints (SPEC §7)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from constrained_pairs.engine import (
    Checkpointer,
    GeneratorState,
    LoopSettings,
    Task,
    fingerprint,
    make_generator,
    run,
    scoped_seed,
)
from constrained_pairs.errors import CheckpointError, InvalidArgumentError
from constrained_pairs.status import Status


class Regression(Task):
    """Least squares with a dropout layer and sampled rows: exercises both RNGs."""

    def __init__(self, lr: float = 0.05, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(123)
        self.x = torch.randn(64, 4, generator=gen, dtype=torch.float64)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
        self.model = nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 1)).double()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.generator = make_generator(seed)

    def stateful(self):
        return {
            "model": self.model,
            "optimizer": self.optimizer,
            "generator": GeneratorState(self.generator),
        }

    def step(self, iteration, epoch, log):
        rows = torch.randint(64, (16,), generator=self.generator)
        self.optimizer.zero_grad()
        loss = (self.model(self.x[rows]).squeeze(1) - self.y[rows]).square().mean()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach()}


def _run(task, total=40, **kwargs):
    checkpointer = kwargs.pop("checkpointer", None)
    resume = kwargs.pop("resume", False)
    settings = LoopSettings(monitor="loss", **kwargs)
    with scoped_seed(0):
        return run(
            task,
            total=total,
            per_epoch=4,
            settings=settings,
            checkpointer=checkpointer,
            resume=resume,
        )


def test_scoped_seed_leaves_the_callers_rng_alone():
    task = Regression()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    _run(task)
    assert torch.equal(torch.rand(3), expected)


def test_divergence_ends_with_the_last_finite_point():
    task = Regression(lr=1e6)
    outcome = _run(task, total=200, log_every=5)
    assert outcome.status == Status.DIVERGED
    assert all(torch.isfinite(p).all() for p in task.model.parameters())
    assert all(math.isfinite(v) for v in outcome.history.loss)


def test_callback_stops_and_tol_converges():
    outcome = _run(Regression(), callback=lambda record: record.iteration >= 9)
    assert outcome.iterations == 10 and outcome.extra["stopped_by"] == "callback"
    assert outcome.status == Status.MAX_ITER
    task = Regression(lr=0.2)
    task.model[0].p = 0.0
    task.step = _full_batch(task)
    outcome = _run(task, total=2000, tol=1e-12, patience=10)
    assert outcome.status == Status.CONVERGED and outcome.iterations < 2000


def _full_batch(task):
    def step(iteration, epoch, log):
        task.optimizer.zero_grad()
        loss = (task.model(task.x).squeeze(1) - task.y).square().mean()
        loss.backward()
        task.optimizer.step()
        return {"loss": loss.detach()}

    return step


def _checkpointer(path, every=1, **options):
    return Checkpointer(path, fingerprint("test", [torch.ones(3)], {"lr": 0.05, **options}), every)


class Interrupt(Exception):
    pass


def _fresh() -> Regression:
    torch.manual_seed(0)  # the same initial weights for every copy
    return Regression()


def test_resume_is_bitwise_with_dropout_and_sampling(tmp_path):
    reference = _fresh()
    full = _run(reference)
    path = tmp_path / "run.ckpt"
    first = _fresh()

    def stop_at(record):
        if record.iteration == 21:
            raise Interrupt

    with pytest.raises(Interrupt):
        _run(first, checkpointer=_checkpointer(path), callback=stop_at)
    resumed_task = _fresh()
    resumed = _run(resumed_task, checkpointer=_checkpointer(path), resume=True)
    assert resumed.history.loss == full.history.loss
    for a, b in zip(resumed_task.model.parameters(), reference.model.parameters()):
        assert torch.equal(a, b)
    again = _fresh()
    finished = _run(again, checkpointer=_checkpointer(path), resume=True)
    assert finished.iterations == 40 and finished.history.loss == full.history.loss
    assert torch.equal(again.model[1].weight, reference.model[1].weight)


def test_a_mismatching_checkpoint_names_what_differs(tmp_path):
    path = tmp_path / "run.ckpt"
    _run(Regression(), checkpointer=_checkpointer(path))
    with pytest.raises(CheckpointError, match="lr"):
        Checkpointer(path, fingerprint("test", [torch.ones(3)], {"lr": 0.1})).load()
    with pytest.raises(CheckpointError, match="data"):
        Checkpointer(path, fingerprint("test", [torch.zeros(3)], {"lr": 0.05})).load()


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign", "text"])
def test_a_damaged_checkpoint_is_refused_naming_the_file(tmp_path, damage):
    path = tmp_path / "run.ckpt"
    _run(Regression(), checkpointer=_checkpointer(path))
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    elif damage == "flip":
        raw[len(raw) // 2] ^= 0x10
        path.write_bytes(bytes(raw))
    elif damage == "foreign":
        torch.save({"weights": torch.ones(2)}, path)
    else:
        path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="run.ckpt"):
        _checkpointer(path).load()


def test_checkpoint_files_load_with_weights_only(tmp_path):
    path = tmp_path / "run.ckpt"
    _run(Regression(), checkpointer=_checkpointer(path))
    outer = torch.load(path, weights_only=True)
    assert outer["format"].startswith("constrained_pairs.checkpoint")
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_folder_is_checked_before_training(tmp_path):
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        _checkpointer(tmp_path / "missing" / "run.ckpt")
    with pytest.raises(InvalidArgumentError, match="folder"):
        _checkpointer(tmp_path)


def test_a_payload_without_fingerprint_and_bad_settings_are_refused(tmp_path):
    import hashlib
    import io

    path = tmp_path / "run.ckpt"
    buffer = io.BytesIO()
    torch.save([1, 2], buffer)
    raw = buffer.getvalue()
    outer = {
        "format": "constrained_pairs.checkpoint/1",
        "digest": hashlib.sha256(raw).hexdigest(),
        "payload": torch.frombuffer(bytearray(raw), dtype=torch.uint8),
    }
    torch.save(outer, path)
    with pytest.raises(CheckpointError, match="fingerprint"):
        _checkpointer(path).load()
    with pytest.raises(InvalidArgumentError, match="checkpoint_every"):
        _checkpointer(tmp_path / "other.ckpt", every=0)
    with pytest.raises(InvalidArgumentError, match="not writable"):
        _checkpointer("/proc/run.ckpt")


def test_a_mismatch_names_the_kind_it_expected(tmp_path):
    path = tmp_path / "run.ckpt"
    _run(Regression(), checkpointer=_checkpointer(path))
    with pytest.raises(CheckpointError, match="kind.*'test'.*'other'"):
        Checkpointer(path, fingerprint("other", [torch.ones(3)], {"lr": 0.05})).load()
