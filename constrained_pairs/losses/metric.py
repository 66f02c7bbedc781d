"""Metric-learning losses of the notes: Siamese contrastive and triplet losses with online
batch mining (SPEC §4, seed 001 "Siamese CNN" and "Triplet loss", seed 002 "Triple loss").
"""

from __future__ import annotations

import math
import sys

import torch

from constrained_pairs._validation import check_choice, check_flag, check_real, check_tensor
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.losses._reduce import check_pair, check_reduction, reduce

MINING = ("all", "hard", "semihard", "easy")
_BLOCK_ENTRIES = 1 << 24
_MAX_SQUARABLE = math.sqrt(sys.float_info.max)


def contrastive_loss(
    x1: torch.Tensor,
    x2: torch.Tensor,
    same: torch.Tensor,
    margin: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Siamese contrastive loss over pairs ``(x1[i], x2[i])`` with ``d = ||x1[i] - x2[i]||``.

    Similar pairs cost ``d^2`` (Euclidean loss), dissimilar pairs ``max(0, margin^2 - d^2)``
    (hinge loss): dissimilar pairs farther apart than ``margin`` cost nothing.

    Args:
        x1: embeddings of the first items, (N, d).
        x2: embeddings of the second items, (N, d).
        same: (N,) booleans (or 0/1), true where the pair is similar (same class).
        margin: m >= 0, with a finite ``m^2`` (m < 1.3e154).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per-pair losses, shape (N,)).
    """
    margin = check_margin(margin, squared=True)
    check_tensor("x2", x2, floating=True)
    x2 = check_pair("x1", x1, "x2", x2, reduction)
    check_tensor("same", same)
    if x1.dim() != 2:
        raise InvalidArgumentError(f"x1 and x2 must have shape (N, d), got {tuple(x1.shape)}")
    if same.shape != x1.shape[:1]:
        raise InvalidArgumentError(
            f"same must have shape ({x1.shape[0]},) to match x1, got {tuple(same.shape)}"
        )
    if same.dtype != torch.bool:
        if not bool(((same == 0) | (same == 1)).all()):
            raise InvalidArgumentError("same must hold booleans or 0/1 values")
        same = same.bool()
    sq_dist = (x1 - x2).square().sum(1)
    losses = torch.where(same, sq_dist, torch.relu(margin**2 - sq_dist))
    return reduce(losses, reduction)


def pairwise_distances(embeddings: torch.Tensor, squared: bool = True) -> torch.Tensor:
    """All Euclidean distances ``||e_i - e_j||`` (or their squares) of a batch, (B, B).

    Computed from differences, not from the Gram matrix, so equal embeddings are exactly 0 apart;
    the gradient at a zero distance is 0, never NaN.

    Args:
        embeddings: (B, d) floating tensor.
        squared: return squared distances.
    """
    _check_embeddings(embeddings)
    check_flag("squared", squared)
    distances = torch.cdist(embeddings, embeddings, compute_mode="donot_use_mm_for_euclid_dist")
    return distances.square() if squared else distances


def mine_triplets(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.2,
    mining: str = "semihard",
    squared: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Online batch mining of triplets (anchor, positive, negative).

    Every valid triplet has ``anchor != positive`` with equal labels and a ``negative`` with a
    different label. With ``gap = d(a, n) - d(a, p)`` they are filtered by ``mining``:

    * ``"all"``: every valid triplet;
    * ``"hard"``: ``gap < 0`` (the negative is closer than the positive);
    * ``"semihard"``: ``0 <= gap < margin`` (right order, inside the margin: they still cost);
    * ``"easy"``: ``gap >= margin`` (already satisfied, zero loss).

    Mining looks at distances only; it is not differentiated. They are computed exactly as
    ``sum_k (e_ik - e_jk)^2`` (not as a rounded ``cdist(...)^2``), so ties such as
    ``gap == margin`` are decided as the formulas say. Non-finite embeddings (or distances that
    overflow) raise an error instead of silently mining from NaN comparisons: one scan of the
    B x B distances, cheaper than the mining itself.

    Args:
        embeddings: (B, d) batch of embeddings.
        labels: (B,) integer labels.
        margin: alpha >= 0 of the triplet loss.
        mining: ``"all"`` | ``"hard"`` | ``"semihard"`` | ``"easy"``.
        squared: use squared Euclidean distances (as in the notes) instead of distances.

    Returns:
        ``(anchor, positive, negative)``: int64 index tensors of equal length T, in
        lexicographic order of ``(anchor, positive, negative)``.
    """
    margin, labels = _check_batch(embeddings, labels, margin, mining)
    check_flag("squared", squared)
    return _mine(embeddings, labels, margin, mining, squared)


@torch.no_grad()
def _mining_distances(embeddings: torch.Tensor, squared: bool) -> torch.Tensor:
    """Exact (squared) distances, in blocks of rows of ~2^24 differences each."""
    batch, dim = embeddings.shape
    rows = max(1, _BLOCK_ENTRIES // max(1, batch * dim))
    dist = embeddings.new_zeros(batch, batch)
    for start in range(0, batch, rows):
        block = embeddings[start : start + rows, None, :] - embeddings[None, :, :]
        dist[start : start + rows] = block.square().sum(-1)
    return dist if squared else dist.sqrt()


@torch.no_grad()
def _mine(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float, mining: str, squared: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dist = _mining_distances(embeddings, squared)
    if not bool(torch.isfinite(dist).all()):
        raise InvalidArgumentError(
            "embeddings must be finite: their pairwise distances hold NaN or inf, from which no "
            "triplet can be mined"
        )
    batch = len(labels)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(batch, dtype=torch.bool, device=labels.device)
    # The (anchor, positive, negative) cube is built for blocks of anchors of ~2^24 entries each.
    block = max(1, _BLOCK_ENTRIES // max(1, batch * batch))
    empty = torch.empty(0, dtype=torch.long, device=labels.device)
    found = [(empty, empty, empty)]
    for start in range(0, batch, block):
        rows = slice(start, start + block)
        valid = positive[rows, :, None] & ~same[rows, None, :]
        if mining != "all":
            gap = dist[rows, None, :] - dist[rows, :, None]  # d(a, n) - d(a, p)
            if mining == "hard":
                valid &= gap < 0
            elif mining == "semihard":
                valid &= (gap >= 0) & (gap < margin)
            else:
                valid &= gap >= margin
        anchor, pos, neg = valid.nonzero(as_tuple=True)
        found.append((anchor + start, pos, neg))
    anchor, pos, neg = (torch.cat(parts) for parts in zip(*found))
    return anchor, pos, neg


def triplet_loss(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.2,
    mining: str = "all",
    squared: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """Triplet loss ``max(d(a, p) - d(a, n) + margin, 0)`` over triplets mined from the batch.

    Args:
        embeddings: (B, d) batch of embeddings.
        labels: (B,) integer labels.
        margin: alpha >= 0.
        mining: which triplets to use, see :func:`mine_triplets`.
        squared: use squared Euclidean distances (as in the notes) instead of distances.
        reduction: ``"mean"`` (over mined triplets; 0 when none is mined) | ``"sum"`` |
            ``"none"`` (per-triplet losses, shape (T,)).
    """
    check_reduction(reduction)
    margin, labels = _check_batch(embeddings, labels, margin, mining)
    dist = pairwise_distances(embeddings, squared)
    anchor, pos, neg = _mine(embeddings.detach(), labels, margin, mining, squared)
    losses = torch.relu(dist[anchor, pos] - dist[anchor, neg] + margin)
    return reduce(losses, reduction)


def check_margin(margin: float, squared: bool = False) -> float:
    """A margin of the metric losses: a finite number >= 0 (whose square is finite if
    ``squared``: the contrastive loss uses ``margin^2``)."""
    return check_real("margin", margin, minimum=0, maximum=_MAX_SQUARABLE if squared else None)


def check_mining(mining: str) -> str:
    """One of :data:`MINING`."""
    if not isinstance(mining, str):
        raise InvalidArgumentError(f"mining must be one of {MINING}, got {mining!r}")
    return check_choice("mining", mining, MINING)


def _check_embeddings(embeddings: torch.Tensor) -> None:
    check_tensor("embeddings", embeddings, floating=True)
    if embeddings.dim() != 2:
        raise InvalidArgumentError(
            f"embeddings must have shape (B, d), got {tuple(embeddings.shape)}"
        )


def _check_batch(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float, mining: str
) -> tuple[float, torch.Tensor]:
    margin = check_margin(margin)
    check_mining(mining)
    _check_embeddings(embeddings)
    check_tensor("labels", labels)
    if labels.shape != embeddings.shape[:1]:
        raise InvalidArgumentError(
            f"labels must have shape ({embeddings.shape[0]},) to match embeddings, "
            f"got {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise InvalidArgumentError(f"labels must be an integer tensor, got {labels.dtype}")
    return margin, labels
