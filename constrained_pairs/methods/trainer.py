"""The training loop shared by every first-order method of SPEC §2.

A method (:class:`FirstOrderMethod`) owns its variables, its optimizers and one update
(:meth:`FirstOrderMethod.step`); :func:`train` owns everything else: mini-batches of pairs, the
learning-rate schedule, stopping, history, the progress bar, callbacks and checkpoints.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError, UnsupportedOptionError
from constrained_pairs.join.constraints import constraint_residuals, theta1_norm
from constrained_pairs.join.objective import features, objective
from constrained_pairs.join.pairs import PairSet, sample_pairs
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.result import Result
from constrained_pairs.methods.common import make_result
from constrained_pairs.methods.head import FreeHead, Point

#: Problems with at most this many pairs are trained full batch unless ``batch_size`` is given.
FULL_BATCH_PAIRS = 2**20
#: Mini-batch size when the pairs are too many for full batch.
DEFAULT_BATCH = 2**16


@dataclass
class TrainOptions:
    """Options common to every first-order method.

    Attributes:
        model: backbone φ (an ``nn.Module``) feeding θ₁, or None for the linear head.
        epochs: passes over the pairs (one iteration per epoch when full batch); used when
            ``max_iter`` is None.
        batch_size: pairs per mini-batch (sampled uniformly, an unbiased estimate); None means
            full batch up to 2^20 pairs, 2^16-pair batches beyond.
        lr: base learning rate (each method has its own default). It decays along a cosine
            schedule to ``lr * final_lr_ratio`` over the run.
        final_lr_ratio: last learning rate as a fraction of ``lr`` (default: the method's own).
        tol: stop when, over the last ``patience`` iterations, the relative objective change and
            the max violation are both below it.
        patience: see ``tol``.
        max_iter: number of iterations (default: the method's own).
        seed: seeds initialisation and pair sampling.
        device: device of every tensor (default: the problem's).
        dtype: floating dtype (default: the problem's).
        progress: show a tqdm bar with the objective and the max violation.
        log_every: record history (and update the bar) every this many iterations; a record
            holds Ω and the max violation of one iterate, the one reached after `iteration` updates.
        checkpoint: path of a checkpoint file written every ``checkpoint_every`` iterations.
        checkpoint_every: see ``checkpoint``.
        resume: continue from ``checkpoint`` when it exists (to the same result).
        callback: ``callback(record) -> bool | None`` after each logged iteration; True stops.
        threads: CPU threads torch uses during training (restored afterwards); None leaves
            torch's setting. One thread is fastest for small problems on a busy machine.
        restore_feasibility: after the last iteration, raise α_A and α_P (θ unchanged) to the
            smallest values that satisfy every constraint they enter
            (:meth:`FirstOrderMethod.restore_feasibility_`); Ω moves by about λ · violation.
            ``Result.extra["violation_before_restore"]`` keeps the method's own final violation.
    """

    model: nn.Module | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    final_lr_ratio: float | None = None
    tol: float = 1e-10
    patience: int = 50
    max_iter: int | None = None
    seed: int = 0
    device: Any = None
    dtype: torch.dtype | None = None
    progress: bool = False
    log_every: int = 10
    checkpoint: str | Path | None = None
    checkpoint_every: int = 100
    resume: bool = False
    callback: Callable[[dict[str, Any]], bool | None] | None = None
    threads: int | None = None
    restore_feasibility: bool = True


class FirstOrderMethod(abc.ABC):
    """One first-order method: its variables, optimizers and update.

    Subclasses set ``name``, ``default_lr``, ``default_iterations``, ``default_final_lr_ratio``
    and ``norms`` (the θ₁ norms they honour), and implement :meth:`step` and :meth:`point`.

    Args:
        problem: the data-join problem (already on the training device and dtype).
        regime: ``"A"`` or ``"P"``.
        options: the common options.
    """

    name: ClassVar[str]
    default_lr: ClassVar[float] = 0.05
    default_iterations: ClassVar[int] = 2000
    default_final_lr_ratio: ClassVar[float] = 1e-3
    norms: ClassVar[tuple[str, ...]] = ("nuclear", "frobenius", "spectral", "lipschitz")

    def __init__(self, problem: PairProblem, regime: str, options: TrainOptions) -> None:
        if problem.norm not in self.norms:
            raise UnsupportedOptionError(
                f"method={self.name!r} cannot honour norm={problem.norm!r}; "
                f"it supports norm in {self.norms}"
            )
        self.problem, self.regime, self.options = problem, regime, options
        self.model = options.model
        self.lr = options.lr if options.lr is not None else self.default_lr
        self.distance_squash: str | None = None
        with torch.no_grad():
            self.num_features = features(self.model, problem.x_p[:1]).shape[1]
        self.aux_dim = problem.aux_a.shape[1] if problem.has_aux else None

    # -- what a method implements ----------------------------------------------------------------
    @abc.abstractmethod
    def step(self, pairs: PairSet | None, progress: float) -> torch.Tensor:
        """One update on a pair sample (None: all pairs) at ``progress`` = iteration / total in
        [0, 1); returns the detached objective at the point before the update."""

    def point(self) -> Point:
        """The current (θ₁, θ₂, b, α_A, α_P), read from the method's ``head``."""
        return self.head.point()

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The torch optimizers whose learning rate follows the schedule."""
        return [self.optimizer]

    def modules(self) -> dict[str, Any]:
        """Everything with a ``state_dict`` to checkpoint (modules, optimizers, cooper CMPs)."""
        found: dict[str, Any] = {"head": self.head, "optimizer": self.optimizer}
        if self.model is not None:
            found["model"] = self.model
        return found

    def finish(self) -> None:  # noqa: B027 - optional hook
        """Called once after the last iteration (e.g. a final feasibility step)."""

    def status(self, status: str) -> str:
        """The result's status, annotated when the method changes the problem."""
        return status

    def extra(self) -> dict[str, Any]:
        """Method-specific details for ``Result.extra``."""
        return {}

    @torch.no_grad()
    def restore_feasibility_(self) -> None:
        """Raise the head's α_A, α_P to the smallest values feasible for the current θ.

        Regime A (α_A <= α_P): α_A' = max(α_A, 0, ‖θ₂‖/κ_A), α_P' = max(α_P, α_A', ‖θ₁‖_* − α_A').
        Regime P (α_P <= α_A): α_P' = max(α_P, 0), α_A' = max(α_A, α_P', ‖θ₂‖/κ_A, ‖θ₁‖_* − α_P').
        With κ_A = 0 a nonzero θ₂ cannot be repaired through α and stays reported.
        """
        head = self.head
        if not isinstance(head, FreeHead):
            return
        point = head.point()
        norm1 = theta1_norm(point.theta1, self.problem.norm)
        zero = torch.zeros_like(norm1)
        theta2_floor = zero
        if point.theta2 is not None and self.problem.kappa_a > 0:
            theta2_floor = point.theta2.norm() / self.problem.kappa_a
        alpha_a, alpha_p = point.alpha_a, point.alpha_p
        if self.regime == "A":
            new_a = torch.stack([alpha_a, zero, theta2_floor]).max()
            new_p = torch.stack([alpha_p, new_a, norm1 - new_a]).max()
        else:
            new_p = torch.stack([alpha_p, zero]).max()
            new_a = torch.stack([alpha_a, new_p, theta2_floor, norm1 - new_p]).max()
        head.alpha_a.copy_(new_a)
        head.alpha_p.copy_(new_p)

    # -- shared helpers --------------------------------------------------------------------------
    def make_head(self, head_cls: type[nn.Module] = FreeHead, **options: Any) -> nn.Module:
        """A ``head_cls`` sized for the problem (C, feature size, aux size), on its device and
        dtype; ``options`` are the head's own keyword arguments."""
        return head_cls(
            self.problem.num_classes,
            self.num_features,
            self.aux_dim,
            dtype=self.problem.dtype,
            device=self.problem.device,
            **options,
        )

    def primal_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters()) if self.model is not None else []

    def omega(self, point: Point, pairs: PairSet | None) -> torch.Tensor:
        """Ω at ``point`` (on a pair sample when given)."""
        return objective(
            self.problem,
            theta1=point.theta1,
            theta2=point.theta2,
            bias=point.bias,
            alpha_a=point.alpha_a,
            alpha_p=point.alpha_p,
            regime=self.regime,
            model=self.model,
            pairs=pairs,
            distance_squash=self.distance_squash,
        )

    def residuals(self, point: Point) -> dict[str, torch.Tensor]:
        """Every constraint residual g <= 0 at ``point``."""
        return constraint_residuals(
            self.problem,
            theta1=point.theta1,
            theta2=point.theta2,
            alpha_a=point.alpha_a,
            alpha_p=point.alpha_p,
            regime=self.regime,
        )

    def max_violation(self) -> torch.Tensor:
        with torch.no_grad():
            values = torch.stack(list(self.residuals(self.point()).values()))
        return values.max().clamp_min(0)


TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainOptions)}


def split_options(options: dict[str, Any]) -> tuple[TrainOptions, dict[str, Any]]:
    """Separate the common options from a method's own."""
    common = {k: v for k, v in options.items() if k in TRAIN_FIELDS}
    own = {k: v for k, v in options.items() if k not in TRAIN_FIELDS}
    settings = TrainOptions(**common)
    if settings.model is not None and not isinstance(settings.model, nn.Module):
        raise InvalidTypeError(
            f"model must be a torch.nn.Module or None, got {type(settings.model).__name__}"
        )
    for name in (
        "epochs",
        "batch_size",
        "max_iter",
        "log_every",
        "checkpoint_every",
        "patience",
        "threads",
    ):
        value = getattr(settings, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InvalidArgumentError(f"{name} must be a positive int, got {value!r}")
    for name in ("lr", "tol", "final_lr_ratio"):
        value = getattr(settings, name)
        if value is not None and not (isinstance(value, int | float) and value >= 0):
            raise InvalidArgumentError(f"{name} must be a number >= 0, got {value!r}")
    if settings.resume and settings.checkpoint is None:
        raise InvalidArgumentError("resume=True needs checkpoint=path")
    return settings, own


def _lr_factor(iteration: int, total: int, final: float) -> float:
    """Cosine decay from 1 to ``final`` over ``total`` iterations."""
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * iteration / max(1, total)))


def _save(path: Path, method: FirstOrderMethod, state: dict[str, Any]) -> None:
    payload = {**state, "modules": {k: v.state_dict() for k, v in method.modules().items()}}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def train(
    method_cls: type[FirstOrderMethod], problem: PairProblem, regime: str, **options: Any
) -> Result:
    """Run ``method_cls`` on ``problem`` in ``regime`` with the shared loop (see module docstring).

    Args:
        method_cls: the method.
        problem: the data-join problem.
        regime: ``"A"`` or ``"P"``.
        **options: :class:`TrainOptions` fields and the method's own keyword options.
    """
    settings, own = split_options(options)
    before = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        return _train(method_cls, problem, regime, settings, own)
    finally:
        torch.set_num_threads(before)


def _train(
    method_cls: type[FirstOrderMethod],
    problem: PairProblem,
    regime: str,
    settings: TrainOptions,
    own: dict[str, Any],
) -> Result:
    device = torch.device(settings.device) if settings.device is not None else problem.device
    dtype = settings.dtype or problem.dtype
    if device != problem.device or dtype != problem.dtype:
        problem = problem.to(device, dtype)
    if settings.model is not None:
        settings.model.to(device=device, dtype=dtype)
    torch.manual_seed(settings.seed)
    method = method_cls(problem, regime, settings, **own)

    full = settings.batch_size is None and problem.pairs.size <= FULL_BATCH_PAIRS
    batch = None if full else (settings.batch_size or DEFAULT_BATCH)
    per_epoch = 1 if batch is None else max(1, math.ceil(problem.pairs.size / batch))
    if settings.max_iter is not None:
        total = settings.max_iter
    elif settings.epochs is not None:
        total = settings.epochs * per_epoch
    else:
        total = method.default_iterations
    generator = torch.Generator().manual_seed(settings.seed)
    final_lr_ratio = (
        settings.final_lr_ratio
        if settings.final_lr_ratio is not None
        else method.default_final_lr_ratio
    )
    for opt in method.optimizers():
        for group in opt.param_groups:
            group.setdefault("base_lr", group["lr"])

    history: list[dict[str, Any]] = []
    start_iteration, elapsed = 0, 0.0
    path = Path(settings.checkpoint) if settings.checkpoint is not None else None
    if path is not None and settings.resume and path.exists():
        state = torch.load(path, map_location=device, weights_only=False)
        for key, module in method.modules().items():
            module.load_state_dict(state["modules"][key])
        generator.set_state(state["generator"])
        start_iteration, elapsed, history = state["iteration"], state["elapsed"], state["history"]

    bar = None
    if settings.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start_iteration, desc=method.name, leave=False)
    status, started = "max_iter", time.perf_counter() - elapsed
    recent: list[float] = []
    iteration = start_iteration
    for iteration in range(start_iteration, total):
        factor = _lr_factor(iteration, total, final_lr_ratio)
        for opt in method.optimizers():
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * factor
        pairs = None if batch is None else sample_pairs(problem.pairs, batch, generator)
        done = iteration + 1
        log = done % settings.log_every == 0 or done == total
        # step() returns Ω at the point it starts from: log the violation of that same point.
        violation = float(method.max_violation()) if log else float("nan")
        value = method.step(pairs, iteration / total)
        if log:
            record = {
                "iteration": iteration,
                "objective": float(value),
                "max_violation": violation,
                "lr": method.lr * factor,
                "time": time.perf_counter() - started,
            }
            history.append(record)
            if bar is not None:
                bar.update(done - bar.n)
                bar.set_postfix(objective=record["objective"], violation=record["max_violation"])
            if not math.isfinite(record["objective"]):
                status = "diverged"
                break
            recent.append(record["objective"])
            if settings.callback is not None and settings.callback(record):
                status = "stopped_by_callback"
                break
            window = max(1, settings.patience // settings.log_every)
            if len(recent) > window:
                change = abs(recent[-1] - recent[-1 - window]) / max(1.0, abs(recent[-1]))
                if change < settings.tol and record["max_violation"] < settings.tol:
                    status = "converged"
                    break
        if path is not None and done % settings.checkpoint_every == 0 and done < total:
            _save(
                path,
                method,
                {
                    "iteration": done,
                    "elapsed": time.perf_counter() - started,
                    "history": history,
                    "generator": generator.get_state(),
                },
            )
    if bar is not None:
        bar.close()
    method.finish()
    restored: dict[str, float] = {}
    if settings.restore_feasibility:
        restored["violation_before_restore"] = float(method.max_violation())
        method.restore_feasibility_()
    wall = time.perf_counter() - started
    point = method.point().detach()
    result = make_result(
        problem,
        method=method.name,
        regime=regime,
        theta1=point.theta1,
        theta2=point.theta2,
        bias=point.bias,
        alpha_a=point.alpha_a,
        alpha_p=point.alpha_p,
        status=method.status(status),
        history=history,
        wall_time=wall,
        model=method.model,
        extra={"iterations": iteration + 1, "batch_size": batch, **restored, **method.extra()},
    )
    if not math.isfinite(result.objective):
        warnings.warn(
            f"method={method.name!r} ended with a non-finite objective ({result.status})",
            RuntimeWarning,
            stacklevel=3,
        )
    return result
