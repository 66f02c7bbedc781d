"""Contrastive and triplet losses, batch mining: brute force, formulas, pytorch-metric-learning."""

from __future__ import annotations

import itertools

import pytest
import torch

from constrained_pairs.losses import (
    ContrastiveLoss,
    TripletLoss,
    contrastive_loss,
    mine_triplets,
    pairwise_distances,
    triplet_loss,
)


@pytest.fixture
def pml():
    """pytorch-metric-learning (a test-only dependency), as a namespace."""
    pytest.importorskip("pytorch_metric_learning")
    from types import SimpleNamespace

    from pytorch_metric_learning import losses, miners, reducers
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils import loss_and_miner_utils

    return SimpleNamespace(
        losses=losses,
        miners=miners,
        reducers=reducers,
        LpDistance=LpDistance,
        lmu=loss_and_miner_utils,
    )


def _batch(n=14, d=3, classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, dtype=torch.float64, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    return x, y


def _brute_force(x, y, margin, mining, squared):
    def dist(i, j):
        value = float(((x[i] - x[j]) ** 2).sum())
        return value if squared else value**0.5

    triplets, losses = [], []
    for a, p, n in itertools.product(range(len(y)), repeat=3):
        if a == p or y[a] != y[p] or y[n] == y[a]:
            continue
        gap = dist(a, n) - dist(a, p)
        keep = {
            "all": True,
            "hard": gap < 0,
            "semihard": 0 <= gap < margin,
            "easy": gap >= margin,
        }[mining]
        if keep:
            triplets.append((a, p, n))
            losses.append(max(dist(a, p) - dist(a, n) + margin, 0.0))
    return triplets, losses


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("mining", ["all", "hard", "semihard", "easy"])
def test_mining_and_loss_against_brute_force(mining, squared):
    x, y = _batch()
    margin = 0.8
    triplets, losses = _brute_force(x, y, margin, mining, squared)
    assert triplets, "the batch should contain triplets of every kind"
    mined = mine_triplets(x, y, margin, mining, squared)
    assert list(zip(*(t.tolist() for t in mined), strict=True)) == triplets
    expected = torch.tensor(losses, dtype=torch.float64)
    got = triplet_loss(x, y, margin, mining, squared, reduction="none")
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(triplet_loss(x, y, margin, mining, squared), expected.mean())
    torch.testing.assert_close(triplet_loss(x, y, margin, mining, squared, "sum"), expected.sum())


@pytest.mark.parametrize("mining", ["hard", "semihard", "easy"])
def test_mining_matches_pytorch_metric_learning(mining, pml):
    x, y = _batch(n=40, d=4, classes=4, seed=1)
    margin = 0.5
    miner = pml.miners.TripletMarginMiner(
        margin=margin,
        type_of_triplets=mining,
        distance=pml.LpDistance(normalize_embeddings=False, power=2),
    )
    theirs = set(zip(*(t.tolist() for t in miner(x, y)), strict=True))
    ours = set(zip(*(t.tolist() for t in mine_triplets(x, y, margin, mining)), strict=True))
    assert ours == theirs and ours
    all_theirs = set(zip(*(t.tolist() for t in pml.lmu.get_all_triplets_indices(y)), strict=True))
    all_ours = set(zip(*(t.tolist() for t in mine_triplets(x, y, mining="all")), strict=True))
    assert all_ours == all_theirs


@pytest.mark.parametrize("squared", [True, False])
def test_triplet_loss_matches_pytorch_metric_learning(squared, pml):
    x, y = _batch(n=30, d=5, classes=3, seed=2)
    indices = mine_triplets(x, y, mining="all")
    reference = pml.losses.TripletMarginLoss(
        margin=0.3,
        distance=pml.LpDistance(normalize_embeddings=False, power=2 if squared else 1),
        reducer=pml.reducers.MeanReducer(),
    )
    torch.testing.assert_close(
        triplet_loss(x, y, 0.3, "all", squared), reference(x, y, indices_tuple=indices)
    )


def test_triplet_gradients_and_empty_batch():
    x, y = _batch(n=8, d=3, classes=2, seed=3)
    x.requires_grad_(True)
    for squared in (True, False):
        assert torch.autograd.gradcheck(lambda e, s=squared: triplet_loss(e, y, 0.5, "all", s), x)
    # duplicated embeddings: distance 0, gradient finite
    dup = torch.zeros(4, 2, requires_grad=True)
    loss = triplet_loss(dup, torch.tensor([0, 0, 1, 1]), squared=False)
    loss.backward()
    assert torch.isfinite(dup.grad).all()
    assert loss.item() == pytest.approx(0.2)
    # a single class has no negative: the loss is 0 and still differentiable
    lone = torch.randn(5, 2, requires_grad=True)
    empty = triplet_loss(lone, torch.zeros(5, dtype=torch.long))
    empty.backward()
    assert empty.item() == 0 and torch.equal(lone.grad, torch.zeros(5, 2))


def test_pairwise_distances_exact():
    x, _ = _batch(n=6, d=3)
    expected = torch.tensor([[float(((a - b) ** 2).sum()) for b in x] for a in x]).double()
    torch.testing.assert_close(pairwise_distances(x), expected)
    torch.testing.assert_close(pairwise_distances(x, squared=False), expected.sqrt())
    assert torch.equal(pairwise_distances(x).diagonal(), torch.zeros(6, dtype=torch.float64))


def test_blocks_of_anchors_agree(monkeypatch):
    from constrained_pairs.losses import metric

    x, y = _batch(n=20, d=2, classes=3, seed=4)
    whole = mine_triplets(x, y, 0.5, "semihard")
    monkeypatch.setattr(metric, "_BLOCK_ENTRIES", 3 * 20 * 20)
    for got, expected in zip(mine_triplets(x, y, 0.5, "semihard"), whole, strict=True):
        assert torch.equal(got, expected)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_contrastive_against_formula_and_pytorch_metric_learning(reduction, pml):
    generator = torch.Generator().manual_seed(5)
    x1 = torch.randn(12, 3, dtype=torch.float64, generator=generator)
    x2 = torch.randn(12, 3, dtype=torch.float64, generator=generator)
    same = torch.rand(12, generator=generator) < 0.5
    margin = 2.0
    d2 = ((x1 - x2) ** 2).sum(1)
    formula = torch.where(same, d2, (margin**2 - d2).clamp_min(0))
    expected = {"mean": formula.mean(), "sum": formula.sum(), "none": formula}[reduction]
    torch.testing.assert_close(contrastive_loss(x1, x2, same, margin, reduction), expected)
    # pml on the same pairs: embeddings [x1; x2], pairs (i, 12 + i)
    index = torch.arange(12)
    pairs = (index[same], 12 + index[same], index[~same], 12 + index[~same])
    reference = pml.losses.ContrastiveLoss(
        pos_margin=0.0,
        neg_margin=margin**2,
        distance=pml.LpDistance(normalize_embeddings=False, power=2),
        reducer=pml.reducers.DoNothingReducer(),
    )(torch.cat([x1, x2]), torch.zeros(24, dtype=torch.long), indices_tuple=pairs)
    torch.testing.assert_close(formula[same], reference["pos_loss"]["losses"])
    torch.testing.assert_close(formula[~same], reference["neg_loss"]["losses"])
    assert torch.autograd.gradcheck(
        lambda a: contrastive_loss(a, x2, same.long(), margin), x1.clone().requires_grad_(True)
    )


def test_modules_match_functions():
    x, y = _batch()
    expected = triplet_loss(x, y, 0.3, "hard", False)
    assert torch.equal(TripletLoss(0.3, "hard", False)(x, y), expected)
    same = torch.tensor([True, False] * 7)
    expected = contrastive_loss(x, x.flip(0), same, 0.5)
    assert torch.equal(ContrastiveLoss(0.5)(x, x.flip(0), same), expected)


def test_bad_inputs():
    x, y = _batch()
    with pytest.raises(ValueError, match="margin"):
        triplet_loss(x, y, margin=-0.1)
    with pytest.raises(ValueError, match="margin"):
        contrastive_loss(x, x, torch.ones(14, dtype=torch.bool), margin=-1.0)
    with pytest.raises(ValueError, match="labels"):
        mine_triplets(x, y[:-1])
    with pytest.raises(ValueError, match="labels"):
        mine_triplets(x, y.double())
    with pytest.raises(ValueError, match="mining"):
        mine_triplets(x, y, mining="hardest")
    with pytest.raises(ValueError, match="same shape"):
        contrastive_loss(x, x[:, :2], torch.ones(14, dtype=torch.bool))
    with pytest.raises(ValueError, match="same"):
        contrastive_loss(x, x, torch.full((14,), 2))
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(margin=-1.0)
