"""What every loss shares: the ``reduction=`` argument (PyTorch conventions) and input checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from constrained_pairs._validation import check_choice, check_tensor
from constrained_pairs.errors import InvalidArgumentError

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> str:
    """Return ``reduction`` if it is ``"mean"``, ``"sum"`` or ``"none"``, else raise."""
    if not isinstance(reduction, str):  # also keeps arrays out of the `in` test
        raise InvalidArgumentError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return check_choice("reduction", reduction, REDUCTIONS)


def reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-element ``losses``: their mean, their sum, or themselves (``"none"``).

    The mean of an empty tensor is 0 (not NaN as in ``torch``), so a batch without any sample,
    mined pair or triplet contributes nothing instead of poisoning the gradient.
    """
    if reduction == "none":
        return losses
    if reduction == "sum" or losses.numel() == 0:
        return losses.sum()
    return losses.mean()


def reduce_torch(
    loss: Callable[..., torch.Tensor],
    input: torch.Tensor,
    target: torch.Tensor,
    reduction: str,
    **options: Any,
) -> torch.Tensor:
    """``loss(input, target, reduction=..., **options)``, a fused ``torch.nn.functional`` loss,
    with this package's empty-batch convention (the mean of nothing is 0, not NaN)."""
    if reduction == "mean" and input.numel() == 0:
        reduction = "sum"
    return loss(input, target, reduction=reduction, **options)


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise unless ``a`` and ``b`` have the same shape (no silent broadcasting in losses)."""
    if a.shape != b.shape:
        raise InvalidArgumentError(
            f"{name_a} and {name_b} must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_pair(
    name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor, reduction: str
) -> torch.Tensor:
    """Check ``reduction``, a floating tensor ``a`` and a real tensor ``b`` of its shape.

    O(1): types, dtypes and shapes only. Returns ``b`` in ``a``'s dtype.
    """
    check_reduction(reduction)
    check_tensor(name_a, a, floating=True)
    check_tensor(name_b, b)
    check_same_shape(name_a, a, name_b, b)
    return b.to(a.dtype)
