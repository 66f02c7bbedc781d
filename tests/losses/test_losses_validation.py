"""Every hyper-parameter and input of the losses is checked: a package error naming the argument
(issue 12: no silent wrong result such as ``bce(pos_weight=-2) = -1.386``, no raw error)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from constrained_pairs import losses as L
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError

NAN, INF = float("nan"), float("inf")
X = torch.randn(6, 3)
T = torch.rand(6, 3)
Y = torch.tensor([0, 1, 2, 0, 1, 2])
LOGITS = torch.randn(6, 3)

# (call, error class, text the message must contain)
CASES = {
    "bce pos_weight=-2": (lambda: L.bce(X, T, pos_weight=-2), InvalidArgumentError, "pos_weight"),
    "bce pos_weight nan": (lambda: L.bce(X, T, pos_weight=NAN), InvalidArgumentError, "pos_weight"),
    "bce pos_weight tensor < 0": (
        lambda: L.bce(X, T, pos_weight=torch.tensor([1.0, -1.0, 1.0])),
        InvalidArgumentError,
        "pos_weight",
    ),
    "bce pos_weight shape": (
        lambda: L.bce(X, T, pos_weight=torch.ones(4)),
        InvalidArgumentError,
        "pos_weight",
    ),
    "bce pos_weight str": (lambda: L.bce(X, T, pos_weight="2"), InvalidTypeError, "pos_weight"),
    "BCELoss pos_weight=-1": (
        lambda: L.BCELoss(pos_weight=-1.0),
        InvalidArgumentError,
        "pos_weight",
    ),
    "bce from_logits": (lambda: L.bce(X, T, from_logits=1), InvalidTypeError, "from_logits"),
    "bce list input": (lambda: L.bce([0.0], [1.0]), InvalidTypeError, "input"),
    "bce integer input": (
        lambda: L.bce(torch.ones(3, dtype=torch.long), torch.ones(3)),
        InvalidTypeError,
        "input",
    ),
    "bce target out of [0, 1]": (lambda: L.bce(X, 2 * T + 1), InvalidArgumentError, "target"),
    "bce target nan": (lambda: L.bce(X, T * NAN), InvalidArgumentError, "target"),
    "bce probabilities > 1": (
        lambda: L.bce(T + 1, T, from_logits=False),
        InvalidArgumentError,
        "input",
    ),
    "cross_entropy 1-D logits": (
        lambda: L.cross_entropy(torch.randn(3), torch.tensor(0)),
        InvalidArgumentError,
        "input",
    ),
    "cross_entropy numpy target": (
        lambda: L.cross_entropy(LOGITS, np.zeros(6)),
        InvalidTypeError,
        "target",
    ),
    "cross_entropy negative soft target": (
        lambda: L.cross_entropy(LOGITS, -T),
        InvalidArgumentError,
        "target",
    ),
    "cross_entropy bool target": (
        lambda: L.cross_entropy(LOGITS, Y > 0),
        InvalidArgumentError,
        "target",
    ),
    "cross_entropy fractional target": (
        lambda: L.cross_entropy(LOGITS, Y + 0.5),
        InvalidArgumentError,
        "target",
    ),
    "focal gamma < 0": (lambda: L.focal_loss(X, T, gamma=-0.1), InvalidArgumentError, "gamma"),
    "focal gamma inf": (lambda: L.focal_loss(X, T, gamma=INF), InvalidArgumentError, "gamma"),
    "focal alpha > 1": (lambda: L.focal_loss(X, T, alpha=1.1), InvalidArgumentError, "alpha"),
    "focal alpha nan": (lambda: L.focal_loss(X, T, alpha=NAN), InvalidArgumentError, "alpha"),
    "focal alpha bool": (lambda: L.focal_loss(X, T, alpha=True), InvalidTypeError, "alpha"),
    "FocalLoss gamma nan": (lambda: L.FocalLoss(gamma=NAN), InvalidArgumentError, "gamma"),
    "focal_mc alpha < 0": (
        lambda: L.focal_loss_multiclass(LOGITS, Y, alpha=-1.0),
        InvalidArgumentError,
        "alpha",
    ),
    "focal_mc alpha 2-D": (
        lambda: L.focal_loss_multiclass(LOGITS, Y, alpha=torch.ones(3, 3)),
        InvalidArgumentError,
        "alpha",
    ),
    "focal_mc alpha nan": (
        lambda: L.focal_loss_multiclass(LOGITS, Y, alpha=[0.1, NAN, 0.3]),
        InvalidArgumentError,
        "alpha",
    ),
    "MulticlassFocalLoss alpha < 0": (
        lambda: L.MulticlassFocalLoss(alpha=[0.5, -0.5]),
        InvalidArgumentError,
        "alpha",
    ),
    "focal_mc one class": (
        lambda: L.focal_loss_multiclass(torch.randn(4, 1), torch.zeros(4, dtype=torch.long)),
        InvalidArgumentError,
        "2 classes",
    ),
    "mse list": (lambda: L.mse([1.0], [1.0]), InvalidTypeError, "input"),
    "mse complex": (lambda: L.mse(X.to(torch.complex64), T), InvalidTypeError, "input"),
    "mae target list": (lambda: L.mae(X, [[0.0] * 3] * 6), InvalidTypeError, "target"),
    "rmse shape": (lambda: L.rmse(X, T[:, :2]), InvalidArgumentError, "same shape"),
    "huber delta nan": (lambda: L.huber(X, T, delta=NAN), InvalidArgumentError, "delta"),
    "huber delta str": (lambda: L.huber(X, T, delta="1"), InvalidTypeError, "delta"),
    "HuberLoss delta inf": (lambda: L.HuberLoss(delta=INF), InvalidArgumentError, "delta"),
    "reduction None": (lambda: L.mse(X, T, reduction=None), InvalidArgumentError, "reduction"),
    "reduction array": (
        lambda: L.mse(X, T, reduction=np.array(["mean"])),
        InvalidArgumentError,
        "reduction",
    ),
    "contrastive margin nan": (
        lambda: L.contrastive_loss(X, X, Y > 0, margin=NAN),
        InvalidArgumentError,
        "margin",
    ),
    "contrastive same list": (
        lambda: L.contrastive_loss(X, X, [True] * 6),
        InvalidTypeError,
        "same",
    ),
    "contrastive x2 int": (
        lambda: L.contrastive_loss(X, X.long(), Y > 0),
        InvalidTypeError,
        "x2",
    ),
    "ContrastiveLoss margin < 0": (
        lambda: L.ContrastiveLoss(margin=-1.0),
        InvalidArgumentError,
        "margin",
    ),
    "mine nan embeddings": (
        lambda: L.mine_triplets(torch.full((6, 3), NAN), Y),
        InvalidArgumentError,
        "embeddings",
    ),
    "mine inf embeddings": (
        lambda: L.mine_triplets(X.index_fill(0, torch.tensor([2]), INF), Y, mining="hard"),
        InvalidArgumentError,
        "embeddings",
    ),
    "triplet nan embeddings": (
        lambda: L.triplet_loss(torch.full((6, 3), NAN), Y, mining="semihard"),
        InvalidArgumentError,
        "embeddings",
    ),
    "triplet overflowing distances": (
        lambda: L.triplet_loss(torch.randn(6, 3) * 1e30, Y),
        InvalidArgumentError,
        "embeddings",
    ),
    "mine list": (lambda: L.mine_triplets([[0.0, 1.0]], Y[:1]), InvalidTypeError, "embeddings"),
    "mine labels list": (lambda: L.mine_triplets(X, [0] * 6), InvalidTypeError, "labels"),
    "mine squared": (lambda: L.mine_triplets(X, Y, squared="yes"), InvalidTypeError, "squared"),
    "mine mining None": (
        lambda: L.mine_triplets(X, Y, mining=None),
        InvalidArgumentError,
        "mining",
    ),
    "triplet margin inf": (
        lambda: L.triplet_loss(X, Y, margin=INF),
        InvalidArgumentError,
        "margin",
    ),
    "TripletLoss squared": (lambda: L.TripletLoss(squared=None), InvalidTypeError, "squared"),
    "pairwise_distances 3-D": (
        lambda: L.pairwise_distances(torch.randn(2, 2, 2)),
        InvalidArgumentError,
        "embeddings",
    ),
    "InfoNCELoss temperature nan": (
        lambda: L.InfoNCELoss(temperature=NAN),
        InvalidArgumentError,
        "temperature",
    ),
    "InfoNCELoss temperature 0": (
        lambda: L.InfoNCELoss(temperature=0.0),
        InvalidArgumentError,
        "temperature",
    ),
    "psi outside [-1, 1]": (
        lambda: L.psi(torch.tensor([1.5]), 2),
        InvalidArgumentError,
        "cos_theta",
    ),
    "psi m=0": (lambda: L.psi(torch.tensor([0.5]), 0), InvalidArgumentError, "m"),
    "psi list": (lambda: L.psi([0.5], 2), InvalidTypeError, "cos_theta"),
    "MarginSoftmax s nan": (
        lambda: L.MarginSoftmax(3, 4, "cosface", s=NAN),
        InvalidArgumentError,
        "s must",
    ),
    "MarginSoftmax m inf": (
        lambda: L.MarginSoftmax(3, 4, "amsoftmax", m=INF),
        InvalidArgumentError,
        "m must",
    ),
    "MarginSoftmax arcface m=pi": (
        lambda: L.MarginSoftmax(3, 4, "arcface", m=math.pi),
        InvalidArgumentError,
        "m must",
    ),
    "MarginSoftmax in_features 0": (
        lambda: L.MarginSoftmax(0, 4, "arcface"),
        InvalidArgumentError,
        "in_features",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_raises_a_package_error_naming_the_argument(name):
    call, error, text = CASES[name]
    with pytest.raises(error, match=text):
        call()


def test_pos_weight_matches_torch_when_valid():
    weight = torch.tensor([0.5, 2.0, 0.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(X, T, pos_weight=weight)
    torch.testing.assert_close(L.bce(X, T, pos_weight=weight), expected)
    torch.testing.assert_close(L.BCELoss(pos_weight=weight)(X, T), expected)
    torch.testing.assert_close(L.bce(X, T, pos_weight=[0.5, 2.0, 0.0]), expected)


@pytest.mark.parametrize(
    "call",
    [
        lambda e: L.mse(e, e),
        lambda e: L.mae(e, e, "mean"),
        lambda e: L.huber(e, e),
        lambda e: L.rmse(e, e),
        lambda e: L.bce(e, e.detach().sigmoid()),
        lambda e: L.focal_loss(e, e.detach().sigmoid()),
        lambda e: L.contrastive_loss(e, e, torch.empty(0, dtype=torch.bool)),
        lambda e: L.triplet_loss(e, torch.empty(0, dtype=torch.long)),
    ],
)
def test_mean_over_an_empty_batch_is_zero_with_a_zero_gradient(call):
    empty = torch.empty(0, 2, requires_grad=True)
    loss = call(empty)
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert empty.grad is None or empty.grad.numel() == 0


def test_cross_entropy_on_an_empty_batch_is_zero():
    logits = torch.empty(0, 3, requires_grad=True)
    assert L.cross_entropy(logits, torch.empty(0, dtype=torch.long)).item() == 0.0
    assert L.focal_loss_multiclass(logits, torch.empty(0, dtype=torch.long)).item() == 0.0
