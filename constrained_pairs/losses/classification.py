"""Classification losses of the notes: BCE, cross-entropy and focal loss (SPEC §4, seeds 001-002).

Every loss takes raw scores (logits) and is computed from them in log space, so it stays finite
and differentiable for any logit, however confident. Probability targets are checked to lie in
[0, 1] and class targets in ``0..C-1`` (one scan of the target each, like ``torch``'s own
target checks); hyper-parameters are checked without reading any data.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from constrained_pairs._validation import (
    as_tensor,
    check_flag,
    check_labels,
    check_real,
    check_tensor,
)
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.losses._reduce import check_pair, check_reduction, reduce, reduce_torch

Weights = float | Sequence[float] | torch.Tensor


def _check_probabilities(name: str, target: torch.Tensor) -> torch.Tensor:
    if not target.is_floating_point():
        target = target.float()
    if target.numel() and not bool(((target >= 0) & (target <= 1)).all()):
        raise InvalidArgumentError(f"{name} must hold probabilities in [0, 1] (no NaN)")
    return target


def check_alpha(alpha: float | None) -> float | None:
    """The binary focal loss's class balance: ``None`` or a number in [0, 1]."""
    return None if alpha is None else check_real("alpha", alpha, minimum=0, maximum=1)


def check_gamma(gamma: float) -> float:
    """The focal loss's focusing parameter: a finite number >= 0."""
    return check_real("gamma", gamma, minimum=0)


def check_weights(name: str, weights: Weights | None) -> float | torch.Tensor | None:
    """``None``, one finite weight >= 0, or a 1-D tensor of them (one scan of the weights)."""
    if weights is None:
        return None
    if not isinstance(weights, torch.Tensor | Sequence) or isinstance(weights, str):
        return check_real(name, weights, minimum=0)
    tensor = as_tensor(name, weights)
    if tensor.dim() > 1 or tensor.is_complex() or tensor.dtype == torch.bool:
        raise InvalidArgumentError(
            f"{name} must be a number or a 1-D tensor of weights, got shape {tuple(tensor.shape)} "
            f"and dtype {tensor.dtype}"
        )
    if tensor.dim() == 0:
        return check_real(name, tensor, minimum=0)
    if bool((tensor < 0).any()):
        raise InvalidArgumentError(f"{name} must hold weights >= 0")
    return tensor


def bce(
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    from_logits: bool = True,
    pos_weight: Weights | None = None,
) -> torch.Tensor:
    """Binary cross-entropy ``-[t log p + (1 - t) log(1 - p)]``.

    Args:
        input: logits ``x`` with ``p = sigmoid(x)`` (default), or probabilities ``p`` when
            ``from_logits=False`` (their logs are clamped at -100 like ``torch``).
        target: probabilities ``t`` in [0, 1], same shape as ``input``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        from_logits: whether ``input`` holds logits.
        pos_weight: weight ``w >= 0`` of the positive term, ``-[w t log p + (1 - t) log(1 - p)]``:
            one number, or a tensor that broadcasts to ``input`` (e.g. one weight per class along
            the last dimension, like ``torch``).
    """
    check_flag("from_logits", from_logits)
    weight = check_weights("pos_weight", pos_weight)
    return _bce(input, target, reduction, from_logits, weight)


def _bce(
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str,
    from_logits: bool,
    pos_weight: float | torch.Tensor | None,
) -> torch.Tensor:
    target = _check_probabilities("target", check_pair("input", input, "target", target, reduction))
    if isinstance(pos_weight, torch.Tensor):
        _check_broadcast("pos_weight", pos_weight, input)
        pos_weight = pos_weight.to(input)
    if from_logits:
        # torch's kernel: log sigmoid(x) and log sigmoid(-x), exact for every finite logit
        if isinstance(pos_weight, float):
            pos_weight = torch.tensor(pos_weight, dtype=input.dtype, device=input.device)
        return reduce_torch(
            F.binary_cross_entropy_with_logits, input, target, reduction, pos_weight=pos_weight
        )
    if input.numel() and not bool(((input >= 0) & (input <= 1)).all()):
        raise InvalidArgumentError("input must hold probabilities in [0, 1] (from_logits=False)")
    if pos_weight is None:
        return reduce_torch(F.binary_cross_entropy, input, target, reduction)
    log_p, log_q = torch.log(input).clamp_min(-100), torch.log1p(-input).clamp_min(-100)
    return reduce(-(pos_weight * target * log_p + (1 - target) * log_q), reduction)


def cross_entropy(
    input: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Softmax cross-entropy ``-sum_c t_c log softmax(x)_c``.

    Args:
        input: logits of shape (N, C) or (N, C, d1, ...).
        target: class indices in ``0..C-1`` of shape (N,) or (N, d1, ...), or class
            probabilities in [0, 1] of the same shape as ``input``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
    """
    check_reduction(reduction)
    _check_logits("input", input)
    check_tensor("target", target)
    if target.is_floating_point() and target.shape == input.shape:
        target = _check_probabilities("target", target).to(input.dtype)
    else:
        target = _class_target(input, target)
    return reduce_torch(F.cross_entropy, input, target, reduction)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Binary, sigmoid-based focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al., 2017).

    With ``p = sigmoid(logits)``, ``p_t = p t + (1 - p)(1 - t)`` and
    ``alpha_t = alpha t + (1 - alpha)(1 - t)``. ``gamma = 0`` and ``alpha=None`` give the BCE.
    Both ``log p_t`` and ``log(1 - p_t)`` are formed from log-sigmoids of the logits, so the loss
    and its gradient are finite for any logit and any ``gamma >= 0``.

    Args:
        logits: raw scores, any shape.
        target: labels in {0, 1} (or probabilities in [0, 1]), same shape as ``logits``.
        alpha: weight of the positive class in [0, 1]; ``None`` disables balancing.
        gamma: focusing parameter >= 0.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
    """
    alpha, gamma = check_alpha(alpha), check_gamma(gamma)
    t = _check_probabilities("target", check_pair("logits", logits, "target", target, reduction))
    log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)
    ce = -(t * log_p + (1 - t) * log_q)
    # 1 - p_t = t (1 - p) + (1 - t) p, combined in log space; log(0) = -inf drops a term exactly.
    log_one_minus_pt = torch.logaddexp(torch.log(t) + log_q, torch.log1p(-t) + log_p)
    losses = torch.exp(gamma * log_one_minus_pt) * ce
    if alpha is not None:
        losses = (alpha * t + (1 - alpha) * (1 - t)) * losses
    return reduce(losses, reduction)


def focal_loss_multiclass(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: Weights | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax focal loss ``-alpha_y (1 - p_y)^gamma log p_y``; ``gamma = 0`` gives the CE.

    ``log(1 - p_y)`` is computed as ``logsumexp_{j != y} x_j - logsumexp_j x_j``, exact even when
    ``p_y`` rounds to 1.

    Args:
        logits: raw scores of shape (N, C) or (N, C, d1, ...), C >= 2.
        target: class indices in ``0..C-1`` of shape (N,) or (N, d1, ...).
        gamma: focusing parameter >= 0.
        alpha: ``None`` (no weighting), one weight >= 0 for every class, or C per-class weights.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
    """
    return _focal_multiclass(
        logits, target, check_gamma(gamma), check_weights("alpha", alpha), reduction
    )


def _focal_multiclass(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float,
    alpha: float | torch.Tensor | None,
    reduction: str,
) -> torch.Tensor:
    check_reduction(reduction)
    log_p = F.log_softmax(_check_logits("logits", logits), dim=1)
    if logits.shape[1] < 2:
        raise InvalidArgumentError("focal_loss_multiclass needs at least 2 classes")
    check_tensor("target", target)
    target = _class_target(logits, target).unsqueeze(1)
    log_p_y = log_p.gather(1, target).squeeze(1)
    others = logits.scatter(1, target, float("-inf"))
    log_one_minus_p = torch.logsumexp(others, 1) - torch.logsumexp(logits, 1)
    losses = -torch.exp(gamma * log_one_minus_p) * log_p_y
    if isinstance(alpha, torch.Tensor):
        if alpha.numel() != logits.shape[1]:
            raise InvalidArgumentError(
                f"alpha must be a number or hold C={logits.shape[1]} class weights, "
                f"got {alpha.numel()}"
            )
        losses = losses * alpha.to(logits)[target.squeeze(1)]
    elif alpha is not None:
        losses = losses * alpha
    return reduce(losses, reduction)


def _check_broadcast(name: str, weight: torch.Tensor, input: torch.Tensor) -> None:
    try:
        shape = torch.broadcast_shapes(weight.shape, input.shape)
    except RuntimeError:
        shape = None
    if shape != input.shape:
        raise InvalidArgumentError(
            f"{name} of shape {tuple(weight.shape)} must broadcast to input's shape "
            f"{tuple(input.shape)}"
        )


def _check_logits(name: str, input: torch.Tensor) -> torch.Tensor:
    check_tensor(name, input, floating=True)
    if input.dim() < 2:
        raise InvalidArgumentError(
            f"{name} must have shape (N, C) or (N, C, d1, ...), got {tuple(input.shape)}"
        )
    return input


def _class_target(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    expected = input.shape[:1] + input.shape[2:]
    if target.shape != expected:
        raise InvalidArgumentError(
            f"target must hold class indices of shape {tuple(expected)} for logits of shape "
            f"{tuple(input.shape)}, got {tuple(target.shape)}"
        )
    if target.dtype == torch.bool:
        raise InvalidArgumentError("target must hold class indices, got a bool tensor")
    return check_labels("target", target, input.shape[1])
