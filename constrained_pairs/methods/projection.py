"""``method="projection"``: projected gradient onto C^A / C^P (SPEC §2).

Each iteration takes a momentum step on Ω (normalised by one scalar, see
:class:`~constrained_pairs.methods.optim.ScalarAdam`) and then projects (θ₁, θ₂, α_A, α_P)
exactly onto the feasible set (:func:`~constrained_pairs.methods.projections.project`), so every
iterate is feasible up to rounding. A backbone φ, when given, is trained by Adam alongside.
"""

from __future__ import annotations

from typing import Any

import torch

from constrained_pairs.engine import check_float
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.methods.base import FirstOrderMethod
from constrained_pairs.methods.optim import ScalarAdam
from constrained_pairs.methods.options import TrainOptions
from constrained_pairs.methods.projections import PROJECTABLE_NORMS, project


class ProjectionMethod(FirstOrderMethod):
    """Projected (scalar-normalised momentum) gradient; see the module docstring.

    Args:
        problem: the data-join problem.
        regime: ``"A"`` or ``"P"``.
        options: the common options.
        alpha_init: initial α_A = α_P (θ = 0 there, a feasible start).
    """

    name = "projection"
    default_lr = 0.3
    default_iterations = 2000
    norms = PROJECTABLE_NORMS

    def __init__(
        self, problem: PairProblem, regime: str, options: TrainOptions, alpha_init: float = 1.0
    ) -> None:
        super().__init__(problem, regime, options)
        check_float("alpha_init", alpha_init, optional=False)
        self.head = self.make_head(alpha_init=alpha_init)
        self.optimizer = ScalarAdam(self.head.parameters(), lr=self.lr)
        self.backbone = self.backbone_optimizer()

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.optimizer, self.backbone) if o is not None]

    def modules(self) -> dict[str, Any]:
        found = {"head": self.head, "optimizer": self.optimizer}
        if self.model is not None:
            found.update(model=self.model, backbone_optimizer=self.backbone)
        return found

    def step(self, sample: Any, progress: float) -> torch.Tensor:
        for opt in self.optimizers():
            opt.zero_grad(set_to_none=True)
        value = self.omega(self.point(), sample)
        value.backward()
        for opt in self.optimizers():
            opt.step()
        self.project_()
        return value.detach()

    @torch.no_grad()
    def project_(self) -> None:
        """Replace the head's (θ₁, θ₂, α) by their exact projection onto the feasible set."""
        head = self.head
        found = project(
            head.theta1,
            head.theta2,
            head.alpha_a,
            head.alpha_p,
            kappa_a=self.problem.kappa_a,
            regime=self.regime,
            norm=self.problem.norm,
            aux_norm=self.problem.aux_norm,
            lipschitz=self.lipschitz,
        )
        head.theta1.copy_(found.theta1)
        if head.theta2 is not None:
            head.theta2.copy_(found.theta2)
        head.alpha_a.copy_(found.alpha_a)
        head.alpha_p.copy_(found.alpha_p)
