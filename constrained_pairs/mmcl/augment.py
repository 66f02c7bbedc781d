"""Batched digit augmentations; :class:`DigitAugment` lives in :mod:`constrained_pairs.vision`."""

from constrained_pairs.vision.augment import DigitAugment

__all__ = ["DigitAugment"]
