"""Small image backbones and batched augmentation, now in :mod:`constrained_pairs.vision`;
autoencoder pretraining is in :mod:`constrained_pairs.ncd.pretrain`. Kept for old imports."""

from constrained_pairs.ncd.pretrain import pretrain_autoencoder
from constrained_pairs.vision.augment import RandomAffine
from constrained_pairs.vision.backbones import ConvNet, mlp_backbone

__all__ = ["ConvNet", "RandomAffine", "mlp_backbone", "pretrain_autoencoder"]
