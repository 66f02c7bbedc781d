"""``nn.Module`` forms of the functional losses (SPEC §4), PyTorch style: hyper-parameters and
``reduction`` are fixed at construction and checked there; ``forward`` takes the tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from constrained_pairs._validation import check_choice, check_nonnegative
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.losses import classification, metric, nce, regression
from constrained_pairs.losses._reduce import check_reduction


class _Loss(nn.Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MAELoss(_Loss):
    """:func:`~constrained_pairs.losses.mae` as a module: ``loss(input, target)``."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return regression.mae(input, target, self.reduction)


class MSELoss(_Loss):
    """:func:`~constrained_pairs.losses.mse` as a module: ``loss(input, target)``."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return regression.mse(input, target, self.reduction)


class RMSELoss(_Loss):
    """:func:`~constrained_pairs.losses.rmse` as a module: ``loss(input, target)``."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return regression.rmse(input, target, self.reduction)


class HuberLoss(_Loss):
    """:func:`~constrained_pairs.losses.huber` as a module: ``HuberLoss(delta)(input, target)``."""

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.delta = check_nonnegative("delta", delta)
        if self.delta == 0:
            raise InvalidArgumentError("delta must be > 0, got 0")

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return regression.huber(input, target, self.delta, self.reduction)


class BCELoss(_Loss):
    """:func:`~constrained_pairs.losses.bce` as a module: ``loss(input, target)``."""

    def __init__(
        self,
        reduction: str = "mean",
        *,
        from_logits: bool = True,
        pos_weight: torch.Tensor | float | None = None,
    ) -> None:
        super().__init__(reduction)
        self.from_logits = from_logits
        self.pos_weight = pos_weight

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return classification.bce(
            input, target, self.reduction, from_logits=self.from_logits, pos_weight=self.pos_weight
        )


class CrossEntropyLoss(_Loss):
    """:func:`~constrained_pairs.losses.cross_entropy` as a module: ``loss(logits, target)``."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return classification.cross_entropy(input, target, self.reduction)


class FocalLoss(_Loss):
    """:func:`~constrained_pairs.losses.focal_loss` (binary) as a module."""

    def __init__(
        self, alpha: float | None = 0.25, gamma: float = 2.0, reduction: str = "mean"
    ) -> None:
        super().__init__(reduction)
        self.alpha = classification._check_alpha(alpha)
        self.gamma = check_nonnegative("gamma", gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return classification.focal_loss(logits, target, self.alpha, self.gamma, self.reduction)


class MulticlassFocalLoss(_Loss):
    """:func:`~constrained_pairs.losses.focal_loss_multiclass` as a module."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.gamma = check_nonnegative("gamma", gamma)
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return classification.focal_loss_multiclass(
            logits, target, self.gamma, self.alpha, self.reduction
        )


class ContrastiveLoss(_Loss):
    """:func:`~constrained_pairs.losses.contrastive_loss` as a module: ``loss(x1, x2, same)``."""

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = check_nonnegative("margin", margin)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        return metric.contrastive_loss(x1, x2, same, self.margin, self.reduction)


class TripletLoss(_Loss):
    """:func:`~constrained_pairs.losses.triplet_loss` as a module: ``loss(embeddings, labels)``."""

    def __init__(
        self,
        margin: float = 0.2,
        mining: str = "all",
        squared: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.margin = check_nonnegative("margin", margin)
        self.mining = check_choice("mining", mining, metric.MINING)
        self.squared = squared

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return metric.triplet_loss(
            embeddings, labels, self.margin, self.mining, self.squared, self.reduction
        )


class InfoNCELoss(_Loss):
    """:func:`~constrained_pairs.losses.info_nce` as a module: ``loss(z1, z2)``."""

    def __init__(self, temperature: float = 0.1, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if not check_nonnegative("temperature", temperature) > 0:
            raise InvalidArgumentError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nce.info_nce(z1, z2, self.temperature, self.reduction)
