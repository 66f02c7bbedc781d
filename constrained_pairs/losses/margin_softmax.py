"""``MarginSoftmax(kind=...)``: one factory for every margin softmax head (SPEC §4, seed 001).

The heads are classes of :mod:`constrained_pairs.losses.heads` (``SoftmaxHead``, ``NormFace``,
``LSoftmax``, ``SphereFace``, ``CosFace``, ``AMSoftmax``, ``ArcFace``); this factory builds one
from its kind name, with each kind's defaults for the hyper-parameters left at ``None``. It is
kept for code written against the single-class API; new code can use the classes directly.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from constrained_pairs._validation import check_choice
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.losses.boundaries import DecisionBoundary
from constrained_pairs.losses.heads import (
    AMSoftmax,
    ArcFace,
    CosFace,
    LambdaSchedule,
    LSoftmax,
    MarginHead,
    NormFace,
    SoftmaxHead,
    SphereFace,
    psi,
)

HEADS: dict[str, type[MarginHead]] = {
    head.kind: head
    for head in (SoftmaxHead, NormFace, LSoftmax, SphereFace, CosFace, AMSoftmax, ArcFace)
}
KINDS = tuple(HEADS)
_DESCRIPTIONS = {
    "s": "scale s",
    "m": "margin m",
    "lambda_schedule": "lambda_schedule (L-Softmax and SphereFace only)",
}

__all__ = ["HEADS", "KINDS", "DecisionBoundary", "LambdaSchedule", "MarginSoftmax", "psi"]


def MarginSoftmax(  # noqa: N802 - a factory standing in for the former class of this name
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
) -> MarginHead:
    """The margin softmax head of kind ``kind``: ``HEADS[kind](in_features, num_classes, ...)``.

    Example::

        head = MarginSoftmax(2, 10, kind="arcface")   # an ArcFace head
        loss = head(features, labels)                 # training loss
        predicted = head.predict(features)

    Args:
        in_features: feature dimension d.
        num_classes: number of classes C.
        kind: one of ``softmax``, ``normface``, ``lsoftmax``, ``sphereface``, ``cosface``,
            ``amsoftmax``, ``arcface``.
        s: scale (NormFace 16, CosFace 64, AM-Softmax 30, ArcFace 64 by default); ``None``
            keeps the default. Kinds without a scale reject a value.
        m: margin (L-Softmax and SphereFace: integer, 4; CosFace and AM-Softmax 0.35;
            ArcFace 0.5 radians); ``None`` keeps the default.
        reduction: reduction of the cross-entropy in ``forward``.
        lambda_schedule: L-Softmax / SphereFace only: anneal the target logit from the plain one.
        device: device of the parameters.
        dtype: floating dtype of the parameters.

    Returns:
        An instance of the head's class (a :class:`~constrained_pairs.losses.heads.MarginHead`).
    """
    head = HEADS[check_choice("kind", kind, KINDS)]
    accepted = inspect.signature(head).parameters
    options: dict[str, Any] = {}
    for name, value in (("s", s), ("m", m), ("lambda_schedule", lambda_schedule)):
        if value is None:
            continue
        if name not in accepted:
            raise InvalidArgumentError(
                f"kind={kind!r} has no {_DESCRIPTIONS[name]}; leave {name}=None"
            )
        options[name] = value
    return head(
        in_features, num_classes, **options, reduction=reduction, device=device, dtype=dtype
    )
