"""The multiplicative angular margin heads: L-Softmax and SphereFace / A-Softmax (SPEC §4).

Both replace ``cos theta_y`` of the true class by

    ``psi(theta) = (-1)^k cos(m theta) - 2k``  on  ``[k pi / m, (k + 1) pi / m]``,

a monotone extension of ``cos(m theta)`` to ``[0, pi]``. L-Softmax keeps the norms
(logits ``||W_j|| ||x|| cos theta_j``, target ``||W_y|| ||x|| psi(theta_y)``); SphereFace
normalises the weights (``||x|| cos theta_j``, target ``||x|| psi(theta_y)``). Both can anneal
from the plain softmax with SphereFace's lambda schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

from constrained_pairs._validation import check_positive_int, check_real, check_tensor
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.losses.heads.base import MarginHead

_COSINE_SLACK = 1e-6


def psi(cos_theta: torch.Tensor, m: int) -> torch.Tensor:
    """L-Softmax / SphereFace target function ``psi(theta) = (-1)^k cos(m theta) - 2k``.

    ``theta`` lies in ``[k pi / m, (k + 1) pi / m]``. Evaluated from ``c = cos theta`` without
    ``acos``: ``cos(m theta)`` is the Chebyshev polynomial ``T_m(c)`` and ``k`` counts the
    thresholds ``cos(j pi / m)``, ``j = 1..m-1``, that ``c`` lies below. ``psi`` is continuous and
    continuously differentiable in ``c`` on ``[-1, 1]`` (its slope vanishes at the breakpoints),
    so its gradient is finite everywhere, ``theta = 0`` and ``pi`` included.

    Args:
        cos_theta: cosines in [-1, 1], a floating tensor of any shape (checked in one scan, with
            a slack of 1e-6 for rounding).
        m: angular margin, a positive integer (``m = 1`` gives ``cos theta``).

    Raises:
        InvalidArgumentError: for cosines outside [-1, 1] or NaN.
    """
    check_tensor("cos_theta", cos_theta, floating=True)
    m = check_positive_int("m", m)
    if cos_theta.numel() and not bool((cos_theta.abs() <= 1 + _COSINE_SLACK).all()):
        raise InvalidArgumentError("cos_theta must hold cosines in [-1, 1] (no NaN)")
    return _psi(cos_theta, m)


def _psi(cos_theta: torch.Tensor, m: int) -> torch.Tensor:
    previous, chebyshev = torch.ones_like(cos_theta), cos_theta
    for _ in range(m - 1):  # T_{n+1}(c) = 2 c T_n(c) - T_{n-1}(c)
        previous, chebyshev = chebyshev, 2 * cos_theta * chebyshev - previous
    thresholds = torch.cos(
        torch.arange(1, m, dtype=torch.float64, device=cos_theta.device) * (math.pi / m)
    ).to(cos_theta.dtype)
    k = (cos_theta.unsqueeze(-1) <= thresholds).sum(-1)
    return torch.where(k % 2 == 0, chebyshev, -chebyshev) - 2 * k


@dataclass(frozen=True)
class LambdaSchedule:
    """SphereFace's annealing ``lambda = max(minimum, base (1 + gamma step)^(-power))``.

    The target logit is blended as ``(lambda plain_y + margin_y) / (1 + lambda)``, so training
    starts close to the plain softmax and the margin takes over as ``lambda`` decays.

    Attributes:
        base: lambda at step 0, finite and >= 0 (1000).
        gamma: decay rate >= 0 (0.12).
        power: decay exponent >= 0 (1).
        minimum: the floor of lambda, >= 0 (5).
    """

    base: float = 1000.0
    gamma: float = 0.12
    power: float = 1.0
    minimum: float = 5.0

    def __post_init__(self) -> None:
        for field in fields(self):
            object.__setattr__(
                self, field.name, check_real(field.name, getattr(self, field.name), minimum=0)
            )

    def __call__(self, step: int) -> float:
        step = check_positive_int("step", step, minimum=0)
        return max(self.minimum, self.base * (1.0 + self.gamma * step) ** (-self.power))


class LSoftmax(MarginHead):
    """L-Softmax: logits ``||W_j|| ||x|| cos theta_j``, target ``||W_y|| ||x|| psi(theta_y)``.

    Args:
        in_features: feature dimension d.
        num_classes: number of classes C.
        m: integer angular margin >= 1 (4).
        lambda_schedule: anneal the target logit from the plain one with this schedule,
            advanced at every training-mode forward (off by default; evaluation uses no blend).
        **options: ``reduction``, ``device``, ``dtype`` of :class:`MarginHead`.
    """

    kind = "lsoftmax"

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        m: int = 4,
        *,
        lambda_schedule: LambdaSchedule | None = None,
        **options: Any,
    ) -> None:
        super().__init__(in_features, num_classes, **options)
        self.m = check_positive_int("m", m)
        if lambda_schedule is not None and not isinstance(lambda_schedule, LambdaSchedule):
            raise InvalidTypeError(
                f"lambda_schedule must be a LambdaSchedule or None, got {lambda_schedule!r}"
            )
        self.lambda_schedule = lambda_schedule

    @property
    def lam(self) -> float:
        """Current annealing weight lambda (0 without a schedule or in eval mode)."""
        if self.lambda_schedule is None or not self.training:
            return 0.0
        return self.lambda_schedule(self.step)

    def class_weights(self) -> torch.Tensor:
        """Hook: the weights the logits use (L-Softmax: ``W`` itself)."""
        return self.weight

    def plain_logits(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.class_weights().T

    def margin_logit(self, x: torch.Tensor, y: torch.Tensor, plain: torch.Tensor) -> torch.Tensor:
        w_y = self.class_weights()[y.squeeze(1)]
        cos_y = (F.normalize(x, dim=1) * F.normalize(w_y, dim=1)).sum(1, keepdim=True)
        norms = x.norm(dim=1, keepdim=True) * w_y.norm(dim=1, keepdim=True)
        return norms * _psi(cos_y, self.m)

    def target_logit(self, x: torch.Tensor, y: torch.Tensor, plain: torch.Tensor) -> torch.Tensor:
        target, lam = self.margin_logit(x, y, plain), self.lam
        return (lam * plain.gather(1, y) + target) / (1 + lam) if lam else target

    def boundary_equations(self, i: int, j: int) -> tuple[str, str]:
        m = self.m
        return (
            f"||x|| (||W_{i}|| psi_{m}(theta_{i}) - ||W_{j}|| cos theta_{j}) = 0",
            f"||x|| (||W_{i}|| cos theta_{i} - ||W_{j}|| psi_{m}(theta_{j})) = 0",
        )


class SphereFace(LSoftmax):
    """SphereFace / A-Softmax: L-Softmax with unit weights, logits ``||x|| cos theta_j`` and
    target ``||x|| psi(theta_y)``.

    Args as :class:`LSoftmax` (m = 4 by default).
    """

    kind = "sphereface"

    def class_weights(self) -> torch.Tensor:
        return F.normalize(self.weight, dim=1)

    def boundary_equations(self, i: int, j: int) -> tuple[str, str]:
        m = self.m
        return (
            f"||x|| (psi_{m}(theta_{i}) - cos theta_{j}) = 0  [cos({m} theta_{i}) for "
            f"theta_{i} <= pi/{m}]",
            f"||x|| (cos theta_{i} - psi_{m}(theta_{j})) = 0  [cos({m} theta_{j}) for "
            f"theta_{j} <= pi/{m}]",
        )
