"""Activations of seed 002: fast sigmoid (its documented error), SELU constants, torch forms,
numpy formulas on random inputs (hypothesis), and the argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from constrained_pairs import activations as act
from constrained_pairs.errors import ConstrainedPairsError, InvalidTypeError


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


# -- checks and properties (issue 12) -------------------------------------------------------------

PROPERTY = settings(max_examples=100, deadline=None)
FINITE = st.floats(-60, 60, allow_nan=False, width=64)


def _reference(name: str, x: np.ndarray, a: float, b: float) -> np.ndarray:
    """Each activation written in numpy from its formula (a, b: its hyper-parameters)."""
    neg = np.minimum(x, 0.0)
    return {
        "sigmoid": 1 / (1 + np.exp(-x)),
        "tanh": np.tanh(x),
        "relu": np.maximum(x, 0.0),
        "relu6": np.clip(x, 0.0, 6.0),
        "leaky_relu": np.maximum(x, 0.0) + a * neg,
        "elu": np.where(x > 0, x, abs(a) * np.expm1(neg)),
        "selu": act.SELU_SCALE * np.where(x > 0, x, act.SELU_ALPHA * np.expm1(neg)),
        "rrelu": np.where(x >= 0, x, (min(a, b) + max(a, b)) / 2 * x),
        "fast_sigmoid": np.vectorize(_notes_fast_sigmoid, otypes=[float])(x),
    }[name]


CALLS = {
    "sigmoid": lambda x, a, b: act.sigmoid(x),
    "tanh": lambda x, a, b: act.tanh(x),
    "relu": lambda x, a, b: act.relu(x),
    "relu6": lambda x, a, b: act.relu6(x),
    "leaky_relu": lambda x, a, b: act.leaky_relu(x, a),
    "elu": lambda x, a, b: act.elu(x, abs(a)),
    "selu": lambda x, a, b: act.selu(x),
    "rrelu": lambda x, a, b: act.rrelu(x, min(a, b), max(a, b)),
    "fast_sigmoid": lambda x, a, b: act.fast_sigmoid(x),
}


@PROPERTY
@given(
    st.sampled_from(sorted(CALLS)),
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0), elements=FINITE),
    st.floats(-3, 3),
    st.floats(-3, 3),
)
def test_activations_against_numpy_formulas(name, x, a, b):
    got = CALLS[name](torch.from_numpy(x), a, b)
    assert got.shape == x.shape and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), _reference(name, x, a, b), rtol=1e-12, atol=1e-15)


BAD = st.sampled_from([float("nan"), float("inf"), -float("inf"), "0.1", None, [0.1], True])


@PROPERTY
@given(BAD)
def test_bad_hyper_parameters_raise_package_errors(value):
    x = torch.randn(4, 3)
    calls = [
        lambda: act.leaky_relu(x, value),
        lambda: act.elu(x, value),
        lambda: act.rrelu(x, value, 0.5),
        lambda: act.rrelu(x, 0.1, value),
        lambda: act.LeakyReLU(value),
        lambda: act.ELU(value),
        lambda: act.RReLU(value),
        lambda: act.PReLU(init=value),
    ]
    for call in calls:
        with pytest.raises(ConstrainedPairsError):
            call()


def test_checks_name_the_argument():
    x = torch.randn(4, 3)
    for fn in (act.sigmoid, act.tanh, act.relu, act.selu, act.fast_sigmoid, act.SELU()):
        with pytest.raises(InvalidTypeError, match="x must be a torch.Tensor"):
            fn([1.0, 2.0])
    for module in (act.Sigmoid(), act.ReLU(), act.LeakyReLU(), act.ELU(), act.PReLU()):
        with pytest.raises(InvalidTypeError, match="x must be a torch.Tensor"):
            module(np.ones(3))
    with pytest.raises(InvalidTypeError, match="floating-point"):
        act.selu(torch.arange(3))
    assert torch.equal(act.relu(torch.arange(-2, 3)), torch.tensor([0, 0, 0, 1, 2]))
    with pytest.raises(ValueError, match="lower must be <= upper"):
        act.RReLU(0.5, 0.1)
    with pytest.raises(ValueError, match="alpha"):
        act.elu(x, -1.0)
    with pytest.raises(ValueError, match="num_parameters"):
        act.PReLU(0)
    with pytest.raises(TypeError, match="training"):
        act.rrelu(x, training="yes")
    with pytest.raises(ValueError, match="weight must hold 1 or 3"):
        act.prelu(x, torch.ones(2))
    # the checked modules are still torch's: same parameters, same results
    prelu = act.PReLU(3, init=0.1)
    assert isinstance(prelu, torch.nn.PReLU) and prelu.weight.shape == (3,)
    torch.testing.assert_close(prelu(x), torch.nn.functional.prelu(x, prelu.weight))
    torch.testing.assert_close(act.LeakyReLU(0.2)(x), torch.nn.LeakyReLU(0.2)(x))


def test_relu_modules_check_inplace():
    from constrained_pairs import activations as act
    from constrained_pairs.errors import InvalidTypeError

    for cls in (act.ReLU, act.ReLU6):
        with pytest.raises(InvalidTypeError, match="inplace"):
            cls(inplace="yes")
        assert cls(inplace=True).inplace is True
