"""Batched random affine augmentation of images, in torch (one transform per image)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from constrained_pairs._validation import check_nonnegative
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["DigitAugment", "RandomAffine", "as_images"]


class RandomAffine:
    """Random small affine distortions of a batch of images, then optional pixel noise.

    Every image gets its own sampling map ``x_in = s R(θ) S D x_out + t``: a rotation θ, a
    scale s, a translation t and, optionally, a horizontal shear S and an aspect-ratio change D
    (handwriting varies in slant and width); the images are resampled bilinearly with
    :func:`torch.nn.functional.affine_grid` (zero padding), on their own device and dtype.
    The scale is drawn either as a zoom ``s = 1 / (1 + U(-scale, scale))`` or, when ``crop`` is
    given, as a crop ``s = U(crop, 1)`` (a zoom into a window of that relative side). Draws per
    image, in this order: θ, s, t_x, t_y, then the aspect and shear (only when one is > 0), then
    the noise (only when > 0). With the default ``shear = aspect = noise = 0`` the draws are
    those of a plain rotation/scale/shift transform.

    Accepts images (B, C, H, W) or flat square one-channel images (B, H·W); returns the input's
    shape.

    Args:
        shift: largest translation as a fraction of the image side (0.125 = 1 pixel of 8).
        degrees: largest rotation in degrees.
        scale: largest relative change of scale (the zoom parametrisation), in [0, 1).
        generator: optional torch generator on the images' device for reproducible draws
            (a generator passed to the call takes precedence).
        shear: largest horizontal shear factor (x += shear * y).
        aspect: largest log change of the aspect ratio (width x e^a, height x e^-a).
        noise: standard deviation of additive Gaussian noise, in pixel units.
        crop: smallest crop side in (0, 1]; replaces the zoom draw (``scale`` must then be 0).
        clip: optional ``(low, high)`` range the output is clamped to.
    """

    def __init__(
        self,
        shift: float = 0.125,
        degrees: float = 10.0,
        scale: float = 0.1,
        generator: torch.Generator | None = None,
        *,
        shear: float = 0.0,
        aspect: float = 0.0,
        noise: float = 0.0,
        crop: float | None = None,
        clip: tuple[float, float] | None = None,
    ) -> None:
        self.shift = check_nonnegative("shift", shift)
        self.degrees = check_nonnegative("degrees", degrees)
        self.scale = check_nonnegative("scale", scale)
        if self.scale >= 1:
            raise InvalidArgumentError(f"scale must be < 1, got {scale}")
        self.shear = check_nonnegative("shear", shear)
        self.aspect = check_nonnegative("aspect", aspect)
        self.noise = check_nonnegative("noise", noise)
        if crop is not None:
            crop = check_nonnegative("crop", crop)
            if not 0 < crop <= 1:
                raise InvalidArgumentError(f"crop must be in (0, 1], got {crop}")
            if self.scale:
                raise InvalidArgumentError("scale must be 0 when crop is given (one scale draw)")
        self.crop = crop
        if clip is not None:
            low, high = (float(v) for v in clip)
            if not low < high:
                raise InvalidArgumentError(f"clip must be a range (low, high), got {clip}")
            clip = (low, high)
        self.clip = clip
        self.generator = generator

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        images = as_images(x)
        gen = self.generator if generator is None else generator
        n, dtype, device = images.shape[0], images.dtype, images.device

        def uniform(bound: float) -> torch.Tensor:
            draw = torch.rand(n, generator=gen, device=device, dtype=dtype)
            return (2 * draw - 1) * bound

        angle = uniform(math.radians(self.degrees))
        if self.crop is None:
            zoom = 1 + uniform(self.scale)
            cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        else:
            side = self.crop + (1 - self.crop) * torch.rand(
                n, generator=gen, device=device, dtype=dtype
            )
            cos, sin = torch.cos(angle) * side, torch.sin(angle) * side
        # affine_grid works in [-1, 1] coordinates: a shift of s sides is 2 s.
        tx, ty = uniform(2 * self.shift), uniform(2 * self.shift)
        linear = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], dim=1)
        if self.shear > 0 or self.aspect > 0:
            # Sampling map R S D: D = diag(e^a, e^-a) stretches, S = [[1, h], [0, 1]] shears.
            stretch = torch.exp(uniform(self.aspect))
            shear = uniform(self.shear)
            ones, zeros = torch.ones_like(shear), torch.zeros_like(shear)
            skew = torch.stack(
                [
                    torch.stack([stretch, shear / stretch], 1),
                    torch.stack([zeros, ones / stretch], 1),
                ],
                dim=1,
            )
            linear = linear @ skew
        theta = torch.cat([linear, torch.stack([tx, ty], 1).unsqueeze(2)], dim=2)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)
        if self.noise > 0:
            draw = torch.randn(out.shape, generator=gen, device=device, dtype=dtype)
            out = out + self.noise * draw
        if self.clip is not None:
            out = out.clamp(*self.clip)
        return out.reshape(x.shape)


def as_images(x: torch.Tensor) -> torch.Tensor:
    """View a floating batch as images (B, C, H, W); flat square rows become (B, 1, H, W)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise InvalidTypeError("augment expects a floating torch.Tensor batch")
    if x.dim() == 4:
        return x
    if x.dim() == 2:
        side = math.isqrt(x.shape[1])
        if side * side == x.shape[1]:
            return x.reshape(-1, 1, side, side)
    raise InvalidArgumentError(
        f"images must have shape (B, C, H, W), or be flat square images (B, H*W), got "
        f"{tuple(x.shape)}"
    )


class DigitAugment(RandomAffine):
    """Random view of a batch of digit images, for sklearn digits (8×8) and MNIST (28×28).

    The :class:`RandomAffine` preset of contrastive pretraining: every image gets its own
    rotation, zoom into a crop and shift, applied by bilinear resampling, then Gaussian pixel
    noise; values are clipped to [0, 1].

    Args:
        max_shift: largest shift as a fraction of the image side (0.125 = 1 pixel of 8×8).
        max_rotation: largest rotation in degrees.
        min_crop: smallest crop side, as a fraction of the image side (zoomed back to full size).
        noise: standard deviation of the added Gaussian noise.

    Call with a batch (N, 1, H, W) or flat (N, H·W) with square images, and optionally a
    ``generator``; returns the same shape.
    """

    def __init__(
        self,
        max_shift: float = 0.125,
        max_rotation: float = 15.0,
        min_crop: float = 0.8,
        noise: float = 0.05,
    ) -> None:
        try:
            valid = 0 < float(min_crop) <= 1
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise InvalidArgumentError(f"min_crop must be in (0, 1], got {min_crop!r}")
        self.max_shift, self.max_rotation, self.min_crop = max_shift, max_rotation, min_crop
        super().__init__(
            shift=check_nonnegative("max_shift", max_shift),
            degrees=check_nonnegative("max_rotation", max_rotation),
            scale=0.0,
            noise=check_nonnegative("noise", noise),
            crop=min_crop,
            clip=(0.0, 1.0),
        )

    def __repr__(self) -> str:
        return (
            f"DigitAugment(max_shift={self.max_shift}, max_rotation={self.max_rotation}, "
            f"min_crop={self.min_crop}, noise={self.noise})"
        )
