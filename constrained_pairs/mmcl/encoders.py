"""The MMCL example's encoder; :func:`small_cnn` lives in :mod:`constrained_pairs.vision`."""

from constrained_pairs.vision.backbones import small_cnn

__all__ = ["small_cnn"]
