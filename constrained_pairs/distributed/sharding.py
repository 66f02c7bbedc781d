"""Which samples each rank owns, and per-rank seeds (SPEC §6).

Sharding is strided: rank r owns positions r, r + W, r + 2W, ... of an order over ``range(n)``
(the identity, or a permutation drawn from a generator seeded identically on every rank). When
``n`` is a multiple of the world size W every index is owned exactly once and the shards are
equal; otherwise the first ``n % W`` ranks own one index more. A mean over the whole data is then
the ranks' local sums all-reduced and divided by ``n`` (not the mean of the local means), or
``pad=True`` repeats the first indices of the order so that every shard has ``ceil(n / W)``
(``DistributedSampler``'s rule: equal step counts, a few samples counted twice).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from constrained_pairs._validation import check_positive_int
from constrained_pairs.distributed.collectives import rank as current_rank
from constrained_pairs.distributed.collectives import world_size as current_world_size
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    world = (
        current_world_size() if world_size is None else check_positive_int("world_size", world_size)
    )
    r = current_rank() if rank is None else check_positive_int("rank", rank, minimum=0)
    if r >= world:
        raise InvalidArgumentError(f"rank must be in [0, world_size={world}), got {r}")
    return r, world


def shard_size(n: int, rank: int | None = None, world_size: int | None = None) -> int:
    """How many of ``n`` indices :func:`shard_indices` gives ``rank`` (without padding)."""
    n = check_positive_int("n", n, minimum=0)
    r, world = _rank_and_world(rank, world_size)
    return n // world + (1 if r < n % world else 0)


def shard_indices(
    n: int,
    rank: int | None = None,
    world_size: int | None = None,
    *,
    generator: torch.Generator | None = None,
    pad: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The indices of ``range(n)`` that ``rank`` owns (int64, strided; see the module notes).

    Args:
        n: number of samples.
        rank, world_size: ``None`` reads the default process group (0 and 1 without one).
        generator: shuffles the order first. It must be in the same state on every rank (e.g.
            ``torch.Generator().manual_seed(seed + epoch)``), otherwise shards overlap.
        pad: repeat the order's first indices so that every rank owns ``ceil(n / world_size)``.
        device: where the indices live (default: the generator's device, else the CPU).

    Returns:
        A 1-D int64 tensor; over all ranks (``pad=False``) every index appears exactly once.
    """
    n = check_positive_int("n", n, minimum=0)
    r, world = _rank_and_world(rank, world_size)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InvalidTypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if generator is None:
        order = torch.arange(n, device=device)
    else:
        order = torch.randperm(n, generator=generator, device=generator.device)
    if pad and n > 0:
        total = math.ceil(n / world) * world
        order = order.repeat(math.ceil(total / n))[:total]
    return order[r::world].to(device) if device is not None else order[r::world]


def rank_seed(seed: int, rank: int | None = None) -> int:
    """A seed for ``rank`` derived from ``seed``: ``seed`` itself on rank 0 (a one-process run
    draws what a non-distributed run draws), a well-mixed 63-bit value on the others (numpy's
    ``SeedSequence(seed, spawn_key=(rank,))``, so nearby seeds and ranks never collide)."""
    seed = check_positive_int("seed", seed, minimum=0)
    r = current_rank() if rank is None else check_positive_int("rank", rank, minimum=0)
    if r == 0:
        return seed
    words = np.random.SeedSequence(seed, spawn_key=(r,)).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def rank_generator(
    seed: int, rank: int | None = None, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A :class:`torch.Generator` on ``device`` seeded with :func:`rank_seed`."""
    return torch.Generator(device=device).manual_seed(rank_seed(seed, rank))


__all__ = ["rank_generator", "rank_seed", "shard_indices", "shard_size"]
