"""Pair distances d(x_i^A, x_j^P) of SPEC §2, summed over M without an n_A × n_P tensor.

A callable distance receives aligned rows and returns one distance per row:
``distance(rows_a, rows_p) -> Tensor (k,)`` for ``rows_a, rows_p`` of shape (k, ...). Its output
type and shape are checked on every call (O(1)); its values (finite, >= 0) where the problem
computes its cached totals and medians, once.

The Euclidean distance of data far from unit scale (1e200, 1e-200) would overflow or underflow in
its squares; :func:`distance_unit` gives a power of two u by which the rows are divided before
and the distances multiplied after, which is exact (bit for bit the unscaled computation wherever
that one neither overflows nor underflows).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
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


#: Data whose largest |entry| lies in [2^-UNIT_RANGE, 2^UNIT_RANGE] are used as they are.
UNIT_RANGE = 16


def distance_unit(fa: torch.Tensor, fp: torch.Tensor) -> float:
    """1, or the power of two nearest the data's largest |entry| when that is outside
    [2^-16, 2^16] (module docstring)."""
    top = float(torch.stack([fa.detach().abs().max(), fp.detach().abs().max()]).max())
    if top == 0 or not math.isfinite(top) or 2.0**-UNIT_RANGE <= top <= 2.0**UNIT_RANGE:
        return 1.0
    return 2.0 ** math.frexp(top)[1]


def check_distance_values(values: Any, count: int, *, values_too: bool) -> torch.Tensor:
    """A callable distance's output: a real floating tensor of shape (count,); with
    ``values_too`` also finite and >= 0. Raises naming ``distance``."""
    expected = f"one distance per pair, a floating tensor of shape ({count},)"
    if not isinstance(values, torch.Tensor):
        raise InvalidTypeError(
            f"distance (callable) must return {expected}, got {type(values).__name__}"
        )
    if not values.is_floating_point():
        raise InvalidTypeError(f"distance (callable) must return {expected}, got {values.dtype}")
    if tuple(values.shape) != (count,):
        raise InvalidArgumentError(
            f"distance (callable) must return {expected}, got shape {tuple(values.shape)}"
        )
    if values_too:
        finite, low = torch.stack([torch.isfinite(values).all(), (values >= 0).all()]).tolist()
        if not (finite and low):
            raise InvalidArgumentError(
                "distance (callable) must return finite distances >= 0, got "
                + ("NaN or infinite values (not finite)" if not finite else "negative values")
            )
    return values


def _chunk_distances(
    pairs: PairSet,
    part: object,
    fa: torch.Tensor,
    fp: torch.Tensor,
    fn: DistanceFn | None,
    check: bool = False,
) -> torch.Tensor:
    if fn is None and pairs.is_all:
        return torch.cdist(
            fa[part].flatten(1), fp.flatten(1), compute_mode="donot_use_mm_for_euclid_dist"
        ).reshape(-1)
    rows_a, rows_p = _pair_rows(pairs, part, fa, fp)
    if fn is None:
        return _euclidean_rows(rows_a, rows_p)
    return check_distance_values(fn(rows_a, rows_p), rows_a.shape[0], values_too=check)


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
    unit: float = 1.0,
    check: bool = False,
) -> torch.Tensor:
    """Σ_{(i,j)∈M} d_ij / scale, or Σ sigmoid(α d_ij / scale) when ``squash_alpha`` is given.

    Differentiable in ``fa``, ``fp`` and ``squash_alpha``; streamed in chunks. ``unit`` (a power
    of two, :func:`distance_unit`; Euclidean distance only) divides the rows first, exactly;
    ``check`` also checks a callable's values (finite, >= 0).
    """
    if unit != 1.0 and fn is None:
        fa, fp, scale = fa / unit, fp / unit, scale / unit

    def chunk_sum(part: object, fa: torch.Tensor, fp: torch.Tensor, alpha: object) -> torch.Tensor:
        d = _chunk_distances(pairs, part, fa, fp, fn, check) / scale
        return torch.sigmoid(alpha * d).sum() if alpha is not None else d.sum()

    return stream_sum(chunk_sum, _chunks(pairs, fa), fa, fp, squash_alpha)


def distance_median(
    pairs: PairSet,
    fa: torch.Tensor,
    fp: torch.Tensor,
    fn: DistanceFn | None = None,
    *,
    unit: float = 1.0,
    check: bool = False,
) -> torch.Tensor:
    """Median pair distance over M (midpoint of the two middle values for an even count; over a
    fixed seeded sample of M when |M| is huge); ``unit`` and ``check`` as in
    :func:`distance_sum`."""
    with torch.no_grad():
        if unit != 1.0 and fn is None:
            fa, fp = fa / unit, fp / unit
        else:
            unit = 1.0
        if pairs.size > MEDIAN_SAMPLE:
            from constrained_pairs.join.pairs import sample_pairs

            generator = torch.Generator().manual_seed(0)
            pairs = sample_pairs(pairs, MEDIAN_SAMPLE, generator).to(fa.device)
        values = [_chunk_distances(pairs, p, fa, fp, fn, check) for p in _chunks(pairs, fa)]
        return torch.quantile(torch.cat(values), 0.5) * unit


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
