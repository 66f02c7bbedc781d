"""The losses and heads on every device (the CPU, and CUDA when present) agree with the CPU."""

from __future__ import annotations

import torch

from constrained_pairs import activations
from constrained_pairs.losses import (
    KINDS,
    MarginSoftmax,
    contrastive_loss,
    focal_loss,
    focal_loss_multiclass,
    huber,
    mine_triplets,
    triplet_loss,
)


def test_every_device_matches_the_cpu(device):
    x = torch.randn(32, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (32,))
    gpu = device
    for mining in ("all", "hard", "semihard", "easy"):
        for cpu_part, gpu_part in zip(
            mine_triplets(x, y, 0.5, mining), mine_triplets(x.to(gpu), y.to(gpu), 0.5, mining)
        ):
            assert torch.equal(cpu_part, gpu_part.cpu())
        torch.testing.assert_close(
            triplet_loss(x, y, 0.5, mining), triplet_loss(x.to(gpu), y.to(gpu), 0.5, mining).cpu()
        )
    same = torch.rand(32) < 0.5
    torch.testing.assert_close(
        contrastive_loss(x, x.flip(0), same),
        contrastive_loss(x.to(gpu), x.flip(0).to(gpu), same.to(gpu)).cpu(),
    )
    t = (torch.rand(32, 4) < 0.5).double()
    torch.testing.assert_close(focal_loss(x, t), focal_loss(x.to(gpu), t.to(gpu)).cpu())
    torch.testing.assert_close(huber(x, t), huber(x.to(gpu), t.to(gpu)).cpu())
    logits = torch.randn(32, 3, dtype=torch.float64)
    torch.testing.assert_close(
        focal_loss_multiclass(logits, y), focal_loss_multiclass(logits.to(gpu), y.to(gpu)).cpu()
    )
    torch.testing.assert_close(
        activations.fast_sigmoid(x), activations.fast_sigmoid(x.to(gpu)).cpu()
    )
    for kind in KINDS:
        head = MarginSoftmax(4, 3, kind, dtype=torch.float64)
        head_gpu = MarginSoftmax(4, 3, kind, dtype=torch.float64, device=gpu)
        head_gpu.load_state_dict(head.state_dict())
        torch.testing.assert_close(head(x, y), head_gpu(x.to(gpu), y.to(gpu)).cpu())
        boundary = head_gpu.decision_boundary()
        assert boundary.region(x.to(gpu)).device.type == device.type
