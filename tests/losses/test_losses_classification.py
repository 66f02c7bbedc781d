"""BCE, cross-entropy and focal losses against hand values of the notes, formulas and torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from constrained_pairs.losses import (
    BCELoss,
    CrossEntropyLoss,
    FocalLoss,
    MulticlassFocalLoss,
    bce,
    cross_entropy,
    focal_loss,
    focal_loss_multiclass,
)


def test_bce_hand_values_of_seed_001():
    # a positive predicted at 0.1: L_CE = -ln 0.1 = 2.3 and dL/dy_hat = -1 / 0.1 = -10
    p = torch.tensor([0.1], dtype=torch.float64, requires_grad=True)
    loss = bce(p, torch.ones(1, dtype=torch.float64), from_logits=False)
    loss.backward()
    assert loss.item() == pytest.approx(math.log(10))
    assert p.grad.item() == pytest.approx(-10.0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_against_formula_and_torch(reduction):
    x = 4 * torch.randn(20, dtype=torch.float64)
    t = torch.rand(20, dtype=torch.float64)
    p = 1 / (1 + torch.exp(-x))
    formula = -(t * torch.log(p) + (1 - t) * torch.log(1 - p))
    expected = {"mean": formula.mean(), "sum": formula.sum(), "none": formula}[reduction]
    torch.testing.assert_close(bce(x, t, reduction), expected)
    torch.testing.assert_close(
        bce(x, t, reduction), F.binary_cross_entropy_with_logits(x, t, reduction=reduction)
    )
    torch.testing.assert_close(
        bce(p, t, reduction, from_logits=False), F.binary_cross_entropy(p, t, reduction=reduction)
    )
    w = torch.tensor(3.0, dtype=torch.float64)
    torch.testing.assert_close(
        bce(x, t, reduction, pos_weight=w),
        F.binary_cross_entropy_with_logits(x, t, reduction=reduction, pos_weight=w),
    )


def test_bce_extreme_logits_are_exact():
    x = torch.tensor([-800.0, 800.0, 40.0], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    loss = bce(x, t, "none")
    torch.testing.assert_close(loss, torch.tensor([800.0, 800.0, math.exp(-40.0)]).double())
    loss.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_cross_entropy_model_1_of_seed_002():
    # four samples, probabilities of (male, female, other); CE in bits = 6.966 (seed 002)
    probs = torch.tensor(
        [[0.4, 0.3, 0.3], [0.3, 0.4, 0.3], [0.5, 0.2, 0.3], [0.8, 0.1, 0.1]], dtype=torch.float64
    )
    target = torch.tensor([0, 1, 0, 2])
    bits = cross_entropy(torch.log(probs), target, "sum") / math.log(2)
    assert bits.item() == pytest.approx(6.966, abs=1e-3)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_against_formula_and_torch(reduction):
    logits = 3 * torch.randn(8, 5, dtype=torch.float64)
    target = torch.randint(0, 5, (8,))
    formula = torch.stack(
        [torch.logsumexp(row, 0) - row[y] for row, y in zip(logits, target.tolist(), strict=True)]
    )
    expected = {"mean": formula.mean(), "sum": formula.sum(), "none": formula}[reduction]
    torch.testing.assert_close(cross_entropy(logits, target, reduction), expected)
    soft = torch.softmax(torch.randn(8, 5, dtype=torch.float64), 1)
    torch.testing.assert_close(
        cross_entropy(logits, soft, reduction), F.cross_entropy(logits, soft, reduction=reduction)
    )
    spatial = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    labels = torch.randint(0, 5, (2, 3, 4))
    torch.testing.assert_close(
        cross_entropy(spatial, labels, reduction),
        F.cross_entropy(spatial, labels, reduction=reduction),
    )


def _sigmoid_focal_formula(x, t, alpha, gamma):
    # torchvision.ops.sigmoid_focal_loss, written out
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (None, 2.0), (0.6, 0.5), (0.25, 0.0)])
def test_focal_against_formula(alpha, gamma):
    x = 3 * torch.randn(30, dtype=torch.float64)
    t = (torch.rand(30) < 0.3).double()
    expected = _sigmoid_focal_formula(x, t, alpha, gamma)
    torch.testing.assert_close(focal_loss(x, t, alpha, gamma, "none"), expected)
    torch.testing.assert_close(focal_loss(x, t, alpha, gamma), expected.mean())
    soft = torch.rand(30, dtype=torch.float64)
    torch.testing.assert_close(
        focal_loss(x, soft, alpha, gamma, "sum"),
        _sigmoid_focal_formula(x, soft, alpha, gamma).sum(),
    )


def test_focal_hand_value_and_reduces_to_bce():
    # p = 0.9 on a positive: FL = -0.25 (0.1)^2 ln 0.9
    x = torch.tensor([math.log(9.0)], dtype=torch.float64)
    t = torch.ones(1, dtype=torch.float64)
    assert focal_loss(x, t).item() == pytest.approx(-0.25 * 0.01 * math.log(0.9))
    y = torch.randn(10, dtype=torch.float64)
    u = (torch.rand(10) < 0.5).double()
    torch.testing.assert_close(focal_loss(y, u, alpha=None, gamma=0.0), bce(y, u))


def test_focal_stable_for_extreme_logits():
    x = torch.tensor([-500.0, 500.0, 200.0, -200.0], requires_grad=True)
    t = torch.tensor([1.0, 0.0, 1.0, 0.0])
    for gamma in (0.0, 0.5, 2.0):
        loss = focal_loss(x, t, gamma=gamma, reduction="sum")
        grad = torch.autograd.grad(loss, x)[0]
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert focal_loss(x, t, alpha=None, gamma=2.0, reduction="none")[0].item() == pytest.approx(500)


def test_focal_gradcheck():
    x = torch.randn(12, dtype=torch.float64, requires_grad=True)
    t = (torch.rand(12) < 0.5).double()
    assert torch.autograd.gradcheck(lambda a: focal_loss(a, t, 0.25, 1.5), (x,))
    logits = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (6,))
    assert torch.autograd.gradcheck(lambda a: focal_loss_multiclass(a, y, 1.5), (logits,))


def test_focal_multiclass_against_formula():
    logits = 2 * torch.randn(10, 4, dtype=torch.float64)
    y = torch.randint(0, 4, (10,))
    p_y = torch.softmax(logits, 1)[torch.arange(10), y]
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    expected = -alpha[y] * (1 - p_y) ** 2 * torch.log(p_y)
    torch.testing.assert_close(focal_loss_multiclass(logits, y, 2.0, alpha, "none"), expected)
    torch.testing.assert_close(
        focal_loss_multiclass(logits, y, 2.0, [0.1, 0.2, 0.3, 0.4], "sum"), expected.sum()
    )
    torch.testing.assert_close(
        focal_loss_multiclass(logits, y, gamma=0.0), F.cross_entropy(logits, y)
    )
    # p_y rounds to 1: the loss is ~0 and the gradient finite
    confident = torch.tensor([[100.0, 0.0, 0.0]], requires_grad=True)
    loss = focal_loss_multiclass(confident, torch.tensor([0]), gamma=0.5)
    assert torch.isfinite(torch.autograd.grad(loss, confident)[0]).all()


def test_modules_match_functions():
    x, t = torch.randn(9), (torch.rand(9) < 0.5).float()
    assert torch.equal(BCELoss("sum")(x, t), bce(x, t, "sum"))
    assert torch.equal(FocalLoss(0.5, 1.0, "none")(x, t), focal_loss(x, t, 0.5, 1.0, "none"))
    logits, y = torch.randn(9, 3), torch.randint(0, 3, (9,))
    assert torch.equal(CrossEntropyLoss()(logits, y), cross_entropy(logits, y))
    assert torch.equal(MulticlassFocalLoss(1.0)(logits, y), focal_loss_multiclass(logits, y, 1.0))


def test_bad_inputs():
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match="target"):
        cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="target"):
        cross_entropy(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="target"):
        focal_loss_multiclass(logits, torch.tensor([0, 1, -1, 2]))
    with pytest.raises(ValueError, match="probabilities"):
        focal_loss(torch.randn(3), torch.tensor([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="same shape"):
        bce(torch.randn(3), torch.ones(4))
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(torch.randn(3), torch.ones(3), alpha=1.5)
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        focal_loss_multiclass(logits, torch.tensor([0, 1, 2, 0]), alpha=[0.5, 0.5])
