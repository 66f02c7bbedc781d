"""1-Lipschitz layers constrained by parametrizations (SPEC §2, "Deep backbones").

* :class:`GroupSort`: sorts groups of channels (MaxMin for groups of 2), a piecewise
  permutation, hence 1-Lipschitz and gradient-norm preserving (Anil, Lucas, Grosse 2019).
* :func:`orthogonal_linear`: ``nn.Linear`` whose weight is kept (semi-)orthogonal by a QR
  parametrization (:mod:`torch.nn.utils.parametrize`): σ_max = 1 exactly.
* :class:`LipschitzConv2d`: ``nn.Conv2d`` whose kernel is divided by its certified operator
  norm on the layer's input size (the Fourier bound of :func:`conv_fourier_bound`, exact SVDs
  of the symbols, differentiable), so the layer's bound is 1 after every optimizer step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from constrained_pairs._validation import check_positive_int
from constrained_pairs.backbones.bounds import conv_bound
from constrained_pairs.errors import InvalidArgumentError


class GroupSort(nn.Module):
    """Sort the entries of each group of ``group_size`` channels (dimension 1), descending.

    Groups are consecutive channels; ``group_size=2`` is MaxMin on the pairs (i, i + C/2),
    written with one ReLU (the cheapest form), maxima first. 1-Lipschitz in ℓ2: on each piece
    it is a permutation.

    Args:
        group_size: channels per group; the channel count must be a multiple of it.
    """

    def __init__(self, group_size: int = 2) -> None:
        super().__init__()
        self.group_size = check_positive_int("group_size", group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        if channels % self.group_size:
            raise InvalidArgumentError(
                f"GroupSort needs a channel count divisible by group_size={self.group_size}, "
                f"got {channels}"
            )
        if self.group_size == 2:
            # MaxMin on channel pairs (i, i + C/2): max(a, b) = b + relu(a − b), min = a − relu.
            a, b = x.chunk(2, dim=1)
            gap = torch.relu(a - b)
            return torch.cat([b + gap, a - gap], dim=1)
        grouped = x.unflatten(1, (channels // self.group_size, self.group_size))
        return grouped.sort(dim=2, descending=True).values.flatten(1, 2)

    def lipschitz_bound(self) -> float:
        return 1.0

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


class _QROrthogonal(nn.Module):
    """Parametrization V ↦ Q of the QR factorisation of V (or Vᵀ), signs fixed by diag R:
    orthonormal rows (wide weights) or columns (tall ones), so every singular value is 1.
    A QR costs a fraction of torch's Householder or matrix-exponential maps."""

    def forward(self, free: torch.Tensor) -> torch.Tensor:
        wide = free.shape[0] <= free.shape[1]
        q, r = torch.linalg.qr(free.mT if wide else free)
        q = q * torch.sgn(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
        return q.mT if wide else q

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return weight


def orthogonal_linear(
    in_features: int, out_features: int, *, bias: bool = True, device: Any = None, dtype: Any = None
) -> nn.Linear:
    """An ``nn.Linear`` whose weight is kept (semi-)orthogonal (orthonormal rows or columns,
    σ_max = 1 exactly) by a QR parametrization; initialised to a random orthogonal matrix."""
    layer = nn.Linear(in_features, out_features, bias=bias, device=device, dtype=dtype)
    with torch.no_grad():
        nn.init.orthogonal_(layer.weight)
    parametrize.register_parametrization(layer, "weight", _QROrthogonal())
    return layer


class _NormalizedKernel(nn.Module):
    """Parametrization K ↦ K / bound(K): the conv's certified norm on its input size is 1."""

    def __init__(self, conv: nn.Conv2d, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.geometry = {
            k: getattr(conv, k)
            for k in ("stride", "padding", "dilation", "groups", "padding_mode", "kernel_size")
        }
        self.input_size = input_size

    def forward(self, kernel: torch.Tensor) -> torch.Tensor:
        geometry = _Geometry(**self.geometry)
        bound = conv_bound(geometry, self.input_size, weight=kernel)  # type: ignore[arg-type]
        return kernel / bound.clamp_min(torch.finfo(kernel.dtype).tiny)


class _Geometry:
    """The attributes :func:`conv_bound` reads from a convolution."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)


class LipschitzConv2d(nn.Conv2d):
    """A 2-d convolution whose certified ℓ2 operator norm is 1 on inputs of ``input_size``.

    The kernel is parametrized as V / bound(V) with bound the Fourier bound on the padded
    grid (SPEC §2): the constraint holds by construction after any optimizer step.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, bias: as ``nn.Conv2d``.
        input_size: the spatial size (H, W) of the layer's inputs.
        device, dtype: of the parameters.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        input_size: Sequence[int] = (28, 28),
        *,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        kernel_size = check_positive_int("kernel_size", kernel_size)
        padding = kernel_size // 2 if padding is None else padding
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            bias=bias,
            device=device,
            dtype=dtype,
        )
        size = tuple(int(s) for s in input_size)
        if len(size) != 2 or min(size) < 1:
            raise InvalidArgumentError(f"input_size must be (H, W) >= 1, got {input_size!r}")
        self.input_size = size
        parametrize.register_parametrization(self, "weight", _NormalizedKernel(self, size))

    def lipschitz_bound(self) -> float:
        """The certified bound of the current (normalised) kernel, computed in float64."""
        with torch.no_grad():
            return float(conv_bound(self, self.input_size, weight=self.weight.double()))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", input_size={self.input_size}"


__all__ = ["GroupSort", "LipschitzConv2d", "orthogonal_linear"]
