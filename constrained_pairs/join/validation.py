"""Argument checks of the data-join entry points (``PairProblem``, ``objective``, ``Result``).

Every error names the argument and what was expected. The checks of ``omega`` (the methods'
evaluator) are O(1) (types, dtypes, devices, shapes): it is evaluated at infeasible and
diverging points on purpose, so NaN, infinite and negative *values* pass through to a
non-finite or large Ω; ``objective``, the user-facing evaluator, also checks the values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from constrained_pairs._validation import as_feature_tensor, as_tensor, check_real, is_real_number
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError


def float_input(value: Any) -> bool:
    """Whether array-like ``value`` holds floating-point numbers."""
    if isinstance(value, torch.Tensor):
        return value.is_floating_point()
    return np.asarray(value).dtype.kind == "f"


def label_tensor(name: str, value: Any, rows: int, device: torch.device) -> torch.Tensor:
    """Labels as a 1-D real tensor of ``rows`` entries (bool and complex refused)."""
    y = as_tensor(name, value, device=device, ndim=1)
    if y.is_complex() or y.dtype == torch.bool:
        raise InvalidTypeError(
            f"{name} must hold integer class labels 0..C-1, got dtype {y.dtype}"
            + ("; convert booleans with y.long()" if y.dtype == torch.bool else "")
        )
    if y.shape[0] != rows:
        raise InvalidArgumentError(
            f"{name} must have one label per row ({rows}), got {y.shape[0]} labels"
        )
    return y


def infer_num_classes(y: torch.Tensor) -> int:
    """C = max(y_p) + 1 (at least 2), refusing a C larger than the number of labelled rows.

    Labels are class indices 0..C-1; an inferred C above max(n_P, 2) means sparse labels (e.g.
    raw identifiers such as 2^40), which would allocate a (C, d) classifier of empty classes.
    Pass ``num_classes`` explicitly for classes absent from P.
    """
    top = y.max().round() if y.is_floating_point() else y.long().max()
    top = int(top)
    inferred = max(top + 1, 2)
    if inferred > max(y.shape[0], 2):
        raise InvalidArgumentError(
            f"y_p: the largest label is {top}, so the inferred num_classes would be "
            f"{inferred}, more than the {y.shape[0]} labelled rows; labels must be class "
            "indices 0..C-1 (relabel them, e.g. torch.unique(y_p, return_inverse=True)[1]) or "
            "pass num_classes explicitly"
        )
    return inferred


def check_scale_option(scale: Any) -> str | float | None:
    """``scale``: None, ``"median"`` or a finite float > 0."""
    if scale is None or (isinstance(scale, str) and scale == "median"):
        return scale
    if isinstance(scale, str):
        raise InvalidArgumentError(f"scale must be None, 'median' or a float > 0, got {scale!r}")
    return check_real("scale", scale, minimum=0.0, open_minimum=True)


def check_median(median: torch.Tensor) -> None:
    """The median divisor of ``scale="median"``: finite and > 0."""
    if not (math.isfinite(float(median)) and float(median) > 0):
        raise InvalidArgumentError(
            f"scale='median': the median pair distance is {float(median)}, so every distance "
            "would be divided by it; with duplicated points (median 0) use scale=None or a "
            "float scale"
        )


# -- objective ------------------------------------------------------------------------------------
def head_tensor(name: str, value: Any, problem: Any, optional: bool) -> torch.Tensor | None:
    """θ₁/θ₂/b: a real tensor on the problem's device, of its dtype or one that converts to it
    (float32 on a float64 problem, exactly and differentiably; integers); O(1)."""
    if value is None and optional:
        return None
    if not isinstance(value, torch.Tensor):
        expected = "a torch.Tensor" + (" or None" if optional else "")
        raise InvalidTypeError(f"{name} must be {expected}, got {type(value).__name__}")
    if value.dtype != problem.dtype:
        integer = not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
        lossless = value.dtype == torch.float32 and problem.dtype == torch.float64
        if not (lossless or integer):
            raise InvalidTypeError(
                f"{name} must be a real tensor of the problem's dtype {problem.dtype} (float32 "
                f"on a float64 problem and integer tensors are converted), got {value.dtype}"
            )
        value = value.to(problem.dtype)
    if value.device != problem.device:
        raise InvalidArgumentError(
            f"{name} must be on the problem's device {problem.device}, got {value.device}"
        )
    return value


def alpha_scalar(name: str, value: Any, like: torch.Tensor) -> torch.Tensor:
    """α as a 0-dim tensor: a real number or a one-element real tensor (any value, NaN too)."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise InvalidTypeError(f"{name} must be a real number, got dtype {value.dtype}")
        if value.numel() != 1:
            raise InvalidArgumentError(f"{name} must be a scalar, got shape {tuple(value.shape)}")
        return value.reshape(())
    if not is_real_number(value):
        raise InvalidTypeError(f"{name} must be a real number, got {value!r}")
    return torch.tensor(float(value), dtype=like.dtype, device=like.device)


def check_point_values(**values: Any) -> None:
    """The values :func:`~constrained_pairs.join.objective.objective` (the user-facing
    evaluator) also checks: θ₁, θ₂, b finite and α_A, α_P finite and >= 0 (one reduction per
    tensor). Arguments of a wrong type are skipped: the O(1) checks name them."""
    for name, value in values.items():
        alpha = name.startswith("alpha")
        if isinstance(value, torch.Tensor):
            if not value.is_floating_point() or (alpha and value.numel() != 1):
                continue  # integers are finite; bool, complex, shapes: refused by the O(1) checks
            if alpha:
                number = float(value.detach().reshape(()))
            elif not bool(torch.isfinite(value.detach()).all()):
                raise InvalidArgumentError(f"{name} contains non-finite values (NaN or inf)")
            else:
                continue
        elif alpha and is_real_number(value):
            number = float(value)
        else:
            continue
        if not (math.isfinite(number) and number >= 0):
            raise InvalidArgumentError(f"{name} must be a finite number >= 0, got {number!r}")


def check_instance(name: str, value: Any, kind: type, expected: str) -> None:
    """``value`` is None or an instance of ``kind``."""
    if value is not None and not isinstance(value, kind):
        raise InvalidTypeError(f"{name} must be {expected} or None, got {type(value).__name__}")


# -- Result ---------------------------------------------------------------------------------------
def predictor_input(
    name: str, value: Any, like: torch.Tensor, width: int | None, rows: int | None = None
) -> torch.Tensor:
    """Features for a predictor: finite, floating, 2-D or more, ``width`` flattened columns
    (None: not checked, e.g. before a backbone) and ``rows`` rows when given."""
    x = as_feature_tensor(name, value, dtype=like.dtype, device=like.device)
    if x.dim() < 2:
        raise InvalidArgumentError(
            f"{name} must have shape (n, d) (one row per point), got {tuple(x.shape)}"
        )
    if width is not None and x[0].numel() != width:
        raise InvalidArgumentError(
            f"{name} must have {width} features per row (the fitted model's), got "
            f"{x[0].numel()} (shape {tuple(x.shape)})"
        )
    if rows is not None and x.shape[0] != rows:
        raise InvalidArgumentError(
            f"{name} must have {rows} rows (one per row of x), got {x.shape[0]}"
        )
    return x
