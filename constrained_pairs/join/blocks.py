"""Sample blocks for mini-batches of the data join (SPEC §2, "Deep backbones").

A block is b_A rows of A and b_P rows of P drawn without replacement, with the pairs of M whose
both ends are in it. A pair (i, j) lies in a uniformly drawn block with probability
(b_A/n_A)(b_P/n_P), so with ``weight`` = n_A n_P / (b_A b_P) the weighted block sum is an unbiased
estimate of the sum over M, for every pairing ("all", k-nearest or explicit). For ``pairs="all"``
every one of the b_A × b_P pairs is used, at cost O(b_A b_P C) through z_ij = u_j + v_i.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from constrained_pairs._validation import check_positive_int
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.join.pairs import PairSet


@dataclass
class Block:
    """b_A rows of A, b_P rows of P and the pairs of M between them.

    Attributes:
        rows_a: indices into set A, (b_A,).
        rows_p: indices into set P, (b_P,).
        pairs: the pairs, as local indices into ``rows_a`` / ``rows_p`` (a ``PairSet`` of sizes
            (b_A, b_P), implicit "all" when M is all pairs).
        weight: n_A n_P / (b_A b_P); ``weight · Σ_block`` estimates ``Σ_M`` without bias.
    """

    rows_a: torch.Tensor
    rows_p: torch.Tensor
    pairs: PairSet
    weight: float


def _device(pairs: PairSet) -> torch.device:
    return pairs.index_a.device if not pairs.is_all else torch.device("cpu")


def block_of(pairs: PairSet, rows_a: torch.Tensor, rows_p: torch.Tensor) -> Block:
    """The :class:`Block` of given rows (distinct indices) of A and P."""
    device = _device(pairs)
    rows_a, rows_p = rows_a.to(device), rows_p.to(device)
    b_a, b_p = rows_a.numel(), rows_p.numel()
    weight = pairs.n_a * pairs.n_p / (b_a * b_p)
    if pairs.is_all:
        return Block(rows_a, rows_p, PairSet(b_a, b_p), weight)
    # Local position of every row of A and P in the block (-1 outside): O(|M|) per block.
    where_a = torch.full((pairs.n_a,), -1, dtype=torch.long, device=device)
    where_p = torch.full((pairs.n_p,), -1, dtype=torch.long, device=device)
    where_a[rows_a] = torch.arange(b_a, device=device)
    where_p[rows_p] = torch.arange(b_p, device=device)
    local_a, local_p = where_a[pairs.index_a], where_p[pairs.index_p]
    keep = (local_a >= 0) & (local_p >= 0)
    return Block(rows_a, rows_p, PairSet(b_a, b_p, local_a[keep], local_p[keep]), weight)


def _check(pairs: PairSet, batch_a: int, batch_p: int) -> tuple[int, int]:
    if not isinstance(pairs, PairSet):
        raise InvalidTypeError(f"pairs must be a PairSet, got {type(pairs).__name__}")
    batch_a = check_positive_int("batch_a", batch_a)
    batch_p = check_positive_int("batch_p", batch_p)
    if batch_a > pairs.n_a or batch_p > pairs.n_p:
        raise InvalidArgumentError(
            f"batch_a and batch_p must be <= n_A = {pairs.n_a} and n_P = {pairs.n_p}, "
            f"got {batch_a} and {batch_p}"
        )
    return batch_a, batch_p


def sample_block(
    pairs: PairSet, batch_a: int, batch_p: int, generator: torch.Generator | None = None
) -> Block:
    """A uniformly drawn block: ``batch_a`` rows of A and ``batch_p`` rows of P without
    replacement (drawn with the CPU ``generator``, moved to the pairs' device)."""
    batch_a, batch_p = _check(pairs, batch_a, batch_p)
    rows_a = torch.randperm(pairs.n_a, generator=generator)[:batch_a].sort().values
    rows_p = torch.randperm(pairs.n_p, generator=generator)[:batch_p].sort().values
    return block_of(pairs, rows_a, rows_p)


def iter_blocks(
    pairs: PairSet,
    batch_a: int,
    batch_p: int,
    generator: torch.Generator | None = None,
    *,
    shuffle: bool = True,
) -> Iterator[Block]:
    """An epoch: A and P are each cut into ⌈n/b⌉ consecutive chunks (of a random permutation
    when ``shuffle``), and every chunk of A meets every chunk of P once, so each pair of M is
    in exactly one block. Each block carries ``weight`` = the number K of blocks in the epoch:
    each block's weighted sum estimates Σ_M (without bias when shuffled and the batch sizes divide
    n_A and n_P) and their mean over the epoch is Σ_M exactly. The last chunks may be smaller
    than the batch sizes."""
    batch_a, batch_p = _check(pairs, batch_a, batch_p)
    order_a = torch.randperm(pairs.n_a, generator=generator) if shuffle else torch.arange(pairs.n_a)
    order_p = torch.randperm(pairs.n_p, generator=generator) if shuffle else torch.arange(pairs.n_p)
    chunks_a, chunks_p = order_a.split(batch_a), order_p.split(batch_p)
    count = float(len(chunks_a) * len(chunks_p))
    for rows_a in chunks_a:
        for rows_p in chunks_p:
            block = block_of(pairs, rows_a.sort().values, rows_p.sort().values)
            block.weight = count
            yield block
