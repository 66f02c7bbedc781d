"""Backbones φ for g = θ₁ φ(x) + θ₂ a + b (SPEC §2, "Deep backbones").

:class:`LipschitzMLP` and :class:`LipschitzConvNet` are certified 1-Lipschitz by construction
(orthogonal linear layers, normalised convolutions, GroupSort, 2×2 max pooling, each with bound
≤ 1); :class:`FreeConvNet` is the same topology unconstrained (ReLU), the free baseline. All accept
flat inputs (n, Π in_shape) as well as shaped ones (n, *in_shape).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from constrained_pairs._validation import check_positive_int
from constrained_pairs.backbones.bounds import lipschitz_bound
from constrained_pairs.backbones.layers import GroupSort, LipschitzConv2d, orthogonal_linear
from constrained_pairs.errors import InvalidArgumentError


def _sizes(name: str, values: Sequence[int], group_size: int) -> tuple[int, ...]:
    sizes = tuple(check_positive_int(name, v) for v in values)
    if any(v % group_size for v in sizes):
        raise InvalidArgumentError(
            f"{name} must be multiples of group_size={group_size}, got {sizes}"
        )
    return sizes


def _in_shape(in_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in in_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InvalidArgumentError(f"in_shape must be (channels, height, width), got {in_shape!r}")
    return shape  # type: ignore[return-value]


class _Backbone(nn.Module):
    """Shared plumbing: ``layers`` applied to inputs reshaped to ``in_shape``."""

    in_shape: tuple[int, ...]
    layers: nn.Sequential

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and len(self.in_shape) > 1:
            x = x.reshape(x.shape[0], *self.in_shape)
        return self.layers(x)

    def lipschitz_bound(self) -> float:
        """Certified ℓ2 Lipschitz bound of the network with its current weights (float64).

        Cached until a parameter changes (in-place updates bump a tensor's version counter;
        moving or reloading the module replaces or bumps the tensors)."""
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters())
        cached = getattr(self, "_bound_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, lipschitz_bound(self.layers, self.in_shape))
            self._bound_cache = cached
        return cached[1]


class LipschitzMLP(_Backbone):
    """Orthogonal linear layers with GroupSort between them: certified 1-Lipschitz.

    Args:
        in_features: size of the (flattened) input.
        out_features: size of the output features φ(x).
        hidden: widths of the hidden layers (multiples of ``group_size``).
        group_size: GroupSort group (2 = MaxMin).
        device, dtype: of the parameters.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: Sequence[int] = (256, 256),
        *,
        group_size: int = 2,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        group_size = check_positive_int("group_size", group_size)
        widths = (
            check_positive_int("in_features", in_features),
            *_sizes("hidden", hidden, group_size),
        )
        layers: list[nn.Module] = [nn.Flatten()]
        for previous, width in zip(widths[:-1], widths[1:]):
            layers += [
                orthogonal_linear(previous, width, device=device, dtype=dtype),
                GroupSort(group_size),
            ]
        out = check_positive_int("out_features", out_features)
        layers.append(orthogonal_linear(widths[-1], out, device=device, dtype=dtype))
        self.in_shape, self.out_features = (widths[0],), out
        self.layers = nn.Sequential(*layers)


def _conv_trunk(
    in_shape: tuple[int, int, int],
    channels: tuple[int, ...],
    kernel_size: int,
    make_conv: Any,
    make_activation: Any,
) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    previous, height, width = in_shape
    for c in channels:
        if min(height, width) < 2:
            raise InvalidArgumentError(
                f"in_shape {in_shape} is too small for {len(channels)} 2x2 poolings"
            )
        layers += [make_conv(previous, c, (height, width)), make_activation(), nn.MaxPool2d(2)]
        previous, height, width = c, height // 2, width // 2
    return layers, previous * height * width


class LipschitzConvNet(_Backbone):
    """Normalised convolutions, GroupSort and 2×2 max pooling, then an orthogonal MLP head.

    conv(k×k) → GroupSort → maxpool 2 per entry of ``channels``, flatten, orthogonal linear to
    ``hidden``, GroupSort, orthogonal linear to ``out_features``. Every layer's certified bound
    is ≤ 1 (SPEC §2), so :meth:`lipschitz_bound` ≤ 1 (up to float rounding).

    Args:
        in_shape: (channels, height, width) of one input, e.g. (1, 28, 14).
        out_features: size of the output features φ(x).
        channels: output channels of the conv blocks (multiples of ``group_size``).
        hidden: width of the hidden linear layer.
        kernel_size: odd conv kernel size (padding keeps the spatial size).
        group_size: GroupSort group (2 = MaxMin).
        device, dtype: of the parameters.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        channels: Sequence[int] = (16, 32),
        *,
        hidden: int = 128,
        kernel_size: int = 3,
        group_size: int = 2,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        shape = _in_shape(in_shape)
        group_size = check_positive_int("group_size", group_size)
        (hidden,) = _sizes("hidden", (hidden,), group_size)
        out = check_positive_int("out_features", out_features)

        def conv(c_in: int, c_out: int, size: tuple[int, int]) -> nn.Module:
            return LipschitzConv2d(c_in, c_out, kernel_size, size, device=device, dtype=dtype)

        layers, flat = _conv_trunk(
            shape,
            _sizes("channels", channels, group_size),
            kernel_size,
            conv,
            lambda: GroupSort(group_size),
        )
        layers += [
            nn.Flatten(),
            orthogonal_linear(flat, hidden, device=device, dtype=dtype),
            GroupSort(group_size),
            orthogonal_linear(hidden, out, device=device, dtype=dtype),
        ]
        self.in_shape, self.out_features = shape, out
        self.layers = nn.Sequential(*layers)


class FreeConvNet(_Backbone):
    """The free (unconstrained) counterpart of :class:`LipschitzConvNet`: conv → ReLU → maxpool
    blocks, flatten, linear → ReLU → linear. Its :meth:`lipschitz_bound` is finite but grows
    with the weights; nothing constrains it.

    Args: as :class:`LipschitzConvNet` (without ``group_size``).
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        out_features: int,
        channels: Sequence[int] = (16, 32),
        *,
        hidden: int = 128,
        kernel_size: int = 3,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        shape = _in_shape(in_shape)
        hidden = check_positive_int("hidden", hidden)
        out = check_positive_int("out_features", out_features)
        kernel_size = check_positive_int("kernel_size", kernel_size)

        def conv(c_in: int, c_out: int, size: tuple[int, int]) -> nn.Module:
            pad = kernel_size // 2
            return nn.Conv2d(c_in, c_out, kernel_size, padding=pad, device=device, dtype=dtype)

        layers, flat = _conv_trunk(
            shape, _sizes("channels", channels, 1), kernel_size, conv, nn.ReLU
        )
        layers += [
            nn.Flatten(),
            nn.Linear(flat, hidden, device=device, dtype=dtype),
            nn.ReLU(),
            nn.Linear(hidden, out, device=device, dtype=dtype),
        ]
        self.in_shape, self.out_features = shape, out
        self.layers = nn.Sequential(*layers)


def num_parameters(module: nn.Module) -> int:
    """Trainable parameter count (parametrized weights counted by their free parameters)."""
    return sum(math.prod(p.shape) for p in module.parameters() if p.requires_grad)


__all__ = ["FreeConvNet", "LipschitzConvNet", "LipschitzMLP", "num_parameters"]
