"""Margin softmax heads, one class per kind (SPEC §4, seed 001).

=============  =====================================  ==============================================
head           logit of class j != y                  target logit (class y)
=============  =====================================  ==============================================
SoftmaxHead    ``W_j x + b_j``                        same
NormFace       ``s cos theta_j``                      same
LSoftmax       ``||W_j|| ||x|| cos theta_j``          ``||W_y|| ||x|| psi(theta_y)``
SphereFace     ``||x|| cos theta_j``                  ``||x|| psi(theta_y)``
CosFace        ``s cos theta_j``                      ``s (cos theta_y - m)``
AMSoftmax      ``s cos theta_j``                      ``s (cos theta_y - m)``
ArcFace        ``s cos theta_j``                      ``s cos(theta_y + m)``, or
                                                      ``s (cos theta_y - m sin m)`` if
                                                      ``theta_y >= pi - m``
=============  =====================================  ==============================================

with ``psi(theta) = (-1)^k cos(m theta) - 2k`` on ``[k pi / m, (k + 1) pi / m]``. The margin only
enters the training loss; predictions use the plain logits (``logits(x)`` without labels). Every
head derives from :class:`MarginHead` and is defined by its hooks (see
:mod:`constrained_pairs.losses.heads.base`).
"""

from constrained_pairs.losses.heads.angular import LambdaSchedule, LSoftmax, SphereFace, psi
from constrained_pairs.losses.heads.base import MarginHead, SoftmaxHead
from constrained_pairs.losses.heads.cosine import AMSoftmax, ArcFace, CosFace, NormFace

__all__ = [
    "AMSoftmax",
    "ArcFace",
    "CosFace",
    "LSoftmax",
    "LambdaSchedule",
    "MarginHead",
    "NormFace",
    "SoftmaxHead",
    "SphereFace",
    "psi",
]
