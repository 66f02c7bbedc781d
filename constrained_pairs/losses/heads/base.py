"""The base class of the margin softmax heads and the plain softmax head (SPEC §4, seed 001).

A head holds class weights ``W`` (C, d) and turns features ``x`` (N, d) into logits. Training
replaces the true class's logit by a margin-modified one and takes the cross-entropy; prediction
is the argmax of the plain logits. The base class does the checks, the cross-entropy, the
reduction and the bookkeeping; a head is defined by its hooks, in the style of
pytorch-metric-learning's large-margin losses:

* :meth:`MarginHead.plain_logits` ``(x) -> (N, C)``: the logits without margin;
* :meth:`MarginHead.margin_logit` ``(x, y, plain) -> (N, 1)``: the true class's logit with the
  margin (``None``: the head has none);
* :meth:`MarginHead.target_logit`: what training uses, by default the margin logit (L-Softmax and
  SphereFace blend it with the plain one while lambda anneals);
* :meth:`MarginHead.boundary_equations` and :attr:`MarginHead.angular`: the text and kind of the
  binary decision boundaries that :func:`~constrained_pairs.losses.boundaries.decision_boundary`
  computes from the hooks.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from constrained_pairs._validation import check_labels, check_positive_int, check_tensor
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.losses import boundaries
from constrained_pairs.losses._reduce import check_reduction, reduce


class MarginHead(nn.Module):
    """A classification head trained by cross-entropy on margin-modified logits.

    Subclasses set :attr:`kind` and implement :meth:`plain_logits` (and :meth:`margin_logit` when
    they have a margin). Use a subclass (:class:`SoftmaxHead`, ``NormFace``, ``LSoftmax``,
    ``SphereFace``, ``CosFace``, ``AMSoftmax``, ``ArcFace``) or the factory
    :func:`~constrained_pairs.losses.MarginSoftmax`.

    Example::

        head = ArcFace(2, 10)
        loss = head(features, labels)          # training loss
        predicted = head.predict(features)     # argmax of the plain logits

    Args:
        in_features: feature dimension d.
        num_classes: number of classes C >= 2.
        reduction: reduction of the per-sample cross-entropies in :meth:`forward`: ``"mean"``
            (0 for an empty batch, like every loss of this package, so an empty batch adds
            nothing instead of a NaN), ``"sum"`` or ``"none"``.
        device: device of the parameters.
        dtype: floating dtype of the parameters.

    Attributes:
        weight: (C, d) class weights.
        bias: (C,) for the plain softmax head, else ``None``.
        s: the scale of the cosine heads (``None`` where the head has none).
        m: the margin (``None`` where the head has none).
        step: number of training-mode forwards seen (drives lambda annealing; in the state dict).
    """

    kind: ClassVar[str] = ""
    has_bias: ClassVar[bool] = False
    #: whether the binary decision boundaries are angles on the arc between two class weights
    angular: ClassVar[bool] = True
    s: float | None = None
    m: float | None = None

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        reduction: str = "mean",
        device: Any = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if type(self).plain_logits is MarginHead.plain_logits:
            raise InvalidTypeError(
                f"{type(self).__name__} must implement plain_logits: MarginHead is a base class "
                "(use SoftmaxHead, NormFace, LSoftmax, SphereFace, CosFace, AMSoftmax or ArcFace)"
            )
        self.in_features = check_positive_int("in_features", in_features)
        self.num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        self.reduction = check_reduction(reduction)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise InvalidTypeError(f"dtype must be a floating torch.dtype or None, got {dtype!r}")
        self.step = 0
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(num_classes, in_features, **factory))
        if self.has_bias:
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

    # -- hooks ------------------------------------------------------------------------------

    def plain_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits without margin, (N, C); predictions are their argmax."""
        raise NotImplementedError

    def margin_logit(
        self, x: torch.Tensor, y: torch.Tensor, plain: torch.Tensor
    ) -> torch.Tensor | None:
        """The true class's logit with the margin, (N, 1), or ``None`` without a margin.

        Args:
            x: (N, d) checked features.
            y: (N, 1) int64 true classes.
            plain: ``plain_logits(x)``.
        """
        return None

    def target_logit(
        self, x: torch.Tensor, y: torch.Tensor, plain: torch.Tensor
    ) -> torch.Tensor | None:
        """The true class's logit used in training; the margin logit unless overridden."""
        return self.margin_logit(x, y, plain)

    def boundary_equations(self, i: int, j: int) -> tuple[str, str]:
        """The binary decision boundaries of class i's and class j's region, as text."""
        text = f"cos theta_{i} - cos theta_{j} = 0"
        return text, text

    # -- public API -------------------------------------------------------------------------

    def cosines(self, x: torch.Tensor) -> torch.Tensor:
        """``cos theta_j`` between every feature and every class weight, (N, C)."""
        return self._cosines(self._check_features(x))

    def logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, C); with labels ``y`` (N,), the true class's logit carries the margin."""
        x = self._check_features(x)
        if y is None:
            return self.plain_logits(x)
        return self._training_logits(x, self._check_labels(x, y))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the margin logits ``logits(x, y)``, reduced by ``reduction``."""
        x = self._check_features(x)
        y = self._check_labels(x, y)
        losses = F.cross_entropy(self._training_logits(x, y), y, reduction="none")
        if self.training:
            self.step += 1
        return reduce(losses, self.reduction)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted classes: argmax of the plain logits."""
        return self.logits(x).argmax(1)

    def decision_boundary(self, classes: tuple[int, int] = (0, 1)) -> boundaries.DecisionBoundary:
        """The binary decision boundaries between two classes (seed 001, Table 1).

        See :func:`constrained_pairs.losses.boundaries.decision_boundary`.

        Args:
            classes: the two class indices ``(i, j)``.
        """
        return boundaries.decision_boundary(self, classes)

    def extra_repr(self) -> str:
        text = f"in_features={self.in_features}, num_classes={self.num_classes}, kind={self.kind!r}"
        for name in ("s", "m"):
            if getattr(self, name) is not None:
                text += f", {name}={getattr(self, name)}"
        return text

    def get_extra_state(self) -> dict[str, int]:
        return {"step": self.step}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.step = check_positive_int("step", state.get("step", 0), minimum=0)

    # -- checks -----------------------------------------------------------------------------

    def _cosines(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).T

    def _training_logits(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        plain = self.plain_logits(x)
        index = y.unsqueeze(1)
        target = self.target_logit(x, index, plain)
        return plain if target is None else plain.scatter(1, index, target)

    def _check_features(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor("x", x, floating=True)
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise InvalidArgumentError(
                f"x must have shape (N, {self.in_features}), got {tuple(x.shape)}"
            )
        weight = self.weight
        mixed = x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type)
        if mixed or x.device != weight.device:
            raise InvalidArgumentError(
                f"x ({x.dtype} on {x.device}) must match the head's weights ({weight.dtype} "
                f"on {weight.device}); move one with .to(...)"
            )
        return x

    def _check_labels(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_tensor("y", y)
        if y.shape != x.shape[:1]:
            raise InvalidArgumentError(
                f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}"
            )
        return check_labels("y", y, self.num_classes)


class SoftmaxHead(MarginHead):
    """The plain softmax head: logits ``W_j x + b_j`` (an ``nn.Linear``), no margin.

    Its binary decision boundary is the hyperplane ``(W_i - W_j) x + b_i - b_j = 0``, not an
    angle. Args as :class:`MarginHead`.
    """

    kind = "softmax"
    has_bias = True
    angular = False

    def plain_logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def boundary_equations(self, i: int, j: int) -> tuple[str, str]:
        text = f"(W_{i} - W_{j}) x + b_{i} - b_{j} = 0"
        return text, text
