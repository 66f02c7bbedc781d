"""Property-based checks of ``lipschitz_bound`` (issue 12's contract; SPEC §2, "Deep backbones"):
on random small networks (linear, 1-D and 2-D convolutions, pooling, activations) the bound is
an upper bound of every difference quotient ‖f(x) − f(y)‖ / ‖x − y‖ and of the spectral norm of
the Jacobian at random points (computed by autograd in float64); bad arguments raise package
errors naming them."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from constrained_pairs.backbones import lipschitz_bound
from constrained_pairs.errors import (
    ConstrainedPairsError,
    InvalidArgumentError,
    UnsupportedOptionError,
)

FAST = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
SLACK = 1e-9


def _activation(draw) -> nn.Module:
    return draw(
        st.sampled_from(
            [
                nn.ReLU(),
                nn.LeakyReLU(draw(st.sampled_from([0.01, 0.5, 3.0]))),
                nn.Tanh(),
                nn.Sigmoid(),
                nn.GELU(),
                nn.ELU(draw(st.sampled_from([0.5, 2.0]))),
                nn.Softplus(),
                nn.Hardtanh(),
                nn.Dropout(0.3),
                nn.Identity(),
            ]
        )
    )


@st.composite
def networks(draw):
    """(module in eval mode, input shape) of a random small network, float64."""
    kind = draw(st.sampled_from(["mlp", "conv1d", "conv2d"]))
    layers: list[nn.Module] = []
    if kind == "mlp":
        width = draw(st.integers(1, 5))
        shape = (width,)
        for _ in range(draw(st.integers(1, 3))):
            out = draw(st.integers(1, 5))
            layers += [nn.Linear(width, out, bias=draw(st.booleans())), _activation(draw)]
            width = out
    else:
        dims = 1 if kind == "conv1d" else 2
        Conv = nn.Conv1d if dims == 1 else nn.Conv2d
        channels, size = draw(st.integers(1, 3)), draw(st.integers(4, 7))
        shape = (channels, *([size] * dims))
        for _ in range(draw(st.integers(1, 2))):
            out = draw(st.integers(1, 3))
            layers.append(
                Conv(
                    channels,
                    out,
                    kernel_size=draw(st.integers(1, 3)),
                    stride=draw(st.integers(1, 2)),
                    padding=draw(st.integers(0, 1)),
                    dilation=draw(st.integers(1, 2)),
                )
            )
            layers.append(_activation(draw))
            channels = out
        pool = draw(st.sampled_from(["none", "max", "avg", "adaptive"]))
        if pool == "max":
            layers.append((nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(2, stride=1))
        elif pool == "avg":
            layers.append((nn.AvgPool1d if dims == 1 else nn.AvgPool2d)(2))
        elif pool == "adaptive":
            layers.append((nn.AdaptiveAvgPool1d if dims == 1 else nn.AdaptiveAvgPool2d)(2))
        layers += [nn.Flatten(), nn.LazyLinear(draw(st.integers(1, 3)))]
    torch.manual_seed(draw(st.integers(0, 2**16)))
    net = nn.Sequential(*layers).double()
    try:
        net(torch.zeros(1, *shape, dtype=torch.float64))  # materialise LazyLinear
    except RuntimeError:  # a kernel larger than the (padded) input: not a network
        from hypothesis import reject

        reject()
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0]))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(scale)
    return net.eval(), shape


def _jacobian_norm(net: nn.Module, x: torch.Tensor) -> float:
    jac = torch.autograd.functional.jacobian(lambda v: net(v[None]).flatten(), x)
    return float(torch.linalg.matrix_norm(jac.reshape(jac.shape[0], -1), ord=2))


@FAST
@given(case=networks(), seed=st.integers(0, 2**16))
def test_the_bound_dominates_difference_quotients_and_jacobians(case, seed):
    net, shape = case
    bound = lipschitz_bound(net, input_shape=shape)
    assert isinstance(bound, float) and math.isfinite(bound) and bound >= 0
    unshaped = lipschitz_bound(net) if not _adaptive(net) else None
    if unshaped is not None:  # the input size only tightens the bound
        assert bound <= unshaped * (1 + SLACK)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(16, *shape, generator=gen, dtype=torch.float64)
    for step in (1e-4, 1e-1, 10.0):  # nearby and far pairs
        y = x + step * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            num = (net(x) - net(y)).flatten(1).norm(dim=1)
        den = (x - y).flatten(1).norm(dim=1)
        ratio = (num / den).max()
        assert float(ratio) <= bound * (1 + 1e-6) + SLACK, (float(ratio), bound)
    for row in x[:3]:
        assert _jacobian_norm(net, row) <= bound * (1 + 1e-6) + SLACK


def _adaptive(net: nn.Module) -> bool:
    return any("Adaptive" in type(m).__name__ for m in net.modules())


@FAST
@given(width=st.integers(1, 4), out=st.integers(1, 4), seed=st.integers(0, 100))
def test_the_bound_of_one_linear_layer_is_its_largest_singular_value(width, out, seed):
    torch.manual_seed(seed)
    layer = nn.Linear(width, out).double()
    expected = float(torch.linalg.matrix_norm(layer.weight.detach(), ord=2))
    assert lipschitz_bound(nn.Sequential(layer)) == pytest.approx(expected, rel=1e-12, abs=0)
    # float32 weights are bounded in float64: the same value as the float64 copy's
    assert lipschitz_bound(nn.Sequential(layer.float())) == pytest.approx(
        float(torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2)), rel=1e-12, abs=0
    )


SHAPES = st.one_of(
    st.just("shape"),
    st.just(()),
    st.just([]),
    st.tuples(st.integers(-2, 0)),
    st.tuples(st.floats(0.5, 3.0)),
    st.tuples(st.booleans()),
    st.just((3, None)),
    st.just((3, 2.0)),
)


@FAST
@given(shape=SHAPES)
def test_bad_input_shapes_are_refused_naming_input_shape(shape):
    net = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ConstrainedPairsError, match="input_shape"):
        lipschitz_bound(net, input_shape=shape)


def test_a_bare_int_input_shape_is_refused_naming_input_shape():
    with pytest.raises(ConstrainedPairsError, match="input_shape"):
        lipschitz_bound(nn.Sequential(nn.Linear(3, 2)), input_shape=3)


@FAST
@given(
    value=st.sampled_from([math.nan, math.inf, -math.inf]),
    where=st.sampled_from(["weight", "bias"]),
)
def test_non_finite_parameters_have_no_bound(value, where):
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        getattr(layer, where).view(-1)[0] = value
    with pytest.raises(InvalidArgumentError, match=where):
        lipschitz_bound(nn.Sequential(nn.ReLU(), layer))


UNSUPPORTED = [
    (lambda: nn.BatchNorm1d(3), "BatchNorm1d"),
    (lambda: nn.LayerNorm(3), "LayerNorm"),
    (lambda: nn.Softmax(dim=1), "Softmax"),
    (lambda: nn.GELU(approximate="tanh"), "GELU"),
    (lambda: nn.Conv1d(3, 2, 3, padding=1, padding_mode="circular"), "padding_mode"),
    (lambda: nn.AdaptiveAvgPool1d(2), "input_shape"),
    (lambda: nn.AdaptiveMaxPool1d(2), "input_shape"),
]


@FAST
@given(bad=st.sampled_from(UNSUPPORTED), position=st.integers(0, 2))
def test_unsupported_modules_are_named(bad, position):
    make, name = bad
    layers = [nn.Identity(), nn.Identity()]
    layers.insert(position, make())
    with pytest.raises(UnsupportedOptionError, match=name):
        lipschitz_bound(nn.Sequential(*layers))


@pytest.mark.parametrize("module", ["net", None, 3, [nn.Linear(2, 2)], torch.ones(2)])
def test_a_module_that_is_not_a_module_is_refused_naming_module(module):
    with pytest.raises(ConstrainedPairsError, match="module"):
        lipschitz_bound(module)
