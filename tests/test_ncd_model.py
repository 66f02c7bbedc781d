"""ResidualNCD: argument checks, history, checkpoint/resume, dtype and device handling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

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


def _fit(model: ResidualNCD, epochs: int, checkpoint=None) -> ResidualNCD:
    x, y = _blobs()
    known = y < 2
    model.fit_known(x[known], y[known], epochs, batch_size=8, progress=False,
                    checkpoint=None if checkpoint is None else checkpoint[0])
    model.fit_novel(x[~known], epochs, batch_size=8, y_u=y[~known] - 2, progress=False,
                    checkpoint=None if checkpoint is None else checkpoint[1])
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
        model.fit_novel(torch.zeros(0, 6), 1, progress=False)
    with pytest.raises(ValueError, match="more than"):
        model.fit_novel(torch.randn(3, 6), 1, progress=False)
    with pytest.raises(ValueError, match="does not fit the backbone"):
        model.fit_novel(torch.randn(20, 5), 1, progress=False)
    with pytest.raises(ValueError, match="lie in"):
        model.fit_known(torch.randn(4, 6), torch.tensor([0, 1, 2, 0]), 1, progress=False)
    with pytest.raises(ValueError, match="same length"):
        model.fit_known(torch.randn(4, 6), torch.tensor([0, 1, 1]), 1, progress=False)
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
    x, _ = _blobs()
    assert set(model.predict_novel(x).tolist()) <= {0, 1}
    assert set(model.predict_known(x).tolist()) <= {0, 1}
    q = model.soft_assign(x)
    torch.testing.assert_close(q.sum(1), torch.ones(len(x)))


def test_ablation_switches_zero_their_terms():
    x, y = _blobs()
    model = _model(residual=False)
    assert model.residual_branch is None
    model.fit_known(x[y < 2], y[y < 2], 1, progress=False)
    model.fit_novel(x[y >= 2], 2, use_distill=False, use_pair=False, progress=False)
    assert model.history.distill == [0.0, 0.0] and model.history.pair == [0.0, 0.0]


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path):
    paths = (tmp_path / "known.pt", tmp_path / "novel.pt")
    reference = _fit(_model(), 4)
    _fit(_model(), 2, checkpoint=paths)  # "interrupted" after 2 epochs of each stage
    # A fresh model resumes stage 1 from its checkpoint, then stage 2 from its own.
    resumed = _model()
    x, y = _blobs()
    known = y < 2
    resumed.fit_known(x[known], y[known], 4, batch_size=8, progress=False, checkpoint=paths[0])
    # Stage 2 was checkpointed after stage 1 had only 2 epochs; restart it from scratch.
    paths[1].unlink()
    resumed.fit_novel(x[~known], 4, batch_size=8, y_u=y[~known] - 2, progress=False,
                      checkpoint=paths[1])
    assert resumed.history.ce == pytest.approx(reference.history.ce)
    assert resumed.history.total == pytest.approx(reference.history.total)
    for a, b in zip(resumed.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(a, b)
    # Resuming stage 2 half-way gives the same end point too.
    half = _model()
    half.fit_known(x[known], y[known], 4, batch_size=8, progress=False)
    path = tmp_path / "half.pt"
    half.fit_novel(x[~known], 2, batch_size=8, progress=False, checkpoint=path)
    half2 = _model()
    half2.fit_known(x[known], y[known], 4, batch_size=8, progress=False)
    half2.fit_novel(x[~known], 4, batch_size=8, progress=False, checkpoint=path)
    full = _model()
    full.fit_known(x[known], y[known], 4, batch_size=8, progress=False)
    full.fit_novel(x[~known], 4, batch_size=8, progress=False)
    assert half2.history.total == pytest.approx(full.history.total)
    with pytest.raises(ValueError, match="stage"):
        _model().fit_known(x[known], y[known], 4, progress=False, checkpoint=path)


def test_float64_end_to_end_separates_blobs():
    model = _fit(_model(dtype=torch.float64), 15)
    assert model.centers.dtype == torch.float64
    assert model.history.novel_acc[-1] == 1.0


@pytest.mark.cuda
def test_cuda_device_is_honoured():
    x, y = _blobs()
    model = _model(device="cuda")
    model.fit_known(x[y < 2], y[y < 2], 1, progress=False)
    model.fit_novel(x[y >= 2], 1, progress=False)
    assert model.predict_novel(x).device.type == "cuda"
