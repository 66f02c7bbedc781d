"""A small CNN encoder for digit images (the backbone of the MMCL benchmark and example)."""

from __future__ import annotations

from torch import nn

from constrained_pairs._validation import check_positive_int


def small_cnn(side: int = 28, dim: int = 64, width: int = 32) -> nn.Sequential:
    """Two 3×3 conv blocks and a two-layer head, for (N, 1, side, side) images.

    28×28 inputs are pooled twice (to 7×7), 8×8 inputs once (to 4×4).

    Args:
        side: image side in pixels (8 for sklearn digits, 28 for MNIST).
        dim: embedding dimension.
        width: channels of the first conv layer (the second has twice as many).
    """
    side, dim, width = (check_positive_int(k, v) for k, v in
                        (("side", side), ("dim", dim), ("width", width)))
    pooled = side // 4 if side >= 16 else side // 2
    layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
    if side >= 16:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
               nn.Flatten(), nn.Linear(2 * width * pooled * pooled, 128), nn.ReLU(),
               nn.Linear(128, dim)]
    return nn.Sequential(*layers)
