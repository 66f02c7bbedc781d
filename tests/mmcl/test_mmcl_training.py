"""Augmentations, pretraining (with checkpoint/resume) and the linear probe, end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from constrained_pairs.data import load_digits
from constrained_pairs.losses import info_nce
from constrained_pairs.mmcl import DigitAugment, MMCLLoss, linear_probe, pretrain, small_cnn


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(as_images=True)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    return x[order], y[order]


def test_identity_augment_returns_the_images(digits):
    x = digits[0][:16]
    same = DigitAugment(max_shift=0, max_rotation=0, min_crop=1.0, noise=0)(x)
    torch.testing.assert_close(same, x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(32, 1, 8, 8), (32, 64), (32, 1, 28, 28), (32, 784)])
def test_augment_keeps_shape_and_range_and_is_random(shape):
    x = torch.rand(shape)
    augment = DigitAugment()
    first, second = augment(x), augment(x)
    assert first.shape == x.shape and first.dtype == x.dtype
    assert float(first.min()) >= 0 and float(first.max()) <= 1
    assert (first - second).abs().max() > 0.05
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(augment(x, gen_a), augment(x, gen_b))


def test_augment_shift_moves_a_dot():
    image = torch.zeros(1, 1, 8, 8)
    image[0, 0, 4, 4] = 1.0
    shifted = DigitAugment(max_shift=0.5, max_rotation=0, min_crop=1.0, noise=0)(image)
    assert not torch.allclose(shifted, image)
    with pytest.raises(ValueError, match="min_crop"):
        DigitAugment(min_crop=0.0)
    with pytest.raises(ValueError, match="flat square"):
        DigitAugment()(torch.rand(4, 10))


def test_linear_probe_matches_sklearn_on_identity_features(digits):
    x, y = digits
    flat = x.flatten(1)
    encoder = nn.Identity()
    encoder.register_parameter("anchor", nn.Parameter(torch.zeros(1)))  # gives it a device
    accuracy = linear_probe(encoder, (flat[:1000], y[:1000]), (flat[1000:], y[1000:]))
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(flat[:1000].numpy())
    probe = LogisticRegression(max_iter=2000).fit(scaler.transform(flat[:1000].numpy()), y[:1000])
    expected = float(
        np.mean(probe.predict(scaler.transform(flat[1000:].numpy())) == y[1000:].numpy())
    )
    assert accuracy == pytest.approx(expected)
    assert accuracy > 0.9
    with pytest.raises(TypeError, match="train"):
        linear_probe(encoder, flat, (flat, y))
    with pytest.raises(ValueError, match="labels"):
        linear_probe(encoder, (flat[:10], y[:9]), (flat, y))


@pytest.mark.parametrize("loss_name", ["mmcl", pytest.param("info_nce", marks=pytest.mark.slow)])
def test_pretrain_then_probe_beats_a_random_encoder(digits, loss_name):
    x, y = digits
    loss = MMCLLoss() if loss_name == "mmcl" else info_nce
    torch.manual_seed(0)
    random_encoder = small_cnn(side=8, dim=32, width=8)
    torch.manual_seed(0)
    encoder = small_cnn(side=8, dim=32, width=8)
    outcome = pretrain(
        encoder,
        x[:256],
        loss,
        epochs=2,
        batch_size=64,
        lr=3e-3,
        augment=DigitAugment(),
        device="cpu",
        seed=0,
        progress=False,
    )
    history = outcome.history
    assert history.epoch == [0, 1] and all(np.isfinite(history.loss))
    assert outcome.status == "max_iter"
    train, test = (x[:512], y[:512]), (x[1200:], y[1200:])
    trained = linear_probe(encoder, train, test)
    baseline = linear_probe(random_encoder, train, test)
    assert trained > 0.8
    assert trained > baseline - 0.02


class Interrupt(Exception):
    """Stands for a crash (kill -9) in the middle of a run."""


def test_checkpoint_resume_reproduces_an_uninterrupted_run(digits, tmp_path):
    x = digits[0][:128]
    kwargs = dict(
        batch_size=32, lr=1e-3, augment=DigitAugment(), device="cpu", seed=1, progress=False
    )
    torch.manual_seed(0)
    straight = small_cnn(side=8, dim=16, width=4)
    history = pretrain(straight, x, info_nce, epochs=2, **kwargs).history
    torch.manual_seed(0)
    resumed = small_cnn(side=8, dim=16, width=4)
    path = tmp_path / "mmcl.pt"

    def crash(record):  # in epoch 1, after epoch 0's checkpoint was written
        if record.epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        pretrain(
            resumed,
            x,
            info_nce,
            epochs=2,
            checkpoint=path,
            checkpoint_every=1,
            callback=crash,
            **kwargs,
        )
    assert path.exists()
    torch.manual_seed(0)
    fresh = small_cnn(side=8, dim=16, width=4)  # its weights come from the checkpoint
    history2 = pretrain(
        fresh, x, info_nce, epochs=2, checkpoint=path, resume=True, **kwargs
    ).history
    assert history2.epoch == [0, 1]
    assert history2.loss == pytest.approx(history.loss)
    for a, b in zip(straight.state_dict().values(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="resume"):
        pretrain(fresh, x, info_nce, epochs=2, resume=True, **kwargs)


def test_pretrain_leaves_the_callers_rng_alone_and_reports_divergence(digits):
    x = digits[0][:64]
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    encoder = small_cnn(side=8, dim=8, width=4)
    torch.manual_seed(5)
    pretrain(encoder, x, info_nce, epochs=1, batch_size=32, augment=DigitAugment(), progress=False)
    assert torch.equal(torch.rand(3), expected)
    before = [p.detach().clone() for p in encoder.parameters()]

    def nan_loss(z1, z2):
        return info_nce(z1, z2) * float("nan")

    outcome = pretrain(
        encoder, x, nan_loss, epochs=2, batch_size=32, augment=DigitAugment(), progress=False
    )
    assert outcome.status == "diverged" and len(outcome.history) == 0
    for a, b in zip(before, encoder.parameters()):  # the last finite weights (the start)
        assert torch.equal(a, b)


def test_pretrain_rejects_bad_arguments(digits):
    x = digits[0][:64]
    encoder = small_cnn(side=8, dim=8, width=4)
    common = dict(lr=1e-3, augment=DigitAugment(), device="cpu", seed=0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        pretrain(encoder, x, MMCLLoss(), epochs=1, batch_size=128, **common)
    with pytest.raises(ValueError, match="batch_size"):
        pretrain(encoder, x, MMCLLoss(), epochs=1, batch_size=1, **common)
    with pytest.raises(TypeError, match="dataset"):
        pretrain(encoder, [1, 2], MMCLLoss(), epochs=1, **common)
    with pytest.raises(ValueError, match="epochs"):
        pretrain(encoder, x, MMCLLoss(), epochs=0, **common)
    for lr in (float("nan"), -1.0, float("inf"), 0.0):
        with pytest.raises(ValueError, match="lr"):
            pretrain(encoder, x, MMCLLoss(), epochs=1, batch_size=32, **{**common, "lr": lr})
    with pytest.raises(TypeError, match="augment"):
        pretrain(encoder, x, MMCLLoss(), epochs=1, batch_size=32, **{**common, "augment": 3})
    with pytest.raises(TypeError, match="seed"):
        pretrain(encoder, x, MMCLLoss(), epochs=1, batch_size=32, **{**common, "seed": "abc"})
    with pytest.raises(TypeError, match="callback"):
        pretrain(encoder, x, MMCLLoss(), epochs=1, batch_size=32, callback=3, **common)
    with pytest.raises(ValueError, match="distributed"):
        pretrain(encoder, x, MMCLLoss(), epochs=1, batch_size=32, distributed=True, **common)


def _sample_mean_loss(z1, z2):
    """A loss that is a mean over the batch's samples: its sharded gradient average is exact."""
    return ((z1 * z2).sum(1) - 1).pow(2).mean()


def _pretrain_worker(rank: int) -> dict:
    torch.set_num_threads(1)
    x = load_digits(as_images=True)[0][:96].double()
    torch.manual_seed(0)
    encoder = small_cnn(side=8, dim=8, width=4).double()
    outcome = pretrain(
        encoder,
        x,
        _sample_mean_loss,
        epochs=2,
        batch_size=32,
        lr=1e-2,
        augment=lambda b: b.flip(-1),
        progress=False,
    )
    return {"loss": outcome.history.loss, "state": encoder.state_dict()}


def test_two_process_pretraining_shards_the_batch_and_matches_one_process():
    from constrained_pairs.distributed import launch

    ranks = launch(_pretrain_worker, 2, backend="gloo", timeout=60, threads=1)
    single = _pretrain_worker(0)
    for result in ranks:
        assert result["loss"] == pytest.approx(single["loss"], rel=1e-9)
        for key, value in single["state"].items():
            torch.testing.assert_close(result["state"][key], value, rtol=1e-8, atol=1e-10)
    for key, value in ranks[0]["state"].items():
        assert torch.equal(ranks[1]["state"][key], value)


def test_pretrain_refuses_a_learning_rate_that_overflows_the_encoder_dtype():
    from constrained_pairs.errors import InvalidArgumentError
    from constrained_pairs.mmcl import MMCLLoss, pretrain

    encoder = torch.nn.Linear(4, 3)  # float32: Adam's first step 10·lr must stay below 3.4e38

    def augment(x):
        return x + 0.01 * torch.randn_like(x)

    with pytest.raises(InvalidArgumentError, match="lr must be at most"):
        pretrain(
            encoder,
            torch.randn(16, 4),
            loss=MMCLLoss(),
            augment=augment,
            epochs=1,
            batch_size=8,
            lr=1e300,
        )
