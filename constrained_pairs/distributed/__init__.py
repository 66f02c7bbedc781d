"""Data parallelism on ``torch.distributed`` (SPEC §6).

Launch with ``torchrun --nproc_per_node=N script.py`` and call :func:`init_from_env` at the top
of the script (a no-op under plain ``python``), or run a module-level function on N local
processes with :func:`launch`. Once a default process group exists, ``solve``,
``mmcl.pretrain`` and the NCD fits shard their data and synchronise by themselves.

The pieces the entry points are built from are public too: the collectives (:func:`rank`,
:func:`world_size`, :func:`all_reduce_mean_` ...), the agreement checks
(:func:`check_same_data`, :func:`check_world_size`) and sharding (:func:`shard_indices`,
:func:`rank_seed`).
"""

from __future__ import annotations

from constrained_pairs.distributed.checks import check_same_data, check_world_size, data_checksum
from constrained_pairs.distributed.collectives import (
    all_gather_cat,
    all_reduce_mean_,
    broadcast_object,
    is_distributed,
    is_main,
    local,
    rank,
    world_size,
)
from constrained_pairs.distributed.env import (
    DEFAULT_TIMEOUT,
    init_from_env,
    resolve_backend,
    shutdown,
)
from constrained_pairs.distributed.launch import RemoteTraceback, free_port, launch
from constrained_pairs.distributed.sharding import (
    rank_generator,
    rank_seed,
    shard_indices,
    shard_size,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "RemoteTraceback",
    "all_gather_cat",
    "all_reduce_mean_",
    "broadcast_object",
    "check_same_data",
    "check_world_size",
    "data_checksum",
    "free_port",
    "init_from_env",
    "is_distributed",
    "is_main",
    "launch",
    "local",
    "rank",
    "rank_generator",
    "rank_seed",
    "resolve_backend",
    "shard_indices",
    "shard_size",
    "shutdown",
    "world_size",
]
