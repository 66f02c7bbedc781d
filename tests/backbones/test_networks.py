"""The certified backbones: shapes, dtypes, copies, argument errors, CUDA."""

from __future__ import annotations

import copy

import pytest
import torch

from constrained_pairs.backbones import FreeConvNet, LipschitzConvNet, LipschitzMLP, lipschitz_bound
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conv_net_accepts_flat_and_shaped_inputs(dtype):
    net = LipschitzConvNet((1, 28, 14), 10, dtype=dtype)
    x = torch.rand(3, 1, 28, 14, dtype=dtype)
    out = net(x)
    assert out.shape == (3, 10) and out.dtype == dtype
    assert torch.equal(net(x.flatten(1)), out)
    assert lipschitz_bound(net) <= 1 + (1e-5 if dtype == torch.float32 else 1e-12)


def test_mlp_shapes_and_bound():
    net = LipschitzMLP(20, 6, hidden=(8, 4), dtype=torch.float64)
    assert net(torch.rand(5, 4, 5, dtype=torch.float64)).shape == (5, 6)
    assert lipschitz_bound(net) == pytest.approx(1.0, abs=1e-12)


def test_deepcopy_and_state_dict_round_trip():
    net = LipschitzConvNet((1, 8, 6), 4, channels=(4, 6), hidden=8, dtype=torch.float64)
    clone = copy.deepcopy(net)
    x = torch.rand(2, 48, dtype=torch.float64)
    assert torch.equal(clone(x), net(x))
    with torch.no_grad():
        for p in clone.parameters():
            p.add_(0.3)
    assert not torch.equal(clone(x), net(x))  # independent parameters
    fresh = LipschitzConvNet((1, 8, 6), 4, channels=(4, 6), hidden=8, dtype=torch.float64)
    fresh.load_state_dict(clone.state_dict())
    assert torch.equal(fresh(x), clone(x))
    assert lipschitz_bound(clone) <= 1 + 1e-9


def test_free_conv_net_bound_grows_with_its_weights():
    net = FreeConvNet((1, 8, 6), 4, channels=(4, 6), hidden=8, dtype=torch.float64)
    before = lipschitz_bound(net)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(2.0)
    assert lipschitz_bound(net) == pytest.approx(before * 16, rel=1e-9)  # 4 weighted layers


def test_argument_errors():
    with pytest.raises(InvalidArgumentError, match="in_shape"):
        LipschitzConvNet((28, 14), 10)
    with pytest.raises(InvalidArgumentError, match="too small"):
        LipschitzConvNet((1, 3, 3), 10, channels=(4, 4))
    with pytest.raises(InvalidArgumentError, match="hidden must be multiples of group_size"):
        LipschitzMLP(10, 2, hidden=(7,))
    with pytest.raises(InvalidArgumentError, match="channels"):
        LipschitzConvNet((1, 8, 8), 2, channels=(3,))
    with pytest.raises(InvalidTypeError, match="out_features"):
        LipschitzMLP(10, 2.5)  # type: ignore[arg-type]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_backbone_and_bound():
    net = LipschitzConvNet((1, 28, 14), 10, device="cuda")
    x = torch.rand(4, 1, 28, 14, device="cuda")
    out = net(x)
    out.sum().backward()
    assert out.device.type == "cuda"
    assert lipschitz_bound(net) <= 1 + 1e-5
    assert abs(lipschitz_bound(copy.deepcopy(net).cpu()) - lipschitz_bound(net)) < 1e-6
