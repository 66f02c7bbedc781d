"""Margin softmax heads: softmax, NormFace, L-Softmax, SphereFace, CosFace, AM-Softmax, ArcFace.

SPEC §4, seed 001. With weights ``W_j``, a feature ``x`` and ``theta_j`` the angle between them,
each head replaces the logits ``W_j x + b_j`` of the softmax loss by (``y`` the true class):

=============  ===============================  =========================================
kind           logit of class j != y            target logit (class y)
=============  ===============================  =========================================
softmax        ``W_j x + b_j``                  same
normface       ``s cos theta_j``                same
lsoftmax       ``||W_j|| ||x|| cos theta_j``    ``||W_y|| ||x|| psi(theta_y)``
sphereface     ``||x|| cos theta_j``            ``||x|| psi(theta_y)``
cosface        ``s cos theta_j``                ``s (cos theta_y - m)``
amsoftmax      ``s cos theta_j``                ``s (cos theta_y - m)``
arcface        ``s cos theta_j``                ``s cos(theta_y + m)``, or
                                                ``s (cos theta_y - m sin m)`` if
                                                ``theta_y >= pi - m``
=============  ===============================  =========================================

with ``psi(theta) = (-1)^k cos(m theta) - 2k`` on ``[k pi / m, (k + 1) pi / m]``. The margin only
enters the training loss; predictions use the plain logits (``logits(x)`` without labels).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from constrained_pairs._validation import (
    check_choice,
    check_labels,
    check_nonnegative,
    check_positive_int,
)
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.losses._reduce import check_reduction

KINDS = ("softmax", "normface", "lsoftmax", "sphereface", "cosface", "amsoftmax", "arcface")
# Default (s, m) of each kind; None means the kind has no such hyper-parameter.
DEFAULTS: dict[str, tuple[float | None, float | None]] = {
    "softmax": (None, None),
    "normface": (16.0, None),
    "lsoftmax": (None, 4),
    "sphereface": (None, 4),
    "cosface": (64.0, 0.35),
    "amsoftmax": (30.0, 0.35),
    "arcface": (64.0, 0.5),
}
_ANGULAR = ("lsoftmax", "sphereface")


def psi(cos_theta: torch.Tensor, m: int) -> torch.Tensor:
    """L-Softmax / SphereFace target function ``psi(theta) = (-1)^k cos(m theta) - 2k``.

    ``theta`` lies in ``[k pi / m, (k + 1) pi / m]``. Evaluated from ``c = cos theta`` without
    ``acos``: ``cos(m theta)`` is the Chebyshev polynomial ``T_m(c)`` and ``k`` counts the
    thresholds ``cos(j pi / m)``, ``j = 1..m-1``, that ``c`` lies below. ``psi`` is continuous and
    continuously differentiable in ``c`` on ``[-1, 1]`` (its slope vanishes at the breakpoints),
    so its gradient is finite everywhere, ``theta = 0`` and ``pi`` included.

    Args:
        cos_theta: cosines, any shape.
        m: angular margin, a positive integer (``m = 1`` gives ``cos theta``).
    """
    m = check_positive_int("m", m)
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

    The target logit is blended as
    ``(lambda cos theta_y ||x|| + ||x|| psi(theta_y)) / (1 + lambda)``, so training
    starts close to the plain softmax and the margin takes over as ``lambda`` decays.
    """

    base: float = 1000.0
    gamma: float = 0.12
    power: float = 1.0
    minimum: float = 5.0

    def __call__(self, step: int) -> float:
        return max(self.minimum, self.base * (1.0 + self.gamma * step) ** (-self.power))


@dataclass(frozen=True)
class DecisionBoundary:
    """Binary decision boundaries of a head between classes ``i`` and ``j`` (seed 001, Table 1).

    Attributes:
        kind: the head's kind.
        classes: ``(i, j)``.
        equations: the boundary of class i's region and of class j's region, as text with the
            head's hyper-parameters (``theta_i`` is the angle between ``x`` and ``W_i``).
        score: ``score(x) -> (N, 2)``: ``[f_i(x), f_j(x)]``. ``x`` (N, in_features) lies in
            class i's region where ``f_i(x) > 0`` (its margin-modified target logit beats class
            j's plain logit) and in class j's where ``f_j(x) > 0``; ``f = 0`` are the boundaries.
        weight_angle: ``K``, the angle between ``W_i`` and ``W_j`` in radians.
        boundary_angles: for features in the plane of ``W_i`` and ``W_j``, on the arc from ``W_i``
            to ``W_j``, the angles ``theta_i`` at which class i's region ends and class j's
            begins; ``None`` for the softmax (its boundary is not angular).
        angular_margin: ``boundary_angles[1] - boundary_angles[0]``, the angular width of the
            zone that belongs to neither class: 0 for softmax and NormFace,
            ``(m - 1) K / (m + 1)`` for SphereFace, ``2 asin(m / (2 sin(K / 2)))`` for
            CosFace / AM-Softmax and ``m`` for ArcFace (``K`` when the margin is wider than the
            arc: then neither class claims any of it).
    """

    kind: str
    classes: tuple[int, int]
    equations: tuple[str, str]
    score: Callable[[torch.Tensor], torch.Tensor]
    weight_angle: float
    boundary_angles: tuple[float, float] | None
    angular_margin: float | None

    def region(self, x: torch.Tensor) -> torch.Tensor:
        """0 where ``x`` is in class i's region, 1 in class j's, -1 in the margin between."""
        f = self.score(x)
        minus_one = torch.full(f.shape[:1], -1, dtype=torch.long, device=f.device)
        return torch.where(f[:, 0] > 0, 0, torch.where(f[:, 1] > 0, 1, minus_one))


class MarginSoftmax(nn.Module):
    """Classification head with an angular or cosine margin, trained by cross-entropy.

    Example::

        head = MarginSoftmax(2, 10, kind="arcface")
        loss = head(features, labels)          # training loss
        predicted = head.logits(features).argmax(1)

    Args:
        in_features: feature dimension d.
        num_classes: number of classes C.
        kind: one of ``softmax``, ``normface``, ``lsoftmax``, ``sphereface``, ``cosface``,
            ``amsoftmax``, ``arcface`` (see the module docstring).
        s: scale (NormFace 16, CosFace 64, AM-Softmax 30, ArcFace 64 by default).
        m: margin (L-Softmax and SphereFace: integer, 4; CosFace and AM-Softmax 0.35;
            ArcFace 0.5 radians).
        reduction: reduction of the cross-entropy in :meth:`forward`.
        lambda_schedule: L-Softmax / SphereFace only: anneal the target logit from the plain one
            with this schedule, advanced at every training-mode forward (off by default).

    Attributes:
        weight: (C, d) class weights (normalised inside the logits for every kind but
            ``softmax`` and ``lsoftmax``).
        bias: (C,) for ``kind="softmax"``, else ``None``.
        step: number of training-mode forwards seen (drives ``lambda_schedule``; checkpointed).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        kind: str = "softmax",
        s: float | None = None,
        m: float | None = None,
        *,
        reduction: str = "mean",
        lambda_schedule: LambdaSchedule | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        self.kind = check_choice("kind", kind, KINDS)
        self.s, self.m = _check_hyperparameters(kind, s, m)
        self.reduction = check_reduction(reduction)
        if lambda_schedule is not None and kind not in _ANGULAR:
            raise InvalidArgumentError(
                f"lambda_schedule applies to kind='lsoftmax' or 'sphereface', not {kind!r}"
            )
        self.lambda_schedule = lambda_schedule
        self.step = 0
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(num_classes, in_features, **factory))
        if kind == "softmax":
            self.bias = nn.Parameter(torch.empty(num_classes, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def lam(self) -> float:
        """Current annealing weight lambda (0 without a schedule or in eval mode)."""
        if self.lambda_schedule is None or not self.training:
            return 0.0
        return self.lambda_schedule(self.step)

    def cosines(self, x: torch.Tensor) -> torch.Tensor:
        """``cos theta_j`` between every feature and every class weight, (N, C)."""
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).T

    def logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, C); with labels ``y`` (N,), the true class's logit carries the margin."""
        x = self._check_features(x)
        return self._logits(x, None if y is None else self._check_labels(x, y), self.lam)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the margin logits ``logits(x, y)``."""
        logits = self.logits(x, y)  # checks x and y
        loss = F.cross_entropy(logits, y.long(), reduction=self.reduction)
        if self.training and self.lambda_schedule is not None:
            self.step += 1
        return loss

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted classes: argmax of the plain logits."""
        return self.logits(x).argmax(1)

    def _logits(self, x: torch.Tensor, y: torch.Tensor | None, lam: float) -> torch.Tensor:
        kind, s, m = self.kind, self.s, self.m
        if kind == "softmax":
            return F.linear(x, self.weight, self.bias)
        if kind == "lsoftmax":
            plain = x @ self.weight.T
        elif kind == "sphereface":
            plain = x @ F.normalize(self.weight, dim=1).T
        else:
            plain = s * self.cosines(x)
        if y is None or kind == "normface":
            return plain
        y = y.unsqueeze(1)
        if kind in _ANGULAR:
            w_y = self.weight[y.squeeze(1)]
            cos_y = (F.normalize(x, dim=1) * F.normalize(w_y, dim=1)).sum(1, keepdim=True)
            norm = x.norm(dim=1, keepdim=True)
            if kind == "lsoftmax":
                norm = norm * w_y.norm(dim=1, keepdim=True)
            target = norm * psi(cos_y, int(m))
            if lam:
                target = (lam * plain.gather(1, y) + target) / (1 + lam)
        elif kind in ("cosface", "amsoftmax"):
            target = plain.gather(1, y) - s * m
        else:  # arcface
            cos_y = plain.gather(1, y) / s
            eps = torch.finfo(cos_y.dtype).eps
            # clamped so that sin(theta) = sqrt(1 - cos^2) has a finite slope at theta = 0, pi
            c = cos_y.clamp(-1 + eps, 1 - eps)
            sin_y = torch.sqrt((1 - c) * (1 + c))
            shifted = cos_y * math.cos(m) - sin_y * math.sin(m)  # cos(theta + m)
            fallback = cos_y - m * math.sin(m)
            target = s * torch.where(cos_y > math.cos(math.pi - m), shifted, fallback)
        return plain.scatter(1, y, target)

    def decision_boundary(self, classes: tuple[int, int] = (0, 1)) -> DecisionBoundary:
        """The binary decision boundaries between two classes (seed 001, Table 1).

        Uses the current weights (detached) and the pure margin (no lambda blend). The angles are
        found by bisection in float64 on the arc between ``W_i`` and ``W_j``; for the kinds with a
        closed form they equal it (see :class:`DecisionBoundary`).

        Args:
            classes: the two class indices ``(i, j)``.
        """
        i, j = (check_labels("classes", torch.tensor(c), self.num_classes) for c in classes)
        i, j = int(i), int(j)
        if i == j:
            raise InvalidArgumentError(f"classes must be two different classes, got {classes}")
        weight = self.weight.detach()
        bias = None if self.bias is None else self.bias.detach()

        def score(x: torch.Tensor) -> torch.Tensor:
            x = self._check_features(x)
            with torch.no_grad():
                if self.kind == "softmax":
                    f = x @ (weight[i] - weight[j]) + (bias[i] - bias[j])
                    return torch.stack([f, -f], 1)
                plain = self._logits(x, None, 0.0)
                scores = []
                for a, b in ((i, j), (j, i)):
                    labels = torch.full(x.shape[:1], a, dtype=torch.long, device=x.device)
                    scores.append(self._logits(x, labels, 0.0)[:, a] - plain[:, b])
                return torch.stack(scores, 1)

        w_i, w_j = weight[i].double(), weight[j].double()
        u_i = w_i / w_i.norm()
        angle = float(torch.acos((u_i @ (w_j / w_j.norm())).clamp(-1, 1)))
        boundary_angles: tuple[float, float] | None = None
        margin: float | None = 0.0
        if self.kind != "softmax":
            boundary_angles, margin = _arc_boundaries(score, weight, u_i, w_j, angle)
        return DecisionBoundary(
            kind=self.kind,
            classes=(i, j),
            equations=_equations(self.kind, self.s, self.m, i, j),
            score=score,
            weight_angle=angle,
            boundary_angles=boundary_angles,
            angular_margin=margin,
        )

    def extra_repr(self) -> str:
        text = f"in_features={self.in_features}, num_classes={self.num_classes}, kind={self.kind!r}"
        for name in ("s", "m"):
            if getattr(self, name) is not None:
                text += f", {name}={getattr(self, name)}"
        return text

    def get_extra_state(self) -> dict[str, int]:
        return {"step": self.step}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])

    def _check_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise InvalidArgumentError(
                f"x must have shape (N, {self.in_features}), got {tuple(x.shape)}"
            )
        return x

    def _check_labels(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.shape != x.shape[:1]:
            raise InvalidArgumentError(
                f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}"
            )
        return check_labels("y", y, self.num_classes)


def _check_hyperparameters(
    kind: str, s: float | None, m: float | None
) -> tuple[float | None, float | None]:
    default_s, default_m = DEFAULTS[kind]
    if s is not None and default_s is None:
        raise InvalidArgumentError(f"kind={kind!r} has no scale s; leave s=None")
    if m is not None and default_m is None:
        raise InvalidArgumentError(f"kind={kind!r} has no margin m; leave m=None")
    s = default_s if s is None else check_nonnegative("s", s)
    m = default_m if m is None else m
    if s is not None and s == 0:
        raise InvalidArgumentError("s must be > 0, got 0")
    if m is None:
        return s, None
    if kind in _ANGULAR:
        return s, check_positive_int("m", m)
    m = check_nonnegative("m", m)
    if kind == "arcface" and m >= math.pi:
        raise InvalidArgumentError(f"m must be an angle in [0, pi) for arcface, got {m}")
    return s, m


def _arc_boundaries(
    score: Callable[[torch.Tensor], torch.Tensor],
    weight: torch.Tensor,
    u_i: torch.Tensor,
    w_j: torch.Tensor,
    angle: float,
) -> tuple[tuple[float, float] | None, float | None]:
    """Bisect f_i and f_j along x(phi) = cos(phi) u_i + sin(phi) u_perp, phi in [0, K]."""
    perp = w_j - (w_j @ u_i) * u_i
    if angle < 1e-12 or float(perp.norm()) < 1e-12:
        return None, None
    u_perp = perp / perp.norm()

    def f(phi: torch.Tensor) -> torch.Tensor:
        x = torch.cos(phi)[:, None] * u_i + torch.sin(phi)[:, None] * u_perp
        return score(x.to(weight.dtype)).double()

    lo = torch.zeros(2, dtype=torch.float64, device=u_i.device)
    hi = torch.full_like(lo, angle)
    # f_i decreases and f_j increases along the arc; bisect both on a common bracket.
    sign = torch.tensor([1.0, -1.0], dtype=torch.float64, device=u_i.device)
    for _ in range(60):
        mid = (lo + hi) / 2
        values = torch.stack([f(mid[:1])[0, 0], f(mid[1:])[0, 1]])
        inside = sign * values > 0  # still on class i's side of the boundary
        lo = torch.where(inside, mid, lo)
        hi = torch.where(inside, hi, mid)
    first, second = ((lo + hi) / 2).tolist()
    return (first, second), second - first


def _equations(kind: str, s: float | None, m: float | None, i: int, j: int) -> tuple[str, str]:
    ti, tj = f"theta_{i}", f"theta_{j}"
    if kind == "softmax":
        text = f"(W_{i} - W_{j}) x + b_{i} - b_{j} = 0"
        return text, text
    if kind == "normface":
        text = f"{s:g} (cos {ti} - cos {tj}) = 0"
        return text, text
    if kind == "lsoftmax":
        return (
            f"||x|| (||W_{i}|| psi_{m}({ti}) - ||W_{j}|| cos {tj}) = 0",
            f"||x|| (||W_{i}|| cos {ti} - ||W_{j}|| psi_{m}({tj})) = 0",
        )
    if kind == "sphereface":
        return (
            f"||x|| (psi_{m}({ti}) - cos {tj}) = 0  [cos({m} {ti}) for {ti} <= pi/{m}]",
            f"||x|| (cos {ti} - psi_{m}({tj})) = 0  [cos({m} {tj}) for {tj} <= pi/{m}]",
        )
    if kind in ("cosface", "amsoftmax"):
        return (
            f"{s:g} (cos {ti} - {m:g} - cos {tj}) = 0",
            f"{s:g} (cos {ti} - cos {tj} + {m:g}) = 0",
        )
    return (
        f"{s:g} (cos({ti} + {m:g}) - cos {tj}) = 0",
        f"{s:g} (cos {ti} - cos({tj} + {m:g})) = 0",
    )
