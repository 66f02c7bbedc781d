"""The loop of every first-order method: a :class:`~constrained_pairs.engine.Task` around a
:class:`~constrained_pairs.methods.base.FirstOrderMethod`, run by the shared engine.

It owns what is not the method's: copies of the caller's modules, device and dtype, blocks of
samples, the learning-rate schedule, the distributed shard, checkpoints, and the result.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from typing import Any

import torch

from constrained_pairs.backbones import lipschitz_bound
from constrained_pairs.distributed import (
    check_same_data,
    check_world_size,
    is_distributed,
    rank_generator,
    shard_indices,
    world_size,
)
from constrained_pairs.distributed.collectives import local
from constrained_pairs.engine import (
    Checkpointer,
    GeneratorState,
    LoopSettings,
    Task,
    fingerprint,
    lr_factor,
    resolve_progress,
    run,
    scoped_seed,
)
from constrained_pairs.errors import InvalidArgumentError, UnsupportedOptionError
from constrained_pairs.join.blocks import Block, block_of, sample_block
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.result import Result
from constrained_pairs.join.scaling import data_scale, scale_point_back
from constrained_pairs.methods.base import FirstOrderMethod, training_mean_distance
from constrained_pairs.methods.common import make_result
from constrained_pairs.methods.options import (
    DEFAULT_BLOCK,
    FULL_BATCH_PAIRS,
    RESULT_FIELDS,
    TrainOptions,
    check_alpha_init,
    split_options,
)
from constrained_pairs.status import Status


def block_sizes(problem: PairProblem, settings: TrainOptions) -> tuple[int, int] | None:
    """(b_A, b_P) of a block of samples, or None for full batch."""
    batch = settings.batch_size
    if batch is None:
        if problem.pairs.size <= FULL_BATCH_PAIRS:
            return None
        batch = DEFAULT_BLOCK
    b_a, b_p = batch if isinstance(batch, tuple) else (batch, batch)
    return min(b_a, problem.n_a), min(b_p, problem.n_p)


class _LipschitzState:
    """The method's current L_φ as a checkpoint entry (it is re-certified at records only)."""

    def __init__(self, method: FirstOrderMethod) -> None:
        self.method = method

    def state_dict(self) -> dict[str, float]:
        return {"lipschitz": float(self.method.lipschitz)}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.method.set_lipschitz(state["lipschitz"])


class MethodTask(Task):
    """One method's run as the engine sees it (records hold Ω at the point a step starts from).

    Args:
        method: the method, built on the training problem.
        total: iterations of the run.
        blocks: (b_A, b_P), or None for full batch.
        generator: draws the blocks (seeded per rank).
        final_lr_ratio: last learning rate as a fraction of the first.
    """

    records_start_point = True

    def __init__(
        self,
        method: FirstOrderMethod,
        total: int,
        blocks: tuple[int, int] | None,
        generator: torch.Generator,
        final_lr_ratio: float,
    ) -> None:
        self.method, self.total, self.blocks = method, total, blocks
        self.generator, self.final_lr_ratio = generator, final_lr_ratio
        self.shard = self._shard() if blocks is None and is_distributed() else None
        self._factor = 1.0
        for opt in method.optimizers():
            for group in opt.param_groups:
                group.setdefault("base_lr", group["lr"])
        method.register_gradient_hooks()

    def _shard(self) -> Block:
        """This rank's rows of A (strided) with every row of P, weighted by the world size so
        that the ranks' mean is the full sum over M (SPEC §6)."""
        pairs = self.method.problem.pairs
        block = block_of(pairs, shard_indices(pairs.n_a), torch.arange(pairs.n_p))
        block.weight = float(world_size())
        return block

    def stateful(self) -> dict[str, Any]:
        return {
            **self.method.modules(),
            "generator": GeneratorState(self.generator),
            "lipschitz": _LipschitzState(self.method),
        }

    def finite(self) -> bool:
        # The point, not only the stored parameters: a parametrization can map finite ones to NaN.
        with torch.no_grad():
            point = self.method.point()
            tensors = [point.theta1, point.bias, point.alpha_a, point.alpha_p, point.theta2]
        return super().finite() and all(
            bool(torch.isfinite(t).all()) for t in tensors if t is not None
        )

    def lr(self) -> float:
        return self.method.lr * self._factor

    def sample(self) -> Block | None:
        if self.blocks is None:
            return self.shard
        return sample_block(self.method.problem.pairs, *self.blocks, self.generator)

    def step(self, iteration: int, epoch: int, log: bool) -> dict[str, Any]:
        self._factor = lr_factor(iteration, self.total, self.final_lr_ratio)
        for opt in self.method.optimizers():
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * self._factor
        sample = self.sample()
        # step() returns Ω at the point it starts from: log the violation of that same point.
        if log:  # L_φ moves slowly with the weights: re-certified at each record and the end
            self.method.update_lipschitz()
        violation = self.method.max_violation() if log else None
        try:
            value = self.method.step(sample, iteration / self.total)
        except torch.linalg.LinAlgError:
            if self.finite():
                raise
            value = torch.tensor(float("nan"))  # an SVD of a non-finite iterate: diverged
        if log and not bool(torch.isfinite(violation)):
            value = torch.tensor(float("nan"))
        values: dict[str, Any] = {"objective": value}
        if log:
            values["max_violation"] = violation
        return values


def _final_bound(method: FirstOrderMethod) -> float | None:
    """L_φ in force (certified backbones), or the free backbone's bound when one exists."""
    if method.model is None or method.certified:
        return method.lipschitz
    try:
        return lipschitz_bound(method.model, method.problem.x_p.shape[1:])
    except UnsupportedOptionError:
        return None


def _checkpointer(method_cls, problem, regime, settings, own) -> Checkpointer | None:
    if settings.checkpoint is None:
        return None
    options = {name: getattr(settings, name) for name in RESULT_FIELDS}
    options.update(own)
    options.update({f"problem.{k}": v for k, v in problem.options().items() if k != "pairs"})
    pairs = problem.pairs
    data = [problem.x_a, problem.x_p, problem.y_p, problem.aux_a, pairs.index_a, pairs.index_p]
    kind = f"solve/{method_cls.name}/{regime}"
    return Checkpointer(
        settings.checkpoint, fingerprint(kind, data, options), settings.checkpoint_every
    )


def train(
    method_cls: type[FirstOrderMethod], problem: PairProblem, regime: str, **options: Any
) -> Result:
    """Run ``method_cls`` on ``problem`` in ``regime`` with the shared loop.

    Args:
        method_cls: the method.
        problem: the data-join problem.
        regime: ``"A"`` or ``"P"``.
        **options: :class:`~constrained_pairs.methods.options.TrainOptions` fields and the
            method's own keyword options (checked before any work).
    """
    settings, own = split_options(method_cls, options)
    before = torch.get_num_threads()
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    if settings.distributed and not torch.distributed.is_initialized():
        raise InvalidArgumentError(
            "distributed=True needs an initialised process group: launch the script with "
            "torchrun (and init_from_env()) or run it through constrained_pairs.distributed.launch"
        )
    alone = local() if settings.distributed is False else contextlib.nullcontext()
    try:
        with scoped_seed(settings.seed), alone:
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
    device = settings.device if settings.device is not None else problem.device
    dtype = settings.dtype or problem.dtype
    problem = problem.to(device, dtype)
    # A linear head trains on the scale-normalised problem (SPEC §7): the same iterates in any
    # unit, mapped back at the end. A backbone sees the data as given.
    scale = data_scale(problem) if settings.model is None else 1.0
    work = problem.rescaled(scale) if scale != 1.0 else problem
    checkpointer = _checkpointer(method_cls, work, regime, settings, own)
    if settings.feature_map is not None and problem.distance != "feature":
        raise InvalidArgumentError(
            f"feature_map is used with distance='feature' only; this problem has "
            f"distance={problem.distance!r}"
        )
    if (
        problem.distance == "feature"
        and settings.model is not None
        and settings.feature_map is None
    ):
        settings.feature_map = settings.model  # frozen as given (SPEC §2 "Deep backbones")
    for name in ("model", "feature_map"):  # the caller's modules are never trained in place
        module = getattr(settings, name)
        if module is not None:
            module = copy.deepcopy(module).to(device=device, dtype=dtype)
            setattr(settings, name, module)
    if settings.feature_map is not None:
        settings.feature_map.requires_grad_(False).eval()
    if "alpha_init" in own:  # its range is in units of D̄, known once the problem is scaled
        d_bar = training_mean_distance(work, settings.model, settings.feature_map)
        own = {**own, "alpha_init": check_alpha_init(own["alpha_init"], d_bar)}
    method = method_cls(work, regime, settings, **own)

    blocks = block_sizes(work, settings)
    per_epoch = 1
    if blocks is not None:
        per_epoch = max(1, math.ceil(max(problem.n_a / blocks[0], problem.n_p / blocks[1])))
    if settings.max_iter is not None:
        total = settings.max_iter
    elif settings.epochs is not None:
        total = settings.epochs * per_epoch
    else:
        total = method.default_iterations
    final = (
        settings.final_lr_ratio
        if settings.final_lr_ratio is not None
        else method.default_final_lr_ratio
    )
    if is_distributed():
        pairs = problem.pairs
        data = [problem.x_a, problem.x_p, problem.y_p, problem.aux_a, pairs.index_a, pairs.index_p]
        check_same_data("problem", [t for t in data if t is not None])
        check_world_size(problem.n_a, "rows of x_a")
    generator = rank_generator(settings.seed)  # each rank draws its own blocks
    task = MethodTask(method, total, blocks, generator, final)
    loop = LoopSettings(
        monitor="objective",
        log_every=settings.log_every,
        tol=settings.tol,
        patience=settings.patience,
        feasibility=("max_violation",),
        progress=resolve_progress(settings.progress),
        callback=settings.callback,
    )
    outcome = run(
        task,
        total=total,
        per_epoch=per_epoch,
        settings=loop,
        checkpointer=checkpointer,
        resume=settings.resume,
        desc=f"{method.name} ({regime})",
    )
    if outcome.status != Status.DIVERGED:
        method.finish()
        method.update_lipschitz()
    restored: dict[str, float] = {}
    if settings.restore_feasibility and outcome.status != Status.DIVERGED:
        restored["violation_before_restore"] = float(method.max_violation())
        method.restore_feasibility_()
    result = make_result(
        problem,
        method=method.name,
        regime=regime,
        **scale_point_back(scale, **method.point().detach().kwargs()),
        status=outcome.status,
        history=outcome.history,
        wall_time=outcome.elapsed,
        model=method.model,
        feature_map=method.feature_map,
        extra={
            "iterations": outcome.iterations,
            "batch_size": blocks,
            **outcome.extra,
            **restored,
            "lipschitz": _final_bound(method),
            "lipschitz_certified": method.model is None or method.certified,
            "data_scale": scale,
            **method.extra(),
        },
    )
    if not math.isfinite(result.objective):
        warnings.warn(
            f"method={method.name!r} ended with a non-finite objective ({result.status})",
            RuntimeWarning,
            stacklevel=3,
        )
    return result
