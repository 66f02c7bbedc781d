"""The normalised (cosine) heads: NormFace, CosFace, AM-Softmax and ArcFace (SPEC §4, seed 001).

Every one has the logits ``s cos theta_j`` (weights and features normalised, no bias). They differ
in the true class's cosine, which the hook :meth:`NormFace.margin_cosine` modifies:

=============  ==============================================================================
head           target logit (class y)
=============  ==============================================================================
NormFace       ``s cos theta_y`` (no margin)
CosFace        ``s (cos theta_y - m)``
AMSoftmax      ``s (cos theta_y - m)`` (CosFace's loss with AM-Softmax's defaults)
ArcFace        ``s cos(theta_y + m)``, or ``s (cos theta_y - m sin m)`` for
               ``theta_y >= pi - m``, where ``theta_y + m`` would pass pi and the target
               logit would grow again
=============  ==============================================================================
"""

from __future__ import annotations

import math
from typing import Any

import torch

from constrained_pairs._validation import check_real
from constrained_pairs.losses.heads.base import MarginHead


class NormFace(MarginHead):
    """NormFace / modified softmax: logits ``s cos theta_j``, no margin.

    Args:
        in_features: feature dimension d.
        num_classes: number of classes C.
        s: scale > 0 (16).
        **options: ``reduction``, ``device``, ``dtype`` of :class:`MarginHead`.
    """

    kind = "normface"

    def __init__(self, in_features: int, num_classes: int, s: float = 16.0, **options: Any) -> None:
        super().__init__(in_features, num_classes, **options)
        self.s = check_real("s", s, minimum=0, open_minimum=True)

    def plain_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.s * self._cosines(x)

    def margin_logit(
        self, x: torch.Tensor, y: torch.Tensor, plain: torch.Tensor
    ) -> torch.Tensor | None:
        shifted = self.margin_cosine(plain.gather(1, y) / self.s)
        return None if shifted is None else self.s * shifted

    def margin_cosine(self, cos_y: torch.Tensor) -> torch.Tensor | None:
        """Hook: the true class's modified cosine from ``cos theta_y`` (N, 1); NormFace: none."""
        return None

    def boundary_equations(self, i: int, j: int) -> tuple[str, str]:
        text = f"{self.s:g} (cos theta_{i} - cos theta_{j}) = 0"
        return text, text


class CosFace(NormFace):
    """CosFace / large margin cosine loss (LMCL): target logit ``s (cos theta_y - m)``.

    Args:
        in_features: feature dimension d.
        num_classes: number of classes C.
        s: scale > 0 (64).
        m: additive cosine margin >= 0 (0.35).
        **options: ``reduction``, ``device``, ``dtype`` of :class:`MarginHead`.
    """

    kind = "cosface"

    def __init__(
        self, in_features: int, num_classes: int, s: float = 64.0, m: float = 0.35, **options: Any
    ) -> None:
        super().__init__(in_features, num_classes, s, **options)
        self.m = check_real("m", m, minimum=0)

    def margin_cosine(self, cos_y: torch.Tensor) -> torch.Tensor:
        return cos_y - self.m

    def boundary_equations(self, i: int, j: int) -> tuple[str, str]:
        s, m = self.s, self.m
        return (
            f"{s:g} (cos theta_{i} - {m:g} - cos theta_{j}) = 0",
            f"{s:g} (cos theta_{i} - cos theta_{j} + {m:g}) = 0",
        )


class AMSoftmax(CosFace):
    """AM-Softmax: CosFace's target logit ``s (cos theta_y - m)``, with s = 30 by default.

    Arguments as :class:`CosFace`.
    """

    kind = "amsoftmax"

    def __init__(
        self, in_features: int, num_classes: int, s: float = 30.0, m: float = 0.35, **options: Any
    ) -> None:
        super().__init__(in_features, num_classes, s, m, **options)


class ArcFace(NormFace):
    """ArcFace / additive angular margin: target logit ``s cos(theta_y + m)``.

    For ``theta_y >= pi - m`` it is ``s (cos theta_y - m sin m)`` instead, so the target logit
    keeps decreasing in ``theta_y`` (``cos(theta_y + m)`` would rise again past pi).

    Args:
        in_features: feature dimension d.
        num_classes: number of classes C.
        s: scale > 0 (64).
        m: angular margin in radians, in [0, pi) (0.5).
        **options: ``reduction``, ``device``, ``dtype`` of :class:`MarginHead`.
    """

    kind = "arcface"

    def __init__(
        self, in_features: int, num_classes: int, s: float = 64.0, m: float = 0.5, **options: Any
    ) -> None:
        super().__init__(in_features, num_classes, s, **options)
        self.m = check_real("m", m, minimum=0, maximum=math.pi, open_maximum=True)

    def margin_cosine(self, cos_y: torch.Tensor) -> torch.Tensor:
        m = self.m
        eps = torch.finfo(cos_y.dtype).eps
        # clamped so that sin(theta) = sqrt(1 - cos^2) has a finite slope at theta = 0, pi
        c = cos_y.clamp(-1 + eps, 1 - eps)
        sin_y = torch.sqrt((1 - c) * (1 + c))
        shifted = cos_y * math.cos(m) - sin_y * math.sin(m)  # cos(theta + m)
        return torch.where(cos_y > math.cos(math.pi - m), shifted, cos_y - m * math.sin(m))

    def boundary_equations(self, i: int, j: int) -> tuple[str, str]:
        s, m = self.s, self.m
        return (
            f"{s:g} (cos(theta_{i} + {m:g}) - cos theta_{j}) = 0",
            f"{s:g} (cos theta_{i} - cos(theta_{j} + {m:g})) = 0",
        )
