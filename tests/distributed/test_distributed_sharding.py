"""shard_indices covers every index exactly once; rank_seed gives distinct, stable seeds."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data.distributed import DistributedSampler

import constrained_pairs.distributed as cpd
from constrained_pairs.errors import InvalidArgumentError


@pytest.mark.parametrize("n", [0, 1, 7, 12, 13])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_cover_every_index_exactly_once(n, world, shuffle):
    shards = []
    for r in range(world):
        gen = torch.Generator().manual_seed(5) if shuffle else None  # same state on every rank
        shards.append(cpd.shard_indices(n, r, world, generator=gen))
    joined = torch.cat(shards)
    assert joined.dtype == torch.int64
    assert sorted(joined.tolist()) == list(range(n))
    sizes = [len(s) for s in shards]
    assert sizes == [cpd.shard_size(n, r, world) for r in range(world)]
    assert max(sizes) - min(sizes) <= (1 if n % world else 0)
    assert sizes == sorted(sizes, reverse=True)  # the first n % world ranks own one more
    if not shuffle:
        assert shards[0].tolist() == list(range(0, n, world))  # strided


@pytest.mark.parametrize(("n", "world"), [(7, 2), (10, 4), (3, 5), (12, 3)])
def test_padding_matches_distributed_sampler(n, world):
    for r in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False)
        ours = cpd.shard_indices(n, r, world, pad=True)
        assert ours.tolist() == list(sampler)
        assert len(ours) == math.ceil(n / world)


def test_shards_in_a_launched_group_read_the_process_group(battery):
    assert [out["shard"] for out in battery] == [[0, 2, 4, 6], [1, 3, 5]]
    shuffled = [out["shard_shuffled"] for out in battery]
    assert sorted(shuffled[0] + shuffled[1]) == list(range(9))
    order = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    assert shuffled == [order[0::2].tolist(), order[1::2].tolist()]
    assert [out["seed"] for out in battery] == [cpd.rank_seed(11, 0), cpd.rank_seed(11, 1)]


def test_rank_seed():
    assert cpd.rank_seed(7, 0) == 7  # one process draws what a plain run draws
    seeds = {cpd.rank_seed(s, r) for s in range(50) for r in range(1, 9)}
    assert len(seeds) == 50 * 8 and not seeds & set(range(50))
    assert all(0 <= s < 2**63 for s in seeds)
    assert cpd.rank_seed(3, 2) == cpd.rank_seed(3, 2)
    a = torch.rand(4, generator=cpd.rank_generator(3, 1))
    b = torch.rand(4, generator=cpd.rank_generator(3, 1))
    c = torch.rand(4, generator=cpd.rank_generator(3, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert cpd.rank_seed(3) == 3  # no process group: rank 0


def test_sharding_validates_arguments():
    with pytest.raises(InvalidArgumentError, match=r"rank must be in \[0, world_size=2\)"):
        cpd.shard_indices(4, 2, 2)
    with pytest.raises(InvalidArgumentError, match="world_size"):
        cpd.shard_indices(4, 0, 0)
    with pytest.raises(InvalidArgumentError, match="seed"):
        cpd.rank_seed(-1, 1)
    with pytest.raises(TypeError, match="generator"):
        cpd.shard_indices(4, 0, 2, generator=3)
