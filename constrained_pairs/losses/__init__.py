"""Loss catalogue of the notes (SPEC §4, seeds 001 and 002).

Functional forms (``reduction="mean" | "sum" | "none"``) and their ``nn.Module`` forms:

* regression: :func:`mae`, :func:`mse`, :func:`rmse`, :func:`huber`;
* classification: :func:`bce`, :func:`cross_entropy`, :func:`focal_loss`,
  :func:`focal_loss_multiclass`;
* metric learning: :func:`contrastive_loss`, :func:`mine_triplets`, :func:`triplet_loss`,
  :func:`info_nce`;
* margin softmax heads: :class:`MarginSoftmax` (softmax, NormFace, L-Softmax, SphereFace,
  CosFace, AM-Softmax, ArcFace) with :func:`psi` and their binary decision boundaries.
"""

from constrained_pairs.losses.classification import (
    bce,
    cross_entropy,
    focal_loss,
    focal_loss_multiclass,
)
from constrained_pairs.losses.margin_softmax import (
    KINDS,
    DecisionBoundary,
    LambdaSchedule,
    MarginSoftmax,
    psi,
)
from constrained_pairs.losses.metric import (
    contrastive_loss,
    mine_triplets,
    pairwise_distances,
    triplet_loss,
)
from constrained_pairs.losses.modules import (
    BCELoss,
    ContrastiveLoss,
    CrossEntropyLoss,
    FocalLoss,
    HuberLoss,
    InfoNCELoss,
    MAELoss,
    MSELoss,
    MulticlassFocalLoss,
    RMSELoss,
    TripletLoss,
)
from constrained_pairs.losses.nce import info_nce
from constrained_pairs.losses.regression import huber, mae, mse, rmse

__all__ = [
    "KINDS",
    "BCELoss",
    "ContrastiveLoss",
    "CrossEntropyLoss",
    "DecisionBoundary",
    "FocalLoss",
    "HuberLoss",
    "InfoNCELoss",
    "LambdaSchedule",
    "MAELoss",
    "MSELoss",
    "MarginSoftmax",
    "MulticlassFocalLoss",
    "RMSELoss",
    "TripletLoss",
    "bce",
    "contrastive_loss",
    "cross_entropy",
    "focal_loss",
    "focal_loss_multiclass",
    "huber",
    "info_nce",
    "mae",
    "mine_triplets",
    "mse",
    "pairwise_distances",
    "psi",
    "rmse",
    "triplet_loss",
]
