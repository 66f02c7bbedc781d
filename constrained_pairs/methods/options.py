"""The options every first-order method shares (README, "One vocabulary"), checked before any
work."""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from constrained_pairs._validation import check_real
from constrained_pairs.engine import (
    check_bool,
    check_callback,
    check_device,
    check_dtype,
    check_float,
    check_int,
    check_seed,
    check_unknown,
)
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError

#: Problems with at most this many pairs are trained full batch unless ``batch_size`` is given.
FULL_BATCH_PAIRS = 2**20
#: Samples of A and of P per block when the pairs are too many for full batch (2^16 pairs).
DEFAULT_BLOCK = 256
#: Largest α·D̄ of a start (``alpha_init``): θ = 0 there, but the budget ‖θ₁‖ <= α_A + α_P
#: admits logits of size ~α·D̄, and α r terms of the same size; beyond 1e8 a run spends its
#: iterations undoing the start (1e300 ended at Ω ~ 1e299).
ALPHA_INIT_MAX = 1e8


def check_alpha_init(value: Any, mean_distance: float | None) -> float:
    """``alpha_init`` as a float in [0, 1e8 / D̄].

    ``alpha_init`` is in the units the method trains in: those of the scale-normalised problem
    (SPEC §7; ``Result.extra["data_scale"]``) for a linear head, the problem's own with a
    backbone. ``mean_distance`` is D̄ in those units (None when it depends on θ: the bound is
    then 1e8).

    Raises:
        InvalidTypeError: not a real number.
        InvalidArgumentError: NaN, infinite, negative, or above the bound (the message gives it).
    """
    number = check_real("alpha_init", value, minimum=0.0)
    scale = mean_distance if mean_distance is not None and 0 < mean_distance < math.inf else 1.0
    limit = ALPHA_INIT_MAX / scale
    if number > limit:
        raise InvalidArgumentError(
            f"alpha_init must be in [0, {limit:.4g}] (alpha_init·D̄ <= {ALPHA_INIT_MAX:g}, with "
            f"D̄ = {scale:.4g} the mean pair distance in the units the method trains in), "
            f"got {value!r}"
        )
    return number


@dataclass
class TrainOptions:
    """Options common to every first-order method.

    Attributes:
        model: backbone φ (an ``nn.Module``) feeding θ₁, or None for the linear head. ``solve``
            trains a copy (one per regime); the caller's module is never changed.
        feature_map: the frozen map of ``distance="feature"`` (default: a copy of ``model`` as
            given, so D̄ is a constant and the boundedness check holds throughout, SPEC §2).
        epochs: passes over the samples (one iteration per epoch when full batch); used when
            ``max_iter`` is None.
        batch_size: samples per block, an int (b_A = b_P) or ``(b_A, b_P)``; a step uses every
            pair inside a block of b_A × b_P samples (an unbiased estimate for ``pairs="all"``).
            None: full batch up to 2^20 pairs, 256 × 256 blocks beyond.
        lr: base learning rate of the head (each method has its own default). It decays along a
            cosine schedule to ``lr * final_lr_ratio`` over the run.
        backbone_lr: learning rate of the backbone (default 1e-3, Adam's, whatever ``lr``).
        weight_decay: decoupled weight decay of the backbone (default 0).
        final_lr_ratio: last learning rate as a fraction of ``lr`` (default: the method's own).
        tol: stop with ``converged`` when, over the last ``patience`` iterations, the relative
            objective change and the max violation are both below it.
        patience: see ``tol``.
        max_iter: number of iterations (default: the method's own).
        seed: seeds initialisation and sampling; scoped, the caller's RNG is left as it was.
        device: device of every tensor (default: the problem's).
        dtype: float32 or float64 (default: the problem's).
        progress: a tqdm bar with the objective and the max violation; None: on a terminal only.
        log_every: record history (and update the bar) every this many iterations; a record
            holds Ω and the max violation of the iterate the logged update started from.
        checkpoint: checkpoint file (``regime="auto"`` writes one per regime, ``name.A.ext``).
        checkpoint_every: write every this many epochs; None: at most once a minute. The end of
            the run is always written, so a finished run resumes to its result.
        resume: continue from ``checkpoint`` when it exists (to the bitwise same result); a file
            of another run raises :class:`~constrained_pairs.errors.CheckpointError`.
        callback: ``callback(record) -> bool | None`` after each logged iteration; True stops.
        threads: CPU threads torch uses during training (restored afterwards); None leaves
            torch's setting.
        restore_feasibility: after the last iteration, raise α_A and α_P (θ unchanged) to the
            smallest values that satisfy every constraint they enter; ``Result.extra
            ["violation_before_restore"]`` keeps the method's own final violation.
        distributed: shard the samples over the ranks of the default process group; None: when
            one is initialised (SPEC §6).
        amp: mixed precision: Ω is evaluated under ``torch.autocast`` in bfloat16 (CUDA only:
            matrix products and convolutions in bfloat16, reductions such as logsumexp in
            float32 by autocast's rules); the parameters, the constraints and the projections
            stay in ``dtype``.
    """

    model: nn.Module | None = None
    feature_map: nn.Module | None = None
    epochs: int | None = None
    batch_size: int | tuple[int, int] | None = None
    lr: float | None = None
    backbone_lr: float = 1e-3
    weight_decay: float = 0.0
    final_lr_ratio: float | None = None
    tol: float = 1e-10
    patience: int = 50
    max_iter: int | None = None
    seed: int = 0
    device: Any = None
    dtype: torch.dtype | None = None
    progress: bool | None = False
    log_every: int = 10
    checkpoint: str | Path | None = None
    checkpoint_every: int | None = None
    resume: bool = False
    callback: Any = None
    threads: int | None = None
    restore_feasibility: bool = True
    distributed: bool | None = None
    amp: bool = False


TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainOptions))
#: Options that change the trajectory, hence a checkpoint's fingerprint.
RESULT_FIELDS = tuple(
    name
    for name in TRAIN_FIELDS
    if name not in ("device", "progress", "checkpoint", "checkpoint_every", "resume", "callback")
    and name not in ("threads", "distributed")
)


def method_option_names(method_cls: type) -> tuple[str, ...]:
    """The keyword options a method's constructor takes beyond the common ones."""
    skip = {"self", "problem", "regime", "options"}
    return tuple(p for p in inspect.signature(method_cls.__init__).parameters if p not in skip)


def split_options(method_cls: type, options: dict[str, Any]) -> tuple[TrainOptions, dict[str, Any]]:
    """Check every option (names, types, ranges) and separate the common ones from a method's.

    Raises:
        InvalidArgumentError: an unknown option (listing the valid ones, suggesting the closest)
            or a value out of range.
        InvalidTypeError: a value of the wrong type.
    """
    own_names = method_option_names(method_cls)
    check_unknown(f"method={method_cls.name!r}", options, (*TRAIN_FIELDS, *own_names))
    settings = TrainOptions(**{k: v for k, v in options.items() if k in TRAIN_FIELDS})
    for name in ("model", "feature_map"):
        value = getattr(settings, name)
        if value is not None and not isinstance(value, nn.Module):
            raise InvalidTypeError(
                f"{name} must be a torch.nn.Module or None, got {type(value).__name__}"
            )
    for name in ("epochs", "max_iter", "log_every", "checkpoint_every", "patience", "threads"):
        check_int(name, getattr(settings, name))
    check_int("patience", settings.patience, optional=False)
    check_int("log_every", settings.log_every, optional=False)
    batch = settings.batch_size
    if isinstance(batch, tuple | list):
        if len(batch) != 2:
            raise InvalidArgumentError(f"batch_size must be an int or (b_A, b_P), got {batch!r}")
        settings.batch_size = (
            check_int("batch_size[0]", batch[0]),
            check_int("batch_size[1]", batch[1]),
        )
    else:
        check_int("batch_size", batch)
    check_float("lr", settings.lr, positive=True)
    check_float("backbone_lr", settings.backbone_lr, positive=True, optional=False)
    check_float("weight_decay", settings.weight_decay, optional=False)
    if settings.final_lr_ratio is not None:
        check_real("final_lr_ratio", settings.final_lr_ratio, minimum=0.0, maximum=1.0)
    check_float("tol", settings.tol, optional=False)
    check_seed(settings.seed)
    settings.device = check_device(settings.device)
    check_dtype(settings.dtype)
    check_bool("progress", settings.progress, optional=True)
    check_bool("resume", settings.resume)
    check_bool("restore_feasibility", settings.restore_feasibility)
    check_bool("distributed", settings.distributed, optional=True)
    check_bool("amp", settings.amp)
    check_callback(settings.callback)
    if settings.amp and (settings.device is None or settings.device.type != "cuda"):
        raise InvalidArgumentError("amp=True (bfloat16 autocast) needs device='cuda'")
    if settings.epochs is not None and settings.max_iter is not None:
        raise InvalidArgumentError(
            "give epochs or max_iter, not both (max_iter counts iterations, epochs passes)"
        )
    if settings.checkpoint_every is not None and settings.checkpoint is None:
        raise InvalidArgumentError("checkpoint_every needs checkpoint=path")
    if settings.resume and settings.checkpoint is None:
        raise InvalidArgumentError("resume=True needs checkpoint=path")
    own = {k: v for k, v in options.items() if k not in TRAIN_FIELDS}
    return settings, own
