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

from constrained_pairs._validation import as_tensor
from constrained_pairs.engine import (
    GeneratorState,
    LoopSettings,
    RunOutcome,
    check_int,
    make_generator,
    run,
)
from constrained_pairs.errors import InvalidTypeError
from constrained_pairs.losses import info_nce
from constrained_pairs.vision.batched import module_device
from constrained_pairs.vision.training import (
    EpochBatches,
    MinibatchTask,
    broadcast_state_,
    check_even_batches,
    loop_settings,
    make_checkpointer,
    seeded,
    use_distributed,
)

__all__ = ["pretrain_autoencoder", "pretrain_contrastive"]

Augment = Callable[[torch.Tensor], torch.Tensor]


def _prepare(backbone: Any, x: Any, augment: Any, device: Any, dtype: Any) -> torch.Tensor:
    if not isinstance(backbone, nn.Module):
        raise InvalidTypeError(f"backbone must be a torch.nn.Module, got {type(backbone)}")
    if augment is not None and not callable(augment):
        raise InvalidTypeError(f"augment must be callable or None, got {type(augment).__name__}")
    x = as_tensor("x", x)
    if not x.is_floating_point():  # e.g. uint8 images: the default float dtype, never truncated
        x = x.to(torch.get_default_dtype())
    if device is not None or dtype is not None:
        backbone.to(device=device, dtype=dtype)
    first = next(backbone.parameters(), None)
    return x.to(
        device=module_device(backbone, x.device),
        dtype=first.dtype if first is not None and first.is_floating_point() else x.dtype,
    )


def _run(
    kind: str,
    modules: dict[str, nn.Module],
    x: torch.Tensor,
    loss: Callable[[torch.Tensor], torch.Tensor],
    batches: EpochBatches,
    generator: torch.Generator,
    *,
    epochs: int,
    lr: float,
    options: dict[str, Any],
    settings: LoopSettings,
    vocabulary: dict[str, Any],
) -> RunOutcome:
    settings.log_every = batches.per_epoch
    checkpointer = make_checkpointer(
        vocabulary["checkpoint"], vocabulary["checkpoint_every"], kind, [x], options
    )
    params = [p for module in modules.values() for p in module.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    broadcast_state_(*modules.values())
    task = MinibatchTask(modules, optimizer, GeneratorState(generator), batches, loss)
    return run(
        task,
        total=epochs * batches.per_epoch,
        per_epoch=batches.per_epoch,
        settings=settings,
        checkpointer=checkpointer,
        resume=vocabulary["resume"],
        desc=kind,
    )


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
    epochs = check_int("epochs", epochs, optional=False)
    batch_size = check_int("batch_size", batch_size, minimum=2, optional=False)
    feat_dim, proj_dim, hidden = (
        check_int(k, v, optional=False)
        for k, v in (("feat_dim", feat_dim), ("proj_dim", proj_dim), ("hidden", hidden))
    )
    if not callable(augment):
        raise InvalidTypeError(f"augment must be callable, got {type(augment).__name__}")
    vocabulary = dict(
        seed=seed,
        device=device,
        dtype=dtype,
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        resume=resume,
        callback=callback,
    )
    settings, _, _ = loop_settings(lr=lr, **vocabulary)
    x = _prepare(backbone, x, augment, device, dtype)
    shard = use_distributed(distributed)
    if shard:
        check_even_batches(batch_size, len(x))
    broadcast_state_(backbone)  # one start on every rank (and in every rank's fingerprint)
    generator = make_generator(seed)
    batches = EpochBatches(len(x), batch_size, generator, min_size=2, drop_last=shard)
    options = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        temperature=temperature,
        proj_dim=proj_dim,
        hidden=hidden,
        seed=seed,
        augment=augment,
        backbone=backbone,
    )
    with seeded(seed):
        head = nn.Sequential(
            nn.ReLU(), nn.Linear(feat_dim, hidden), nn.ReLU(), nn.Linear(hidden, proj_dim)
        ).to(device=x.device, dtype=x.dtype)

        def loss(indices: torch.Tensor) -> torch.Tensor:
            images = x[indices.to(x.device)]
            views = torch.cat([augment(images), augment(images)])
            z1, z2 = head(backbone(views)).chunk(2)
            return info_nce(z1, z2, temperature)

        modules = {"backbone": backbone, "head": head}
        return _run(
            "ncd/pretrain_contrastive",
            modules,
            x,
            loss,
            batches,
            generator,
            epochs=epochs,
            lr=lr,
            options=options,
            settings=settings,
            vocabulary=vocabulary,
        )


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
    epochs = check_int("epochs", epochs, optional=False)
    batch_size = check_int("batch_size", batch_size, optional=False)
    feat_dim, hidden = (
        check_int(k, v, optional=False) for k, v in (("feat_dim", feat_dim), ("hidden", hidden))
    )
    vocabulary = dict(
        seed=seed,
        device=device,
        dtype=dtype,
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        resume=resume,
        callback=callback,
    )
    settings, _, _ = loop_settings(lr=lr, **vocabulary)
    x = _prepare(backbone, x, augment, device, dtype)
    shard = use_distributed(distributed)
    if shard:
        check_even_batches(batch_size, len(x))
    broadcast_state_(backbone)  # one start on every rank (and in every rank's fingerprint)
    generator = make_generator(seed)
    batches = EpochBatches(len(x), batch_size, generator, drop_last=shard)
    target = x.flatten(1)
    options = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        hidden=hidden,
        seed=seed,
        augment=augment,
        backbone=backbone,
    )
    with seeded(seed):
        decoder = nn.Sequential(
            nn.ReLU(), nn.Linear(feat_dim, hidden), nn.ReLU(), nn.Linear(hidden, target.shape[1])
        ).to(device=x.device, dtype=x.dtype)

        def loss(indices: torch.Tensor) -> torch.Tensor:
            idx = indices.to(x.device)
            inputs = x[idx] if augment is None else augment(x[idx])
            return (decoder(backbone(inputs)) - target[idx]).pow(2).sum(1).mean()

        return _run(
            "ncd/pretrain_autoencoder",
            {"backbone": backbone, "decoder": decoder},
            x,
            loss,
            batches,
            generator,
            epochs=epochs,
            lr=lr,
            options=options,
            settings=settings,
            vocabulary=vocabulary,
        )
