"""Contrastive pretraining of an encoder on unlabelled images, and the linear-probe evaluation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from constrained_pairs._validation import as_tensor, check_positive_int
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError


@dataclass
class PretrainHistory:
    """What :func:`pretrain` did, one entry per epoch.

    Attributes:
        epochs: the epoch numbers trained (1-based), including those restored from a checkpoint.
        losses: mean training loss of each epoch.
        step_seconds: mean wall time of one training step in each epoch.
    """

    epochs: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)


def _inputs(dataset: Any) -> torch.Tensor:
    if isinstance(dataset, torch.utils.data.TensorDataset):
        dataset = dataset.tensors[0]
    if not isinstance(dataset, torch.Tensor):
        raise InvalidTypeError(
            f"dataset must be a tensor of inputs or a TensorDataset, got {type(dataset).__name__}"
        )
    return as_tensor("dataset", dataset)


def pretrain(
    encoder: nn.Module,
    dataset: torch.Tensor | torch.utils.data.TensorDataset,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    epochs: int,
    batch_size: int = 256,
    lr: float,
    augment: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device | str,
    seed: int,
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> PretrainHistory:
    """Train ``encoder`` with a two-view contrastive ``loss`` (Adam), SimCLR style.

    Each step draws a batch, makes two views with ``augment`` and minimises
    ``loss(encoder(view1), encoder(view2))``. The last incomplete batch of an epoch is dropped.

    Args:
        encoder: the network to train (moved to ``device``, trained in place).
        dataset: unlabelled inputs, a tensor (N, ...) or a ``TensorDataset`` whose first tensor
            holds them (labels, if any, are ignored).
        loss: e.g. :class:`~constrained_pairs.mmcl.MMCLLoss` or
            :func:`constrained_pairs.losses.info_nce`.
        epochs: total number of epochs (a resumed run trains only the missing ones).
        batch_size: batch size B (at least 2, at most N).
        lr: Adam learning rate.
        augment: callable mapping a batch of inputs to a random view of the same shape, e.g.
            :class:`~constrained_pairs.mmcl.DigitAugment`.
        device: where to train.
        seed: seeds the parameter-free randomness of the run (batch order, augmentations).
        progress: show a tqdm progress bar.
        checkpoint: file path; encoder, optimizer, epoch, history and RNG state are saved there
            after every epoch, and a run finding the file resumes from it.

    Returns:
        The :class:`PretrainHistory` of all epochs, restored ones included.
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size, minimum=2)
    if not lr > 0:
        raise InvalidArgumentError(f"lr must be > 0, got {lr!r}")
    if not callable(augment) or not callable(loss):
        raise InvalidTypeError("loss and augment must be callables")
    inputs = _inputs(dataset)
    if batch_size > len(inputs):
        raise InvalidArgumentError(f"batch_size must be <= the dataset size {len(inputs)}, "
                                   f"got {batch_size}")
    device = torch.device(device)
    encoder.to(device)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history, start = PretrainHistory(), 0
    path = None if checkpoint is None else Path(checkpoint)
    if path is not None and path.exists():
        state = torch.load(path, map_location=device, weights_only=False)
        encoder.load_state_dict(state["encoder"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, start = state["history"], state["epoch"]
    else:
        torch.manual_seed(seed)

    from tqdm import tqdm

    bar = tqdm(range(start, epochs), disable=not progress, desc="pretrain", initial=start,
               total=epochs)
    steps = len(inputs) // batch_size
    encoder.train()
    for epoch in bar:
        order = torch.randperm(len(inputs), generator=generator)
        total = torch.zeros((), device=device)
        began = time.perf_counter()
        for step in range(steps):
            batch = inputs[order[step * batch_size:(step + 1) * batch_size]].to(device)
            value = loss(encoder(augment(batch)), encoder(augment(batch)))
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            total += value.detach()
        history.epochs.append(epoch + 1)
        history.losses.append(float(total) / steps)
        history.step_seconds.append((time.perf_counter() - began) / steps)
        bar.set_postfix(loss=f"{history.losses[-1]:.4f}")
        if path is not None:
            torch.save({"encoder": encoder.state_dict(), "optimizer": optimizer.state_dict(),
                        "epoch": epoch + 1, "history": history,
                        "generator": generator.get_state(), "torch_rng": torch.get_rng_state()},
                       path)
    return history


@torch.no_grad()
def embed(encoder: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Embeddings of ``x`` by the frozen ``encoder`` (eval mode, no gradient), on x's device."""
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    out = torch.cat([encoder(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)])
    encoder.train(was_training)
    return out


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
