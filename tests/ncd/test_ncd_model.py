"""ResidualNCD: argument checks, history, checkpoint/resume, dtype and device handling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from constrained_pairs.errors import CheckpointError
from constrained_pairs.ncd import ResidualNCD


def _blobs(n_per: int = 12, n_classes: int = 4, dim: int = 6, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(n_classes, dim, generator=gen, dtype=dtype)
    labels = torch.arange(n_classes).repeat_interleave(n_per)
    x = centres[labels] + torch.randn(len(labels), dim, generator=gen, dtype=dtype)
    return x, labels


def _model(dtype=torch.float32, **options) -> ResidualNCD:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8)).to(dtype)
    return ResidualNCD(backbone, 8, 2, 2, topk=3, **options)


def _fit(model: ResidualNCD, epochs: int, checkpoint=None, **options) -> ResidualNCD:
    x, y = _blobs()
    known = y < 2
    paths = (None, None) if checkpoint is None else checkpoint
    model.fit_known(
        x[known],
        y[known],
        epochs=epochs,
        batch_size=8,
        progress=False,
        checkpoint=paths[0],
        **options,
    )
    model.fit_novel(
        x[~known],
        epochs=epochs,
        batch_size=8,
        y_u=y[~known] - 2,
        progress=False,
        checkpoint=paths[1],
        **options,
    )
    return model


def test_bad_arguments_raise_value_error():
    backbone = nn.Linear(6, 8)
    with pytest.raises(ValueError, match="n_novel"):
        ResidualNCD(backbone, 8, 2, 0)
    with pytest.raises(ValueError, match="sigma"):
        ResidualNCD(backbone, 8, 2, 2, sigma=0.0)
    with pytest.raises(TypeError, match="backbone"):
        ResidualNCD("not a module", 8, 2, 2)
    model = ResidualNCD(backbone, 8, 2, 2, topk=3)
    with pytest.raises(ValueError, match="x_u"):
        model.fit_novel(torch.zeros(0, 6), epochs=1, progress=False)
    with pytest.raises(ValueError, match="more than"):
        model.fit_novel(torch.randn(3, 6), epochs=1, progress=False)
    with pytest.raises(ValueError, match="does not fit the backbone"):
        model.fit_novel(torch.randn(20, 5), epochs=1, progress=False)
    with pytest.raises(ValueError, match="lie in"):
        model.fit_known(torch.randn(4, 6), torch.tensor([0, 1, 2, 0]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="same length"):
        model.fit_known(torch.randn(4, 6), torch.tensor([0, 1, 1]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="feat_dim=9"):
        ResidualNCD(nn.Linear(6, 8), 9, 2, 2).predict_known(torch.randn(4, 6))


def test_history_records_every_term_per_epoch():
    model = _fit(_model(), 3)
    history = model.history
    assert len(history.ce) == 3
    for name in ("cluster", "distill", "pair", "total", "novel_acc"):
        assert len(getattr(history, name)) == 3, name
    for c, d, p, t in zip(history.cluster, history.distill, history.pair, history.total):
        assert t == pytest.approx(c + model.beta * d + p)
        assert c >= 0 and d > 0 and p > 0
    assert history.known_status == "max_iter" and history.novel_status == "max_iter"
    assert [r.epoch for r in history.novel] == [0, 1, 2]
    x, _ = _blobs()
    assert set(model.predict_novel(x).tolist()) <= {0, 1}
    assert set(model.predict_known(x).tolist()) <= {0, 1}
    q = model.soft_assign(x)
    torch.testing.assert_close(q.sum(1), torch.ones(len(x)))


def test_ablation_switches_zero_their_terms():
    x, y = _blobs()
    model = _model(residual=False)
    assert model.residual_branch is None
    model.fit_known(x[y < 2], y[y < 2], epochs=1, progress=False)
    model.fit_novel(x[y >= 2], epochs=2, use_distill=False, use_pair=False, progress=False)
    assert model.history.distill == [0.0, 0.0] and model.history.pair == [0.0, 0.0]


class Interrupt(Exception):
    """Stands for a crash (kill -9) in the middle of a run."""


def _stop_after(epoch: int):
    def callback(record):
        if record.epoch == epoch:
            raise Interrupt

    return callback


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path):
    paths = (tmp_path / "known.pt", tmp_path / "novel.pt")
    x, y = _blobs()
    known = y < 2
    common = dict(batch_size=8, progress=False, checkpoint_every=1)
    reference = _fit(_model(), 4)
    # Stage 1 "crashes" after 2 of 4 epochs; a fresh model resumes it from the file.
    with pytest.raises(Interrupt):
        _model().fit_known(
            x[known], y[known], epochs=4, checkpoint=paths[0], callback=_stop_after(1), **common
        )
    resumed = _model()
    resumed.fit_known(x[known], y[known], epochs=4, checkpoint=paths[0], resume=True, **common)
    # Stage 2 crashes after 2 of 4 epochs, then resumes (its graph and targets come back too).
    with pytest.raises(Interrupt):
        resumed.fit_novel(
            x[~known],
            epochs=4,
            y_u=y[~known] - 2,
            checkpoint=paths[1],
            callback=_stop_after(1),
            **common,
        )
    again = _model()
    again.fit_known(x[known], y[known], epochs=4, checkpoint=paths[0], resume=True, **common)
    again.fit_novel(
        x[~known], epochs=4, y_u=y[~known] - 2, checkpoint=paths[1], resume=True, **common
    )
    assert again.history.ce == pytest.approx(reference.history.ce)
    assert again.history.total == pytest.approx(reference.history.total)
    assert again.history.novel_acc == reference.history.novel_acc
    for a, b in zip(again.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # A finished run resumes to its saved result; a checkpoint of the other stage is refused.
    finished = _model()
    outcome = finished.fit_known(
        x[known], y[known], epochs=4, checkpoint=paths[0], resume=True, **common
    )
    assert outcome.iterations == 4 * 3 and finished.history.ce == reference.history.ce
    with pytest.raises(CheckpointError, match="kind"):
        _model().fit_known(x[known], y[known], epochs=4, checkpoint=paths[1], resume=True, **common)
    with pytest.raises(ValueError, match="resume"):
        _model().fit_known(x[known], y[known], epochs=4, resume=True, **common)


def test_without_resume_an_existing_checkpoint_is_overwritten(tmp_path):
    path = tmp_path / "known.pt"
    x, y = _blobs()
    first = _model()
    first.fit_known(x[y < 2], y[y < 2], epochs=1, progress=False, checkpoint=path)
    second = _model()
    second.fit_known(x[y < 2], y[y < 2], epochs=3, progress=False, checkpoint=path)
    assert len(second.history.ce) == 3  # trained from scratch, not resumed silently


def test_float64_end_to_end_separates_blobs():
    model = _fit(_model(dtype=torch.float64), 15)
    assert model.centers.dtype == torch.float64
    assert model.history.novel_acc[-1] == 1.0


def test_fits_leave_the_callers_rng_alone():
    x, y = _blobs()
    model = _model()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    model.fit_known(
        x[y < 2],
        y[y < 2],
        epochs=1,
        progress=False,
        augment=lambda b: b + 0.01 * torch.randn_like(b),
    )
    model.fit_novel(x[y >= 2], epochs=1, progress=False)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.cuda
def test_cuda_device_is_honoured():
    x, y = _blobs()
    model = _model(device="cuda")
    model.fit_known(x[y < 2], y[y < 2], epochs=1, progress=False)
    model.fit_novel(x[y >= 2], epochs=1, progress=False)
    assert model.predict_novel(x).device.type == "cuda"
