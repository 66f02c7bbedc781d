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


def as_real_tensor(
    name: str,
    value: Any,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    ndim: int | tuple[int, ...] | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """:func:`as_tensor` that refuses complex and bool data (before any ``dtype`` conversion,
    which would drop an imaginary part or turn booleans into numbers silently)."""
    tensor = as_tensor(name, value, device=device, ndim=ndim, finite=False)
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise InvalidTypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    return as_tensor(name, tensor, dtype=dtype, finite=finite)


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
    if labels.numel():
        low, high = torch.stack([labels.min(), labels.max()]).tolist()  # one device sync
        if low < 0 or high >= num_classes:
            raise InvalidArgumentError(
                f"{name} must lie in 0..{num_classes - 1}, got values in {low}..{high}"
            )
    return labels


def check_tensor(name: str, value: Any, *, floating: bool = False) -> torch.Tensor:
    """Return ``value`` if it is a real ``torch.Tensor`` (floating point when ``floating``).

    O(1): only the type and dtype are looked at, never the data. Raises
    :class:`InvalidTypeError` for anything else (lists, arrays, complex or, when ``floating``,
    integer and bool tensors).
    """
    if not isinstance(value, torch.Tensor):
        raise InvalidTypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_complex() or (floating and not value.is_floating_point()):
        expected = "a floating-point" if floating else "a real"
        raise InvalidTypeError(f"{name} must be {expected} tensor, got dtype {value.dtype}")
    return value


def is_real_number(value: Any) -> bool:
    """A Python or numpy real number, not a bool (``bool`` subclasses ``int``)."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def check_real(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    open_minimum: bool = False,
    open_maximum: bool = False,
) -> float:
    """Return ``value`` as a finite float in ``[minimum, maximum]`` (ends open when asked).

    Bools, strings, tensors with more than one element and other non-numbers raise
    :class:`InvalidTypeError`; NaN, infinities and values out of range raise
    :class:`InvalidArgumentError` naming the range.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if not is_real_number(value):
        raise InvalidTypeError(f"{name} must be a real number, got {value!r}")
    number = float(value)
    low_ok = minimum is None or number > minimum or (number == minimum and not open_minimum)
    high_ok = maximum is None or number < maximum or (number == maximum and not open_maximum)
    if not (np.isfinite(number) and low_ok and high_ok):
        low = "(-inf" if minimum is None else ("(" if open_minimum else "[") + f"{minimum:g}"
        high = "inf)" if maximum is None else f"{maximum:g}" + (")" if open_maximum else "]")
        raise InvalidArgumentError(
            f"{name} must be a finite number in {low}, {high}, got {value!r}"
        )
    return number


def check_flag(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (``True`` / ``False``), else raise naming it."""
    if not isinstance(value, bool | np.bool_):
        raise InvalidTypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


#: Floating dtypes the numerical code supports end to end (half precision is refused up front:
#: ``cdist``, ``svd`` and ``cholesky`` have no float16/bfloat16 kernels on every device).
SUPPORTED_FLOATS = (torch.float32, torch.float64)


def check_float_dtype(name: str, dtype: Any) -> torch.dtype:
    """Return ``dtype`` if it is float32 or float64, else raise naming ``name``."""
    if not isinstance(dtype, torch.dtype):
        raise InvalidTypeError(f"{name} must be a torch.dtype (float32 or float64), got {dtype!r}")
    if dtype in (torch.float16, torch.bfloat16):
        raise InvalidArgumentError(
            f"{name}={dtype} is not supported: half precision lacks the cdist/SVD/Cholesky kernels "
            "the solvers need; use torch.float32 or torch.float64"
        )
    if dtype not in SUPPORTED_FLOATS:
        raise InvalidArgumentError(f"{name} must be torch.float32 or torch.float64, got {dtype}")
    return dtype


def as_feature_tensor(
    name: str,
    value: Any,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    ndim: int | tuple[int, ...] | None = None,
) -> torch.Tensor:
    """Convert features to a floating tensor: float32/float64 keep their precision (unless
    ``dtype`` is given), integers (e.g. uint8 images) become ``dtype`` or the default floating
    dtype — exact conversion, never truncation; bool and complex are rejected, and so are
    float16/bfloat16 (see :data:`SUPPORTED_FLOATS`)."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        raise InvalidTypeError(f"{name} must be a numeric array, got an object array")
    tensor = as_real_tensor(name, value, device=device, ndim=ndim, finite=False)
    if tensor.is_floating_point():
        check_float_dtype(f"{name}.dtype", tensor.dtype)
    target = dtype or (tensor.dtype if tensor.is_floating_point() else torch.get_default_dtype())
    check_float_dtype("dtype", target)
    tensor = tensor.to(dtype=target)
    if not bool(torch.isfinite(tensor).all()):
        raise InvalidArgumentError(f"{name} contains non-finite values (NaN or inf)")
    return tensor


#: Adam(W)'s first step is lr / (1 - beta1) = 10 lr (default beta1 = 0.9): the largest multiple of
#: a learning rate that must fit the parameters' dtype.
ADAM_FIRST_STEP = 10.0


def check_fits_dtype(name: str, value: float, dtype: torch.dtype, *, factor: float = 1.0) -> float:
    """Return ``value`` if ``factor * value`` is representable in ``dtype`` (at most its
    ``finfo.max``), else raise naming ``name`` and the largest accepted value.

    For step sizes an optimiser scales before storing them in the parameters' dtype (Adam's
    first step is ``lr / (1 - beta1)``): a larger one would overflow inside the optimiser.
    """
    if not dtype.is_floating_point:
        return value
    limit = torch.finfo(dtype).max / factor
    if abs(value) > limit:
        raise InvalidArgumentError(
            f"{name} must be at most {limit:.3g} for {dtype} parameters (larger steps overflow "
            f"{dtype}), got {value!r}"
        )
    return value
