"""Stage-2 loss terms of SPEC §5 against hand-computed values, brute force and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import rel_entr
from sklearn.neighbors import NearestNeighbors

from constrained_pairs.ncd import (
    cluster_loss,
    distill_loss,
    pair_targets,
    pairwise_topk_loss,
    student_t_assignment,
    target_distribution,
    topk_neighbors,
)

F64 = torch.float64


def test_student_t_hand_computed():
    z = torch.tensor([[0.0, 0.0]], dtype=F64)
    centers = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=F64)
    # alpha = 1, sigma = 1: kernels (1 + 1)^-1 = 0.5 and (1 + 4)^-1 = 0.2.
    q = student_t_assignment(z, centers)
    torch.testing.assert_close(q, torch.tensor([[0.5 / 0.7, 0.2 / 0.7]], dtype=F64))
    # alpha = 3, sigma = 2: kernels (1 + 1/4)^-2 = 0.64 and (1 + 1)^-2 = 0.25.
    q = student_t_assignment(z, centers, alpha=3.0, sigma=2.0)
    torch.testing.assert_close(q, torch.tensor([[0.64 / 0.89, 0.25 / 0.89]], dtype=F64))


def test_student_t_far_points_and_rows_sum_to_one():
    z = torch.tensor([[1e30, 0.0], [0.0, 0.0]], dtype=F64)
    q = student_t_assignment(z, torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=F64))
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.sum(1), torch.ones(2, dtype=F64))


def test_target_distribution_hand_computed():
    q = torch.tensor([[0.5, 0.5], [0.8, 0.2]], dtype=F64)
    # f = (1.3, 0.7); row 1: (0.25/1.3, 0.25/0.7) -> (0.35, 0.65);
    # row 2: (0.64/1.3, 0.04/0.7) -> 0.448 / (0.448 + 0.052) = 0.896.
    expected = torch.tensor([[0.35, 0.65], [0.896, 0.104]], dtype=F64)
    torch.testing.assert_close(target_distribution(q), expected)


def test_cluster_loss_is_mean_kl():
    gen = torch.Generator().manual_seed(1)
    q = torch.rand(6, 4, generator=gen, dtype=F64).softmax(1)
    t = target_distribution(q)
    expected = rel_entr(t.numpy(), q.numpy()).sum(1).mean()
    assert cluster_loss(q, t).item() == pytest.approx(expected, rel=1e-12)
    # A target with zeros is fine (0 log 0 = 0).
    t0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64)
    q0 = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=F64)
    assert cluster_loss(q0, t0).item() == pytest.approx((np.log(2) - np.log(0.75)) / 2)


def test_distill_loss_hand_computed():
    logits = torch.tensor([[0.0, 0.0], [np.log(3.0), 0.0]], dtype=F64)  # p = (.5,.5), (.75,.25)
    teacher = torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=F64)
    expected = (np.log(2) - 0.5 * (np.log(0.75) + np.log(0.25))) / 2
    assert distill_loss(logits, teacher).item() == pytest.approx(expected)


def test_pairwise_loss_matches_double_loop():
    gen = torch.Generator().manual_seed(2)
    q = torch.rand(5, 3, generator=gen, dtype=F64).softmax(1)
    adjacency = torch.rand(5, 5, generator=gen) > 0.6
    total, count = 0.0, 0
    for i in range(5):
        for j in range(5):
            if i != j:
                s = float(q[i] @ q[j])
                a = float(adjacency[i, j])
                total += -(a * np.log(s) + (1 - a) * np.log(1 - s))
                count += 1
    assert pairwise_topk_loss(q, adjacency).item() == pytest.approx(total / count)


def test_topk_neighbors_match_sklearn_and_pair_targets():
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(40, 3, generator=gen, dtype=F64)
    neighbors = topk_neighbors(features, 4, chunk_size=7)
    reference = NearestNeighbors(n_neighbors=5).fit(features.numpy())
    expected = reference.kneighbors(features.numpy(), return_distance=False)[:, 1:]
    assert (np.sort(neighbors.numpy(), 1) == np.sort(expected, 1)).all()
    index = torch.tensor([3, 0, 17, 25, 9])
    adjacency = pair_targets(neighbors, index)
    brute = [[int(b) in neighbors[int(a)].tolist() for b in index] for a in index]
    assert (adjacency == torch.tensor(brute)).all()
    assert pair_targets(neighbors).sum(1).eq(4).all()


def _inputs():
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(6, 3, generator=gen, dtype=F64, requires_grad=True)
    centers = torch.randn(4, 3, generator=gen, dtype=F64)
    centers[0] = z[0].detach()  # a point sitting exactly on a centre
    centers.requires_grad_(True)
    return gen, z, centers


def test_gradcheck_student_t_and_target():
    _, z, centers = _inputs()
    assert torch.autograd.gradcheck(
        lambda a, b: student_t_assignment(a, b, alpha=1.5, sigma=0.7), (z, centers)
    )
    q = student_t_assignment(z, centers).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(target_distribution, (q,))


def test_gradcheck_losses():
    gen, z, centers = _inputs()
    q = student_t_assignment(z, centers).detach().requires_grad_(True)
    t = target_distribution(q).detach()
    assert torch.autograd.gradcheck(lambda a: cluster_loss(a, t), (q,))
    assert torch.autograd.gradcheck(
        lambda a, b: cluster_loss(student_t_assignment(a, b), t), (z, centers)
    )
    logits = torch.randn(6, 5, generator=gen, dtype=F64, requires_grad=True)
    teacher = torch.rand(6, 5, generator=gen, dtype=F64).softmax(1)
    assert torch.autograd.gradcheck(lambda a: distill_loss(a, teacher), (logits,))
    adjacency = torch.rand(6, 6, generator=gen) > 0.5
    assert torch.autograd.gradcheck(
        lambda a, b: pairwise_topk_loss(student_t_assignment(a, b), adjacency), (z, centers)
    )


def test_gradients_finite_at_extremes():
    z = torch.tensor([[0.0, 0.0], [1e6, 1e6], [5.0, 5.0]], dtype=F64, requires_grad=True)
    centers = torch.tensor([[0.0, 0.0], [5.0, 5.0]], dtype=F64, requires_grad=True)
    q = student_t_assignment(z, centers)
    loss = cluster_loss(q, target_distribution(q).detach())
    loss = loss + pairwise_topk_loss(q, torch.eye(3, dtype=torch.bool).roll(1, 1))
    loss.backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(centers.grad).all()


def test_shape_errors():
    q = torch.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="feature size"):
        student_t_assignment(torch.zeros(3, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="same shape"):
        cluster_loss(q, torch.full((3, 3), 1 / 3))
    with pytest.raises(ValueError, match="same shape"):
        distill_loss(torch.zeros(3, 4), torch.full((3, 5), 0.2))
    with pytest.raises(ValueError, match="adjacency"):
        pairwise_topk_loss(q, torch.zeros(4, 4))
    with pytest.raises(ValueError, match="sigma"):
        student_t_assignment(torch.zeros(3, 2), torch.zeros(4, 2), sigma=0.0)
    with pytest.raises(ValueError, match="k must be smaller"):
        topk_neighbors(torch.zeros(3, 2), 3)
