"""The ``reduction=`` argument shared by every loss (PyTorch conventions)."""

from __future__ import annotations

import torch

from constrained_pairs._validation import check_choice
from constrained_pairs.errors import InvalidArgumentError

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str) -> str:
    """Return ``reduction`` if it is ``"mean"``, ``"sum"`` or ``"none"``, else raise."""
    return check_choice("reduction", reduction, REDUCTIONS)


def reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-element ``losses``: their mean, their sum, or themselves (``"none"``).

    The mean of an empty tensor is 0 (not NaN), so a batch without any mined pair or triplet
    contributes nothing instead of poisoning the gradient.
    """
    if reduction == "none":
        return losses
    if reduction == "sum" or losses.numel() == 0:
        return losses.sum()
    return losses.mean()


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise unless ``a`` and ``b`` have the same shape (no silent broadcasting in losses)."""
    if a.shape != b.shape:
        raise InvalidArgumentError(
            f"{name_a} and {name_b} must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
