"""Argument checks shared by every module: each error names the argument and what was expected."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError


def as_tensor(
    name: str,
    value: Any,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    ndim: int | tuple[int, ...] | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Convert ``value`` (tensor, array or nested sequence) to a tensor and check it.

    Floating inputs keep their precision unless ``dtype`` is given; integer inputs are left as
    integers. Raises :class:`InvalidTypeError` for unconvertible values and
    :class:`InvalidArgumentError` for a wrong number of dimensions or non-finite entries.
    """
    if isinstance(value, torch.Tensor):
        tensor = value
    elif isinstance(value, np.ndarray | list | tuple | float | int):
        try:
            tensor = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as exc:
            raise InvalidTypeError(f"{name} must be numeric array-like, got {type(value)}") from exc
    else:
        raise InvalidTypeError(
            f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}"
        )
    if dtype is not None or device is not None:
        tensor = tensor.to(device=device, dtype=dtype)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if tensor.dim() not in allowed:
            raise InvalidArgumentError(
                f"{name} must have {' or '.join(map(str, allowed))} dimensions, "
                f"got shape {tuple(tensor.shape)}"
            )
    if finite and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise InvalidArgumentError(f"{name} contains non-finite values (NaN or inf)")
    return tensor


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise naming the allowed values."""
    choices = tuple(choices)
    if value not in choices:
        raise InvalidArgumentError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_nonnegative(name: str, value: Any) -> float:
    """Return ``value`` as a float, raising if it is negative or not finite."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(f"{name} must be a real number, got {value!r}") from exc
    if not np.isfinite(number) or number < 0:
        raise InvalidArgumentError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an int, raising unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidTypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_labels(name: str, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Check that integer ``labels`` lie in ``0..num_classes-1`` and return them as int64."""
    if labels.is_floating_point():
        if not bool((labels == labels.round()).all()):
            raise InvalidArgumentError(f"{name} must hold integer class labels")
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise InvalidArgumentError(
            f"{name} must lie in 0..{num_classes - 1}, "
            f"got values in {int(labels.min())}..{int(labels.max())}"
        )
    return labels
