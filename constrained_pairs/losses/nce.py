"""InfoNCE / NT-Xent, the SimCLR contrastive loss (SPEC §3 baseline, §4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.losses._reduce import check_reduction, reduce


def info_nce(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1, reduction: str = "mean"
) -> torch.Tensor:
    """NT-Xent loss of SimCLR over two views, symmetric, with 2B - 2 negatives per anchor.

    Embeddings are L2-normalised; the anchor ``z1[t]``'s positive is ``z2[t]`` and its
    negatives are every other embedding of both views (and symmetrically for ``z2[t]``).

    Args:
        z1: first view's embeddings, (B, d).
        z2: second view's embeddings, (B, d).
        temperature: softmax temperature tau > 0.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per-anchor losses, shape (2B,)).
    """
    check_reduction(reduction)
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise InvalidArgumentError(
            f"z1 and z2 must both have shape (B, d), got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if z1.shape[0] < 2:
        raise InvalidArgumentError(f"info_nce needs a batch of at least 2, got {z1.shape[0]}")
    if temperature <= 0:
        raise InvalidArgumentError(f"temperature must be > 0, got {temperature}")
    batch = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * batch, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.arange(2 * batch, device=z.device).roll(batch)
    return reduce(F.cross_entropy(sim, positives, reduction="none"), reduction)
