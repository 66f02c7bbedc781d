"""Contrastive pretraining of an encoder on unlabelled images (on the engine), and the
linear-probe evaluation."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from constrained_pairs._validation import ADAM_FIRST_STEP, as_tensor, check_fits_dtype
from constrained_pairs.distributed.checks import check_same_data
from constrained_pairs.engine import History, RunOutcome
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.vision.batched import embed, module_device, module_dtype
from constrained_pairs.vision.call import TrainingCall, float_inputs

__all__ = ["PretrainHistory", "embed", "linear_probe", "pretrain"]

#: The history in :func:`pretrain`'s outcome: the engine's one record list (kept for old imports).
PretrainHistory = History


def _inputs(dataset: Any) -> torch.Tensor:
    if isinstance(dataset, torch.utils.data.TensorDataset):
        dataset = dataset.tensors[0]
    if not isinstance(dataset, torch.Tensor):
        raise InvalidTypeError(
            f"dataset must be a tensor of inputs or a TensorDataset, got {type(dataset).__name__}"
        )
    return float_inputs("dataset", dataset)


def pretrain(
    encoder: nn.Module,
    dataset: torch.Tensor | torch.utils.data.TensorDataset,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    augment: Callable[[torch.Tensor], torch.Tensor],
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    progress: bool | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    callback: Callable[[Any], bool | None] | None = None,
    distributed: bool | None = None,
) -> RunOutcome:
    """Train ``encoder`` with a two-view contrastive ``loss`` (Adam), SimCLR style.

    Each step draws a batch, makes two views with ``augment`` and minimises
    ``loss(encoder(view1), encoder(view2))``. The last incomplete batch of an epoch is dropped.
    Distributed (SPEC §6): ``batch_size`` is the global batch, each rank embeds its share and
    the gradients are averaged across ranks (DDP's convention); ``MMCLLoss`` gathers the
    embeddings itself, so every anchor sees the global batch's negatives.

    Args:
        encoder: the network to train (moved to ``device``/``dtype``, trained in place).
        dataset: unlabelled inputs, a tensor (N, ...) or a ``TensorDataset`` whose first tensor
            holds them (labels, if any, are ignored).
        loss: e.g. :class:`~constrained_pairs.mmcl.MMCLLoss` or
            :func:`constrained_pairs.losses.info_nce`.
        augment: callable mapping a batch of inputs to a random view of the same shape, e.g.
            :class:`~constrained_pairs.mmcl.DigitAugment`.
        epochs: passes over the dataset.
        batch_size: batch size B (at least 2, at most N; a multiple of the world size when
            distributed).
        lr: Adam learning rate (finite, > 0).
        seed: seeds the batch order, the augmentations and dropout, for this call only (the
            caller's global RNG is left as it was).
        device: where to train (None: the encoder's device).
        dtype: float32 or float64 for the encoder and the inputs (None: the encoder's).
        progress: a tqdm bar (rank 0 only); None: on a terminal, not under CI.
        checkpoint: file the training state is written to (atomically, fingerprinted).
        checkpoint_every: write every this many epochs; None: at most once a minute. The end
            of the run is always written.
        resume: continue from ``checkpoint`` (to the bitwise same result); a finished run
            resumes to its saved result, a file of another run raises ``CheckpointError``.
        callback: ``callback(record) -> bool | None`` after every epoch; True stops the run.
        distributed: shard the batches over the default process group; None: when one with
            several ranks is initialised.

    Returns:
        The run's :class:`~constrained_pairs.engine.RunOutcome`: ``status`` (``max_iter``, or
        ``diverged`` with the last finite epoch's weights) and ``history``, one record per
        epoch with the mean ``loss`` and ``step_seconds`` (the mean time of a step).
    """
    if not isinstance(encoder, nn.Module):
        raise InvalidTypeError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}")
    for name, value in (("loss", loss), ("augment", augment)):
        if not callable(value):
            raise InvalidTypeError(f"{name} must be callable, got {type(value).__name__}")
    call = TrainingCall(
        seed, device, dtype, progress, checkpoint, checkpoint_every, resume, callback, distributed
    )
    batch_size = call.schedule(epochs, batch_size, lr, minimum=2)
    inputs = _inputs(dataset)
    if batch_size > len(inputs):
        raise InvalidArgumentError(
            f"batch_size must be <= the dataset size {len(inputs)}, got {batch_size}"
        )
    call.batches(len(inputs), batch_size, even=True, drop_last=True)
    if call.shard:
        check_same_data("dataset", inputs)
    call.place(encoder, augment)
    call.checkpoint_for(
        "mmcl/pretrain", [inputs], augment=augment, loss=loss, encoder=encoder, dtype=call.dtype
    )
    device, float_dtype = module_device(encoder, inputs.device), module_dtype(encoder)
    check_fits_dtype("lr", lr, float_dtype, factor=ADAM_FIRST_STEP)

    def step_loss(indices: torch.Tensor) -> torch.Tensor:
        batch = inputs[indices.to(inputs.device)].to(device=device, dtype=float_dtype)
        return loss(encoder(augment(batch)), encoder(augment(batch)))

    with call.seeded():
        return call.minibatch({"encoder": encoder}, step_loss, "pretrain")


def linear_probe(
    encoder: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
) -> float:
    """Test accuracy of a logistic regression on the frozen encoder's embeddings.

    Embeddings are standardised with the training split's statistics; the classifier is
    scikit-learn's multinomial ``LogisticRegression`` (L2, C = 1).

    Args:
        encoder: the trained encoder (not modified).
        train: ``(x, y)`` inputs and integer labels to fit the probe.
        test: ``(x, y)`` held-out inputs and labels to score it.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    splits = []
    for name, split in (("train", train), ("test", test)):
        if not isinstance(split, tuple | list) or len(split) != 2:
            raise InvalidTypeError(f"{name} must be a tuple (x, y)")
        x, y = as_tensor(f"{name}[0]", split[0]), as_tensor(f"{name}[1]", split[1], ndim=1)
        if len(x) != len(y):
            raise InvalidArgumentError(f"{name} has {len(x)} inputs but {len(y)} labels")
        features = embed(encoder, x).double().cpu().numpy()
        splits.append((features, y.cpu().numpy()))
    (f_train, y_train), (f_test, y_test) = splits
    scaler = StandardScaler().fit(f_train)
    probe = LogisticRegression(max_iter=2000).fit(scaler.transform(f_train), y_train)
    return float(np.mean(probe.predict(scaler.transform(f_test)) == y_test))
