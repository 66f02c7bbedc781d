"""Regression losses of the notes: L1/MAE, L2/MSE, RMSE and Huber (SPEC §4, seed 002).

Every function takes ``input`` (predictions) and ``target`` of the same shape and a
``reduction`` of ``"mean"`` | ``"sum"`` | ``"none"``, like ``torch.nn.functional``.
"""

from __future__ import annotations

import torch

from constrained_pairs._validation import check_nonnegative
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.losses._reduce import check_reduction, check_same_shape, reduce


def _residual(input: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    check_reduction(reduction)
    check_same_shape("input", input, "target", target)
    return input - target


def mae(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error (L1): ``|input - target|`` reduced."""
    return reduce(_residual(input, target, reduction).abs(), reduction)


def mse(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error (L2): ``(input - target)^2`` reduced."""
    return reduce(_residual(input, target, reduction).square(), reduction)


def rmse(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Root of the reduced squared error.

    ``"mean"`` gives ``sqrt(mean(r^2))`` (the usual RMSE), ``"sum"`` gives ``sqrt(sum(r^2))``
    (the Euclidean norm of the residual) and ``"none"`` gives ``sqrt(r^2) = |r|`` elementwise.
    The gradient at a zero residual is 0 (a subgradient), never NaN.
    """
    residual = _residual(input, target, reduction)
    if reduction == "none":
        return residual.abs()
    norm = torch.linalg.vector_norm(residual)
    if reduction == "sum" or residual.numel() == 0:
        return norm
    return norm / residual.numel() ** 0.5


def huber(
    input: torch.Tensor, target: torch.Tensor, delta: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Huber loss: ``r^2 / 2`` for ``|r| <= delta``, else ``delta (|r| - delta / 2)``.

    Quadratic near the origin, linear (slope ``delta``) in the tails. This is Huber's loss, which
    equals ``delta * SmoothL1(beta=delta)``; it coincides with SmoothL1 only at ``delta = 1``.

    Args:
        input: predictions.
        target: targets, same shape as ``input``.
        delta: threshold between the quadratic and linear pieces, > 0.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
    """
    delta = check_nonnegative("delta", delta)
    if delta == 0:
        raise InvalidArgumentError("delta must be > 0, got 0")
    size = _residual(input, target, reduction).abs()
    losses = torch.where(size <= delta, 0.5 * size.square(), delta * (size - 0.5 * delta))
    return reduce(losses, reduction)
