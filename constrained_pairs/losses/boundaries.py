"""Binary decision boundaries of the margin softmax heads (SPEC §4, seed 001, Table 1).

Between two classes ``i`` and ``j``, a feature belongs to class i's region where i's
margin-modified target logit beats j's plain logit, and to j's where the converse holds; with a
margin, a zone between them belongs to neither. Everything here is computed from a head's hooks
(:meth:`~constrained_pairs.losses.heads.MarginHead.plain_logits`, ``margin_logit``,
``boundary_equations``, ``angular``), so a new head gets its boundaries for free.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError

if TYPE_CHECKING:
    from constrained_pairs.losses.heads.base import MarginHead

_BISECTIONS = 60


@dataclass(frozen=True)
class DecisionBoundary:
    """Binary decision boundaries of a head between classes ``i`` and ``j`` (seed 001, Table 1).

    Attributes:
        kind: the head's kind.
        classes: ``(i, j)``.
        equations: the boundary of class i's region and of class j's region, as text with the
            head's hyper-parameters (``theta_i`` is the angle between ``x`` and ``W_i``).
        score: ``score(x) -> (N, 2)``: ``[f_i(x), f_j(x)]``, evaluated with the head's current
            weights. ``x`` (N, in_features) lies in class i's region where ``f_i(x) > 0`` (its
            margin-modified target logit beats class j's plain logit) and in class j's where
            ``f_j(x) > 0``; ``f = 0`` are the boundaries.
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


def decision_boundary(head: MarginHead, classes: Sequence[int] = (0, 1)) -> DecisionBoundary:
    """The binary decision boundaries of ``head`` between two classes (seed 001, Table 1).

    Uses the pure margin (no lambda blend). The angles are found by bisection in float64 on the
    arc between ``W_i`` and ``W_j``; for the heads with a closed form they equal it (see
    :class:`DecisionBoundary`).

    Args:
        head: a margin softmax head.
        classes: two different class indices ``(i, j)``.
    """
    i, j = _check_classes(classes, head.num_classes)

    def score(x: torch.Tensor) -> torch.Tensor:
        x = head._check_features(x)
        with torch.no_grad():
            plain = head.plain_logits(x)
            columns = []
            for a, b in ((i, j), (j, i)):
                labels = torch.full((x.shape[0], 1), a, dtype=torch.long, device=x.device)
                target = head.margin_logit(x, labels, plain)
                target = plain[:, a] if target is None else target[:, 0]
                columns.append(target - plain[:, b])
            return torch.stack(columns, 1)

    weight = head.weight.detach()
    w_i, w_j = weight[i].double(), weight[j].double()
    u_i = w_i / w_i.norm()
    angle = float(torch.acos((u_i @ (w_j / w_j.norm())).clamp(-1, 1)))
    angles: tuple[float, float] | None = None
    margin: float | None = 0.0
    if head.angular:
        angles, margin = _arc_boundaries(score, weight.dtype, u_i, w_j, angle)
    return DecisionBoundary(
        kind=head.kind,
        classes=(i, j),
        equations=head.boundary_equations(i, j),
        score=score,
        weight_angle=angle,
        boundary_angles=angles,
        angular_margin=margin,
    )


def _check_classes(classes: Sequence[int], num_classes: int) -> tuple[int, int]:
    if isinstance(classes, str | bytes) or not isinstance(classes, Sequence) or len(classes) != 2:
        raise InvalidTypeError(f"classes must be a pair of class indices (i, j), got {classes!r}")
    try:
        if any(isinstance(c, bool) for c in classes):
            raise TypeError
        i, j = (operator.index(c) for c in classes)
    except TypeError as exc:
        raise InvalidTypeError(f"classes must hold integer class indices, got {classes!r}") from exc
    if not (0 <= i < num_classes and 0 <= j < num_classes):
        raise InvalidArgumentError(f"classes must lie in 0..{num_classes - 1}, got {classes}")
    if i == j:
        raise InvalidArgumentError(f"classes must be two different classes, got {classes}")
    return i, j


def _arc_boundaries(
    score: Callable[[torch.Tensor], torch.Tensor],
    dtype: torch.dtype,
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
        return score(x.to(dtype)).double()

    lo = torch.zeros(2, dtype=torch.float64, device=u_i.device)
    hi = torch.full_like(lo, angle)
    # f_i decreases and f_j increases along the arc; bisect both on a common bracket.
    sign = torch.tensor([1.0, -1.0], dtype=torch.float64, device=u_i.device)
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        values = torch.stack([f(mid[:1])[0, 0], f(mid[1:])[0, 1]])
        inside = sign * values > 0  # still on class i's side of the boundary
        lo = torch.where(inside, mid, lo)
        hi = torch.where(inside, hi, mid)
    first, second = ((lo + hi) / 2).tolist()
    return (first, second), second - first
