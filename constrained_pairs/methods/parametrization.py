"""``method="parametrization"``: constraints that hold by construction (SPEC §2).

θ₁ = U diag(s) Vᵀ with U (C×k) and V (d×k) kept on Stiefel manifolds by geotorch, k = min(C, d),
and the singular values s mapped into the budget α_A + α_P:

* nuclear: s = (α_A + α_P)·softmax(w)[:k] with one slack coordinate, so Σs < α_A + α_P;
* Frobenius: s = (α_A + α_P)·w / sqrt(1 + ‖w‖²), so ‖s‖₂ < α_A + α_P;
* spectral: s = (α_A + α_P)·sigmoid(w), so max s < α_A + α_P;
* lipschitz: θ₁ = 1mᵀ + Q U diag(s) Vᵀ with m a free mean row, Q an orthonormal C×(C−1) basis of
  the zero-sum vectors, U on a Stiefel manifold of C−1 rows and s = (α_A + α_P)/√2·sigmoid(w):
  the centred part R has √2‖R‖₂ < α_A + α_P, which bounds max_{k<l}‖θ₁[k] − θ₁[l]‖₂ (equality of
  the two sets for C = 2, a certified subset for C > 2; see ``methods/projections.py``).

With a backbone of certified Lipschitz constant L the budget is (α_A + α_P)/L.

α ordering: the smaller one is softplus(β) >= 0 and the larger is that plus softplus(δ)
(α_P = α_A + softplus(δ) in regime A, the mirror in P); θ₂ = κ_A α_A · W / sqrt(1 + ‖W‖²) lies in
its ball (``aux_norm="lipschitz"``: a free mean row plus a centred part of Frobenius norm below
κ_A α_A/√2). Every parameter value is feasible; Adam trains the unconstrained parameters.
"""

from __future__ import annotations

import math
from typing import Any

import geotorch
import torch
import torch.nn.functional as F
from torch import nn

from constrained_pairs.engine import check_float
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.methods.base import FirstOrderMethod
from constrained_pairs.methods.head import Point
from constrained_pairs.methods.options import TrainOptions

PARAMETRIZABLE_NORMS = ("nuclear", "frobenius", "spectral", "lipschitz")
#: α·D̄ of the start that ``alpha_init=0`` stands for. α = softplus(β) is never 0, and
#: ∂Ω/∂β = (1 − e^{−α})·∂Ω/∂α ≈ α·∂Ω/∂α is of order α·D̄ for small α: Adam's step
#: lr·m/(√v + 1e-8) only freezes when that falls to ~1e-8. At α·D̄ = 1e-4 the start is
#: indistinguishable from 0 in Ω (the α terms and the θ budget are ~1e-4) while Adam moves
#: log α by about lr per step, as from any other start.
ZERO_ALPHA = 1e-4


def _centring_basis(num_classes: int, **kw: Any) -> torch.Tensor:
    """Orthonormal basis (C, C−1) of the vectors whose entries sum to zero."""
    centring = torch.eye(num_classes, **kw) - 1.0 / num_classes
    return torch.linalg.qr(centring)[0][:, : num_classes - 1]


def _inverse_softplus(value: float) -> float:
    """softplus⁻¹(v) = log(e^v − 1) = v + log(1 − e^{−v}), stable for every v > 0."""
    return value + math.log(-math.expm1(-value))


class FeasibleHead(nn.Module):
    """(θ₁, θ₂, b, α_A, α_P) as functions of unconstrained parameters; always feasible.

    Args:
        num_classes: C.
        num_features: d.
        aux_dim: m, or None.
        regime: ``"A"`` or ``"P"``.
        kappa_a: κ_A.
        norm: ``"nuclear"``, ``"frobenius"``, ``"spectral"`` or ``"lipschitz"``.
        aux_norm: ``"frobenius"`` or ``"lipschitz"``.
        lipschitz: L, the backbone's certified Lipschitz constant (budget (α_A + α_P)/L).
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
        aux_norm: str = "frobenius",
        lipschitz: float = 1.0,
        alpha_init: float = 1.0,
        dtype: torch.dtype = torch.float64,
        device: Any = None,
    ) -> None:
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        rows = num_classes - 1 if norm == "lipschitz" else num_classes
        rank = min(rows, num_features)
        self.regime, self.kappa_a, self.norm = regime, float(kappa_a), norm
        self.aux_norm, self.lipschitz = aux_norm, float(lipschitz)
        centring = None
        if norm == "lipschitz" or aux_norm == "lipschitz":
            centring = _centring_basis(num_classes, **kw)
        self.register_buffer("centring", centring)
        self.mean_row = (
            nn.Parameter(torch.zeros(num_features, **kw)) if norm == "lipschitz" else None
        )
        self.aux_mean = None
        if aux_dim and aux_norm == "lipschitz":
            self.aux_mean = nn.Parameter(torch.zeros(aux_dim, **kw))
        self.left = nn.Linear(rank, rows, bias=False, **kw)
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
        if self.norm == "lipschitz":
            return budget / math.sqrt(2.0) * torch.sigmoid(w)
        return budget * torch.sigmoid(w)

    def point(self) -> Point:
        low = F.softplus(self.low)
        high = low + F.softplus(self.gap)
        alpha_a, alpha_p = (low, high) if self.regime == "A" else (high, low)
        s = self.singular_values((alpha_a + alpha_p) / self.lipschitz)
        theta1 = (self.left.weight * s) @ self.right.weight.T
        if self.norm == "lipschitz":
            theta1 = self.centring @ theta1 + self.mean_row
        theta2 = None
        if self.aux is not None:
            aux = self.aux
            if self.aux_norm == "lipschitz":
                aux = self.centring @ (self.centring.T @ aux)  # the centred part of W
            theta2 = self.kappa_a * alpha_a * aux / torch.sqrt(1 + (aux**2).sum())
            if self.aux_norm == "lipschitz":
                theta2 = theta2 / math.sqrt(2.0) + self.aux_mean
        return Point(theta1, theta2, self.bias, alpha_a, alpha_p)


class ParametrizationMethod(FirstOrderMethod):
    """Adam on a parametrisation that is feasible by construction; see the module docstring.

    Args:
        problem: the data-join problem.
        regime: ``"A"`` or ``"P"``.
        options: the common options.
        alpha_init: initial value of the smaller α (>= 0; 0 starts at α = 1e-4/D̄, the
            parametrisation's α = softplus(β) being positive, see :data:`ZERO_ALPHA`).
    """

    name = "parametrization"
    default_lr = 0.05
    default_iterations = 2000
    norms = PARAMETRIZABLE_NORMS

    def __init__(
        self, problem: PairProblem, regime: str, options: TrainOptions, alpha_init: float = 1.0
    ) -> None:
        super().__init__(problem, regime, options)
        check_float("alpha_init", alpha_init, optional=False)
        if alpha_init == 0:
            # softplus(β) > 0 cannot be 0: start at α·D̄ = 1e-4 instead (see ZERO_ALPHA).
            alpha_init = ZERO_ALPHA / (self.mean_distance() or 1.0)
        self.head = self.make_head(
            FeasibleHead,
            regime=regime,
            kappa_a=problem.kappa_a,
            norm=problem.norm,
            aux_norm=problem.aux_norm,
            lipschitz=self.lipschitz,
            alpha_init=alpha_init,
        )
        self.optimizer = torch.optim.Adam(
            [*self.head.parameters(), *self.primal_parameters()], lr=self.lr
        )

    def step(self, sample: Any, progress: float) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        value = self.omega(self.point(), sample)
        value.backward()
        self.optimizer.step()
        return value.detach()
