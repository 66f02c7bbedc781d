"""Pair distances d(x_i^A, x_j^P) of SPEC §2, summed over M without an n_A × n_P tensor.

A callable distance receives aligned rows and returns one distance per row:
``distance(rows_a, rows_p) -> Tensor (k,)`` for ``rows_a, rows_p`` of shape (k, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.join.pairs import PairSet
from constrained_pairs.join.streaming import stream_sum

DistanceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: At most this many pairs enter a median estimate (a fixed, seeded sample beyond it).
MEDIAN_SAMPLE = 2**20


def _euclidean_rows(a: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return (a - p).flatten(1).norm(dim=1)


def _pair_rows(
    pairs: PairSet, part: object, fa: torch.Tensor, fp: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if pairs.is_all:
        rows = fa[part]
        return rows.repeat_interleave(fp.shape[0], dim=0), fp.repeat(
            rows.shape[0], *[1] * (fp.dim() - 1)
        )
    index_a, index_p = part
    return fa[index_a], fp[index_p]


def _chunk_distances(
    pairs: PairSet, part: object, fa: torch.Tensor, fp: torch.Tensor, fn: DistanceFn | None
) -> torch.Tensor:
    if fn is None and pairs.is_all:
        return torch.cdist(
            fa[part].flatten(1), fp.flatten(1), compute_mode="donot_use_mm_for_euclid_dist"
        ).reshape(-1)
    rows_a, rows_p = _pair_rows(pairs, part, fa, fp)
    return (fn or _euclidean_rows)(rows_a, rows_p)


def _chunks(pairs: PairSet, fa: torch.Tensor) -> object:
    width = max(1, fa[0].numel())
    return pairs.row_chunks(width) if pairs.is_all else pairs.explicit_chunks(width)


def distance_sum(
    pairs: PairSet,
    fa: torch.Tensor,
    fp: torch.Tensor,
    fn: DistanceFn | None = None,
    *,
    scale: float | torch.Tensor = 1.0,
    squash_alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """Σ_{(i,j)∈M} d_ij / scale, or Σ sigmoid(α d_ij / scale) when ``squash_alpha`` is given.

    Differentiable in ``fa``, ``fp`` and ``squash_alpha``; streamed in chunks.
    """

    def chunk_sum(part: object, fa: torch.Tensor, fp: torch.Tensor, alpha: object) -> torch.Tensor:
        d = _chunk_distances(pairs, part, fa, fp, fn) / scale
        return torch.sigmoid(alpha * d).sum() if alpha is not None else d.sum()

    return stream_sum(chunk_sum, _chunks(pairs, fa), fa, fp, squash_alpha)


def distance_median(
    pairs: PairSet, fa: torch.Tensor, fp: torch.Tensor, fn: DistanceFn | None = None
) -> torch.Tensor:
    """Median pair distance over M (midpoint of the two middle values for an even count; over a
    fixed seeded sample of M when |M| is huge)."""
    with torch.no_grad():
        if pairs.size > MEDIAN_SAMPLE:
            from constrained_pairs.join.pairs import sample_pairs

            generator = torch.Generator().manual_seed(0)
            pairs = sample_pairs(pairs, MEDIAN_SAMPLE, generator).to(fa.device)
        values = [_chunk_distances(pairs, part, fa, fp, fn) for part in _chunks(pairs, fa)]
        return torch.quantile(torch.cat(values), 0.5)


def check_finite_total(name: str, total: torch.Tensor, fix: str) -> None:
    """Raise :class:`InvalidArgumentError` when a distance total is NaN or infinite."""
    if not bool(torch.isfinite(total).all()):
        raise InvalidArgumentError(f"{name} is {float(total)} (not finite): {fix}")


def frozen_distances(problem: Any, feature_map: torch.nn.Module) -> dict[str, Any]:
    """{"scale", "total"}: the distance divisor and Σ_M d_ij / divisor on the features of a
    frozen map, without gradient (SPEC §2, "Deep backbones")."""
    with torch.no_grad():
        fa = feature_map(problem.x_a).flatten(1)
        fp = feature_map(problem.x_p).flatten(1)
        scale = problem.distance_scale(fa, fp) if problem.scale == "median" else None
        scale = problem.distance_scale() if scale is None else scale
        total = distance_sum(problem.pairs, fa, fp, problem.distance_fn, scale=scale)
    check_finite_total("the sum of feature distances", total, "check the feature map's outputs")
    return {"scale": scale, "total": total}
