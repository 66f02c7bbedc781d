"""Batched digit augmentations in torch: random shifts, crops (zoom), small rotations and noise."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from constrained_pairs.errors import InvalidArgumentError


@dataclass
class DigitAugment:
    """Random view of a batch of digit images, for sklearn digits (8×8) and MNIST (28×28).

    Every image gets its own random affine map (rotation, zoom into a crop, shift), applied by
    bilinear resampling, then Gaussian pixel noise; values are clipped to [0, 1].

    Args:
        max_shift: largest shift as a fraction of the image side (0.125 = 1 pixel of 8×8).
        max_rotation: largest rotation in degrees.
        min_crop: smallest crop side, as a fraction of the image side (zoomed back to full size).
        noise: standard deviation of the added Gaussian noise.

    Call with a batch (N, 1, H, W) or flat (N, H·W) with square images; returns the same shape.
    """

    max_shift: float = 0.125
    max_rotation: float = 15.0
    min_crop: float = 0.8
    noise: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.min_crop <= 1:
            raise InvalidArgumentError(f"min_crop must be in (0, 1], got {self.min_crop}")
        for name in ("max_shift", "max_rotation", "noise"):
            if not getattr(self, name) >= 0:
                raise InvalidArgumentError(f"{name} must be >= 0, got {getattr(self, name)}")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        images = _as_images(x)
        n, dtype, device = images.shape[0], images.dtype, images.device

        def uniform(low: float, high: float) -> torch.Tensor:
            u = torch.rand(n, generator=generator, device=device, dtype=dtype)
            return low + (high - low) * u

        angle = uniform(-self.max_rotation, self.max_rotation) * (math.pi / 180)
        crop = uniform(self.min_crop, 1.0)
        # affine_grid maps output to input coordinates in [-1, 1]: a crop of side s is a scale s.
        shift = 2 * self.max_shift
        tx, ty = uniform(-shift, shift), uniform(-shift, shift)
        cos, sin = torch.cos(angle) * crop, torch.sin(angle) * crop
        theta = torch.stack(
            [torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1
        )
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
        if self.noise:
            out = out + self.noise * torch.randn(out.shape, generator=generator, device=device,
                                                 dtype=dtype)
        return out.clamp(0, 1).reshape(x.shape)


def _as_images(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise InvalidArgumentError("augment expects a floating torch.Tensor batch")
    if x.dim() == 4:
        return x
    if x.dim() == 2:
        side = math.isqrt(x.shape[1])
        if side * side == x.shape[1]:
            return x.reshape(-1, 1, side, side)
    raise InvalidArgumentError(
        f"augment expects images (N, C, H, W) or flat square images (N, H*W), got "
        f"{tuple(x.shape)}"
    )
