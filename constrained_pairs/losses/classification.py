"""Classification losses of the notes: BCE, cross-entropy and focal loss (SPEC §4, seeds 001-002).

Every loss takes raw scores (logits) and is computed from them in log space, so it stays finite
and differentiable for any logit, however confident.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from constrained_pairs._validation import as_tensor, check_labels, check_nonnegative
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.losses._reduce import check_reduction, check_same_shape, reduce


def _check_probabilities(name: str, target: torch.Tensor) -> torch.Tensor:
    if not target.is_floating_point():
        target = target.float()
    if target.numel() and not bool(((target >= 0) & (target <= 1)).all()):
        raise InvalidArgumentError(f"{name} must hold probabilities in [0, 1]")
    return target


def _check_alpha(alpha: float | None) -> float | None:
    if alpha is not None and not 0 <= check_nonnegative("alpha", alpha) <= 1:
        raise InvalidArgumentError(f"alpha must lie in [0, 1] or be None, got {alpha}")
    return alpha


def bce(
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    *,
    from_logits: bool = True,
    pos_weight: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Binary cross-entropy ``-[t log p + (1 - t) log(1 - p)]``.

    Args:
        input: logits ``x`` with ``p = sigmoid(x)`` (default), or probabilities ``p`` when
            ``from_logits=False`` (their logs are clamped at -100 like ``torch``).
        target: probabilities ``t`` in [0, 1], same shape as ``input``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        from_logits: whether ``input`` holds logits.
        pos_weight: weight ``w`` of the positive term, ``-[w t log p + (1 - t) log(1 - p)]``.
    """
    check_reduction(reduction)
    check_same_shape("input", input, "target", target)
    target = _check_probabilities("target", target).to(input.dtype)
    if from_logits:
        # log p = log sigmoid(x) and log(1 - p) = log sigmoid(-x), exact for every finite logit
        log_p, log_q = F.logsigmoid(input), F.logsigmoid(-input)
    else:
        if input.numel() and not bool(((input >= 0) & (input <= 1)).all()):
            raise InvalidArgumentError(
                "input must hold probabilities in [0, 1] (from_logits=False)"
            )
        log_p, log_q = torch.log(input).clamp_min(-100), torch.log1p(-input).clamp_min(-100)
    positive = target * log_p
    if pos_weight is not None:
        positive = positive * as_tensor("pos_weight", pos_weight, dtype=input.dtype).to(input)
    return reduce(-(positive + (1 - target) * log_q), reduction)


def cross_entropy(
    input: torch.Tensor, target: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Softmax cross-entropy ``-sum_c t_c log softmax(x)_c``.

    Args:
        input: logits of shape (N, C) or (N, C, d1, ...).
        target: class indices in ``0..C-1`` of shape (N,) or (N, d1, ...), or class
            probabilities of the same shape as ``input``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
    """
    check_reduction(reduction)
    log_p = _log_softmax_checked(input)
    if target.is_floating_point() and target.shape == input.shape:
        return reduce(-(target * log_p).sum(1), reduction)
    target = _class_target(input, target)
    return reduce(-log_p.gather(1, target.unsqueeze(1)).squeeze(1), reduction)


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
    check_reduction(reduction)
    _check_alpha(alpha)
    gamma = check_nonnegative("gamma", gamma)
    check_same_shape("logits", logits, "target", target)
    t = _check_probabilities("target", target).to(logits.dtype)
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
    alpha: float | Sequence[float] | torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax focal loss ``-alpha_y (1 - p_y)^gamma log p_y``; ``gamma = 0`` gives the CE.

    ``log(1 - p_y)`` is computed as ``logsumexp_{j != y} x_j - logsumexp_j x_j``, exact even when
    ``p_y`` rounds to 1.

    Args:
        logits: raw scores of shape (N, C) or (N, C, d1, ...).
        target: class indices in ``0..C-1`` of shape (N,) or (N, d1, ...).
        gamma: focusing parameter >= 0.
        alpha: ``None`` (no weighting), one weight for every class, or C per-class weights.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
    """
    check_reduction(reduction)
    gamma = check_nonnegative("gamma", gamma)
    log_p = _log_softmax_checked(logits)
    target = _class_target(logits, target).unsqueeze(1)
    if logits.shape[1] < 2:
        raise InvalidArgumentError("focal_loss_multiclass needs at least 2 classes")
    log_p_y = log_p.gather(1, target).squeeze(1)
    others = logits.scatter(1, target, float("-inf"))
    log_one_minus_p = torch.logsumexp(others, 1) - torch.logsumexp(logits, 1)
    losses = -torch.exp(gamma * log_one_minus_p) * log_p_y
    if alpha is not None:
        weights = as_tensor("alpha", alpha, dtype=logits.dtype).to(logits.device)
        if weights.dim() == 1 and weights.numel() != logits.shape[1]:
            raise InvalidArgumentError(
                f"alpha must be a number or hold C={logits.shape[1]} class weights, "
                f"got {weights.numel()}"
            )
        if bool((weights < 0).any()):
            raise InvalidArgumentError("alpha must be >= 0")
        losses = losses * (weights[target.squeeze(1)] if weights.dim() == 1 else weights)
    return reduce(losses, reduction)


def _log_softmax_checked(input: torch.Tensor) -> torch.Tensor:
    if input.dim() < 2:
        raise InvalidArgumentError(
            f"logits must have shape (N, C) or (N, C, d1, ...), got {tuple(input.shape)}"
        )
    return F.log_softmax(input, dim=1)


def _class_target(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    expected = input.shape[:1] + input.shape[2:]
    if target.shape != expected:
        raise InvalidArgumentError(
            f"target must hold class indices of shape {tuple(expected)} for logits of shape "
            f"{tuple(input.shape)}, got {tuple(target.shape)}"
        )
    return check_labels("target", target, input.shape[1])
