"""Activation functions of seed 002 (SPEC §4): the sigmoid, tanh and ReLU families, SELU with its
exact constants, and the piecewise fast sigmoid approximation.

Where ``torch`` has the function it is used (thin documented forms below; the module classes
are ``torch.nn``'s own, subclassed only to check their arguments). SELU is written from its
constants, and :func:`fast_sigmoid` is the notes' approximation.

Checks are O(1) (types, dtypes, hyper-parameters; never the data): ``x`` must be a tensor,
floating except for ReLU and ReLU6, which like ``torch`` also take integer tensors. Bad input
raises :class:`~constrained_pairs.errors.InvalidTypeError` or
:class:`~constrained_pairs.errors.InvalidArgumentError` naming the argument.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from constrained_pairs._validation import check_flag, check_positive_int, check_real, check_tensor
from constrained_pairs.errors import InvalidArgumentError

# SELU's fixed point constants (Klambauer et al., 2017), the closed forms
#   alpha = -sqrt(2 / pi) / (erfc(1 / sqrt 2) exp(1 / 2) - 1),
#   scale = (1 - erfc(1 / sqrt 2) sqrt e) sqrt(2 pi)
#           (2 erfc(sqrt 2) e^2 + pi erfc(1 / sqrt 2)^2 e - 2 (2 + pi) erfc(1 / sqrt 2) sqrt e
#            + pi + 2)^(-1 / 2),
# evaluated to 40 significant digits (the float64 evaluation of the closed form is 3 ulp off).
SELU_ALPHA = 1.673263242354377284817042991671652038461
SELU_SCALE = 1.050700987355480493419334985294606351959

# max over x of |fast_sigmoid(x) - sigmoid(x)|, attained at x = +-0.5389744225 (|x|/2 solves
# 1.5 / (1 + h)^2 = 1 / cosh(h)^2); the error is 0.0045 at the break |x| = 3.4, 0.0029 at
# |x| = 5.8 and tends to 0.00015 as |x| -> infinity.
FAST_SIGMOID_MAX_ABS_ERROR = 0.02763646529890343
FAST_SIGMOID_ARGMAX = 0.5389744225043179

__all__ = [
    "ELU",
    "FAST_SIGMOID_ARGMAX",
    "FAST_SIGMOID_MAX_ABS_ERROR",
    "SELU",
    "SELU_ALPHA",
    "SELU_SCALE",
    "FastSigmoid",
    "LeakyReLU",
    "PReLU",
    "RReLU",
    "ReLU",
    "ReLU6",
    "Sigmoid",
    "Tanh",
    "elu",
    "fast_sigmoid",
    "leaky_relu",
    "prelu",
    "relu",
    "relu6",
    "rrelu",
    "selu",
    "sigmoid",
    "tanh",
]


def _x(x: Any, floating: bool = True) -> torch.Tensor:
    return check_tensor("x", x, floating=floating)


def _slopes(lower: float, upper: float) -> tuple[float, float]:
    lower, upper = check_real("lower", lower), check_real("upper", upper)
    if lower > upper:
        raise InvalidArgumentError(f"lower must be <= upper, got lower={lower}, upper={upper}")
    return lower, upper


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + exp(-x))``, squashes into (0, 1)."""
    return torch.sigmoid(_x(x))


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh x = 2 sigmoid(2x) - 1``, squashes into (-1, 1)."""
    return torch.tanh(_x(x))


def relu(x: torch.Tensor) -> torch.Tensor:
    """``max(0, x)``."""
    return F.relu(_x(x, floating=False))


def relu6(x: torch.Tensor) -> torch.Tensor:
    """``min(max(0, x), 6)``."""
    return F.relu6(_x(x, floating=False))


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """``max(0, x) + a min(0, x)`` with a fixed finite slope ``a`` (torch's default 0.01; the
    notes use 0.1)."""
    return F.leaky_relu(_x(x), check_real("negative_slope", negative_slope))


def prelu(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``max(0, x) + a min(0, x)`` with a learned slope ``a`` (``PReLU`` initialises it at 0.25),
    one per channel (dimension 1, ``weight`` of shape (C,)) or shared (``weight`` of shape (1,))."""
    x, weight = _x(x), check_tensor("weight", weight, floating=True)
    channels = x.shape[1] if x.dim() >= 2 else 1
    if weight.dim() > 1 or weight.numel() not in (1, channels):
        raise InvalidArgumentError(
            f"weight must hold 1 or {channels} slopes (one per channel of x), "
            f"got shape {tuple(weight.shape)}"
        )
    return F.prelu(x, weight)


def rrelu(
    x: torch.Tensor, lower: float = 1 / 8, upper: float = 1 / 3, training: bool = False
) -> torch.Tensor:
    """``max(0, x) + a min(0, x)`` with ``a ~ U(lower, upper)`` per element in training and
    ``a = (lower + upper) / 2`` in evaluation; finite ``lower <= upper``."""
    lower, upper = _slopes(lower, upper)
    return F.rrelu(_x(x), lower, upper, check_flag("training", training))


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``x`` for ``x > 0``, else ``alpha (exp(x) - 1)``, with a finite ``alpha >= 0``."""
    return F.elu(_x(x), check_real("alpha", alpha, minimum=0))


def selu(x: torch.Tensor) -> torch.Tensor:
    """``scale * (x if x > 0 else alpha (exp(x) - 1))`` with :data:`SELU_ALPHA` and
    :data:`SELU_SCALE` (full precision; identical to ``torch.nn.functional.selu``)."""
    x = _x(x)
    return SELU_SCALE * torch.where(x > 0, x, SELU_ALPHA * torch.expm1(x))


def fast_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Piecewise approximation of the sigmoid of seed 002.

    With ``h = |x| / 2``, ``sigmoid(x) = (1 + tanh(h)) / 2`` for ``x >= 0`` and ``tanh h`` is
    replaced by ``1.5 h / (1 + h)`` for ``h < 1.7``, by ``0.9444 + 0.0459 (h - 1.7)`` for
    ``1.7 <= h < 2.9`` and by ``0.9997`` beyond; negative ``x`` use the odd symmetry
    ``fast_sigmoid(-x) = 1 - fast_sigmoid(x)``. Only a division, no exponential.

    Its maximum absolute error against the sigmoid is :data:`FAST_SIGMOID_MAX_ABS_ERROR`
    (0.02764, at ``|x| = 0.539``); it jumps by 0.0001 at ``|x| = 5.8`` (the notes' constant
    0.9997 against 0.99948 at the end of the linear piece).
    """
    x = _x(x)
    h = 0.5 * x.abs()
    z = torch.where(
        h < 1.7,
        1.5 * h / (1 + h),
        torch.where(h < 2.9, 0.9444 + 0.0459 * (h - 1.7), torch.full_like(h, 0.9997)),
    )
    return 0.5 * (torch.where(x < 0, -z, z) + 1)


class _Checked(nn.Module):
    """Mixin for ``torch.nn``'s activations: checks ``x`` before their own forward."""

    floating = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_x(x, self.floating))


class Sigmoid(_Checked, nn.Sigmoid):
    """``torch.nn.Sigmoid``, checking its input."""


class Tanh(_Checked, nn.Tanh):
    """``torch.nn.Tanh``, checking its input."""


class ReLU(_Checked, nn.ReLU):
    """``torch.nn.ReLU``, checking its input (integer tensors allowed) and ``inplace``."""

    floating = False

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(check_flag("inplace", inplace))


class ReLU6(_Checked, nn.ReLU6):
    """``torch.nn.ReLU6``, checking its input (integer tensors allowed) and ``inplace``."""

    floating = False

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(check_flag("inplace", inplace))


class LeakyReLU(_Checked, nn.LeakyReLU):
    """``torch.nn.LeakyReLU`` with a checked finite ``negative_slope``."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        slope = check_real("negative_slope", negative_slope)
        super().__init__(slope, check_flag("inplace", inplace))


class PReLU(_Checked, nn.PReLU):
    """``torch.nn.PReLU`` with checked ``num_parameters >= 1`` and a finite ``init``."""

    def __init__(
        self, num_parameters: int = 1, init: float = 0.25, device: Any = None, dtype: Any = None
    ) -> None:
        count = check_positive_int("num_parameters", num_parameters)
        super().__init__(count, check_real("init", init), device=device, dtype=dtype)


class RReLU(_Checked, nn.RReLU):
    """``torch.nn.RReLU`` with checked finite ``lower <= upper``."""

    def __init__(self, lower: float = 1 / 8, upper: float = 1 / 3, inplace: bool = False) -> None:
        super().__init__(*_slopes(lower, upper), check_flag("inplace", inplace))


class ELU(_Checked, nn.ELU):
    """``torch.nn.ELU`` with a checked finite ``alpha >= 0``."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(check_real("alpha", alpha, minimum=0), check_flag("inplace", inplace))


class SELU(nn.Module):
    """:func:`selu` as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return selu(x)


class FastSigmoid(nn.Module):
    """:func:`fast_sigmoid` as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_sigmoid(x)
