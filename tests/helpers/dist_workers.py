"""Functions run by ``launch`` in the distributed tests (module level, so spawn can import them)."""

from __future__ import annotations

import atexit
import os
import signal
import time

import torch
import torch.distributed as dist

import constrained_pairs.distributed as cpd
from constrained_pairs.errors import InvalidArgumentError

SHARED = [torch.arange(12.0).reshape(3, 4), torch.tensor([1, 0, 2]), None, 0.5]


def _caught(fn, *args) -> str | None:
    try:
        fn(*args)
    except InvalidArgumentError as exc:
        return str(exc)
    return None


def battery(rank: int, token: str) -> dict:
    """Everything a healthy 2-rank run can check, in one launch (each launch costs seconds)."""
    total = torch.tensor([float(rank + 1)], dtype=torch.float64)
    dist.all_reduce(total)
    mean = [torch.full((2, 2), float(rank)), torch.tensor([2.0 * rank])]
    cpd.all_reduce_mean_(mean)
    mine = [t.clone() for t in SHARED[:2]] + SHARED[2:]
    mine[1][rank] += 1  # the labels' entry [rank] differs on every rank
    return {
        "rank": rank,
        "token": token,
        "world": (cpd.rank(), cpd.world_size(), cpd.is_distributed(), cpd.is_main()),
        "env": (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]),
        "backend": dist.get_backend(),
        "init_from_env": cpd.init_from_env(),  # already initialised: True, nothing new
        "sum": total.item(),
        "mean": [t.tolist() for t in mean],
        "gathered": cpd.all_gather_cat(torch.tensor([[rank, 10 * rank]])).tolist(),
        "broadcast": cpd.broadcast_object({"from": rank}),
        "same": cpd.check_same_data("problem", SHARED),
        "mismatch": _caught(cpd.check_same_data, "problem", mine),
        "mismatch_count": _caught(cpd.check_same_data, "data", SHARED[: 2 + rank]),
        "world_too_large": _caught(cpd.check_world_size, 1, "pairs"),
        "shard": cpd.shard_indices(7).tolist(),
        "shard_shuffled": cpd.shard_indices(9, generator=torch.Generator().manual_seed(3)).tolist(),
        "seed": cpd.rank_seed(11),
        "threads": torch.get_num_threads(),
        "tensor": torch.full((3,), float(rank), dtype=torch.float64),
    }


def fail_on_rank_one(rank: int) -> int:
    if rank == 1:
        raise KeyError("rank one has no such key")
    dist.barrier()
    return rank


def mismatched(rank: int) -> None:
    cpd.check_same_data("problem", [torch.zeros(4), torch.full((2,), float(rank))])


def stall(rank: int) -> None:
    if rank == 0:
        dist.all_reduce(torch.ones(1))  # rank 1 never joins this collective
    else:
        time.sleep(120)


def rank_sum(rank: int) -> float:
    total = torch.tensor([float(rank)])
    dist.all_reduce(total)
    return total.item()


def killed_on_rank_one(rank: int) -> int:
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # no Python error, no report
    dist.barrier()
    return rank


def crash_while_exiting(rank: int) -> int:
    atexit.register(os._exit, 3)  # after launch saved the value, as a native teardown crash
    return rank * 10


def nccl_round(rank: int) -> tuple[float, str]:
    """On one GPU per rank: a collective on CUDA tensors and the checksum gather over NCCL."""
    device = torch.device("cuda", torch.cuda.current_device())
    total = torch.tensor([float(rank + 1)], device=device)
    dist.all_reduce(total)
    data = [torch.arange(6.0, device=device)]
    return total.item(), cpd.check_same_data("x", data)
