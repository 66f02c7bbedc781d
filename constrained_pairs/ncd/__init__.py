"""Novel class discovery by residual training (SPEC §5, seed 004).

``ResidualNCD`` is the two-stage model (:mod:`~constrained_pairs.ncd.model`), trained by
:mod:`~constrained_pairs.ncd.training` on the engine and started by
:mod:`~constrained_pairs.ncd.initialization`; the loss terms are exported as functions so they can
be reused in other training loops, and :mod:`~constrained_pairs.ncd.pretrain` pretrains a
backbone without labels.
"""

from constrained_pairs.ncd.losses import (
    cluster_loss,
    distill_loss,
    pair_bce,
    pair_targets,
    pairwise_topk_loss,
    student_t_assignment,
    target_distribution,
    topk_neighbors,
)
from constrained_pairs.ncd.model import NCDHistory, ResidualNCD
from constrained_pairs.ncd.pretrain import pretrain_autoencoder, pretrain_contrastive

__all__ = [
    "NCDHistory",
    "ResidualNCD",
    "cluster_loss",
    "distill_loss",
    "pair_bce",
    "pair_targets",
    "pairwise_topk_loss",
    "pretrain_autoencoder",
    "pretrain_contrastive",
    "student_t_assignment",
    "target_distribution",
    "topk_neighbors",
]
