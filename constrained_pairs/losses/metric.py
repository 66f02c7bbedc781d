"""Metric-learning losses of the notes: Siamese contrastive and triplet losses with online
batch mining (SPEC §4, seed 001 "Siamese CNN" and "Triplet loss", seed 002 "Triple loss").
"""

from __future__ import annotations

import torch

from constrained_pairs._validation import check_choice, check_nonnegative
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.losses._reduce import check_reduction, check_same_shape, reduce

MINING = ("all", "hard", "semihard", "easy")
_BLOCK_ENTRIES = 1 << 24


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
        margin: m >= 0.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per-pair losses, shape (N,)).
    """
    check_reduction(reduction)
    margin = check_nonnegative("margin", margin)
    check_same_shape("x1", x1, "x2", x2)
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
    """
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

    Mining looks at distances only; it is not differentiated.

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
    margin = check_nonnegative("margin", margin)
    check_choice("mining", mining, MINING)
    labels = _check_batch(embeddings, labels)
    with torch.no_grad():
        return _mine(pairwise_distances(embeddings, squared), labels, margin, mining)


def _mine(
    dist: torch.Tensor, labels: torch.Tensor, margin: float, mining: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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
    margin = check_nonnegative("margin", margin)
    check_choice("mining", mining, MINING)
    labels = _check_batch(embeddings, labels)
    dist = pairwise_distances(embeddings, squared)
    anchor, pos, neg = _mine(dist.detach(), labels, margin, mining)
    losses = torch.relu(dist[anchor, pos] - dist[anchor, neg] + margin)
    return reduce(losses, reduction)


def _check_batch(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if embeddings.dim() != 2:
        raise InvalidArgumentError(
            f"embeddings must have shape (B, d), got {tuple(embeddings.shape)}"
        )
    if labels.shape != embeddings.shape[:1]:
        raise InvalidArgumentError(
            f"labels must have shape ({embeddings.shape[0]},) to match embeddings, "
            f"got {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise InvalidArgumentError(f"labels must be an integer tensor, got {labels.dtype}")
    return labels
