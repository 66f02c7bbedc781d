"""``method="penalty"``: Ω plus a penalty on each constraint's violation (SPEC §2).

Minimises Ω + ρ Σ_k pen(g_k) with pen(g) = max(g, 0)² (``penalty="quadratic"``, default) or
max(g, 0) (``penalty="l1"``, exact once ρ exceeds the largest multiplier), for an increasing
weight ρ. The quadratic penalty's minimiser violates the constraints by about λ_k / (2ρ), so ρ
must reach ~1e5 for a 1e-5 violation, where the penalised problem is too ill-conditioned for
Adam. The default therefore follows the classical method:

* ρ takes the values ``weight``·10^j up to ``max_weight``, one stage per value, each stage a
  share of the iterations, warm-started from the previous one;
* each stage is solved by L-BFGS with a strong-Wolfe line search (:class:`WolfeLBFGS`; its
  memory is cleared when ρ changes), which is insensitive to that ill-conditioning;
* with the nuclear norm, θ₁ = U Vᵀ and the coupling constraint is written on the smooth bound
  ½(‖U‖² + ‖V‖²) >= ‖θ₁‖_nuc (:class:`~constrained_pairs.methods.head.FactoredHead`), so every
  penalised stage is smooth and L-BFGS converges; a point feasible for the bound is feasible.

Mini-batches of pairs (stochastic gradients) use Adam instead, with ρ growing geometrically
along the run (``optimizer="adam"`` or ``"scalar_adam"`` select that path on full batches too).

Scale of the variables. Stationarity in α reads r_A − D̄ + … = λ_θ₁ + κ_A λ_θ₂ + …, so the
multipliers grow like r_A + r_P, and the violation λ/(2ρ), once α is raised to feasibility,
costs Ω about (r_A + r_P)·λ/(2ρ): with r_A + r_P >> D̄ no fixed schedule works (radii 1e4·D̄ and
beyond ended far above the trivially feasible log C). The head therefore holds (θ̃, α̃) =
c·(θ, α), c = max(1, (r_A + r_P)/(10 D̄)) (``Result.extra["variable_scale"]``), and the penalty
is on g(θ̃, α̃) = c·g(θ, α) (the residuals are homogeneous). For a linear head this is the
change of unit of SPEC §7 by the larger of the data's spread and the radii: the multipliers stay
below ~10·D̄, which the schedule resolves whatever the radii. The usual radii keep c = 1; the
bias is unscaled; ``alpha_init`` is the initial α̃ (α = ``alpha_init``/c, α·r = O(1)).

``distance_squash="sigmoid"`` reproduces the research notes' variant: the distance term
−α Σ d_ij is replaced by −Σ sigmoid(α d_ij). This is a DIFFERENT problem (bounded for any radii,
so it hides the unboundedness of SPEC §2 pathology 1 instead of fixing it); the result's status
says so and ``result.objective`` is still the true Ω at the returned point.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from constrained_pairs._validation import check_choice
from constrained_pairs.distributed.collectives import all_reduce_mean_
from constrained_pairs.engine import check_bool, check_float
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.methods.base import FirstOrderMethod
from constrained_pairs.methods.head import FactoredHead, FreeHead
from constrained_pairs.methods.lbfgs import WolfeLBFGS
from constrained_pairs.methods.optim import ScalarAdam
from constrained_pairs.methods.options import FULL_BATCH_PAIRS, TrainOptions

PENALTIES = ("quadratic", "l1")
#: (r_A + r_P)/D̄ beyond which the variables are rescaled (module docstring).
SCALED_RADII = 10.0
OPTIMIZERS = ("lbfgs", "adam", "scalar_adam")


class PenaltyMethod(FirstOrderMethod):
    """Increasing-weight penalty method; see the module docstring.

    Args:
        problem: the data-join problem.
        regime: ``"A"`` or ``"P"``.
        options: the common options.
        penalty: ``"quadratic"`` or ``"l1"``.
        weight: first penalty weight ρ.
        max_weight: last penalty weight (default: 1e5 quadratic with L-BFGS, 1e3 with Adam,
            1e2 for ℓ1).
        distance_squash: None or ``"sigmoid"`` (the notes' variant; changes the problem).
        alpha_init: initial α̃_A = α̃_P of the scaled variables, i.e. α = ``alpha_init``/c (module
            docstring; c = 1 unless r_A + r_P > 10·D̄).
        optimizer: ``"lbfgs"`` (staged weights), ``"adam"`` or ``"scalar_adam"`` (geometric
            weight schedule; :class:`~.optim.ScalarAdam` is Adam with one shared scale). Default:
            ``"lbfgs"`` on full batches, ``"adam"`` on mini-batches.
        factored: write θ₁ = U Vᵀ with the smooth nuclear-norm bound (default: with the nuclear
            norm and the L-BFGS path).
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
        optimizer: str | None = None,
        factored: bool | None = None,
    ) -> None:
        super().__init__(problem, regime, options)
        self.penalty = check_choice("penalty", penalty, PENALTIES)
        self.distance_squash = check_choice("distance_squash", distance_squash, (None, "sigmoid"))
        if optimizer is None:
            full = options.batch_size is None and problem.pairs.size <= FULL_BATCH_PAIRS
            optimizer = "lbfgs" if full else "adam"
        self.optimizer_name = check_choice("optimizer", optimizer, OPTIMIZERS)
        self.staged = self.optimizer_name == "lbfgs"
        check_float("weight", weight, positive=True, optional=False)
        check_float("max_weight", max_weight, positive=True)
        if max_weight is None:
            max_weight = 1e2 if penalty == "l1" else 1e5 if self.staged else 1e3
        if not 0 < weight <= max_weight:
            raise InvalidArgumentError(
                f"weight and max_weight must satisfy 0 < weight <= max_weight, "
                f"got {weight} and {max_weight}"
            )
        self.weight, self.max_weight = float(weight), float(max_weight)
        if factored is None:
            factored = self.staged and problem.norm == "nuclear"
        if factored and problem.norm != "nuclear":
            raise InvalidArgumentError(
                f"factored=True needs norm='nuclear' (the U Vᵀ bound), got norm={problem.norm!r}"
            )
        self.factored = bool(factored)
        check_float("alpha_init", alpha_init, optional=False)
        check_bool("factored", factored, optional=True)
        self.variable_scale = self._variable_scale()
        self.head = self.make_head(
            FactoredHead if self.factored else FreeHead, alpha_init=alpha_init
        )
        params = [*self.head.parameters(), *self.primal_parameters()]
        groups = [{"params": list(self.head.parameters())}]
        if self.primal_parameters():
            groups.append({"params": self.primal_parameters(), "lr": options.backbone_lr})
        if self.staged:
            self.optimizer: torch.optim.Optimizer = WolfeLBFGS(params)
            self.optimizer.param_groups[0]["stage"] = -1
        elif self.optimizer_name == "adam":
            self.optimizer = torch.optim.Adam(groups, lr=self.lr)
        else:
            self.optimizer = ScalarAdam(groups, lr=self.lr)

    def _variable_scale(self) -> float:
        """c = max(1, (r_A + r_P)/(10 D̄)) (module docstring); 1 when D̄ depends on θ (logit)."""
        problem, d_bar = self.problem, self.mean_distance()
        if d_bar is None:
            return 1.0
        ratio = (problem.r_a + problem.r_p) / (SCALED_RADII * d_bar) if d_bar > 0 else 1.0
        return max(1.0, ratio) if math.isfinite(ratio) else 1.0

    @property
    def stages(self) -> int:
        """Number of weights ``weight``·10^j (the last one clipped to ``max_weight``)."""
        return 1 + math.ceil(math.log10(self.max_weight / self.weight) - 1e-9)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        # L-BFGS sets its own step by line search: no learning-rate schedule.
        return [] if self.staged else [self.optimizer]

    def stage_at(self, progress: float) -> int:
        """Index j of the staged weight ``weight``·10^j in force at ``progress`` in [0, 1)."""
        return min(int(progress * self.stages), self.stages - 1)

    def weight_at(self, progress: float) -> float:
        """ρ at ``progress`` in [0, 1): staged powers of 10 (L-BFGS) or a geometric ramp."""
        if not self.staged:
            return self.weight * (self.max_weight / self.weight) ** progress
        return min(self.weight * 10.0 ** self.stage_at(progress), self.max_weight)

    def penalised(self, sample: Any, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(Ω + ρ Σ pen(g(θ̃, α̃)), Ω) at the current point (g(θ̃, α̃) = c·g(θ, α))."""
        value = self.omega(self.point(), sample)
        scaled = self.head.point()
        residuals = self.residuals(scaled)
        if self.factored:
            bound = self.head.nuclear_bound()
            residuals["theta1_norm"] = bound - scaled.alpha_a - scaled.alpha_p
        excess = torch.stack(list(residuals.values())).clamp_min(0)
        penalty = excess.square().sum() if self.penalty == "quadratic" else excess.sum()
        return value + weight * penalty, value

    def step(self, sample: Any, progress: float) -> torch.Tensor:
        weight = self.weight_at(progress)
        if not self.staged:
            self.optimizer.zero_grad(set_to_none=True)
            total, value = self.penalised(sample, weight)
            total.backward()
            self.optimizer.step()
            return value.detach()
        group = self.optimizer.param_groups[0]
        stage = self.stage_at(progress)
        if group["stage"] != stage:  # a new ρ: the old curvature pairs no longer apply
            self.optimizer.state.clear()
            group["stage"] = stage
        values: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            total, value = self.penalised(sample, weight)
            total.backward()
            # Every rank must see the same loss and gradient for its line search (SPEC §6).
            self.reduce_gradients([p for g in self.optimizer.param_groups for p in g["params"]])
            total = total.detach().clone()
            all_reduce_mean_([total])
            values.append(value.detach())
            return total

        self.optimizer.step(closure)
        return values[0]

    def gradient_optimizers(self) -> list[torch.optim.Optimizer]:
        # L-BFGS evaluates its closure inside step(): the closure averages instead.
        return [] if self.staged else [self.optimizer]

    def extra(self) -> dict[str, Any]:
        note = {}
        if self.distance_squash is not None:
            note["note"] = "sigmoid-squashed distance: a different problem"
        return {
            **note,
            "penalty": self.penalty,
            "final_weight": self.weight_at(1 - 1e-12),
            "optimizer": self.optimizer_name,
            "factored": self.factored,
            "variable_scale": self.variable_scale,
        }
