"""MMCL on every device (the CPU, and CUDA when present) agrees with the CPU."""

from __future__ import annotations

import pytest
import torch

from constrained_pairs.mmcl import DigitAugment, MMCLLoss


@pytest.mark.parametrize("grad", ["detach", "implicit"])
def test_every_device_matches_the_cpu(grad, device):
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(128, 16, generator=gen, dtype=torch.float64)
    z2 = z1 + 0.3 * torch.randn(128, 16, generator=gen, dtype=torch.float64)
    results = []
    for where in (torch.device("cpu"), device):
        a, b = z1.to(where).requires_grad_(), z2.to(where).requires_grad_()
        loss_fn = MMCLLoss(grad=grad)
        value = loss_fn(a, b)
        value.backward()
        assert loss_fn.last_info.all_converged
        assert loss_fn.last_beta.device.type == where.type
        results.append([t.detach().cpu() for t in (value, a.grad, b.grad)])
    for cpu, gpu in zip(*results):
        torch.testing.assert_close(cpu, gpu, atol=1e-8, rtol=1e-8)
    views = DigitAugment()(torch.rand(8, 1, 28, 28, device=device))
    assert views.device.type == device.type
