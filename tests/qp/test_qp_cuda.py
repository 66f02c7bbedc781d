"""The native backend on a CUDA device (skipped cleanly without one)."""

from __future__ import annotations

import pytest
import torch
from qp_cases import mmcl_problem

from constrained_pairs.qp import solve_qp


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_on_cuda_matches_cpu(dtype):
    Q, p = mmcl_problem(32, dtype=dtype)
    weights = torch.randn(32, 31, dtype=dtype)
    results = {}
    for device in ("cpu", "cuda"):
        Qd = Q.to(device).requires_grad_()
        z, info = solve_qp(Qd, p.to(device), 0.0, 10.0, return_info=True)
        assert z.device.type == device and info.converged.device.type == device
        assert info.all_converged
        (z * weights.to(device)).sum().backward()
        results[device] = (z.detach().cpu(), Qd.grad.cpu())
    atol = 1e-8 if dtype == torch.float64 else 1e-3
    assert torch.allclose(results["cuda"][0], results["cpu"][0], atol=atol)
    assert torch.allclose(results["cuda"][1], results["cpu"][1], atol=atol * 10, rtol=1e-3)
