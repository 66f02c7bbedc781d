"""The NCD fits under torch.distributed (SPEC §6): 2 CPU processes on gloo find the clusters of
one process with the same seed, a checkpoint written by rank 0 resumes on both ranks, and
mismatched data fails fast on every rank."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from constrained_pairs.distributed import launch
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.ncd import ResidualNCD


def _blobs():
    gen = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(5, 6, generator=gen, dtype=torch.float64)
    labels = torch.arange(5).repeat_interleave(14)
    x = centres[labels] + torch.randn(len(labels), 6, generator=gen, dtype=torch.float64)
    return x, labels


def _model() -> ResidualNCD:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8)).double()
    return ResidualNCD(backbone, 8, 2, 3, topk=4)


# 28 labelled and 42 unlabelled points; batches of 9 do not split evenly over 2 ranks.
OPTIONS = dict(batch_size=9, progress=False)


def _fit(checkpoint=None, **novel) -> dict:
    x, y = _blobs()
    known = y < 2
    model = _model()
    model.fit_known(x[known], y[known], epochs=3, **OPTIONS)
    model.fit_novel(
        x[~known], epochs=4, y_u=y[~known] - 2, checkpoint=checkpoint, **OPTIONS, **novel
    )
    return {
        "clusters": model.predict_novel(x[~known]),
        "ce": model.history.ce,
        "total": model.history.total,
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


class Interrupt(Exception):
    pass


def _crash(record):
    if record.epoch == 2:
        raise Interrupt


def _worker(rank: int, folder: str) -> dict:
    torch.set_num_threads(1)
    out = {"straight": _fit()}
    path = f"{folder}/novel.pt"
    try:
        _fit(checkpoint=path, checkpoint_every=1, callback=_crash)
    except Interrupt:
        pass
    out["resumed"] = _fit(checkpoint=path, resume=True)
    x, y = _blobs()
    try:
        _model().fit_novel(x + rank, epochs=1, progress=False)
        out["mismatch"] = "no error"
    except InvalidArgumentError as exc:
        out["mismatch"] = str(exc)
    return out


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ncd_distributed")
    return launch(_worker, 2, str(folder), backend="gloo", timeout=60, threads=1)


def test_two_processes_find_the_one_process_clusters(ranks):
    torch.set_num_threads(1)
    single = _fit()
    for result in ranks:
        assert torch.equal(result["straight"]["clusters"], single["clusters"])
        assert result["straight"]["ce"] == pytest.approx(single["ce"], rel=1e-9)
        assert result["straight"]["total"] == pytest.approx(single["total"], rel=1e-9)
        for key, value in single["state"].items():
            torch.testing.assert_close(
                result["straight"]["state"][key], value, rtol=1e-8, atol=1e-10
            )
    for key, value in ranks[0]["straight"]["state"].items():  # every rank the same model
        assert torch.equal(ranks[1]["straight"]["state"][key], value)


def test_a_checkpoint_written_by_rank_0_resumes_on_both_ranks(ranks):
    for result in ranks:
        assert result["resumed"]["total"] == result["straight"]["total"]
        assert torch.equal(result["resumed"]["clusters"], result["straight"]["clusters"])
        for key, value in result["straight"]["state"].items():
            assert torch.equal(result["resumed"]["state"][key], value)


def test_mismatched_data_fails_fast_on_every_rank(ranks):
    for result in ranks:
        assert "x_u differs across ranks" in result["mismatch"]
