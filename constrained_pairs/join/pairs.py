"""The pair set M ⊆ [n_A] × [n_P] of SPEC §2, stored without materialising n_A × n_P tensors.

``"all"`` pairs are implicit; ``"knn"`` and explicit index arrays are stored as two index vectors.
Every quantity the objective needs from M (multiplicities, per-class counts, chunks) is derived
here in O(|M|) or O(n_A + n_P) memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError

#: Largest number of floats a streamed chunk may hold (about 32 MiB in float64).
CHUNK_ELEMENTS = 2**22


@dataclass
class PairSet:
    """A multiset of index pairs (i, j), i indexing set A and j set P.

    Attributes:
        n_a: size of set A.
        n_p: size of set P.
        index_a: row indices of explicit pairs, or None for all pairs.
        index_p: column indices of explicit pairs, or None for all pairs.
    """

    n_a: int
    n_p: int
    index_a: torch.Tensor | None = None
    index_p: torch.Tensor | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_all(self) -> bool:
        return self.index_a is None

    @property
    def size(self) -> int:
        """|M|, the number of pairs (with multiplicity)."""
        return self.n_a * self.n_p if self.is_all else int(self.index_a.numel())

    def a_multiplicity(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """How many pairs each i of set A belongs to, shape (n_a,)."""
        if self.is_all:
            return torch.full((self.n_a,), float(self.n_p), device=device, dtype=dtype)
        counts = torch.bincount(self.index_a, minlength=self.n_a)
        return counts.to(device=device, dtype=dtype)

    def p_multiplicity(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """How many pairs each j of set P belongs to, shape (n_p,)."""
        if self.is_all:
            return torch.full((self.n_p,), float(self.n_a), device=device, dtype=dtype)
        counts = torch.bincount(self.index_p, minlength=self.n_p)
        return counts.to(device=device, dtype=dtype)

    def class_counts(self, y_p: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
        """Cnt[i, c] = #{j : (i, j) ∈ M, y_j = c}, shape (n_a, C)."""
        key = ("class_counts", dtype)
        if key not in self._cache:
            if self.is_all:
                per_class = torch.bincount(y_p, minlength=num_classes).to(dtype)
                counts = per_class.expand(self.n_a, num_classes).clone()
            else:
                flat = self.index_a * num_classes + y_p[self.index_p]
                counts = torch.bincount(flat, minlength=self.n_a * num_classes)
                counts = counts.reshape(self.n_a, num_classes).to(dtype)
            self._cache[key] = counts
        return self._cache[key]

    def row_chunks(self, width: int) -> Iterator[slice]:
        """Slices of set A's rows such that a (rows, n_p, width) block fits the chunk budget."""
        step = max(1, CHUNK_ELEMENTS // max(1, self.n_p * width))
        for start in range(0, self.n_a, step):
            yield slice(start, min(start + step, self.n_a))

    def explicit_chunks(self, width: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(i, j) index chunks of explicit pairs such that (len, width) blocks fit the budget."""
        step = max(1, CHUNK_ELEMENTS // max(1, width))
        for start in range(0, self.size, step):
            yield self.index_a[start : start + step], self.index_p[start : start + step]

    def to(self, device: torch.device | str | None) -> PairSet:
        if self.is_all:
            return self
        return PairSet(self.n_a, self.n_p, self.index_a.to(device), self.index_p.to(device))


def explicit_pairs(value: object, n_a: int, n_p: int, device: torch.device) -> PairSet:
    """Build a :class:`PairSet` from explicit pairs.

    One orientation for every input type: rows (i, j) of an (|M|, 2) integer table (a nested
    list, a numpy array or a tensor), i indexing set A and j set P. The only other form is an
    explicit ``tuple`` of two 1-D integer tensors or numpy arrays ``(index_a, index_p)``; a list
    of two index lists is read as two rows, never as two index vectors.
    """
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, torch.Tensor | np.ndarray) and v.ndim == 1 for v in value)
    ):
        index_a, index_p = (torch.as_tensor(v) for v in value)
    else:
        try:
            table = (
                torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
            )
        except (TypeError, ValueError) as exc:
            raise InvalidTypeError(
                "pairs must be 'all', 'knn', an (|M|, 2) integer index array of rows (i, j), or a "
                "tuple of two 1-D index tensors or arrays"
            ) from exc
        if table.dim() != 2 or table.shape[1] != 2:
            raise InvalidArgumentError(
                f"pairs must be 'all', 'knn' or an (|M|, 2) index array of rows (i, j), "
                f"got shape {tuple(table.shape)}"
            )
        index_a, index_p = table[:, 0], table[:, 1]
    if index_a.dtype == torch.bool or index_a.is_floating_point() or index_a.is_complex():
        raise InvalidArgumentError(f"pairs must hold integer indices, got {index_a.dtype}")
    if index_p.dtype == torch.bool or index_p.is_floating_point() or index_p.is_complex():
        raise InvalidArgumentError(f"pairs must hold integer indices, got {index_p.dtype}")
    if index_a.shape != index_p.shape or index_a.dim() != 1 or index_a.numel() == 0:
        raise InvalidArgumentError("pairs must be two non-empty index vectors of equal length")
    for name, index, n in (("pairs[:, 0]", index_a, n_a), ("pairs[:, 1]", index_p, n_p)):
        if int(index.min()) < 0 or int(index.max()) >= n:
            raise InvalidArgumentError(f"{name} must lie in 0..{n - 1}")
    return PairSet(n_a, n_p, index_a.long().to(device), index_p.long().to(device))


KNN_DIRECTIONS = ("both", "a_to_p", "p_to_a")


def _nearest(queries: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (n_queries, k) of each query's k nearest points (Euclidean), streamed."""
    step = max(1, CHUNK_ELEMENTS // max(1, points.shape[0]))
    found = [
        torch.cdist(queries[s : s + step], points, compute_mode="donot_use_mm_for_euclid_dist")
        .topk(k, dim=1, largest=False)
        .indices
        for s in range(0, queries.shape[0], step)
    ]
    return torch.cat(found)


def knn_pairs(x_a: torch.Tensor, x_p: torch.Tensor, k: int, direction: str = "both") -> PairSet:
    """k-nearest-neighbour pairs (Euclidean on raw inputs).

    ``"a_to_p"``: each i of A with its k nearest j of P; ``"p_to_a"``: each j of P with its k
    nearest i of A; ``"both"`` (the reference code's matching): the union of the two, each pair
    once. Pairs are sorted by (i, j).
    """
    if direction not in KNN_DIRECTIONS:
        raise InvalidArgumentError(
            f"knn_direction must be one of {KNN_DIRECTIONS}, got {direction!r}"
        )
    n_a, n_p = x_a.shape[0], x_p.shape[0]
    limit = {"a_to_p": n_p, "p_to_a": n_a, "both": min(n_a, n_p)}[direction]
    if not 1 <= k <= limit:
        raise InvalidArgumentError(
            f"knn must be in 1..{limit} for knn_direction={direction!r} (n_A={n_a}, n_P={n_p}), "
            f"got {k}"
        )
    flat_a, flat_p = x_a.flatten(1), x_p.flatten(1)
    keys = []
    if direction in ("a_to_p", "both"):
        index_p = _nearest(flat_a, flat_p, k).reshape(-1)
        index_a = torch.arange(n_a, device=x_a.device).repeat_interleave(k)
        keys.append(index_a * n_p + index_p)
    if direction in ("p_to_a", "both"):
        index_a = _nearest(flat_p, flat_a, k).reshape(-1)
        index_p = torch.arange(n_p, device=x_a.device).repeat_interleave(k)
        keys.append(index_a * n_p + index_p)
    key = torch.unique(torch.cat(keys))  # sorted, without duplicates
    return PairSet(n_a, n_p, key // n_p, key % n_p)


def sample_pairs(pairs: PairSet, size: int, generator: torch.Generator | None = None) -> PairSet:
    """A uniform sample (with replacement) of ``size`` pairs of M, for unbiased mini-batches.

    Scaling a sum over the sample by ``pairs.size / size`` gives an unbiased estimate of the sum
    over M (SPEC §2, "sampled per mini-batch").
    """
    device = pairs.index_a.device if not pairs.is_all else None
    if pairs.is_all:
        index_a = torch.randint(pairs.n_a, (size,), generator=generator)
        index_p = torch.randint(pairs.n_p, (size,), generator=generator)
        return PairSet(pairs.n_a, pairs.n_p, index_a, index_p)
    pick = torch.randint(pairs.size, (size,), generator=generator).to(device)
    return PairSet(pairs.n_a, pairs.n_p, pairs.index_a[pick], pairs.index_p[pick])


def build_pairs(
    option: object, x_a: torch.Tensor, x_p: torch.Tensor, knn: int, direction: str
) -> PairSet:
    """M from ``PairProblem``'s ``pairs`` option: ``"all"``, ``"knn"``, a ``PairSet`` of the
    data's sizes or explicit (|M|, 2) rows (i, j)."""
    n_a, n_p = x_a.shape[0], x_p.shape[0]
    if isinstance(option, str):
        if option not in ("all", "knn"):
            raise InvalidArgumentError(
                f"pairs must be 'all', 'knn' or an (|M|, 2) index array, got {option!r}"
            )
        return PairSet(n_a, n_p) if option == "all" else knn_pairs(x_a, x_p, knn, direction)
    if isinstance(option, PairSet):
        if (option.n_a, option.n_p) != (n_a, n_p):
            raise InvalidArgumentError(
                f"pairs is a PairSet for sizes ({option.n_a}, {option.n_p}), the data have "
                f"({n_a}, {n_p})"
            )
        return option.to(x_a.device)
    try:
        return explicit_pairs(option, n_a, n_p, x_a.device)
    except (TypeError, RuntimeError) as exc:
        raise InvalidTypeError(
            "pairs must be 'all', 'knn' or an (|M|, 2) integer index array of rows (i, j)"
        ) from exc
