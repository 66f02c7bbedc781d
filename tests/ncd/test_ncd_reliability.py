"""The reliability contract on the NCD entry points (SPEC §7): every hyper-parameter checked
with an error naming it, and a non-finite loss ends a fit as ``diverged`` with the last finite
parameters."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.ncd import ResidualNCD, pretrain_contrastive
from constrained_pairs.vision import RandomAffine, mlp_backbone


def _blobs():
    gen = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(4, 6, generator=gen)
    labels = torch.arange(4).repeat_interleave(12)
    return centres[labels] + torch.randn(48, 6, generator=gen), labels


def _model(**options) -> ResidualNCD:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8))
    return ResidualNCD(backbone, 8, 2, 2, **{"topk": 3, **options})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("residual_hidden", 0),
        ("alpha", math.nan),
        ("alpha", -1.0),
        ("sigma", math.inf),
        ("beta", -1.0),
        ("beta", math.nan),
        ("topk", 0),
        ("target_every", 0),
    ],
)
def test_model_hyperparameters_are_checked(name, value):
    with pytest.raises(InvalidArgumentError, match=name):
        _model(**{name: value})


BAD_FIT_OPTIONS = [
    ("lr", math.nan, InvalidArgumentError),
    ("lr", -1.0, InvalidArgumentError),
    ("lr", math.inf, InvalidArgumentError),
    ("lr", 0.0, InvalidArgumentError),
    ("backbone_lr", -1.0, InvalidArgumentError),
    ("backbone_lr", math.nan, InvalidArgumentError),
    ("weight_decay", -0.1, InvalidArgumentError),
    ("epochs", 0, InvalidArgumentError),
    ("epochs", 1.5, InvalidTypeError),
    ("batch_size", 0, InvalidArgumentError),
    ("seed", "abc", InvalidTypeError),
    ("callback", 3, InvalidTypeError),
    ("progress", "yes", InvalidTypeError),
    ("augment", 3, InvalidTypeError),
    ("dtype", torch.float16, InvalidArgumentError),
    ("checkpoint_every", 0, InvalidArgumentError),
]


@pytest.mark.parametrize(("name", "value", "error"), BAD_FIT_OPTIONS)
def test_fit_options_are_checked_before_any_work(name, value, error):
    x, y = _blobs()
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(error, match=name):
        model.fit_known(x[y < 2], y[y < 2], **{"epochs": 1, "progress": False, name: value})
    with pytest.raises(error, match=name):
        model.fit_novel(x[y >= 2], **{"epochs": 1, "progress": False, name: value})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("pair_pos_weight", -1.0, InvalidArgumentError),
        ("pair_pos_weight", "even", InvalidArgumentError),
        ("pair_pos_weight", math.nan, InvalidArgumentError),
        ("kmeans_restarts", 0, InvalidArgumentError),
        ("batch_size", 1, InvalidArgumentError),
        ("use_pair", "yes", InvalidTypeError),
    ],
)
def test_stage2_options_are_checked(name, value, error):
    x, y = _blobs()
    with pytest.raises(error, match=name):
        _model().fit_novel(x[y >= 2], epochs=1, progress=False, **{name: value})


def test_vocabulary_errors_name_the_option(tmp_path):
    x, y = _blobs()
    model = _model()
    with pytest.raises(InvalidArgumentError, match="resume"):
        model.fit_known(x[y < 2], y[y < 2], epochs=1, resume=True, progress=False)
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        model.fit_known(x[y < 2], y[y < 2], epochs=1, checkpoint=tmp_path / "no" / "c.pt")
    with pytest.raises(InvalidArgumentError, match="distributed"):
        model.fit_novel(x[y >= 2], epochs=1, distributed=True, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgumentError, match="CUDA"):
            model.fit_known(x[y < 2], y[y < 2], epochs=1, device="cuda", progress=False)
    with pytest.raises(InvalidArgumentError, match="lr"):
        pretrain_contrastive(mlp_backbone(6, 8), x, 8, RandomAffine(), lr=-1.0)


class _PoisonAfter:
    """An augmentation that returns NaN inputs from its ``calls``-th call on."""

    def __init__(self, calls: int) -> None:
        self.calls, self.seen = calls, 0

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.seen += 1
        return batch * math.nan if self.seen > self.calls else batch


def test_a_non_finite_loss_ends_stage1_as_diverged_with_the_last_finite_epoch():
    x, y = _blobs()
    known = y < 2  # 24 samples, batches of 8: 3 steps per epoch
    reference = _model()
    reference.fit_known(x[known], y[known], epochs=2, batch_size=8, progress=False)
    model = _model()
    outcome = model.fit_known(
        x[known], y[known], epochs=5, batch_size=8, progress=False, augment=_PoisonAfter(7)
    )  # the 8th step, in epoch 3, is NaN
    assert outcome.status == "diverged" and model.history.known_status == "diverged"
    assert len(outcome.history) == 2 and all(math.isfinite(v) for v in model.history.ce)
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)


def test_a_non_finite_loss_ends_stage2_as_diverged_with_the_last_finite_epoch():
    x, y = _blobs()
    novel = y >= 2
    model = _model()
    outcome = model.fit_novel(
        x[novel], epochs=4, batch_size=8, progress=False, augment=_PoisonAfter(3)
    )  # epoch 0 finite, epoch 1 NaN
    assert outcome.status == "diverged" and len(outcome.history) == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    reference = _model()
    reference.fit_novel(x[novel], epochs=1, batch_size=8, progress=False)
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)


# -- inputs, learning rates and sizes (issue 12) ----------------------------------------------
@pytest.mark.parametrize(
    "convert", [lambda x: torch.complex(x, x), lambda x: x > 0], ids=["complex", "bool"]
)
def test_complex_and_boolean_inputs_are_refused_everywhere(convert):
    x, y = _blobs()
    model = _model()
    with pytest.raises(InvalidTypeError, match="x must hold real numbers"):
        model.fit_known(convert(x[y < 2]), y[y < 2], epochs=1, progress=False)
    with pytest.raises(InvalidTypeError, match="x_u must hold real numbers"):
        model.fit_novel(convert(x[y >= 2]), epochs=1, progress=False)
    with pytest.raises(InvalidTypeError, match="x must hold real numbers"):
        model.predict_novel(convert(x))
    with pytest.raises(InvalidTypeError, match="x must hold real numbers"):
        model.predict_known(convert(x).numpy())


def test_integer_inputs_are_converted_exactly_not_truncated():
    x, y = _blobs()
    x_int = (10 * x[y < 2]).round().to(torch.int64)
    as_int, as_float = _model(), _model()
    as_int.fit_known(x_int, y[y < 2], epochs=2, batch_size=8, progress=False)
    as_float.fit_known(x_int.to(torch.float32), y[y < 2], epochs=2, batch_size=8, progress=False)
    assert as_int.history.ce == as_float.history.ce
    assert torch.equal(as_int.predict_known(x_int), as_float.predict_known(x_int.float()))


@pytest.mark.parametrize("name", ["lr", "backbone_lr"])
def test_a_learning_rate_the_parameters_dtype_cannot_hold_is_refused(name):
    x, y = _blobs()
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(InvalidArgumentError, match=f"{name} must be at most .*float32"):
        model.fit_known(x[y < 2], y[y < 2], epochs=1, progress=False, **{name: 1e300})
    with pytest.raises(InvalidArgumentError, match=f"{name} must be at most .*float32"):
        model.fit_novel(x[y >= 2], epochs=1, progress=False, **{name: 1e300})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(InvalidArgumentError, match="lr must be at most"):
        pretrain_contrastive(mlp_backbone(6, 8), x, 8, RandomAffine(), lr=1e300)


def test_a_huge_but_representable_learning_rate_ends_as_diverged():
    x, y = _blobs()
    model = _model().double()
    outcome = model.fit_known(x[y < 2].double(), y[y < 2], epochs=2, lr=1e300, progress=False)
    assert outcome.status == "diverged"
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_one_novel_class_is_refused():
    with pytest.raises(InvalidArgumentError, match="n_novel must be >= 2"):
        ResidualNCD(nn.Sequential(nn.Linear(6, 8)), 8, 3, 1)


def test_a_backbone_of_another_feature_size_is_caught_at_construction_or_fit():
    for backbone in (nn.Linear(6, 5), nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Dropout())):
        with pytest.raises(InvalidArgumentError, match="5 output features, but feat_dim=8"):
            ResidualNCD(backbone, 8, 2, 2)
    ResidualNCD(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.LayerNorm(8)), 8, 2, 2)

    class Opaque(nn.Module):  # its output size is known only by running it
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(6, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    model = ResidualNCD(Opaque(), 8, 2, 2, topk=3)
    x, y = _blobs()
    with pytest.raises(InvalidArgumentError, match=r"feat_dim=8\), got \(2, 5\)"):
        model.fit_known(x[y < 2], y[y < 2], epochs=1, progress=False)
