"""The shared training vocabulary and its checks (README, "One vocabulary").

Every training entry point takes ``epochs``, ``batch_size``, ``lr``, ``backbone_lr``, ``seed``,
``device``, ``dtype``, ``progress``, ``checkpoint``, ``checkpoint_every``, ``resume`` and
``callback`` with the meanings below, checked here before any work.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from collections.abc import Iterable
from typing import Any

import torch

from constrained_pairs._validation import (
    check_flag,
    check_float_dtype,
    check_positive_int,
    check_real,
)
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError


def check_unknown(where: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise for options not in ``valid``, listing them and suggesting the closest."""
    valid = sorted(valid)
    for name in given:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidArgumentError(
                f"{where} got an unknown option {name!r}{hint} Valid options: {', '.join(valid)}"
            )


#: Largest count (iterations, epochs, patience ...) the loops take: torch's int64 and the
#: platform's C ints overflow beyond, and no run gets there.
MAX_COUNT = 2**31 - 1


def check_int(name: str, value: Any, *, minimum: int = 1, optional: bool = True) -> int | None:
    """An int in ``minimum`` .. 2^31 − 1 (bools refused), or None when ``optional``."""
    if value is None and optional:
        return None
    value = check_positive_int(name, value, minimum=minimum)
    if value > MAX_COUNT:
        raise InvalidArgumentError(f"{name} must be <= {MAX_COUNT}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    minimum: float = 0.0,
    optional: bool = True,
) -> float | None:
    """A finite real >= ``minimum`` (> 0 when ``positive``), or None when ``optional``."""
    if value is None and optional:
        return None
    if minimum == -math.inf:
        return check_real(name, value)
    return check_real(name, value, minimum=minimum, open_minimum=positive)


def check_seed(value: Any) -> int:
    """A seed: an int in 0 .. 2^63 − 1 (bools refused)."""
    value = check_positive_int("seed", value, minimum=0)
    if value >= 2**63:
        raise InvalidArgumentError(f"seed must be < 2**63, got {value}")
    return value


def check_device(value: Any) -> torch.device | None:
    """A torch device that exists on this machine, or None."""
    if value is None:
        return None
    try:
        device = torch.device(value)
    except (TypeError, RuntimeError) as exc:
        raise InvalidArgumentError(f"device must be a torch device, got {value!r}") from exc
    if device.type not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"device must be 'cpu' or 'cuda[:index]', got {value!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"device={value!r} was asked for, but CUDA is not available")
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise InvalidArgumentError(f"device={value!r}: no such CUDA device")
    return device


def check_dtype(value: Any) -> torch.dtype | None:
    """float32 or float64, or None (half precision is refused: SVDs and Cholesky lack it)."""
    return None if value is None else check_float_dtype("dtype", value)


def check_callback(value: Any) -> Any:
    if value is not None and not callable(value):
        raise InvalidTypeError(f"callback must be callable or None, got {type(value).__name__}")
    return value


def check_bool(name: str, value: Any, *, optional: bool = False) -> bool | None:
    """True or False (or None when ``optional``)."""
    return None if value is None and optional else check_flag(name, value)


def resolve_progress(progress: bool | None) -> bool:
    """``progress=None``: a bar on a terminal, none under CI or when stderr is not a TTY."""
    check_bool("progress", progress, optional=True)
    if progress is not None:
        return progress
    return sys.stderr.isatty() and not os.environ.get("CI")
