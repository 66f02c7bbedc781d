"""lipschitz_bound against independent references: SVDs of dense operators (built with
torch.func.jacrev), power iteration on the conv operator, and empirical Lipschitz ratios on
random and gradient-ascent pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from constrained_pairs.backbones import (
    FreeConvNet,
    GroupSort,
    LipschitzConvNet,
    LipschitzMLP,
    conv_bound,
    conv_fourier_bound,
    lipschitz_bound,
)
from constrained_pairs.backbones.bounds import GELU_LIPSCHITZ
from constrained_pairs.errors import InvalidArgumentError, UnsupportedOptionError

D = torch.float64


def dense_norm(fn, shape) -> float:
    """σ_max of a linear map given as a function of one input of ``shape`` (exact SVD)."""
    x = torch.zeros(1, *shape, dtype=D)
    jac = torch.func.jacrev(lambda v: fn(v).flatten())(x).reshape(-1, math.prod(shape))
    return float(np.linalg.norm(jac.detach().numpy(), 2))


def power_iteration_norm(conv: nn.Module, shape, steps: int = 300) -> float:
    """‖conv‖ by power iteration on conv^T conv (converges from below to the exact norm)."""
    x = torch.randn(1, *shape, dtype=D)
    for _ in range(steps):
        x.requires_grad_(True)
        y = F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
        (grad,) = torch.autograd.grad(y, x, y)  # conv^T conv x
        x = (grad / grad.norm()).detach()
    y = F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    return float(y.detach().norm())


def test_linear_bound_is_sigma_max():
    layer = nn.Linear(7, 5).to(D)
    expected = np.linalg.svd(layer.weight.detach().numpy(), compute_uv=False)[0]
    assert lipschitz_bound(layer) == pytest.approx(expected, rel=1e-12)
    seq = nn.Sequential(layer, nn.ReLU(), nn.Sequential(nn.Identity(), nn.Tanh()))
    assert lipschitz_bound(seq) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "options",
    [
        dict(padding=1),
        dict(padding=0, stride=2),
        dict(padding=2, dilation=2),
        dict(padding=1, groups=2),
        dict(padding="same"),
    ],
)
def test_conv_bound_dominates_exact_norm(options):
    conv = nn.Conv2d(4, 6, 3, **options).to(D)
    shape = (4, 9, 7)
    exact = dense_norm(
        lambda v: F.conv2d(
            v, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups
        ),
        shape,
    )
    # power iteration approaches the exact norm from below (slowly when σ_1 ≈ σ_2)
    assert 0.99 * exact <= power_iteration_norm(conv, shape) <= exact * (1 + 1e-10)
    unfolded = float(conv_bound(conv).detach())
    fourier = float(conv_bound(conv, shape[1:]).detach())
    assert exact <= fourier * (1 + 1e-10) <= unfolded * (1 + 1e-10)
    assert lipschitz_bound(nn.Sequential(conv), input_shape=shape) == pytest.approx(fourier)
    assert lipschitz_bound(conv) == pytest.approx(unfolded)


def test_fourier_bound_is_exact_for_circular_convolution():
    conv = nn.Conv2d(3, 5, 3, padding=1).to(D)
    # the zero-padded conv on (6, 5) inputs lives in a circular conv on the padded 8 x 7 grid
    circular = dense_norm(
        lambda v: F.conv2d(F.pad(v, (1, 1, 1, 1), mode="circular"), conv.weight), (3, 8, 7)
    )
    fourier = float(conv_fourier_bound(conv.weight.detach(), (8, 7), (1, 1)))
    assert fourier == pytest.approx(circular, rel=1e-10)


def test_conv1d_bound():
    conv = nn.Conv1d(3, 4, 5, padding=2, stride=2).to(D)
    exact = dense_norm(lambda v: F.conv1d(v, conv.weight, None, 2, 2), (3, 11))
    assert exact <= lipschitz_bound(nn.Sequential(conv), input_shape=(3, 11)) * (1 + 1e-10)
    assert exact <= lipschitz_bound(conv) * (1 + 1e-10)


@pytest.mark.parametrize(
    "pool, shape, tight",
    [
        (nn.AvgPool2d(2), (1, 6, 6), True),
        (nn.AvgPool2d(3, stride=1), (1, 7, 7), False),
        (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (1, 7, 7), False),
        (nn.AvgPool2d(2, ceil_mode=True), (1, 5, 5), False),
        (nn.AvgPool1d(4, stride=2), (2, 10), False),
        (nn.AdaptiveAvgPool2d(1), (2, 4, 3), True),
        (nn.AdaptiveAvgPool2d((2, 3)), (1, 5, 7), False),
    ],
)
def test_average_pool_bounds(pool, shape, tight):
    exact = dense_norm(pool, shape)
    bound = lipschitz_bound(nn.Sequential(pool), input_shape=shape)
    assert exact <= bound * (1 + 1e-12)
    if tight:
        assert bound == pytest.approx(exact, rel=1e-12)


def test_max_pool_bounds_hold_on_adversarial_pairs():
    for pool, shape in [(nn.MaxPool2d(2), (2, 6, 6)), (nn.MaxPool2d(3, stride=1), (1, 6, 6))]:
        bound = lipschitz_bound(pool)
        assert bound == (1.0 if pool.kernel_size == 2 else 3.0)
        assert max_ratio(nn.Sequential(pool), shape) <= bound * (1 + 1e-9)
    assert lipschitz_bound(nn.AdaptiveMaxPool2d(1), input_shape=(1, 4, 4)) == 1.0


def max_ratio(net: nn.Module, shape, pairs: int = 64, steps: int = 60) -> float:
    """Largest ‖f(x) − f(y)‖ / ‖x − y‖ over random pairs, then after gradient ascent on them."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(pairs, *shape, generator=gen, dtype=D)
    y = x + 0.1 * torch.randn(pairs, *shape, generator=gen, dtype=D)

    def ratios(a, b):
        return (net(a) - net(b)).flatten(1).norm(dim=1) / (a - b).flatten(1).norm(dim=1)

    with torch.no_grad():
        best = float(ratios(x, y).max())
    x, y = x.requires_grad_(True), y.requires_grad_(True)
    opt = torch.optim.Adam([x, y], lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        (-ratios(x, y).sum()).backward()
        opt.step()
    with torch.no_grad():
        return max(best, float(ratios(x, y).max()))


def train_briefly(net: nn.Module, shape, steps: int = 15) -> nn.Module:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(32, *shape, generator=gen, dtype=D)
    y = torch.randint(0, net.out_features, (32,), generator=gen)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return net


@pytest.mark.parametrize("kind", ["mlp", "lipschitz_conv", "free_conv"])
@pytest.mark.parametrize("trained", [False, True])
def test_empirical_ratios_never_exceed_the_bound(kind, trained):
    shape = (1, 8, 6)
    if kind == "mlp":
        net = LipschitzMLP(48, 6, hidden=(16, 16), dtype=D)
    elif kind == "lipschitz_conv":
        net = LipschitzConvNet(shape, 6, channels=(4, 6), hidden=16, dtype=D)
    else:
        net = FreeConvNet(shape, 6, channels=(4, 6), hidden=16, dtype=D)
    if trained:
        train_briefly(net, shape)
    bound = lipschitz_bound(net)
    observed = max_ratio(net, shape)
    assert 0 < observed <= bound * (1 + 1e-9)
    if kind != "free_conv":
        assert bound <= 1 + 1e-9


def test_parametrizations_keep_the_constraint_after_optimizer_steps():
    net = LipschitzConvNet((1, 8, 6), 4, channels=(4, 6), hidden=8, dtype=D)
    opt = torch.optim.Adam(net.parameters(), lr=0.5)  # large steps on the free parameters
    x = torch.rand(16, 48, dtype=D)
    for _ in range(10):
        opt.zero_grad()
        (-net(x).norm()).backward()
        opt.step()
        assert lipschitz_bound(net) <= 1 + 1e-9
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.lipschitz_bound() == pytest.approx(1.0, abs=1e-9) for m in convs)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    for m in linears:  # (semi-)orthogonal: every singular value 1
        s = torch.linalg.svdvals(m.weight.detach())
        assert torch.allclose(s, torch.ones_like(s), atol=1e-9)


def test_activation_constants():
    grid = torch.linspace(-6, 6, 200001, dtype=D, requires_grad=True)
    (slope,) = torch.autograd.grad(F.gelu(grid).sum(), grid)
    assert float(slope.abs().max()) <= GELU_LIPSCHITZ <= float(slope.abs().max()) + 1e-8
    assert lipschitz_bound(nn.GELU()) == GELU_LIPSCHITZ
    assert lipschitz_bound(nn.LeakyReLU(2.0)) == 2.0
    assert lipschitz_bound(nn.LeakyReLU(0.1)) == 1.0
    assert lipschitz_bound(nn.Sigmoid()) == 0.25
    assert lipschitz_bound(nn.Dropout(0.5).eval()) == 1.0
    assert lipschitz_bound(nn.Dropout(0.5).train()) == 2.0
    assert lipschitz_bound(GroupSort(3)) == 1.0


def test_group_sort_sorts_groups():
    x = torch.randn(5, 6, 2, dtype=D)
    out = GroupSort(3)(x)
    expected = x.reshape(5, 2, 3, 2).sort(dim=2, descending=True).values.reshape(5, 6, 2)
    assert torch.equal(out, expected)
    pair = GroupSort(2)(x)
    a, b = x[:, :3], x[:, 3:]
    assert torch.allclose(
        pair, torch.cat([torch.maximum(a, b), torch.minimum(a, b)], 1), atol=1e-15
    )
    with pytest.raises(InvalidArgumentError, match="group_size=4"):
        GroupSort(4)(x)


class Custom(nn.Module):
    def forward(self, x):
        return 3 * x


class CustomWithHook(Custom):
    def lipschitz_bound(self) -> float:
        return 3.0


def test_unsupported_modules_are_named():
    with pytest.raises(UnsupportedOptionError, match=r"1 \(BatchNorm1d\)"):
        lipschitz_bound(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    with pytest.raises(UnsupportedOptionError, match=r"0\.1 \(MultiheadAttention\)"):
        lipschitz_bound(nn.Sequential(nn.Sequential(nn.ReLU(), nn.MultiheadAttention(4, 1))))
    with pytest.raises(UnsupportedOptionError, match="lipschitz_bound\\(\\) method"):
        lipschitz_bound(nn.Sequential(Custom()))
    assert lipschitz_bound(nn.Sequential(CustomWithHook(), nn.Linear(2, 2, bias=False))) > 0
    with pytest.raises(UnsupportedOptionError, match="input_shape"):
        lipschitz_bound(nn.AdaptiveAvgPool2d(1))
    with pytest.raises(UnsupportedOptionError, match="padding_mode='reflect'"):
        lipschitz_bound(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(InvalidArgumentError, match="module"):
        lipschitz_bound("not a module")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="input_shape"):
        lipschitz_bound(nn.ReLU(), input_shape=(0, 3))


def test_largest_singular_value_and_its_gradient_match_an_svd():
    from constrained_pairs.backbones.bounds import largest_singular_value, sigma_max

    gen = torch.Generator().manual_seed(3)
    for dtype in (torch.float64, torch.complex128):
        m = torch.randn(6, 5, 3, generator=gen, dtype=dtype, requires_grad=True)
        reference = torch.linalg.matrix_norm(m, ord=2)
        assert torch.allclose(sigma_max(m), reference.detach(), rtol=1e-12)
        (mine,) = torch.autograd.grad(largest_singular_value(m), m)
        (svd,) = torch.autograd.grad(reference.amax(), m)
        assert torch.allclose(mine, svd, atol=1e-12)


def test_non_finite_weights_have_no_bound():
    from constrained_pairs.errors import InvalidArgumentError

    layer = torch.nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    with pytest.raises(InvalidArgumentError, match="weight"):
        lipschitz_bound(torch.nn.Sequential(layer))
