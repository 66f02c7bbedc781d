"""Activation functions of seed 002 (SPEC §4): the sigmoid, tanh and ReLU families, SELU with its
exact constants, and the piecewise fast sigmoid approximation.

Where ``torch`` has the function it is used (thin documented forms below; the module classes
are ``torch.nn``'s own). SELU is written from its constants, and :func:`fast_sigmoid` is the
notes' approximation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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

# Module forms that torch already provides.
Sigmoid, Tanh, ReLU, ReLU6 = nn.Sigmoid, nn.Tanh, nn.ReLU, nn.ReLU6
LeakyReLU, PReLU, RReLU, ELU = nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + exp(-x))``, squashes into (0, 1)."""
    return torch.sigmoid(x)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh x = 2 sigmoid(2x) - 1``, squashes into (-1, 1)."""
    return torch.tanh(x)


def relu(x: torch.Tensor) -> torch.Tensor:
    """``max(0, x)``."""
    return F.relu(x)


def relu6(x: torch.Tensor) -> torch.Tensor:
    """``min(max(0, x), 6)``."""
    return F.relu6(x)


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """``max(0, x) + a min(0, x)`` with a fixed slope ``a`` (torch's default 0.01; the notes
    use 0.1)."""
    return F.leaky_relu(x, negative_slope)


def prelu(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``max(0, x) + a min(0, x)`` with a learned slope ``a`` (``PReLU`` initialises it at 0.25),
    one per channel (dimension 1) or shared."""
    return F.prelu(x, weight)


def rrelu(
    x: torch.Tensor, lower: float = 1 / 8, upper: float = 1 / 3, training: bool = False
) -> torch.Tensor:
    """``max(0, x) + a min(0, x)`` with ``a ~ U(lower, upper)`` per element in training and
    ``a = (lower + upper) / 2`` in evaluation."""
    return F.rrelu(x, lower, upper, training)


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``x`` for ``x > 0``, else ``alpha (exp(x) - 1)``."""
    return F.elu(x, alpha)


def selu(x: torch.Tensor) -> torch.Tensor:
    """``scale * (x if x > 0 else alpha (exp(x) - 1))`` with :data:`SELU_ALPHA` and
    :data:`SELU_SCALE` (full precision; identical to ``torch.nn.functional.selu``)."""
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
    h = 0.5 * x.abs()
    z = torch.where(
        h < 1.7,
        1.5 * h / (1 + h),
        torch.where(h < 2.9, 0.9444 + 0.0459 * (h - 1.7), torch.full_like(h, 0.9997)),
    )
    return 0.5 * (torch.where(x < 0, -z, z) + 1)


class SELU(nn.Module):
    """:func:`selu` as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return selu(x)


class FastSigmoid(nn.Module):
    """:func:`fast_sigmoid` as a module."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_sigmoid(x)
