"""Regression losses against the notes' worked tables (seed 002), hand formulas and torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from constrained_pairs.losses import HuberLoss, MAELoss, MSELoss, RMSELoss, huber, mae, mse, rmse

# Seed 002, "MAE, MSE & Huber Loss": residuals and the reported means.
TABLES = [
    ([-10.0, -5.0, 0.0, 5.0, 10.0], 6.0, 7.07, 5.6, 25.0),
    ([-10.0, -5.0, 0.0, 5.0, 100.0], 24.0, 45.06, 23.6, 205.0),
]


@pytest.mark.parametrize(("residual", "mae_", "rmse_", "huber1", "huber10"), TABLES)
def test_notes_tables(residual, mae_, rmse_, huber1, huber10):
    prediction = torch.tensor(residual, dtype=torch.float64)
    target = torch.zeros_like(prediction)
    assert mae(prediction, target).item() == pytest.approx(mae_)
    assert rmse(prediction, target).item() == pytest.approx(rmse_, abs=5e-3)
    assert huber(prediction, target, delta=1.0).item() == pytest.approx(huber1)
    assert huber(prediction, target, delta=10.0).item() == pytest.approx(huber10)


def _huber_formula(r: torch.Tensor, delta: float) -> torch.Tensor:
    return torch.tensor(
        [0.5 * v * v if abs(v) <= delta else delta * (abs(v) - 0.5 * delta) for v in r.tolist()],
        dtype=r.dtype,
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_against_formulas_and_torch(reduction, delta):
    x = 3 * torch.randn(7, 5, dtype=torch.float64)
    t = torch.randn(7, 5, dtype=torch.float64)
    r = (x - t).flatten()
    per_element = {
        "mae": (r.abs(), F.l1_loss, mae),
        "mse": (r * r, F.mse_loss, mse),
        "huber": (_huber_formula(r, delta), None, lambda a, b, red: huber(a, b, delta, red)),
    }
    for name, (values, torch_fn, ours) in per_element.items():
        got = ours(x, t, reduction)
        expected = {"mean": values.mean(), "sum": values.sum(), "none": values.view(7, 5)}
        torch.testing.assert_close(got, expected[reduction], msg=name)
        if torch_fn is not None:
            torch.testing.assert_close(got, torch_fn(x, t, reduction=reduction))
    torch.testing.assert_close(
        huber(x, t, delta, reduction), F.huber_loss(x, t, reduction=reduction, delta=delta)
    )
    rmse_expected = {
        "mean": math.sqrt(float((r * r).mean())),
        "sum": math.sqrt(float((r * r).sum())),
    }
    if reduction == "none":
        torch.testing.assert_close(rmse(x, t, reduction), (x - t).abs())
    else:
        assert rmse(x, t, reduction).item() == pytest.approx(rmse_expected[reduction], rel=1e-12)


def test_huber_is_not_smooth_l1_unless_delta_one():
    x, t = torch.randn(50, dtype=torch.float64) * 4, torch.zeros(50, dtype=torch.float64)
    torch.testing.assert_close(huber(x, t, 1.0), F.smooth_l1_loss(x, t, beta=1.0))
    assert not torch.allclose(huber(x, t, 2.0), F.smooth_l1_loss(x, t, beta=2.0))
    torch.testing.assert_close(huber(x, t, 2.0), 2.0 * F.smooth_l1_loss(x, t, beta=2.0))


def test_gradients():
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    t = torch.randn(6, dtype=torch.float64)
    for fn in (mae, mse, rmse, lambda a, b: huber(a, b, 0.7)):
        assert torch.autograd.gradcheck(lambda a, fn=fn: fn(a, t), (x,))
    # at the Huber kink |r| = delta both pieces have slope delta (C^1)
    kink = torch.tensor([0.7, -0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: huber(a, torch.zeros(2, dtype=a.dtype), 0.7), kink)
    # RMSE at a zero residual: subgradient 0, not NaN
    zero = torch.zeros(4, requires_grad=True)
    rmse(zero, torch.zeros(4)).backward()
    assert torch.equal(zero.grad, torch.zeros(4))


def test_modules_match_functions():
    x, t = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.equal(MAELoss("sum")(x, t), mae(x, t, "sum"))
    assert torch.equal(MSELoss()(x, t), mse(x, t))
    assert torch.equal(RMSELoss("none")(x, t), rmse(x, t, "none"))
    assert torch.equal(HuberLoss(0.5, "sum")(x, t), huber(x, t, 0.5, "sum"))


def test_bad_inputs():
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="same shape"):
        mse(x, torch.randn(3))
    with pytest.raises(ValueError, match="delta"):
        huber(x, x, delta=-1.0)
    with pytest.raises(ValueError, match="delta"):
        HuberLoss(delta=0.0)
    with pytest.raises(ValueError, match="reduction"):
        mae(x, x, reduction="avg")
