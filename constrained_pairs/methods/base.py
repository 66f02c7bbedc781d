"""What a first-order method of SPEC §2 is: its variables, its optimizers and one update.

The loop around it (blocks of samples, schedule, stopping, checkpoints) is
:mod:`~constrained_pairs.methods.training` on the shared engine.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import nn

from constrained_pairs.backbones import lipschitz_bound
from constrained_pairs.distributed.collectives import all_reduce_mean_, is_distributed
from constrained_pairs.errors import InvalidArgumentError, UnsupportedOptionError
from constrained_pairs.join.constraints import constraint_residuals, restore_feasibility
from constrained_pairs.join.diagnostics import mean_distance
from constrained_pairs.join.objective import features, omega
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.methods.head import FreeHead, Point
from constrained_pairs.methods.options import TrainOptions


def training_mean_distance(
    problem: PairProblem, model: nn.Module | None, feature_map: nn.Module | None
) -> float | None:
    """D̄ of ``problem`` as a method sees it (under the frozen ``feature_map`` for feature
    distances), or None for ``distance="logit"``, where it depends on θ₁."""
    if problem.distance == "logit":
        return None
    return mean_distance(problem, model=model, feature_map=feature_map)


class FirstOrderMethod(abc.ABC):
    """One first-order method: its variables, optimizers and update.

    Subclasses set ``name``, ``default_lr``, ``default_iterations``, ``default_final_lr_ratio``
    and ``norms`` (the θ₁ norms they honour), and implement :meth:`step`.

    Args:
        problem: the data-join problem (already on the training device and dtype).
        regime: ``"A"`` or ``"P"``.
        options: the common options (``options.model`` is the method's own copy).
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
        self.feature_map = options.feature_map
        self.lr = options.lr if options.lr is not None else self.default_lr
        self.distance_squash: str | None = None
        #: L_φ of SPEC §2 "Deep backbones": the constraint is L_φ‖θ₁‖ <= α_A + α_P, enforced for
        #: backbones certified by construction (they carry a ``lipschitz_bound()`` method, e.g.
        #: ``backbones.LipschitzConvNet``), whose bound the optimiser cannot inflate. A free
        #: backbone keeps L_φ = 1 and no certificate (``Result.extra["lipschitz_certified"]``,
        #: its final bound in ``extra["lipschitz"]`` when ``lipschitz_bound`` can compute one):
        #: its weights are not constrained, so L_φ‖θ₁‖ would be a moving target.
        self.lipschitz = 1.0
        self.certified = self.model is not None and callable(
            getattr(self.model, "lipschitz_bound", None)
        )
        if self.certified:
            self.lipschitz = lipschitz_bound(self.model, problem.x_p.shape[1:])
        training = self.model.training if self.model is not None else False
        try:
            with torch.no_grad():
                if self.model is not None:
                    self.model.eval()  # a probe, not a step: no running statistics move
                self.num_features = features(self.model, problem.x_p[:2]).shape[1]
        except (RuntimeError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(
                f"model cannot be applied to rows of x_p of shape "
                f"{tuple(problem.x_p.shape[1:])}: {exc}"
            ) from exc
        finally:
            if self.model is not None:
                self.model.train(training)
        self.aux_dim = problem.aux_a.shape[1] if problem.has_aux else None
        #: c: the head holds (θ̃, α̃) = c·(θ, α) (the penalty method's rescaling at huge radii;
        #: every residual is homogeneous, so g(θ̃, α̃) = c·g(θ, α)). Violations are recorded in
        #: those units, as they are in the scale-normalised problem's (SPEC §7).
        self.variable_scale = 1.0

    # -- what a method implements ----------------------------------------------------------------
    @abc.abstractmethod
    def step(self, sample: Any, progress: float) -> torch.Tensor:
        """One update on a block of samples (None: all pairs) at ``progress`` = iteration /
        total in [0, 1); returns the detached objective at the point before the update."""

    def point(self) -> Point:
        """The current (θ₁, θ₂, b, α_A, α_P): the ``head``'s (θ̃, b, α̃) with θ = θ̃/c, α = α̃/c
        for the :attr:`variable_scale` c."""
        raw = self.head.point()
        c = self.variable_scale
        if c == 1.0:
            return raw
        theta2 = raw.theta2 / c if raw.theta2 is not None else None
        return Point(raw.theta1 / c, theta2, raw.bias, raw.alpha_a / c, raw.alpha_p / c)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The torch optimizers whose learning rate follows the schedule."""
        return [self.optimizer]

    def gradient_optimizers(self) -> list[torch.optim.Optimizer]:
        """The torch optimizers whose gradients are averaged across ranks before each step."""
        return self.optimizers()

    def modules(self) -> dict[str, Any]:
        """Everything with a ``state_dict`` to checkpoint (modules, optimizers, cooper CMPs)."""
        found: dict[str, Any] = {"head": self.head, "optimizer": self.optimizer}
        if self.model is not None:
            found["model"] = self.model
        return found

    def finish(self) -> None:  # noqa: B027 - optional hook
        """Called once after the last iteration (e.g. a final feasibility step)."""

    def extra(self) -> dict[str, Any]:
        """Method-specific details for ``Result.extra``."""
        return {}

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

    def mean_distance(self) -> float | None:
        """D̄ of the problem the method trains on (cached by the problem), or None when d
        depends on θ (``distance="logit"``)."""
        return training_mean_distance(self.problem, self.model, self.feature_map)

    def primal_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters()) if self.model is not None else []

    def backbone_optimizer(self) -> torch.optim.Optimizer | None:
        """AdamW on the backbone at ``backbone_lr`` (None for the linear head)."""
        params = self.primal_parameters()
        if not params:
            return None
        return torch.optim.AdamW(
            params, lr=self.options.backbone_lr, weight_decay=self.options.weight_decay
        )

    def omega(self, point: Point, sample: Any) -> torch.Tensor:
        """Ω at ``point`` (estimated on a block of samples when given)."""
        extra = {}
        if sample is not None:
            extra["block"] = sample
        if self.feature_map is not None:
            extra["feature_map"] = self.feature_map
        # cached(): each parametrized weight (orthogonal, normalised kernels) is computed once
        # per evaluation, however many rows the backbone sees.
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.options.amp)
        # omega: the unchecked evaluator (iterates may be infeasible, e.g. α < 0 under a penalty).
        with amp, torch.nn.utils.parametrize.cached():
            return omega(
                self.problem,
                **point.kwargs(),
                regime=self.regime,
                model=self.model,
                distance_squash=self.distance_squash,
                **extra,
            )

    def residuals(self, point: Point) -> dict[str, torch.Tensor]:
        """Every constraint residual g <= 0 at ``point``."""
        return constraint_residuals(
            self.problem,
            **point.constraint_kwargs(),
            regime=self.regime,
            lipschitz=self.lipschitz,
        )

    def max_violation(self) -> torch.Tensor:
        """The largest constraint violation of the head's variables, c·g(θ, α) (inf at a
        non-finite point, which has no SVD)."""
        with torch.no_grad():
            point = self.head.point()
            if not bool(torch.isfinite(point.theta1).all()):
                return torch.tensor(float("inf"))
            values = torch.stack(list(self.residuals(point).values()))
        return values.max().clamp_min(0)

    def reduce_gradients(self, params: list[torch.Tensor]) -> None:
        """Average the gradients of ``params`` across ranks (one flattened all_reduce)."""
        if is_distributed():
            all_reduce_mean_([p.grad for p in params if p.grad is not None])

    def register_gradient_hooks(self) -> None:
        """Average gradients across ranks before every step of the gradient optimizers."""
        if not is_distributed():
            return
        for optimizer in self.gradient_optimizers():

            def hook(opt, args, kwargs):
                self.reduce_gradients([p for g in opt.param_groups for p in g["params"]])

            optimizer.register_step_pre_hook(hook)

    @torch.no_grad()
    def restore_feasibility_(self) -> None:
        """Raise the head's α_A, α_P to the smallest values feasible for the current θ
        (:func:`~constrained_pairs.join.constraints.restore_feasibility`); heads feasible by
        construction have nothing to restore."""
        head = self.head
        if not isinstance(head, FreeHead):
            return
        alpha_a, alpha_p = restore_feasibility(
            self.problem,
            **head.point().constraint_kwargs(),  # homogeneous: the smallest α̃ for θ̃
            regime=self.regime,
            lipschitz=self.lipschitz,
        )
        head.alpha_a.copy_(alpha_a)
        head.alpha_p.copy_(alpha_p)

    def update_lipschitz(self) -> None:
        """Re-evaluate L_φ = ``lipschitz_bound(model)`` (a certified backbone's weights move)."""
        if self.certified:
            self.set_lipschitz(lipschitz_bound(self.model, self.problem.x_p.shape[1:]))

    def set_lipschitz(self, value: float) -> None:
        """L_φ of the method and of a head feasible by construction for it."""
        self.lipschitz = float(value)
        if hasattr(self.head, "lipschitz"):
            self.head.lipschitz = self.lipschitz
