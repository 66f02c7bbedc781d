"""``method="lagrangian"`` and ``"augmented_lagrangian"``: primal-dual methods on cooper-optim.

The problem is a :class:`cooper.ConstrainedMinimizationProblem` (:class:`JoinCMP`) with one
inequality :class:`cooper.Constraint` and one :class:`cooper.multipliers.DenseMultiplier` per
constraint of SPEC §2 (θ₁ norm, θ₂ norm, α ordering, α_A >= 0, α_P >= 0). The formulation is
cooper's :class:`~cooper.formulations.Lagrangian` (updated by alternating dual-then-primal
gradient descent-ascent, :class:`~cooper.optim.AlternatingDualPrimalOptimizer`) or
:class:`~cooper.formulations.AugmentedLagrangian` (primal-then-dual,
:class:`~cooper.optim.AlternatingPrimalDualOptimizer`, dual step size equal to the penalty
coefficient, the classical method of multipliers). The primal optimizer is
:class:`~constrained_pairs.methods.optim.ScalarAdam` (one scale per parameter group, head and
backbone apart; on the digits instance it reaches a 1e-5 gap where per-coordinate Adam stalls
near 1e-2) with the shared cosine schedule decaying to 1e-5 of ``lr``; the dual optimizer is
cooper's nuPI (a PI controller on the violations, with ``maximize=True``; ``dual_damping=0``
gives plain SGD ascent), whose proportional term damps the oscillation of gradient
descent-ascent.
"""

from __future__ import annotations

from typing import Any

import cooper
import torch

from constrained_pairs._validation import check_choice
from constrained_pairs.engine import allow_in_checkpoints, check_float
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.methods.base import FirstOrderMethod
from constrained_pairs.methods.optim import ScalarAdam
from constrained_pairs.methods.options import TrainOptions

OPTIMIZERS = ("adam", "scalar_adam")
allow_in_checkpoints(cooper.optim.torch_optimizers.nupi_optimizer.nuPIInitType)


class JoinCMP(cooper.ConstrainedMinimizationProblem):
    """Ω subject to C^A / C^P, one multiplier per constraint.

    Args:
        method: the method whose ``point``, ``omega`` and ``residuals`` define the problem.
        names: constraint names (keys of ``constraint_residuals``).
        augmented: use the augmented Lagrangian formulation.
        penalty: penalty coefficient of the augmented formulation.
    """

    def __init__(
        self, method: FirstOrderMethod, names: list[str], augmented: bool, penalty: float
    ) -> None:
        super().__init__()
        self.method, self.names = method, names
        kw = {"dtype": method.problem.dtype, "device": method.problem.device}
        formulation = cooper.formulations.AugmentedLagrangian if augmented else None
        for name in names:
            options: dict[str, Any] = {
                "multiplier": cooper.multipliers.DenseMultiplier(num_constraints=1, **kw)
            }
            if augmented:
                options["formulation_type"] = formulation
                options["penalty_coefficient"] = (
                    cooper.penalty_coefficients.DensePenaltyCoefficient(
                        torch.tensor(float(penalty), **kw)
                    )
                )
            setattr(self, name, cooper.Constraint(cooper.ConstraintType.INEQUALITY, **options))

    def compute_cmp_state(self, sample: Any = None) -> cooper.CMPState:
        point = self.method.point()
        loss = self.method.omega(point, sample)
        residuals = self.method.residuals(point)
        observed = {
            getattr(self, name): cooper.ConstraintState(violation=residuals[name].reshape(1))
            for name in self.names
        }
        return cooper.CMPState(loss=loss, observed_constraints=observed)

    def compute_violations(self, sample: Any = None) -> cooper.CMPState:
        residuals = self.method.residuals(self.method.point())
        observed = {
            getattr(self, name): cooper.ConstraintState(violation=residuals[name].reshape(1))
            for name in self.names
        }
        return cooper.CMPState(observed_constraints=observed)


class LagrangianMethod(FirstOrderMethod):
    """Gradient descent-ascent on the Lagrangian via cooper; see the module docstring.

    Args:
        problem: the data-join problem.
        regime: ``"A"`` or ``"P"``.
        options: the common options.
        dual_lr: step size of the multipliers (default 0.3; the penalty coefficient for the
            augmented Lagrangian).
        penalty_coefficient: ρ of the augmented Lagrangian (ignored by the plain one).
        dual_damping: proportional gain Kp of cooper's nuPI dual optimizer (0: plain SGD ascent);
            it damps the oscillation of gradient descent-ascent.
        alpha_init: initial α_A = α_P.
        optimizer: primal step rule, ``"scalar_adam"`` (default) or ``"adam"``.
    """

    name = "lagrangian"
    augmented = False
    default_lr = 0.05
    default_iterations = 2000
    default_final_lr_ratio = 1e-5

    def __init__(
        self,
        problem: PairProblem,
        regime: str,
        options: TrainOptions,
        dual_lr: float | None = None,
        penalty_coefficient: float = 1.0,
        dual_damping: float = 10.0,
        alpha_init: float = 1.0,
        optimizer: str = "scalar_adam",
    ) -> None:
        super().__init__(problem, regime, options)
        check_float("dual_lr", dual_lr, positive=True)
        check_float("penalty_coefficient", penalty_coefficient, positive=True, optional=False)
        check_float("dual_damping", dual_damping, optional=False)
        check_float("alpha_init", alpha_init, optional=False)
        self.head = self.make_head(alpha_init=alpha_init)
        names = list(self.residuals(self.head.point()).keys())
        self.cmp = JoinCMP(self, names, self.augmented, penalty_coefficient)
        if dual_lr is None:
            dual_lr = penalty_coefficient if self.augmented else 0.3
        # One group for the head and one for the backbone: ScalarAdam shares a scale per group.
        groups = [{"params": list(self.head.parameters())}]
        if self.primal_parameters():
            groups.append({"params": self.primal_parameters(), "lr": options.backbone_lr})
        if check_choice("optimizer", optimizer, OPTIMIZERS) == "adam":
            self.primal = torch.optim.Adam(groups, lr=self.lr)
        else:
            self.primal = ScalarAdam(groups, lr=self.lr)
        # A fixed order (cmp.dual_parameters() iterates over a set), so checkpoints map back.
        duals = [p for _, m in self.cmp.named_multipliers() for p in m.parameters()]
        if dual_damping > 0:
            self.dual = cooper.optim.nuPI(duals, lr=dual_lr, Kp=dual_damping, Ki=1.0, maximize=True)
        else:
            self.dual = torch.optim.SGD(duals, lr=dual_lr, maximize=True)
        optimizer_cls = (
            cooper.optim.AlternatingPrimalDualOptimizer
            if self.augmented
            else cooper.optim.AlternatingDualPrimalOptimizer
        )
        self.optimizer = optimizer_cls(
            self.cmp, primal_optimizers=self.primal, dual_optimizers=self.dual
        )

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.primal]

    def modules(self) -> dict[str, Any]:
        return {**super().modules(), "cmp": self.cmp}

    def step(self, sample: Any, progress: float) -> torch.Tensor:
        kwargs = {"sample": sample}
        if self.augmented:
            rollout = self.optimizer.roll(
                compute_cmp_state_kwargs=kwargs, compute_violations_kwargs=kwargs
            )
        else:
            rollout = self.optimizer.roll(compute_cmp_state_kwargs=kwargs)
        return rollout.loss.detach()

    def extra(self) -> dict[str, Any]:
        return {
            "multipliers": {
                name: float(multiplier.weight.detach().reshape(()))
                for name, multiplier in self.cmp.named_multipliers()
            }
        }


class AugmentedLagrangianMethod(LagrangianMethod):
    """The method of multipliers on cooper's augmented Lagrangian; see the module docstring."""

    name = "augmented_lagrangian"
    augmented = True
