"""Contrastive and autoencoder pretraining, the extended RandomAffine and the reduction inits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from constrained_pairs.ncd import ResidualNCD
from constrained_pairs.ncd.pretrain import pretrain_autoencoder, pretrain_contrastive
from constrained_pairs.ncd.vision import RandomAffine, mlp_backbone


def test_pretrain_contrastive_trains_the_backbone():
    x = torch.rand(64, 1, 8, 8)
    backbone = mlp_backbone(64, 16, hidden=32)
    augment = RandomAffine(shear=0.3, aspect=0.2, noise=0.05)
    before = [p.detach().clone() for p in backbone.parameters()]
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    outcome = pretrain_contrastive(
        backbone, x, 16, augment, epochs=3, batch_size=32, progress=False
    )
    assert outcome.status == "max_iter" and outcome.history.epoch == [0, 1, 2]
    assert torch.equal(torch.rand(3), expected)  # the caller's RNG is left as it was
    assert any(not torch.equal(a, b) for a, b in zip(before, backbone.parameters()))


def test_pretrain_autoencoder_lowers_the_reconstruction_error_and_resumes(tmp_path):
    x = torch.rand(64, 1, 8, 8)

    def fresh():
        torch.manual_seed(0)
        return mlp_backbone(64, 16, hidden=32)

    reference = fresh()
    outcome = pretrain_autoencoder(
        reference, x, 16, epochs=6, batch_size=16, hidden=32, progress=False
    )
    losses = outcome.history.loss
    assert len(losses) == 6 and losses[-1] < losses[0]
    path = tmp_path / "ae.pt"

    def crash(record):
        if record.epoch == 2:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        pretrain_autoencoder(
            fresh(),
            x,
            16,
            epochs=6,
            batch_size=16,
            hidden=32,
            progress=False,
            checkpoint=path,
            checkpoint_every=1,
            callback=crash,
        )
    resumed = fresh()
    again = pretrain_autoencoder(
        resumed,
        x,
        16,
        epochs=6,
        batch_size=16,
        hidden=32,
        progress=False,
        checkpoint=path,
        resume=True,
    )
    assert again.history.loss == losses
    for a, b in zip(resumed.parameters(), reference.parameters()):
        assert torch.equal(a, b)


def test_random_affine_extensions():
    x = torch.rand(5, 1, 8, 8)
    draw = torch.Generator().manual_seed(0)
    plain = RandomAffine(generator=draw)(x)
    draw.manual_seed(0)
    zero = RandomAffine(generator=draw, shear=0.0, aspect=0.0, noise=0.0)(x)
    torch.testing.assert_close(plain, zero)  # the new options default to the old transform
    out = RandomAffine(shear=0.5, aspect=0.3, noise=0.1)(x)
    assert out.shape == x.shape and not torch.equal(out, plain)
    identity = RandomAffine(shift=0.0, degrees=0.0, scale=0.0)
    torch.testing.assert_close(identity(x), x, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="shear"):
        RandomAffine(shear=-1.0)


@pytest.mark.parametrize("init", ["discriminant", "pca"])
def test_reduction_inits_separate_blobs(init):
    gen = torch.Generator().manual_seed(1)
    centres = 3 * torch.randn(3, 10, generator=gen)
    labels = torch.arange(3).repeat_interleave(20)
    x = centres[labels] + torch.randn(60, 10, generator=gen)
    model = ResidualNCD(nn.Identity(), 10, 2, 3, topk=3)
    model.fit_novel(x, epochs=1, backbone_lr=0.0, reduction_init=init, y_u=labels, progress=False)
    assert model.history.novel_acc[-1] == 1.0
    with pytest.raises(ValueError, match="reduction_init"):
        model.fit_novel(x, epochs=1, reduction_init="lda", progress=False)
