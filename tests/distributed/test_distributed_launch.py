"""launch(): per-rank values, errors re-raised with the failing rank's message, no hangs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import constrained_pairs.distributed as cpd
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError, UnsupportedOptionError
from tests.helpers import dist_workers as workers


def test_launch_returns_each_rank_value_in_rank_order(battery):
    assert [out["rank"] for out in battery] == [0, 1]
    assert [out["token"] for out in battery] == ["token", "token"]
    assert [out["world"] for out in battery] == [(0, 2, True, True), (1, 2, True, False)]
    assert [out["env"] for out in battery] == [("0", "2", "0"), ("1", "2", "1")]
    assert all(out["backend"] == "gloo" and out["init_from_env"] for out in battery)
    torch.testing.assert_close(battery[1]["tensor"], torch.ones(3, dtype=torch.float64))


def test_collectives_inside_launch(battery):
    for out in battery:
        assert out["sum"] == 3.0  # 1 + 2
        assert out["mean"] == [[[0.5, 0.5], [0.5, 0.5]], [1.0]]  # means of (0, 1) and (0, 2)
        assert out["gathered"] == [[0, 0], [1, 10]]
        assert out["broadcast"] == {"from": 0}


def test_threads_split_between_ranks(battery):
    fixed = os.environ.get("OMP_NUM_THREADS")
    if fixed is not None and not fixed.isdigit():
        pytest.skip(f"OMP_NUM_THREADS={fixed!r}")
    expected = int(fixed) if fixed else max(1, len(os.sched_getaffinity(0)) // 2)
    assert [out["threads"] for out in battery] == [expected, expected]


def test_rank_failure_is_reraised_with_its_type_and_message():
    start = time.perf_counter()
    with pytest.raises(KeyError, match="rank 1 of 2.*rank one has no such key") as info:
        cpd.launch(workers.fail_on_rank_one, 2, timeout=30)
    assert time.perf_counter() - start < 25  # rank 0, stuck in a barrier, is not waited for
    assert isinstance(info.value.__cause__, cpd.RemoteTraceback)
    assert "fail_on_rank_one" in str(info.value.__cause__)  # the child's traceback


def test_mismatched_data_fails_fast_in_the_parent():
    start = time.perf_counter()
    with pytest.raises(InvalidArgumentError, match=r"problem differs across ranks.*\[1\]"):
        cpd.launch(workers.mismatched, 2, timeout=30)
    assert time.perf_counter() - start < 25


def test_a_rank_missing_a_collective_times_out_instead_of_hanging():
    start = time.perf_counter()
    with pytest.raises(Exception, match="rank 0 of 2") as info:
        cpd.launch(workers.stall, 2, timeout=2)
    assert time.perf_counter() - start < 30  # rank 1 sleeps 120 s: it was terminated
    assert "timed out" in str(info.value).lower() and "timeout=2 s" in str(info.value)


def _not_picklable_here(rank):  # module-level, but pretends to live in an interactive __main__
    return rank


def test_launch_validates_its_arguments(monkeypatch):
    with pytest.raises(InvalidArgumentError, match="nprocs"):
        cpd.launch(workers.battery, 0)
    with pytest.raises(InvalidTypeError, match="nprocs"):
        cpd.launch(workers.battery, "2")
    with pytest.raises(InvalidTypeError, match="fn must be callable"):
        cpd.launch("battery", 2)
    with pytest.raises(InvalidArgumentError, match="fn must be picklable"):
        cpd.launch(lambda rank: rank, 2)
    with pytest.raises(InvalidArgumentError, match="start_method"):
        cpd.launch(workers.battery, 2, start_method="thread")
    with pytest.raises(InvalidArgumentError, match="timeout"):
        cpd.launch(workers.battery, 2, timeout=0)
    monkeypatch.setattr(_not_picklable_here, "__module__", "__main__")
    monkeypatch.delattr(sys.modules["__main__"], "__file__", raising=False)
    with pytest.raises(InvalidArgumentError, match="notebook"):
        cpd.launch(_not_picklable_here, 2)


def test_unavailable_backends_raise_before_any_process_starts():
    with pytest.raises(InvalidArgumentError, match="backend"):
        cpd.launch(workers.battery, 2, backend="carrier-pigeon")
    if not dist.is_backend_available("mpi"):
        with pytest.raises(UnsupportedOptionError, match="backend='mpi' is not available"):
            cpd.launch(workers.battery, 2, backend="mpi")
    if torch.cuda.device_count() < 2:
        with pytest.raises(UnsupportedOptionError, match="backend='nccl'"):
            cpd.launch(workers.battery, 2, backend="nccl")
    assert cpd.resolve_backend(None, 2) == ("nccl" if torch.cuda.device_count() >= 2 else "gloo")


SCRIPT = """
import torch, torch.distributed as dist
import constrained_pairs.distributed as cpd
assert cpd.init_from_env(timeout=30)
t = torch.tensor([float(cpd.rank() + 1)])
dist.all_reduce(t)
print(f"rank {cpd.rank()} of {cpd.world_size()} sum {t.item():g}", flush=True)
cpd.shutdown()
"""


def test_torchrun_runs_a_script_that_calls_init_from_env(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this Python")
    command = [str(torchrun), "--nproc_per_node=2", "--master_port", str(cpd.free_port())]
    done = subprocess.run(
        [*command, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 0 of 2 sum 3" in done.stdout and "rank 1 of 2 sum 3" in done.stdout


def test_init_from_env_outside_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert cpd.init_from_env() is False
    assert not dist.is_initialized()
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(InvalidArgumentError, match=r"WORLD_SIZE.*MASTER_ADDR"):
        cpd.init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "notaport")
    if torch.cuda.device_count() < 2:  # raised on this rank alone, before any rendezvous
        with pytest.raises(UnsupportedOptionError, match="backend='nccl'"):
            cpd.init_from_env(backend="nccl")
    assert not dist.is_initialized()


def test_fork_start_method_for_notebooks():
    assert cpd.launch(workers.rank_sum, 2, start_method="fork", timeout=30) == [1.0, 1.0]


def test_a_rank_killed_without_a_python_error_is_named():
    with pytest.raises(
        RuntimeError, match="rank 1 of 2 ended with signal SIGKILL before returning"
    ):
        cpd.launch(workers.killed_on_rank_one, 2, timeout=30)


def test_a_crash_after_the_value_was_saved_only_warns():
    with pytest.warns(RuntimeWarning, match="returned its value, then ended with exit code 3"):
        assert cpd.launch(workers.crash_while_exiting, 2, timeout=30) == [0, 10]


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_nccl_on_one_gpu_per_rank():
    found = cpd.launch(workers.nccl_round, 2, timeout=60)
    expected = cpd.data_checksum("x", [torch.arange(6.0)])
    assert found == [(3.0, expected), (3.0, expected)]
