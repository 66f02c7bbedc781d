"""``method="parametrization"``: constraints that hold by construction (SPEC §2).

θ₁ = U diag(s) Vᵀ with U (C×k) and V (d×k) kept on Stiefel manifolds by geotorch, k = min(C, d),
and the singular values s mapped into the budget α_A + α_P:

* nuclear: s = (α_A + α_P)·softmax(w)[:k] with one slack coordinate, so Σs < α_A + α_P;
* Frobenius: s = (α_A + α_P)·w / sqrt(1 + ‖w‖²), so ‖s‖₂ < α_A + α_P;
* spectral: s = (α_A + α_P)·sigmoid(w), so max s < α_A + α_P.

α ordering: the smaller one is softplus(β) >= 0 and the larger is that plus softplus(δ)
(α_P = α_A + softplus(δ) in regime A, the mirror in P); θ₂ = κ_A α_A · W / sqrt(1 + ‖W‖²) lies in
its ball. Every parameter value is feasible; Adam trains the unconstrained parameters.
"""

from __future__ import annotations

import math
from typing import Any

import geotorch
import torch
import torch.nn.functional as F
from torch import nn

from constrained_pairs.join.pairs import PairSet
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.methods.head import Point
from constrained_pairs.methods.trainer import FirstOrderMethod, TrainOptions

PARAMETRIZABLE_NORMS = ("nuclear", "frobenius", "spectral")


def _inverse_softplus(value: float) -> float:
    return math.log(math.expm1(value))


class FeasibleHead(nn.Module):
    """(θ₁, θ₂, b, α_A, α_P) as functions of unconstrained parameters; always feasible.

    Args:
        num_classes: C.
        num_features: d.
        aux_dim: m, or None.
        regime: ``"A"`` or ``"P"``.
        kappa_a: κ_A.
        norm: ``"nuclear"``, ``"frobenius"`` or ``"spectral"``.
        alpha_init: initial value of the smaller α.
        dtype: floating dtype.
        device: torch device.
    """

    def __init__(
        self,
        num_classes: int,
        num_features: int,
        aux_dim: int | None,
        *,
        regime: str,
        kappa_a: float,
        norm: str,
        alpha_init: float = 1.0,
        dtype: torch.dtype = torch.float64,
        device: Any = None,
    ) -> None:
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        rank = min(num_classes, num_features)
        self.regime, self.kappa_a, self.norm = regime, float(kappa_a), norm
        self.left = nn.Linear(rank, num_classes, bias=False, **kw)
        self.right = nn.Linear(rank, num_features, bias=False, **kw)
        geotorch.orthogonal(self.left, "weight")
        geotorch.orthogonal(self.right, "weight")
        extra = 1 if norm == "nuclear" else 0
        self.spectrum = nn.Parameter(torch.zeros(rank + extra, **kw))
        self.aux = nn.Parameter(torch.zeros(num_classes, aux_dim, **kw)) if aux_dim else None
        self.bias = nn.Parameter(torch.zeros(num_classes, **kw))
        self.low = nn.Parameter(torch.full((), _inverse_softplus(alpha_init), **kw))
        self.gap = nn.Parameter(torch.full((), _inverse_softplus(0.1), **kw))

    def singular_values(self, budget: torch.Tensor) -> torch.Tensor:
        w = self.spectrum
        if self.norm == "nuclear":
            return budget * torch.softmax(w, 0)[:-1]
        if self.norm == "frobenius":
            return budget * w / torch.sqrt(1 + (w**2).sum())
        return budget * torch.sigmoid(w)

    def point(self) -> Point:
        low = F.softplus(self.low)
        high = low + F.softplus(self.gap)
        alpha_a, alpha_p = (low, high) if self.regime == "A" else (high, low)
        s = self.singular_values(alpha_a + alpha_p)
        theta1 = (self.left.weight * s) @ self.right.weight.T
        theta2 = None
        if self.aux is not None:
            theta2 = self.kappa_a * alpha_a * self.aux / torch.sqrt(1 + (self.aux**2).sum())
        return Point(theta1, theta2, self.bias, alpha_a, alpha_p)


class ParametrizationMethod(FirstOrderMethod):
    """Adam on a parametrisation that is feasible by construction; see the module docstring.

    Args:
        problem: the data-join problem.
        regime: ``"A"`` or ``"P"``.
        options: the common options.
        alpha_init: initial value of the smaller α.
    """

    name = "parametrization"
    default_lr = 0.05
    default_iterations = 2000
    norms = PARAMETRIZABLE_NORMS

    def __init__(
        self, problem: PairProblem, regime: str, options: TrainOptions, alpha_init: float = 1.0
    ) -> None:
        super().__init__(problem, regime, options)
        self.head = self.make_head(
            FeasibleHead,
            regime=regime,
            kappa_a=problem.kappa_a,
            norm=problem.norm,
            alpha_init=alpha_init,
        )
        self.optimizer = torch.optim.Adam(
            [*self.head.parameters(), *self.primal_parameters()], lr=self.lr
        )

    def step(self, pairs: PairSet | None, progress: float) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        value = self.omega(self.point(), pairs)
        value.backward()
        self.optimizer.step()
        return value.detach()
