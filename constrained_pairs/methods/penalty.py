"""``method="penalty"``: Ω plus a penalty on each constraint's violation (SPEC §2).

Minimises Ω + ρ(t) Σ_k pen(g_k) with pen(g) = max(g, 0)² (``penalty="quadratic"``, default) or
max(g, 0) (``penalty="l1"``, exact for ρ above the largest multiplier), by Adam, with the weight
ρ(t) growing geometrically from ``weight`` to ``max_weight`` over the run (the violation of the
quadratic penalty is O(λ/ρ)).

``distance_squash="sigmoid"`` reproduces the research notes' variant: the distance term
−α Σ d_ij is replaced by −Σ sigmoid(α d_ij). This is a DIFFERENT problem (bounded for any radii,
so it hides the unboundedness of SPEC §2 pathology 1 instead of fixing it); the result's status
says so and ``result.objective`` is still the true Ω at the returned point.
"""

from __future__ import annotations

from typing import Any

import torch

from constrained_pairs._validation import check_choice
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.join.pairs import PairSet
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.methods.head import FreeHead
from constrained_pairs.methods.optim import ScalarAdam
from constrained_pairs.methods.trainer import FirstOrderMethod, TrainOptions

PENALTIES = ("quadratic", "l1")
OPTIMIZERS = ("adam", "scalar_adam")


class PenaltyMethod(FirstOrderMethod):
    """Increasing-weight penalty method; see the module docstring.

    Args:
        problem: the data-join problem.
        regime: ``"A"`` or ``"P"``.
        options: the common options.
        penalty: ``"quadratic"`` or ``"l1"``.
        weight: initial penalty weight ρ.
        max_weight: final penalty weight (default 1e3 quadratic, 1e2 for ℓ1).
        distance_squash: None or ``"sigmoid"`` (the notes' variant; changes the problem).
        alpha_init: initial α_A = α_P.
        optimizer: ``"adam"`` or ``"scalar_adam"`` (:class:`~.optim.ScalarAdam`, one shared
            scale; with ``penalty="l1"``, ``weight=max_weight=2`` and ``final_lr_ratio=1e-5`` it
            reaches a gap of a few 1e-3 and violation ~1e-5 on the digits instances).
    """

    name = "penalty"
    default_lr = 0.05
    default_iterations = 2000

    def __init__(
        self,
        problem: PairProblem,
        regime: str,
        options: TrainOptions,
        penalty: str = "quadratic",
        weight: float = 1.0,
        max_weight: float | None = None,
        distance_squash: str | None = None,
        alpha_init: float = 1.0,
        optimizer: str = "adam",
    ) -> None:
        super().__init__(problem, regime, options)
        self.penalty = check_choice("penalty", penalty, PENALTIES)
        self.distance_squash = check_choice("distance_squash", distance_squash, (None, "sigmoid"))
        if max_weight is None:
            max_weight = 1e3 if penalty == "quadratic" else 1e2
        if not 0 < weight <= max_weight:
            raise InvalidArgumentError(
                f"weight and max_weight must satisfy 0 < weight <= max_weight, "
                f"got {weight} and {max_weight}"
            )
        self.weight, self.max_weight = float(weight), float(max_weight)
        self.head = FreeHead(
            problem.num_classes,
            self.num_features,
            self.aux_dim,
            alpha_init=alpha_init,
            dtype=problem.dtype,
            device=problem.device,
        )
        params = [*self.head.parameters(), *self.primal_parameters()]
        if check_choice("optimizer", optimizer, OPTIMIZERS) == "adam":
            self.optimizer = torch.optim.Adam(params, lr=self.lr)
        else:
            self.optimizer = ScalarAdam(params, lr=self.lr)

    def weight_at(self, progress: float) -> float:
        """ρ(t): geometric from ``weight`` to ``max_weight``."""
        return self.weight * (self.max_weight / self.weight) ** progress

    def step(self, pairs: PairSet | None, progress: float) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        point = self.point()
        value = self.omega(point, pairs)
        excess = torch.stack(list(self.residuals(point).values())).clamp_min(0)
        penalty = excess.square().sum() if self.penalty == "quadratic" else excess.sum()
        (value + self.weight_at(progress) * penalty).backward()
        self.optimizer.step()
        return value.detach()

    def status(self, status: str) -> str:
        if self.distance_squash is not None:
            return f"{status} (sigmoid-squashed distance: a different problem)"
        return status

    def extra(self) -> dict[str, Any]:
        return {"penalty": self.penalty, "final_weight": self.max_weight}
