"""InfoNCE / NT-Xent against a loop over anchors and pytorch-metric-learning's NTXentLoss."""

from __future__ import annotations

import pytest
import torch

from constrained_pairs.losses import InfoNCELoss, info_nce


def _loop_formula(z1, z2, temperature):
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    batch = len(z1)
    losses = []
    for i in range(2 * batch):
        positive = (i + batch) % (2 * batch)
        sims = torch.stack([z[i] @ z[j] / temperature for j in range(2 * batch) if j != i])
        losses.append(torch.logsumexp(sims, 0) - z[i] @ z[positive] / temperature)
    return torch.stack(losses)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_info_nce_against_loop(reduction):
    z1, z2 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    losses = _loop_formula(z1, z2, 0.3)
    expected = {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]
    torch.testing.assert_close(info_nce(z1, z2, 0.3, reduction), expected)
    torch.testing.assert_close(InfoNCELoss(0.3, reduction)(z1, z2), expected)


def test_info_nce_matches_pytorch_metric_learning():
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning.losses import NTXentLoss

    z1, z2 = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    labels = torch.arange(6).repeat(2)
    reference = NTXentLoss(temperature=0.2)(torch.cat([z1, z2]), labels)
    torch.testing.assert_close(info_nce(z1, z2, 0.2), reference)


def test_info_nce_gradcheck_and_bad_inputs():
    z1 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: info_nce(a, z2, 0.5), z1)
    with pytest.raises(ValueError, match="shape"):
        info_nce(z1, z2[:3])
    with pytest.raises(ValueError, match="temperature"):
        info_nce(z1, z2, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=-1.0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"temperature": float("inf")}, ValueError, "temperature"),
        ({"temperature": "0.1"}, TypeError, "temperature"),
        ({"gather": "yes"}, TypeError, "gather"),
        ({"gather": True}, ValueError, "gather=True"),  # no process group here
    ],
)
def test_info_nce_validates_its_options(kwargs, error, match):
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    with pytest.raises(error, match=match):
        info_nce(z1, z2, **kwargs)


def test_info_nce_rejects_non_tensors_and_integer_embeddings():
    with pytest.raises(TypeError, match="z1"):
        info_nce([[1.0, 0.0], [0.0, 1.0]], torch.eye(2))
    with pytest.raises(TypeError, match="z2"):
        info_nce(torch.eye(2), torch.eye(2, dtype=torch.long))
