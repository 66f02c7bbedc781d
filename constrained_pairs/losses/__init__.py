"""Loss catalogue of the notes (SPEC §4, seeds 001 and 002).

Functional forms (``reduction="mean" | "sum" | "none"``) and their ``nn.Module`` forms:

* regression: :func:`mae`, :func:`mse`, :func:`rmse`, :func:`huber`;
* classification: :func:`bce`, :func:`cross_entropy`, :func:`focal_loss`,
  :func:`focal_loss_multiclass`;
* metric learning: :func:`contrastive_loss`, :func:`mine_triplets`, :func:`triplet_loss`,
  :func:`info_nce`;
* margin softmax heads, one class per kind on the base :class:`MarginHead`:
  :class:`SoftmaxHead`, :class:`NormFace`, :class:`LSoftmax`, :class:`SphereFace` (with
  :class:`LambdaSchedule` annealing), :class:`CosFace`, :class:`AMSoftmax`, :class:`ArcFace`;
  the factory :func:`MarginSoftmax` (``kind=...``), :func:`psi`, and their binary decision
  boundaries (:meth:`MarginHead.decision_boundary`, module :mod:`~.boundaries`).

Conventions (PyTorch's): tensors in, hyper-parameters checked where they are given (at
construction for the modules), ``reduction="mean" | "sum" | "none"``. One difference: the mean
over an empty batch (no sample, no mined pair or triplet) is 0 with a zero gradient, where
``torch`` returns NaN, so an empty batch adds nothing to training instead of poisoning it. Bad
input raises :class:`~constrained_pairs.errors.InvalidArgumentError` or
:class:`~constrained_pairs.errors.InvalidTypeError` naming the argument. Checks are O(1) (types,
shapes, hyper-parameters) except the few that read data, each documented where it is: label
ranges, probability targets, and the NaN check of the embeddings before triplet mining.
"""

from constrained_pairs.losses.boundaries import DecisionBoundary
from constrained_pairs.losses.classification import (
    bce,
    cross_entropy,
    focal_loss,
    focal_loss_multiclass,
)
from constrained_pairs.losses.heads import (
    AMSoftmax,
    ArcFace,
    CosFace,
    LambdaSchedule,
    LSoftmax,
    MarginHead,
    NormFace,
    SoftmaxHead,
    SphereFace,
    psi,
)
from constrained_pairs.losses.margin_softmax import HEADS, KINDS, MarginSoftmax
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
    "HEADS",
    "KINDS",
    "AMSoftmax",
    "ArcFace",
    "CosFace",
    "LSoftmax",
    "MarginHead",
    "NormFace",
    "SoftmaxHead",
    "SphereFace",
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
