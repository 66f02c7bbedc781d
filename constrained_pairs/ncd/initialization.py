"""The start of stage 2 (SPEC §5): the frozen teacher, the top-k graph of L_pair, the reduction
c -> c̃ (Fisher's discriminants of a k-means partition, or principal axes) and the centres
(k-means on c̃).

Features are computed with :func:`~constrained_pairs.vision.training.gather_apply`, so in a
distributed run every rank works on a slice of the unlabelled data and all ranks see the same
gathered features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from constrained_pairs.ncd.losses import topk_neighbors
from constrained_pairs.vision.training import gather_apply

if TYPE_CHECKING:
    from constrained_pairs.ncd.model import ResidualNCD

__all__ = ["REDUCTION_INITS", "discriminant_axes", "principal_axes", "start_novel"]

#: Initialisations of the reduction c -> c̃.
REDUCTION_INITS = ("discriminant", "pca")


@torch.no_grad()
def start_novel(
    model: ResidualNCD, x_u: torch.Tensor, restarts: int, seed: int, reduction_init: str
) -> torch.Tensor:
    """Freeze the teacher, build the top-k graph, initialise reduction and centres in place.

    Args:
        model: the stage-1 model.
        x_u: the unlabelled inputs.
        restarts: ``n_init`` of the scikit-learn k-means runs.
        seed: their ``random_state``.
        reduction_init: one of :data:`REDUCTION_INITS`.

    Returns:
        The (N_u, topk) neighbour indices of every unlabelled point in the teacher's basic
        feature space.
    """
    from sklearn.cluster import KMeans

    model.teacher["backbone"].load_state_dict(model.backbone.state_dict())
    model.teacher["head"].load_state_dict(model.head.state_dict())
    basic = gather_apply(model, x_u, model.teacher["backbone"])
    neighbors = topk_neighbors(basic, model.topk)

    combined = gather_apply(model, x_u, lambda xb: model.combine(model.backbone(xb)))
    mean = combined.mean(dim=0)
    if reduction_init == "pca":
        axes = principal_axes(combined - mean, model.n_novel)
    else:
        labels = KMeans(model.n_novel, n_init=restarts, random_state=seed).fit_predict(
            (combined - mean).double().cpu().numpy()
        )
        labels = torch.as_tensor(labels, dtype=torch.long, device=model.device)
        axes = discriminant_axes(combined - mean, labels, model.n_novel)
    if axes.shape[0] < model.n_novel:  # fewer samples or features than n_novel
        pad = torch.randn(
            model.n_novel - axes.shape[0], model.feat_dim, dtype=model.dtype, device=model.device
        )
        axes = torch.cat([axes, F.normalize(pad, dim=1)])
    reduced = (combined - mean) @ axes.T
    # Scale to unit variance per dimension on average, whatever the scale of b: sigma is
    # then the kernel width relative to the spread of the data (smaller = sharper q).
    scale = 1.0 / reduced.pow(2).mean().sqrt().clamp_min(torch.finfo(model.dtype).eps)
    model.reduction.weight.copy_(axes * scale)
    model.reduction.bias.copy_(-(mean @ axes.T) * scale)
    kmeans = KMeans(model.n_novel, n_init=restarts, random_state=seed)
    kmeans.fit((reduced * scale).double().cpu().numpy())
    model.centers.copy_(torch.as_tensor(kmeans.cluster_centers_, dtype=model.dtype))
    return neighbors


def principal_axes(centred: torch.Tensor, k: int) -> torch.Tensor:
    """The (up to) k principal axes of centred rows, (k, D) orthonormal."""
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return v[:k]


def discriminant_axes(
    centred: torch.Tensor, labels: torch.Tensor, k: int, shrinkage: float = 0.1
) -> torch.Tensor:
    """The (up to) k directions v maximising v^T S_t v / v^T S_w v, (k, D), v^T S_w v = 1.

    S_t is the covariance of the centred rows and S_w the within-cluster covariance of the
    partition ``labels``, shrunk towards its mean variance so that near-constant feature
    directions are not amplified. The first (clusters - 1) directions are Fisher's linear
    discriminants; the others keep the largest remaining total spread.
    """
    x = centred.double()
    onehot = F.one_hot(labels, int(labels.max()) + 1).double()
    means = (onehot.T @ x) / onehot.sum(0).clamp_min(1).unsqueeze(1)
    within = x - means[labels]
    s_w = within.T @ within / len(x)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    s_w = (1 - shrinkage) * s_w + shrinkage * s_w.diagonal().mean().clamp_min(1e-12) * eye
    # Whiten with the Cholesky factor of S_w: the generalised problem becomes symmetric.
    inv_chol = torch.linalg.inv(torch.linalg.cholesky(s_w))
    _, vectors = torch.linalg.eigh(inv_chol @ (x.T @ x / len(x)) @ inv_chol.T)
    # Each axis has unit (shrunk) within-cluster variance: clusters look round to the kernel.
    return (inv_chol.T @ vectors[:, -k:].flip(1)).T.to(centred.dtype)
