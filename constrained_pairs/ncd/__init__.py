"""Novel class discovery by residual training (SPEC §5, seed 004).

``ResidualNCD`` is the two-stage model; the loss terms are exported as functions so they can be
reused in other training loops.
"""

from constrained_pairs.ncd.losses import (
    cluster_loss,
    distill_loss,
    pair_targets,
    pairwise_topk_loss,
    student_t_assignment,
    target_distribution,
    topk_neighbors,
)
from constrained_pairs.ncd.model import NCDHistory, ResidualNCD

__all__ = [
    "NCDHistory",
    "ResidualNCD",
    "cluster_loss",
    "distill_loss",
    "pair_targets",
    "pairwise_topk_loss",
    "student_t_assignment",
    "target_distribution",
    "topk_neighbors",
]
