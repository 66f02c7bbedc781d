"""``nn.Module`` forms of the functional losses (SPEC §4), PyTorch style: hyper-parameters and
``reduction`` are fixed at construction and checked there (once: ``forward`` only checks the
tensors); ``forward`` takes the tensors.
"""

from __future__ import annotations

import torch
from torch import nn

from constrained_pairs._validation import check_flag, check_real
from constrained_pairs.losses import classification, metric, nce, regression
from constrained_pairs.losses._reduce import check_reduction


class _Loss(nn.Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"

    def _keep(self, name: str, value: float | torch.Tensor | None) -> None:
        """A tensor hyper-parameter is a buffer (it follows ``.to()`` and the state dict)."""
        if isinstance(value, torch.Tensor):
            self.register_buffer(name, value.detach().clone())
        else:
            setattr(self, name, value)


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
        self.delta = regression.check_delta(delta)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return regression.huber(input, target, self.delta, self.reduction)


class BCELoss(_Loss):
    """:func:`~constrained_pairs.losses.bce` as a module: ``loss(input, target)``."""

    def __init__(
        self,
        reduction: str = "mean",
        *,
        from_logits: bool = True,
        pos_weight: classification.Weights | None = None,
    ) -> None:
        super().__init__(reduction)
        self.from_logits = check_flag("from_logits", from_logits)
        self._keep("pos_weight", classification.check_weights("pos_weight", pos_weight))

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return classification._bce(input, target, self.reduction, self.from_logits, self.pos_weight)


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
        self.alpha = classification.check_alpha(alpha)
        self.gamma = classification.check_gamma(gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return classification.focal_loss(logits, target, self.alpha, self.gamma, self.reduction)


class MulticlassFocalLoss(_Loss):
    """:func:`~constrained_pairs.losses.focal_loss_multiclass` as a module."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: classification.Weights | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.gamma = classification.check_gamma(gamma)
        self._keep("alpha", classification.check_weights("alpha", alpha))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return classification._focal_multiclass(
            logits, target, self.gamma, self.alpha, self.reduction
        )


class ContrastiveLoss(_Loss):
    """:func:`~constrained_pairs.losses.contrastive_loss` as a module: ``loss(x1, x2, same)``."""

    def __init__(self, margin: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = metric.check_margin(margin, squared=True)

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
        self.margin = metric.check_margin(margin)
        self.mining = metric.check_mining(mining)
        self.squared = check_flag("squared", squared)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return metric.triplet_loss(
            embeddings, labels, self.margin, self.mining, self.squared, self.reduction
        )


class InfoNCELoss(_Loss):
    """:func:`~constrained_pairs.losses.info_nce` as a module: ``loss(z1, z2)``."""

    def __init__(
        self, temperature: float = 0.1, reduction: str = "mean", *, gather: bool | None = None
    ) -> None:
        super().__init__(reduction)
        self.temperature = check_real("temperature", temperature, minimum=0, open_minimum=True)
        self.gather = gather

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nce.info_nce(z1, z2, self.temperature, self.reduction, gather=self.gather)
