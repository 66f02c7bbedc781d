"""The native backend on every device (the CPU, and CUDA when present) agrees with the CPU."""

from __future__ import annotations

import pytest
import torch

from constrained_pairs.qp import solve_qp
from tests.helpers.qp_cases import mmcl_problem


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_on_every_device_matches_the_cpu(dtype, device):
    Q, p = mmcl_problem(32, dtype=dtype)
    weights = torch.randn(32, 31, dtype=dtype)
    results = {}
    for where in ("cpu", device.type):
        Qd = Q.to(where).requires_grad_()
        z, info = solve_qp(Qd, p.to(where), 0.0, 10.0, return_info=True)
        assert z.device.type == where and info.converged.device.type == where
        assert info.all_converged
        (z * weights.to(where)).sum().backward()
        results[where] = (z.detach().cpu(), Qd.grad.cpu())
    atol = 1e-8 if dtype == torch.float64 else 1e-3
    assert torch.allclose(results[device.type][0], results["cpu"][0], atol=atol)
    assert torch.allclose(results[device.type][1], results["cpu"][1], atol=atol * 10, rtol=1e-3)
