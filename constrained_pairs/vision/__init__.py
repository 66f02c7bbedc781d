"""Shared vision helpers: small image backbones, batched augmentation, batched inference."""

from constrained_pairs.vision.augment import DigitAugment, RandomAffine, as_images
from constrained_pairs.vision.backbones import ConvNet, conv_block, mlp_backbone, small_cnn
from constrained_pairs.vision.batched import apply_batched, embed, module_device

__all__ = [
    "ConvNet",
    "DigitAugment",
    "RandomAffine",
    "apply_batched",
    "as_images",
    "conv_block",
    "embed",
    "mlp_backbone",
    "module_device",
    "small_cnn",
]
