"""Label-free contrastive pretraining of an NCD backbone (SPEC §5 recipe, stage 0)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from constrained_pairs._validation import check_nonnegative, check_positive_int
from constrained_pairs.losses import info_nce

__all__ = ["pretrain_contrastive"]


def pretrain_contrastive(
    backbone: nn.Module,
    x: torch.Tensor,
    feat_dim: int,
    augment: Callable[[torch.Tensor], torch.Tensor],
    *,
    epochs: int = 200,
    temperature: float = 0.2,
    proj_dim: int = 64,
    hidden: int = 128,
    lr: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
) -> nn.Module:
    """Pretrain ``backbone`` without labels: two augmented views of an image should agree.

    A projection head ReLU -> Linear(feat_dim, hidden) -> ReLU -> Linear(hidden, proj_dim) maps
    the features of two independent augmentations of every image of a batch;
    :func:`~constrained_pairs.losses.info_nce` (NT-Xent) pulls the two views together and
    pushes the other images away.
    The backbone becomes invariant to the augmentation, so choose one that keeps the class
    (e.g. :class:`~constrained_pairs.ncd.vision.RandomAffine` with shear and aspect changes for
    handwriting). The head is discarded.

    Args:
        backbone: module mapping images to (B, feat_dim) features; trained in place.
        x: images (N, ...) on the backbone's device.
        feat_dim: size of the backbone's features.
        augment: random batch augmentation; called twice per batch.
        epochs, lr, batch_size: Adam training settings.
        temperature: tau of :func:`~constrained_pairs.losses.info_nce`.
        proj_dim, hidden: sizes of the projection head.
        seed: seed of the head's initialisation and of the batch order.

    Returns:
        the trained ``backbone``.
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size, minimum=2)
    check_nonnegative("lr", lr)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Sequential(
            nn.ReLU(), nn.Linear(feat_dim, hidden), nn.ReLU(), nn.Linear(hidden, proj_dim)
        )
    head.to(device=x.device, dtype=x.dtype)
    optimizer = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=lr)
    backbone.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).to(x.device).split(batch_size):
            if idx.numel() < 2:
                continue
            views = torch.cat([augment(x[idx]), augment(x[idx])])
            z1, z2 = head(backbone(views)).chunk(2)
            loss = info_nce(z1, z2, temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return backbone
