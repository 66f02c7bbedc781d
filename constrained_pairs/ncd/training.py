"""The two training stages of :class:`~constrained_pairs.ncd.ResidualNCD` on the engine (SPEC §5).

Both stages record one :class:`~constrained_pairs.engine.Record` per epoch and end with a
:class:`~constrained_pairs.status.Status`: ``max_iter`` when the epochs ran out (or a callback
stopped the run), ``diverged`` when a loss or a parameter became non-finite (the model is then
the last finite epoch's). Distributed (SPEC §6): every rank holds the same data, trains on its
share of each global batch and takes the same step (see :mod:`constrained_pairs.vision.training`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch

from constrained_pairs._validation import (
    ADAM_FIRST_STEP,
    as_tensor,
    check_choice,
    check_fits_dtype,
    check_labels,
)
from constrained_pairs.distributed.checks import check_same_data, check_world_size
from constrained_pairs.distributed.collectives import broadcast_object
from constrained_pairs.engine import RunOutcome, check_bool, check_float, check_int
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.ncd.initialization import REDUCTION_INITS
from constrained_pairs.ncd.tasks import KnownTask, NovelTask
from constrained_pairs.vision.call import TrainingCall

if TYPE_CHECKING:
    from constrained_pairs.ncd.model import Augment, ResidualNCD

__all__ = ["fit_known", "fit_novel"]


def _start(
    call: TrainingCall,
    model: ResidualNCD,
    backbone_lr: float | None,
    weight_decay: Any,
    augment: Any,
) -> dict[str, Any]:
    """The checks and the start both stages share; returns the options both fingerprint: the
    backbone's learning rate (the one default rule of both stages: ``lr / 10``), the weight
    decay, the augmentation and the starting model with its settings."""
    if backbone_lr is None:
        backbone_lr = call.lr / 10
    else:
        backbone_lr = check_float("backbone_lr", backbone_lr, optional=False)
    check_float("weight_decay", weight_decay, optional=False)
    call.place(model, augment)
    check_fits_dtype("lr", call.lr, model.dtype, factor=ADAM_FIRST_STEP)
    check_fits_dtype("backbone_lr", backbone_lr, model.dtype, factor=ADAM_FIRST_STEP)
    return dict(
        backbone_lr=backbone_lr,
        weight_decay=weight_decay,
        augment=augment,
        start=model,
        **model.hyperparameters(),
    )


def _adamw(
    call: TrainingCall, new: list[torch.Tensor], old: list[torch.Tensor], stage: dict[str, Any]
) -> torch.optim.AdamW:
    """AdamW: the stage's new parameters at ``lr``, the inherited ones at ``backbone_lr``."""
    return torch.optim.AdamW(
        [{"params": new, "lr": call.lr}, {"params": old, "lr": stage["backbone_lr"]}],
        weight_decay=stage["weight_decay"],
    )


def fit_known(
    model: ResidualNCD,
    x: Any,
    y: Any,
    *,
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = 1e-3,
    backbone_lr: float | None = None,
    weight_decay: float = 0.0,
    augment: Augment | None = None,
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
    """Stage 1: train backbone and head with cross-entropy on the labelled data (AdamW).

    Args:
        x: labelled inputs (N, ...), tensor or array.
        y: labels in 0..n_known-1, (N,).
        epochs: passes over the labelled data.
        batch_size: samples per mini-batch (the global batch in a distributed run).
        lr: learning rate of the head (finite, > 0).
        backbone_lr: learning rate of the backbone (finite, >= 0; default ``lr / 10`` in both
            stages); a small value fine-tunes a pretrained backbone without erasing what it
            knows, 0 freezes it.
        weight_decay: decoupled weight decay of every trained parameter (>= 0).
        augment: optional function applied to every training batch of inputs.
        seed: seeds the batch order and the global RNG (augmentation, dropout) for this call
            only: the caller's RNG state is left as it was.
        device, dtype: move the model first (None: keep its own).
        progress: a tqdm bar (rank 0 only); None: on a terminal, not under CI.
        checkpoint: file the training state is written to (atomically, fingerprinted).
        checkpoint_every: write every this many epochs; None: at most once a minute. The end
            of the run is always written.
        resume: continue from ``checkpoint`` (to the bitwise same result); a finished run
            resumes to its saved result, a file of another run raises ``CheckpointError``.
        callback: ``callback(record) -> bool | None`` after every epoch; True stops the run.
        distributed: shard the samples over the default process group; None: when one with
            several ranks is initialised.

    Returns:
        The run's :class:`~constrained_pairs.engine.RunOutcome` (status, history, epochs);
        its history and status are also kept in ``model.history.known`` and
        ``model.history.known_status``.
    """
    call = TrainingCall(
        seed, device, dtype, progress, checkpoint, checkpoint_every, resume, callback, distributed
    )
    batch_size = call.schedule(epochs, batch_size, lr)
    stage = _start(call, model, backbone_lr, weight_decay, augment)
    x = model.check_input("x", x)
    y = check_labels("y", as_tensor("y", y, device=model.device, ndim=1), model.n_known)
    if y.shape[0] != x.shape[0]:
        raise InvalidArgumentError(
            f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}"
        )
    call.batches(x.shape[0], batch_size)
    if call.shard:
        check_same_data("x, y", [x, y])
        check_world_size(x.shape[0], "labelled samples")
    call.checkpoint_for("ncd/known", [x, y], **stage)
    head, backbone = list(model.head.parameters()), list(model.backbone.parameters())
    optimizer = _adamw(call, head, backbone, stage)
    with call.seeded():
        task = KnownTask(model, optimizer, call, x, y, augment)
        outcome = call.run(task, "stage 1 (known)")
    model.history.known, model.history.known_status = outcome.history, outcome.status
    return outcome


def fit_novel(
    model: ResidualNCD,
    x_u: Any,
    *,
    epochs: int = 60,
    batch_size: int | None = 128,
    lr: float = 3e-3,
    backbone_lr: float | None = None,
    weight_decay: float = 0.0,
    augment: Augment | None = None,
    use_distill: bool = True,
    use_pair: bool = True,
    pair_pos_weight: float | str = 1.0,
    y_u: Any = None,
    kmeans_restarts: int = 10,
    reduction_init: str = "discriminant",
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
    """Stage 2: find ``n_novel`` clusters in ``x_u``; L = L_cluster + β L_distill + L_pair.

    On a fresh start it freezes a copy of the stage-1 backbone and head (the teacher), builds
    the top-k neighbour graph of ``x_u`` in the teacher's feature space, initialises the
    reduction and the centres (:func:`~constrained_pairs.ncd.initialization.start_novel`).

    Args:
        x_u: unlabelled inputs (N_u, ...), N_u > max(n_novel, topk).
        epochs: passes over the unlabelled data.
        batch_size: samples per mini-batch, >= 2 (None: the full set; the global batch in a
            distributed run). L_pair averages over the pairs inside the batch; the target
            distribution is computed on the full set.
        lr: learning rate of the residual branch, reduction and centres (finite, > 0).
        backbone_lr: learning rate of the backbone and head (finite, >= 0; default
            ``lr / 10`` in both stages; 0 freezes them).
        weight_decay: decoupled weight decay of every trained parameter (>= 0).
        augment: optional function applied to every training batch (the teacher sees the
            same augmented batch; targets and the graph use clean inputs).
        use_distill: include L_distill (False: ablation).
        use_pair: include L_pair (False: ablation).
        pair_pos_weight: weight of the positive pairs in L_pair (finite, >= 0); 1.0 is the
            plain BCE of SPEC §5, ``"balanced"`` uses (N_u - 1 - topk) / topk, the ratio of
            non-neighbour to neighbour pairs.
        y_u: true labels of ``x_u``, used only to record ``novel_acc``.
        kmeans_restarts: ``n_init`` of the scikit-learn k-means initialisations.
        reduction_init: initial axes of the reduction c -> c̃. ``"discriminant"``: k-means
            on c(x_u), then the n_novel directions of largest total-to-within-cluster
            variance ratio (Fisher's discriminants of the k-means partition, so c̃ keeps
            what separates the clusters); ``"pca"``: the n_novel principal axes of c.
        seed: seeds k-means, the batch order and the global RNG of this call (scoped).
        device, dtype, progress, checkpoint, checkpoint_every, resume, callback,
            distributed: as in :func:`fit_known`.

    Returns:
        The run's :class:`~constrained_pairs.engine.RunOutcome`; also kept in
        ``model.history.novel`` and ``model.history.novel_status``.
    """
    from constrained_pairs.metrics import cluster_acc

    call = TrainingCall(
        seed, device, dtype, progress, checkpoint, checkpoint_every, resume, callback, distributed
    )
    batch_size = call.schedule(epochs, batch_size, lr, minimum=2, optional=True)
    check_bool("use_distill", use_distill)
    check_bool("use_pair", use_pair)
    kmeans_restarts = check_int("kmeans_restarts", kmeans_restarts, optional=False)
    check_choice("reduction_init", reduction_init, REDUCTION_INITS)
    if pair_pos_weight != "balanced":
        if isinstance(pair_pos_weight, str):
            raise InvalidArgumentError(
                f"pair_pos_weight must be a number >= 0 or 'balanced', got {pair_pos_weight!r}"
            )
        check_float("pair_pos_weight", pair_pos_weight, optional=False)
    stage = _start(call, model, backbone_lr, weight_decay, augment)
    x_u = model.check_input("x_u", x_u)
    n = x_u.shape[0]
    if n <= max(model.n_novel, model.topk):
        raise InvalidArgumentError(
            f"x_u must hold more than max(n_novel, topk) = {max(model.n_novel, model.topk)} "
            f"points, got {n}"
        )
    labels = None
    if y_u is not None:
        labels = as_tensor("y_u", y_u, ndim=1)
        if labels.shape[0] != n:
            raise InvalidArgumentError(f"y_u must have {n} labels, got {labels.shape[0]}")
    batch = n if batch_size is None else min(batch_size, n)
    call.batches(n, batch, min_size=2)
    if call.shard:
        check_same_data("x_u", x_u)
        check_world_size(batch, "samples per batch", per_rank=1)
    pos_weight = (
        (n - 1 - model.topk) / model.topk if pair_pos_weight == "balanced" else pair_pos_weight
    )
    checkpointer = call.checkpoint_for(
        "ncd/novel",
        [x_u, labels],
        **stage,
        use_distill=use_distill,
        use_pair=use_pair,
        pair_pos_weight=pair_pos_weight,
        kmeans_restarts=kmeans_restarts,
        reduction_init=reduction_init,
    )
    new = [*model.reduction.parameters(), model.centers]
    if model.residual_branch is not None:
        new += list(model.residual_branch.parameters())
    old = [*model.backbone.parameters(), *model.head.parameters()]
    optimizer = _adamw(call, new, old, stage)
    # Rank 0's view of the file decides for every rank (it is the one that writes it).
    resuming = broadcast_object(resume and checkpointer is not None and checkpointer.path.exists())
    with call.seeded():
        task = NovelTask(
            model,
            optimizer,
            call,
            x_u,
            augment=augment,
            use_distill=use_distill,
            use_pair=use_pair,
            pos_weight=float(pos_weight),
            score=None if labels is None else (lambda pred: cluster_acc(labels, pred)),
        )
        if not resuming:
            task.start(kmeans_restarts, seed, reduction_init)
        outcome = call.run(task, "stage 2 (novel)")
    model.history.novel, model.history.novel_status = outcome.history, outcome.status
    return outcome
