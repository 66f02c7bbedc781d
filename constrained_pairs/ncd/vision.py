"""Small image backbones, batched augmentation and autoencoder pretraining (SPEC §5)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from constrained_pairs._validation import check_nonnegative, check_positive_int
from constrained_pairs.errors import InvalidArgumentError


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
            layers += [
                nn.Conv2d(previous, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            previous = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out = nn.Linear(previous, feat_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


class RandomAffine:
    """Random small affine distortions of a batch of images (B, C, H, W).

    Rotation, scaling and translation, optionally shear, aspect-ratio change (handwriting varies
    in slant and width) and additive Gaussian pixel noise. Vectorised with
    :func:`torch.nn.functional.affine_grid`, one transform per image, on the images' device and
    dtype. With the default ``shear = aspect = noise = 0`` the draws are those of a plain
    rotation/scale/shift transform.

    Args:
        shift: largest translation as a fraction of the image side (0.125 = 1 pixel of 8).
        degrees: largest rotation in degrees.
        scale: largest relative change of scale.
        shear: largest horizontal shear factor (x += shear * y).
        aspect: largest log change of the aspect ratio (width x e^a, height x e^-a).
        noise: standard deviation of additive Gaussian noise, in pixel units.
        generator: optional torch generator on the images' device for reproducible draws.
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
    ) -> None:
        self.shift = check_nonnegative("shift", shift)
        self.degrees = check_nonnegative("degrees", degrees)
        self.scale = check_nonnegative("scale", scale)
        if self.scale >= 1:
            raise InvalidArgumentError(f"scale must be < 1, got {scale}")
        self.shear = check_nonnegative("shear", shear)
        self.aspect = check_nonnegative("aspect", aspect)
        self.noise = check_nonnegative("noise", noise)
        self.generator = generator

    def _uniform(self, x: torch.Tensor, bound: float) -> torch.Tensor:
        draw = torch.rand(x.shape[0], generator=self.generator, device=x.device, dtype=x.dtype)
        return (2 * draw - 1) * bound

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise InvalidArgumentError(f"images must have shape (B, C, H, W), got {tuple(x.shape)}")
        angle = self._uniform(x, math.radians(self.degrees))
        zoom = 1 + self._uniform(x, self.scale)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        # affine_grid works in [-1, 1] coordinates: a shift of s sides is 2 s.
        tx, ty = self._uniform(x, 2 * self.shift), self._uniform(x, 2 * self.shift)
        linear = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], dim=1)
        if self.shear > 0 or self.aspect > 0:
            # Sampling map R S D: D = diag(e^a, e^-a) stretches, S = [[1, h], [0, 1]] shears.
            stretch = torch.exp(self._uniform(x, self.aspect))
            shear = self._uniform(x, self.shear)
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
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
        if self.noise > 0:
            draw = torch.randn(out.shape, generator=self.generator, device=x.device, dtype=x.dtype)
            out = out + self.noise * draw
        return out


def mlp_backbone(in_dim: int, feat_dim: int = 64, hidden: int = 512) -> nn.Sequential:
    """Flatten -> Linear(in_dim, hidden) -> ReLU -> Linear(hidden, feat_dim)."""
    in_dim, feat_dim, hidden = (
        check_positive_int(name, value)
        for name, value in (("in_dim", in_dim), ("feat_dim", feat_dim), ("hidden", hidden))
    )
    return nn.Sequential(
        nn.Flatten(), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, feat_dim)
    )


def pretrain_autoencoder(
    backbone: nn.Module,
    x: torch.Tensor,
    feat_dim: int,
    *,
    epochs: int = 30,
    augment: RandomAffine | None = None,
    hidden: int = 512,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
) -> nn.Module:
    """Pretrain ``backbone`` without labels as the encoder of a denoising autoencoder.

    A decoder ReLU -> Linear(feat_dim, hidden) -> ReLU -> Linear(hidden, D) maps the features
    of the (augmented) images back to the clean flattened images (squared error). Features
    learnt this way keep the neighbourhoods of the images, which cross-entropy on the known
    classes alone erases; NCD methods commonly pretrain on labelled and unlabelled data alike.

    Args:
        backbone: module mapping images to (B, feat_dim) features; trained in place.
        x: images (N, ...) on the backbone's device.
        feat_dim: size of the backbone's features.
        epochs, lr, batch_size: Adam training settings.
        augment: optional batch augmentation applied to the encoder's input.
        hidden: width of the decoder's hidden layer.
        seed: seed of the decoder's initialisation and of the batch order.

    Returns:
        the trained ``backbone`` (the decoder is discarded).
    """
    epochs = check_positive_int("epochs", epochs)
    generator = torch.Generator().manual_seed(seed)
    target = x.flatten(1)
    decoder = nn.Sequential(
        nn.ReLU(), nn.Linear(feat_dim, hidden), nn.ReLU(), nn.Linear(hidden, target.shape[1])
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in decoder:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
    decoder.to(device=x.device, dtype=x.dtype)
    optimizer = torch.optim.Adam([*backbone.parameters(), *decoder.parameters()], lr=lr)
    backbone.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=generator).to(x.device).split(batch_size):
            inputs = x[idx] if augment is None else augment(x[idx])
            loss = (decoder(backbone(inputs)) - target[idx]).pow(2).sum(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return backbone
