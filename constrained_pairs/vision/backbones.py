"""Small image backbones built from one conv block and one MLP head (SPEC §3, §5 benchmarks)."""

from __future__ import annotations

import torch
from torch import nn

from constrained_pairs._validation import check_positive_int

__all__ = ["ConvNet", "conv_block", "mlp_backbone", "small_cnn"]


def conv_block(
    in_channels: int,
    out_channels: int,
    *,
    batch_norm: bool = False,
    pool: bool = True,
    ceil_mode: bool = False,
) -> list[nn.Module]:
    """3×3 conv (no bias before batch norm) [-> BatchNorm] -> ReLU [-> 2×2 max-pool], as layers."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU())
    if pool:
        layers.append(nn.MaxPool2d(2, ceil_mode=ceil_mode))
    return layers


def _mlp_layers(in_dim: int, feat_dim: int, hidden: int) -> list[nn.Module]:
    return [nn.Flatten(), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, feat_dim)]


def mlp_backbone(in_dim: int, feat_dim: int = 64, hidden: int = 512) -> nn.Sequential:
    """Flatten -> Linear(in_dim, hidden) -> ReLU -> Linear(hidden, feat_dim)."""
    in_dim, feat_dim, hidden = (
        check_positive_int(name, value)
        for name, value in (("in_dim", in_dim), ("feat_dim", feat_dim), ("hidden", hidden))
    )
    return nn.Sequential(*_mlp_layers(in_dim, feat_dim, hidden))


def small_cnn(side: int = 28, dim: int = 64, width: int = 32) -> nn.Sequential:
    """Two 3×3 conv blocks and a two-layer MLP head, for (N, 1, side, side) images.

    28×28 inputs are pooled twice (to 7×7), 8×8 inputs once (to 4×4); the head is
    :func:`mlp_backbone` with 128 hidden units.

    Args:
        side: image side in pixels (8 for sklearn digits, 28 for MNIST).
        dim: embedding dimension.
        width: channels of the first conv layer (the second has twice as many).
    """
    side, dim, width = (
        check_positive_int(k, v) for k, v in (("side", side), ("dim", dim), ("width", width))
    )
    twice = side >= 16
    pooled = side // 4 if twice else side // 2
    return nn.Sequential(
        *conv_block(1, width, pool=twice),
        *conv_block(width, 2 * width),
        *_mlp_layers(2 * width * pooled * pooled, dim, 128),
    )


class ConvNet(nn.Module):
    """Conv-BN-ReLU-maxpool blocks, global average pooling and a linear layer to ``feat_dim``.

    Maps images (B, in_channels, H, W) to features (B, feat_dim); any H, W >= 1 works (8x8
    digits, 28x28 MNIST). The output is the raw linear layer, so b(x) may take any sign.

    Args:
        feat_dim: size of the output feature.
        channels: output channels of the conv blocks.
        in_channels: channels of the input images.
    """

    def __init__(
        self, feat_dim: int = 128, channels: tuple[int, ...] = (32, 64, 128), in_channels: int = 1
    ) -> None:
        super().__init__()
        feat_dim = check_positive_int("feat_dim", feat_dim)
        layers: list[nn.Module] = []
        previous = check_positive_int("in_channels", in_channels)
        for width in channels:
            width = check_positive_int("channels", width)
            layers += conv_block(previous, width, batch_norm=True, ceil_mode=True)
            previous = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out = nn.Linear(previous, feat_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))
