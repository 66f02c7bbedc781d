"""Activations of seed 002: fast sigmoid (its documented error), SELU constants, torch forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from constrained_pairs import activations as act


def _notes_fast_sigmoid(x: float) -> float:
    # seed 002's code, line by line
    x = 0.5 * x
    flag_neg = 0
    if x < 0:
        x = -x
        flag_neg = 1
    if x < 1.7:
        z = 1.5 * x / (1 + x)
    elif x < 2.9:
        z = 0.9444 + 0.0459 * (x - 1.7)
    else:
        z = 0.9997
    if flag_neg == 1:
        z = -z
    return 0.5 * (z + 1.0)


def test_fast_sigmoid_matches_the_notes_code():
    x = torch.cat(
        [
            torch.linspace(-12, 12, 4001, dtype=torch.float64),
            torch.tensor(
                [0.0, 3.4, -3.4, 5.8, -5.8, 3.4 - 1e-12, 5.8 - 1e-12], dtype=torch.float64
            ),
        ]
    )
    expected = torch.tensor([_notes_fast_sigmoid(v) for v in x.tolist()], dtype=torch.float64)
    torch.testing.assert_close(act.fast_sigmoid(x), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(act.FastSigmoid()(x), expected, rtol=0, atol=1e-15)
    # odd symmetry about (0, 1/2)
    torch.testing.assert_close(act.fast_sigmoid(-x), 1 - act.fast_sigmoid(x))


def test_fast_sigmoid_documented_max_error():
    # odd symmetry: |error| is even, so x >= 0 suffices; spacing 2e-5
    x = torch.linspace(0, 40, 2_000_001, dtype=torch.float64)
    error = (act.fast_sigmoid(x) - torch.sigmoid(x)).abs()
    assert error.max().item() == pytest.approx(act.FAST_SIGMOID_MAX_ABS_ERROR, abs=1e-9)
    assert abs(x[error.argmax()].item()) == pytest.approx(act.FAST_SIGMOID_ARGMAX, abs=2e-5)
    at_max = torch.tensor([act.FAST_SIGMOID_ARGMAX], dtype=torch.float64)
    assert (act.fast_sigmoid(at_max) - torch.sigmoid(at_max)).item() == pytest.approx(
        act.FAST_SIGMOID_MAX_ABS_ERROR, abs=1e-15
    )
    # far tails: 0.5 (1 - 0.9997)
    assert error[-1].item() == pytest.approx(1.5e-4, abs=1e-12)


def test_selu_constants_from_closed_form():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    e, pi, erfc, sqrt = mpmath.e, mpmath.pi, mpmath.erfc, mpmath.sqrt
    alpha = -sqrt(2 / pi) / (erfc(1 / sqrt(2)) * mpmath.exp(0.5) - 1)
    scale = (
        (1 - erfc(1 / sqrt(2)) * sqrt(e))
        * sqrt(2 * pi)
        * (
            2 * erfc(sqrt(2)) * e**2
            + pi * erfc(1 / sqrt(2)) ** 2 * e
            - 2 * (2 + pi) * erfc(1 / sqrt(2)) * sqrt(e)
            + pi
            + 2
        )
        ** -0.5
    )
    assert mpmath.nstr(alpha, 31) == "1.673263242354377284817042991672"
    assert mpmath.nstr(scale, 31) == "1.050700987355480493419334985295"
    assert act.SELU_ALPHA == float(alpha) and act.SELU_SCALE == float(scale)
    # the notes' decimals round to the same doubles
    assert act.SELU_ALPHA == 1.6732632423543772848170429916717
    assert act.SELU_SCALE == 1.0507009873554804934193349852946


def test_selu_matches_torch_to_full_precision():
    x = torch.linspace(-20, 20, 100_001, dtype=torch.float64)
    torch.testing.assert_close(act.selu(x), F.selu(x), rtol=4e-16, atol=0)
    torch.testing.assert_close(act.SELU()(x), torch.nn.SELU()(x), rtol=4e-16, atol=0)
    # torch's constants, read back: selu(1) = scale, selu(-inf) = -scale alpha
    one = torch.tensor([1.0, -math.inf], dtype=torch.float64)
    assert F.selu(one)[0].item() == act.SELU_SCALE
    assert F.selu(one)[1].item() == -act.SELU_SCALE * act.SELU_ALPHA
    x32 = torch.randn(1000)
    torch.testing.assert_close(act.selu(x32), F.selu(x32))


def test_relu_family_against_formulas():
    x = torch.linspace(-8, 8, 1601, dtype=torch.float64)
    zero = torch.zeros_like(x)
    torch.testing.assert_close(act.sigmoid(x), 1 / (1 + torch.exp(-x)))
    torch.testing.assert_close(act.tanh(x), 2 / (1 + torch.exp(-2 * x)) - 1)
    torch.testing.assert_close(act.relu(x), torch.maximum(x, zero))
    torch.testing.assert_close(act.relu6(x), torch.clamp(torch.maximum(x, zero), max=6))
    torch.testing.assert_close(
        act.leaky_relu(x, 0.1), torch.maximum(x, zero) + 0.1 * torch.minimum(x, zero)
    )
    slope = torch.tensor([0.25], dtype=torch.float64)
    torch.testing.assert_close(act.prelu(x, slope), torch.where(x >= 0, x, 0.25 * x))
    torch.testing.assert_close(act.rrelu(x), torch.where(x >= 0, x, (1 / 8 + 1 / 3) / 2 * x))
    sampled = act.rrelu(x, training=True)
    ratio = sampled[x < 0] / x[x < 0]
    assert bool(((ratio >= 1 / 8) & (ratio <= 1 / 3)).all()) and ratio.std() > 0
    torch.testing.assert_close(act.elu(x, 1.5), torch.where(x > 0, x, 1.5 * (torch.exp(x) - 1)))
    assert act.PReLU().weight.item() == 0.25
    assert isinstance(act.ReLU6(), torch.nn.ReLU6)
