"""Regression losses of the notes: L1/MAE, L2/MSE, RMSE and Huber (SPEC §4, seed 002).

Every function takes ``input`` (floating predictions) and ``target`` (a real tensor) of the same
shape and a ``reduction`` of ``"mean"`` | ``"sum"`` | ``"none"``, like ``torch.nn.functional``,
whose fused kernels compute them once the arguments are checked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from constrained_pairs._validation import check_real
from constrained_pairs.losses._reduce import check_pair, reduce_torch


def check_delta(delta: float) -> float:
    """Huber's threshold: a finite number > 0."""
    return check_real("delta", delta, minimum=0, open_minimum=True)


def mae(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error (L1): ``|input - target|`` reduced."""
    target = check_pair("input", input, "target", target, reduction)
    return reduce_torch(F.l1_loss, input, target, reduction)


def mse(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error (L2): ``(input - target)^2`` reduced."""
    target = check_pair("input", input, "target", target, reduction)
    return reduce_torch(F.mse_loss, input, target, reduction)


def rmse(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Root of the reduced squared error.

    ``"mean"`` gives ``sqrt(mean(r^2))`` (the usual RMSE), ``"sum"`` gives ``sqrt(sum(r^2))``
    (the Euclidean norm of the residual) and ``"none"`` gives ``sqrt(r^2) = |r|`` elementwise.
    The gradient at a zero residual is 0 (a subgradient), never NaN.
    """
    residual = input - check_pair("input", input, "target", target, reduction)
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
    delta = check_delta(delta)
    target = check_pair("input", input, "target", target, reduction)
    return reduce_torch(F.huber_loss, input, target, reduction, delta=delta)
