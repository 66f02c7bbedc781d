"""The stage-2 loss terms of residual novel class discovery (SPEC §5), as reusable functions.

Shapes: ``N`` points, ``K`` clusters (``n_novel``), ``d`` reduced-feature dimensions, ``C``
known classes. Every function is differentiable in its floating inputs and dtype/device
agnostic (float64 for gradient checks).
"""

from __future__ import annotations

import torch

from constrained_pairs._validation import check_positive_int
from constrained_pairs.errors import InvalidArgumentError

__all__ = [
    "cluster_loss",
    "distill_loss",
    "pair_bce",
    "pair_targets",
    "pairwise_topk_loss",
    "student_t_assignment",
    "target_distribution",
    "topk_neighbors",
]


def _check_matrix(name: str, value: torch.Tensor) -> None:
    if not isinstance(value, torch.Tensor) or value.dim() != 2:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise InvalidArgumentError(f"{name} must be a 2-D tensor, got {shape}")


def _check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    _check_matrix(name_a, a)
    _check_matrix(name_b, b)
    if a.shape != b.shape:
        raise InvalidArgumentError(
            f"{name_a} and {name_b} must have the same shape, "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def student_t_assignment(
    z: torch.Tensor, centers: torch.Tensor, alpha: float = 1.0, sigma: float = 1.0
) -> torch.Tensor:
    """Soft assignment of points to centres with a Student-t kernel (SPEC §5).

    ``q_ik ∝ (1 + ||z_i - mu_k||^2 / sigma^2)^(-(alpha + 1) / 2)``, normalised over k.

    Args:
        z: reduced features c̃(x), (N, d).
        centers: cluster centres mu, (K, d).
        alpha: degrees of freedom, > 0.
        sigma: kernel scale, > 0.

    Returns:
        q, (N, K), rows on the probability simplex.
    """
    _check_matrix("z", z)
    _check_matrix("centers", centers)
    if z.shape[1] != centers.shape[1]:
        raise InvalidArgumentError(
            f"z and centers must have the same feature size, got {z.shape[1]} and "
            f"{centers.shape[1]}"
        )
    if alpha <= 0 or sigma <= 0:
        raise InvalidArgumentError(f"alpha and sigma must be > 0, got {alpha} and {sigma}")
    # Explicit differences (not cdist): the gradient stays finite when z_i sits on a centre.
    sq_dist = (z.unsqueeze(1) - centers.unsqueeze(0)).pow(2).sum(-1)
    # Normalising in log space keeps far-away points (all kernels ~ 0) well defined.
    return torch.softmax(-(alpha + 1.0) / 2.0 * torch.log1p(sq_dist / sigma**2), dim=1)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """Auxiliary target t_ik = (q_ik^2 / f_k) / sum_j (q_ij^2 / f_j), f_k = sum_i q_ik.

    Sharpens each row of ``q`` and divides by the cluster frequency f so large clusters do not
    absorb the others (SPEC §5). Gradients flow through; detach the result to use it as a fixed
    target.
    """
    _check_matrix("q", q)
    weight = q.pow(2) / q.sum(dim=0, keepdim=True)
    return weight / weight.sum(dim=1, keepdim=True)


def cluster_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_cluster = 1/N sum_i KL(t_i || q_i) = 1/N sum_ik t_ik log(t_ik / q_ik)  (SPEC §5).

    Args:
        q: soft assignments, (N, K).
        target: target distribution t (usually detached), (N, K).
    """
    _check_same_shape("q", q, "target", target)
    log_q = torch.log(q.clamp_min(torch.finfo(q.dtype).tiny))
    return (torch.xlogy(target, target) - target * log_q).sum(dim=1).mean()


def distill_loss(logits: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """L_distill = -1/N sum_i sum_y p̂(y|x_i) log p(y|x_i)  (SPEC §5).

    Args:
        logits: the current labelled head's logits, (N, C); p = softmax(logits).
        teacher_probs: p̂ from the frozen stage-1 model, (N, C), rows on the simplex.
    """
    _check_same_shape("logits", logits, "teacher_probs", teacher_probs)
    return -(teacher_probs * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


def pairwise_topk_loss(
    q: torch.Tensor, adjacency: torch.Tensor, *, pos_weight: float = 1.0
) -> torch.Tensor:
    """L_pair = BCE(s_ij, A_ij) averaged over the ordered pairs i != j  (SPEC §5).

    ``s_ij = q_i^T q_j`` is the probability that x_i and x_j fall in the same cluster and
    ``A_ij = 1`` when x_j is among the top-k nearest neighbours of x_i (see
    :func:`topk_neighbors` and :func:`pair_targets`). s is clamped to [eps, 1 - eps]
    (eps = dtype resolution) so that the loss stays finite.

    Args:
        q: soft assignments, (N, K), N >= 2.
        adjacency: A, (N, N), bool or 0/1 floats (soft targets in [0, 1] also work).
        pos_weight: weight w of the positive term, ``-(w A log s + (1 - A) log(1 - s))``;
            1 is the plain BCE of SPEC §5. A sparse top-k graph (k much smaller than the cluster
            sizes) makes most same-cluster pairs negatives and the plain mean then favours
            uniform q; w = (#negatives / #positives) balances the two terms.
    """
    _check_matrix("q", q)
    _check_matrix("adjacency", adjacency)
    n = q.shape[0]
    if adjacency.shape != (n, n):
        raise InvalidArgumentError(
            f"adjacency must have shape ({n}, {n}) to match q, got {tuple(adjacency.shape)}"
        )
    if n < 2:
        raise InvalidArgumentError(f"pairwise_topk_loss needs at least 2 points, got {n}")
    bce = pair_bce(q @ q.T, adjacency, pos_weight)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=q.device)
    return bce[off_diagonal].mean()


def pair_bce(sim: torch.Tensor, target: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """Element-wise ``-(w A log s + (1 - A) log(1 - s))`` of L_pair, s clamped to [eps, 1 - eps].

    Args:
        sim: similarities s = q_i^T q_j, any shape.
        target: A of the same shape (bool or floats in [0, 1]).
        pos_weight: weight w of the positive term.
    """
    eps = torch.finfo(sim.dtype).eps
    sim = sim.clamp(eps, 1.0 - eps)
    target = target.to(sim.dtype)
    return -(pos_weight * target * torch.log(sim) + (1.0 - target) * torch.log1p(-sim))


def topk_neighbors(features: torch.Tensor, k: int, *, chunk_size: int = 2048) -> torch.Tensor:
    """Indices of the k nearest other points of every point (Euclidean), (N, k) int64.

    Computed by blocks of ``chunk_size`` rows so memory stays O(chunk_size * N).
    """
    _check_matrix("features", features)
    k = check_positive_int("k", k)
    n = features.shape[0]
    if k >= n:
        raise InvalidArgumentError(f"k must be smaller than the number of points {n}, got {k}")
    blocks = []
    for start in range(0, n, chunk_size):
        block = torch.cdist(features[start : start + chunk_size], features)
        rows = torch.arange(block.shape[0], device=features.device)
        block[rows, rows + start] = float("inf")  # a point is not its own neighbour
        blocks.append(block.topk(k, dim=1, largest=False).indices)
    return torch.cat(blocks)


def pair_targets(neighbors: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
    """Dense top-k adjacency A among the points ``index`` (all points when None), (B, B) bool.

    ``A[a, b]`` is True when point ``index[b]`` is one of the k nearest neighbours of
    ``index[a]``. On a uniformly drawn mini-batch, the mean of :func:`pairwise_topk_loss` over
    the batch's pairs is an unbiased estimate of the mean over all pairs.
    """
    _check_matrix("neighbors", neighbors)
    n = neighbors.shape[0]
    if index is None:
        index = torch.arange(n, device=neighbors.device)
    batch = index.shape[0]
    # Position of every point inside the batch (batch = "absent"), then one scatter: O(B k).
    position = torch.full((n,), batch, dtype=torch.long, device=neighbors.device)
    position[index] = torch.arange(batch, device=neighbors.device)
    adjacency = torch.zeros(batch, batch + 1, dtype=torch.bool, device=neighbors.device)
    adjacency.scatter_(1, position[neighbors[index]], True)
    return adjacency[:, :batch]
