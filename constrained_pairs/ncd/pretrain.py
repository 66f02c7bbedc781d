"""Label-free pretraining of an NCD backbone (SPEC §5 recipe, stage 0), on the engine.

Both functions take the shared vocabulary (README, "One vocabulary") and return the engine's
:class:`~constrained_pairs.engine.RunOutcome` (status, one record per epoch); the backbone is
trained in place and the auxiliary head or decoder is discarded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from constrained_pairs._validation import ADAM_FIRST_STEP, check_fits_dtype
from constrained_pairs.engine import RunOutcome, check_int
from constrained_pairs.errors import InvalidTypeError
from constrained_pairs.losses import info_nce
from constrained_pairs.vision.batched import module_device, module_dtype
from constrained_pairs.vision.call import TrainingCall, float_inputs

__all__ = ["pretrain_autoencoder", "pretrain_contrastive"]

Augment = Callable[[torch.Tensor], torch.Tensor]


def _prepare(
    call: TrainingCall, backbone: Any, x: Any, augment: Any, min_size: int, **sizes: Any
) -> tuple[torch.Tensor, list[int]]:
    """Check the layer sizes, backbone and augmentation, move the backbone, then ``x`` to the
    backbone's device and dtype; the batches of at least ``min_size`` samples."""
    sizes = [check_int(k, v, optional=False) for k, v in sizes.items()]
    if not isinstance(backbone, nn.Module):
        raise InvalidTypeError(f"backbone must be a torch.nn.Module, got {type(backbone)}")
    call.place(backbone, augment)
    x = float_inputs("x", x)
    x = x.to(device=module_device(backbone, x.device), dtype=module_dtype(backbone, x.dtype))
    check_fits_dtype("lr", call.lr, x.dtype, factor=ADAM_FIRST_STEP)
    call.batches(len(x), call.batch_size, min_size=min_size, even=True)
    return x, sizes


def _mlp(sizes: tuple[int, int, int], x: torch.Tensor) -> nn.Sequential:
    """ReLU -> Linear -> ReLU -> Linear through ``sizes``, on ``x``'s device and dtype."""
    return nn.Sequential(
        nn.ReLU(), nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.Linear(sizes[1], sizes[2])
    ).to(device=x.device, dtype=x.dtype)


def pretrain_contrastive(
    backbone: nn.Module,
    x: Any,
    feat_dim: int,
    augment: Augment,
    *,
    epochs: int = 200,
    batch_size: int = 256,
    lr: float = 1e-3,
    temperature: float = 0.2,
    proj_dim: int = 64,
    hidden: int = 128,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    callback: Any = None,
    distributed: bool | None = None,
) -> RunOutcome:
    """Pretrain ``backbone`` without labels: two augmented views of an image should agree.

    A projection head ReLU -> Linear(feat_dim, hidden) -> ReLU -> Linear(hidden, proj_dim) maps
    the features of two independent augmentations of every image of a batch;
    :func:`~constrained_pairs.losses.info_nce` (NT-Xent) pulls the two views together and
    pushes the other images away. The backbone becomes invariant to the augmentation, so choose
    one that keeps the class (e.g. :class:`~constrained_pairs.vision.RandomAffine` with shear
    and aspect changes for handwriting). The head is discarded.

    Args:
        backbone: module mapping images to (B, feat_dim) features; trained in place.
        x: images (N, ...), moved to the backbone's device and dtype.
        feat_dim: size of the backbone's features.
        augment: random batch augmentation; called twice per batch.
        epochs, batch_size (>= 2), lr: Adam training settings. Distributed, ``batch_size`` is
            the global batch, a multiple of the world size, and the last incomplete batch of an
            epoch is dropped.
        temperature: tau of :func:`~constrained_pairs.losses.info_nce`.
        proj_dim, hidden: sizes of the projection head.
        seed: seeds the head's initialisation, the batch order and the augmentations, for
            this call only (the caller's RNG is left as it was).
        device, dtype, progress, checkpoint, checkpoint_every, resume, callback, distributed:
            the shared vocabulary, as in :meth:`~constrained_pairs.ncd.ResidualNCD.fit_known`.

    Returns:
        The run's outcome; each record holds the epoch's mean ``loss`` and ``step_seconds``.
    """
    call = TrainingCall(
        seed, device, dtype, progress, checkpoint, checkpoint_every, resume, callback, distributed
    )
    call.schedule(epochs, batch_size, lr, minimum=2)
    if not callable(augment):
        raise InvalidTypeError(f"augment must be callable, got {type(augment).__name__}")
    x, (feat_dim, proj_dim, hidden) = _prepare(
        call, backbone, x, augment, 2, feat_dim=feat_dim, proj_dim=proj_dim, hidden=hidden
    )
    kind = "ncd/pretrain_contrastive"
    call.checkpoint_for(
        kind,
        [x],
        temperature=temperature,
        proj_dim=proj_dim,
        hidden=hidden,
        augment=augment,
        backbone=backbone,
    )
    with call.seeded():
        head = _mlp((feat_dim, hidden, proj_dim), x)

        def loss(indices: torch.Tensor) -> torch.Tensor:
            images = x[indices.to(x.device)]
            views = torch.cat([augment(images), augment(images)])
            z1, z2 = head(backbone(views)).chunk(2)
            return info_nce(z1, z2, temperature)

        return call.minibatch({"backbone": backbone, "head": head}, loss, kind)


def pretrain_autoencoder(
    backbone: nn.Module,
    x: Any,
    feat_dim: int,
    *,
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = 1e-3,
    augment: Augment | None = None,
    hidden: int = 512,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    callback: Any = None,
    distributed: bool | None = None,
) -> RunOutcome:
    """Pretrain ``backbone`` without labels as the encoder of a denoising autoencoder.

    A decoder ReLU -> Linear(feat_dim, hidden) -> ReLU -> Linear(hidden, D) maps the features
    of the (augmented) images back to the clean flattened images (squared error). Features
    learnt this way keep the neighbourhoods of the images, which cross-entropy on the known
    classes alone erases; NCD methods commonly pretrain on labelled and unlabelled data alike.

    Args:
        backbone: module mapping images to (B, feat_dim) features; trained in place.
        x: images (N, ...), moved to the backbone's device and dtype.
        feat_dim: size of the backbone's features.
        epochs, batch_size, lr: Adam training settings (``batch_size`` as in
            :func:`pretrain_contrastive`).
        augment: optional batch augmentation applied to the encoder's input.
        hidden: width of the decoder's hidden layer.
        seed: seeds the decoder's initialisation, the batch order and the augmentations, for
            this call only.
        device, dtype, progress, checkpoint, checkpoint_every, resume, callback, distributed:
            the shared vocabulary, as in :meth:`~constrained_pairs.ncd.ResidualNCD.fit_known`.

    Returns:
        The run's outcome; each record holds the epoch's mean ``loss`` and ``step_seconds``.
    """
    call = TrainingCall(
        seed, device, dtype, progress, checkpoint, checkpoint_every, resume, callback, distributed
    )
    call.schedule(epochs, batch_size, lr)
    x, (feat_dim, hidden) = _prepare(
        call, backbone, x, augment, 1, feat_dim=feat_dim, hidden=hidden
    )
    target = x.flatten(1)
    kind = "ncd/pretrain_autoencoder"
    call.checkpoint_for(kind, [x], hidden=hidden, augment=augment, backbone=backbone)
    with call.seeded():
        decoder = _mlp((feat_dim, hidden, target.shape[1]), x)

        def loss(indices: torch.Tensor) -> torch.Tensor:
            idx = indices.to(x.device)
            inputs = x[idx] if augment is None else augment(x[idx])
            return (decoder(backbone(inputs)) - target[idx]).pow(2).sum(1).mean()

        return call.minibatch({"backbone": backbone, "decoder": decoder}, loss, kind)
