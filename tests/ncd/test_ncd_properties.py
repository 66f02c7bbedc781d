"""Property-based checks of ``ResidualNCD`` (issue 12's contract; SPEC §5): the constructor and
the inputs and options of ``fit_known`` / ``fit_novel`` are accepted or refused by a package
error naming the argument; an accepted fit ends with a status of the one vocabulary and finite
parameters (a diverging run keeps its last finite epoch), and lists, numpy arrays, tensors and
integer inputs of the same values train to the bitwise same model. Tiny data, one epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from constrained_pairs.errors import ConstrainedPairsError, InvalidTypeError
from constrained_pairs.ncd import ResidualNCD
from constrained_pairs.status import Status

FAST = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
N, D, FEAT = 12, 4, 3


def _model(**options) -> ResidualNCD:
    torch.manual_seed(0)
    return ResidualNCD(nn.Sequential(nn.Linear(D, FEAT)), FEAT, 2, 2, topk=2, **options)


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(N, D)).astype(np.float64)
    return x, np.arange(N) % 2


def _finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _state(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 4),
    st.sampled_from([0.0, 1e-300, 1e30, 1e300, -1.0, 2.5, math.nan, math.inf, -math.inf]),
    st.sampled_from(["", "cpu", "cuda", "tpu", "balanced", "pca"]),
    st.just(1j),
)


def _real(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


# -- the constructor -------------------------------------------------------------------------------
def _constructor_valid(name: str, value) -> bool:
    number = _real(value)
    finite = number is not None and math.isfinite(number)
    if name in ("alpha", "sigma"):
        return finite and number > 0
    if name == "beta":
        return finite and number >= 0
    if name in ("topk", "target_every"):
        return _integer(value, 1)
    if name == "n_novel":
        return _integer(value, 2)
    if name == "n_known":
        return _integer(value, 1)
    if name == "residual":
        return isinstance(value, bool)
    if name == "residual_hidden":
        return value is None or _integer(value, 1)
    if name == "device":
        return value is None or value == "cpu"
    raise AssertionError(name)


@settings(FAST, max_examples=60)
@given(
    name=st.sampled_from(
        [
            "alpha",
            "sigma",
            "beta",
            "topk",
            "target_every",
            "n_known",
            "n_novel",
            "residual",
            "residual_hidden",
            "device",
        ]
    ),
    value=VALUES,
)
def test_constructor_options_are_accepted_or_refused_by_name(name, value):
    arguments = dict(backbone=nn.Linear(D, FEAT), feat_dim=FEAT, n_known=2, n_novel=2)
    arguments[name] = value
    try:
        model = ResidualNCD(**arguments)
    except ConstrainedPairsError as exc:
        assert name in str(exc), (name, value, str(exc))
        assert not _constructor_valid(name, value), (name, value, str(exc))
        return
    assert _constructor_valid(name, value), (name, value)
    assert _finite(model)
    out = model(torch.zeros(2, D))
    assert out[0].shape == (2, model.n_known) and out[1].shape == (2, model.n_novel)


@pytest.mark.parametrize(
    "arguments, name",
    [
        (dict(backbone="linear", feat_dim=FEAT), "backbone"),
        (dict(backbone=nn.Linear(D, FEAT), feat_dim=FEAT + 1), "feat_dim"),
        (dict(backbone=nn.Linear(D, FEAT), feat_dim=0), "feat_dim"),
        (dict(backbone=nn.Linear(D, FEAT), feat_dim=3.0), "feat_dim"),
    ],
)
def test_a_backbone_that_does_not_match_feat_dim_is_refused(arguments, name):
    with pytest.raises(ConstrainedPairsError, match=name):
        ResidualNCD(n_known=2, n_novel=2, **arguments)


# -- fit_known -------------------------------------------------------------------------------------
def _known_valid(name: str, value) -> bool:
    number = _real(value)
    finite = number is not None and math.isfinite(number)
    if name == "lr":  # AdamW's first step is 10 lr, which must fit float32
        return finite and 0 < number <= torch.finfo(torch.float32).max / 10
    if name == "backbone_lr":
        ok = finite and 0 <= number <= torch.finfo(torch.float32).max / 10
        return value is None or ok
    if name == "weight_decay":
        return finite and number >= 0
    if name in ("epochs", "batch_size"):
        return _integer(value, 1)
    if name == "seed":
        return _integer(value, 0)
    if name == "device":
        return value is None or value == "cpu"
    raise AssertionError(name)


@FAST
@given(
    name=st.sampled_from(["lr", "backbone_lr", "weight_decay", "epochs", "batch_size", "seed"]),
    value=VALUES,
)
def test_fit_known_options_are_accepted_or_refused_by_name(name, value):
    x, y = _data()
    model = _model()
    options = {"epochs": 1, "batch_size": 6, name: value}
    if name == "epochs" and _integer(value, 1):
        options["epochs"] = min(value, 2)
    try:
        outcome = model.fit_known(x, y, **options)
    except ConstrainedPairsError as exc:
        assert name in str(exc), (name, value, str(exc))
        assert not _known_valid(name, value), (name, value, str(exc))
        return
    assert _known_valid(name, value), (name, value)
    assert outcome.status in (Status.MAX_ITER, Status.DIVERGED)
    assert _finite(model)


BAD_X = [
    ("x", InvalidTypeError, lambda x: x > 2),
    ("x", InvalidTypeError, lambda x: x.astype(np.complex128)),
    ("x", InvalidTypeError, lambda x: "images"),
    ("x", None, lambda x: np.where(x == x.max(), math.nan, x)),
    ("x", None, lambda x: np.where(x == x.max(), math.inf, x)),
    ("x", None, lambda x: x[:, 0]),
    ("x", None, lambda x: x[:0]),
    ("x", None, lambda x: x[:, :2]),
    ("x", None, lambda x: x.reshape(N, 2, 2)),
]
BAD_Y = [
    ("y", None, lambda y: y + 5),
    ("y", None, lambda y: y - 1),
    ("y", None, lambda y: y + 0.5),
    ("y", None, lambda y: y[:-1]),
    ("y", None, lambda y: y.reshape(-1, 1)),
    ("y", None, lambda y: np.where(y == 0, math.nan, y)),
    ("y", InvalidTypeError, lambda y: "labels"),
]


@FAST
@given(bad=st.sampled_from(BAD_X + BAD_Y), kind=st.sampled_from(["numpy", "tensor", "list"]))
def test_fit_known_refuses_bad_data_by_name(bad, kind):
    name, error, damage = bad
    x, y = _data()
    if name == "x":
        x = damage(x)
    else:
        y = damage(y)
    convert = {
        "numpy": lambda v: v,
        "tensor": lambda v: torch.as_tensor(v) if isinstance(v, np.ndarray) else v,
        "list": lambda v: v.tolist() if isinstance(v, np.ndarray) else v,
    }[kind]
    x, y = convert(x), convert(y)
    with pytest.raises(ConstrainedPairsError) as caught:
        _model().fit_known(x, y, epochs=1, batch_size=6)
    assert name in str(caught.value), str(caught.value)
    if error is not None and not (kind == "list" and isinstance(x, list) and x == []):
        assert isinstance(caught.value, error)


@settings(FAST, max_examples=8)
@given(kind=st.sampled_from(["list", "numpy", "int tensor", "uint8 numpy", "float64 tensor"]))
def test_fit_known_on_lists_arrays_and_integers_equals_the_float_tensor_run(kind):
    x, y = _data()
    reference = _model()
    reference.fit_known(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y), epochs=1, batch_size=6
    )
    given_x = {
        "list": x.tolist(),
        "numpy": x,
        "int tensor": torch.as_tensor(x.astype(np.int64)),
        "uint8 numpy": x.astype(np.uint8),
        "float64 tensor": torch.as_tensor(x),
    }[kind]
    assert any(not torch.equal(a, b) for a, b in zip(_state(reference), _state(_model())))
    given_y = y.tolist() if kind == "list" else y
    model = _model()
    model.fit_known(given_x, given_y, epochs=1, batch_size=6)
    for got, expected in zip(_state(model), _state(reference)):
        assert torch.equal(got, expected)


# -- fit_novel -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_state() -> dict:
    x, y = _data()
    model = _model()
    model.fit_known(x, y, epochs=1, batch_size=6)
    return model.state_dict()


def _trained(state: dict) -> ResidualNCD:
    model = _model()
    model.load_state_dict(state)
    return model


def _novel_valid(name: str, value) -> bool:
    number = _real(value)
    finite = number is not None and math.isfinite(number)
    if name == "pair_pos_weight":
        return value == "balanced" or (finite and number >= 0)
    if name == "kmeans_restarts":
        return _integer(value, 1)
    if name == "reduction_init":
        return value in ("discriminant", "pca")
    if name == "batch_size":
        return value is None or _integer(value, 2)
    if name in ("use_distill", "use_pair"):
        return isinstance(value, bool)
    return _known_valid(name, value)


@FAST
@given(
    name=st.sampled_from(
        [
            "lr",
            "weight_decay",
            "batch_size",
            "pair_pos_weight",
            "kmeans_restarts",
            "reduction_init",
            "use_distill",
            "use_pair",
        ]
    ),
    value=VALUES,
)
def test_fit_novel_options_are_accepted_or_refused_by_name(trained_state, name, value):
    x, y = _data()
    model = _trained(trained_state)
    options = {"epochs": 1, "batch_size": 6, "kmeans_restarts": 1, name: value}
    if name == "kmeans_restarts" and _integer(value, 1):
        options[name] = min(value, 2)
    try:
        outcome = model.fit_novel(x, **options)
    except ConstrainedPairsError as exc:
        assert name in str(exc), (name, value, str(exc))
        assert not _novel_valid(name, value), (name, value, str(exc))
        return
    assert _novel_valid(name, value), (name, value)
    assert outcome.status in (Status.MAX_ITER, Status.DIVERGED)
    assert _finite(model)
    clusters = model.predict_novel(x)
    assert clusters.shape == (N,) and int(clusters.min()) >= 0 and int(clusters.max()) < 2


BAD_NOVEL = [
    ("x_u", lambda x: x > 2),
    ("x_u", lambda x: x.astype(np.complex64)),
    ("x_u", lambda x: np.where(x == x.max(), math.nan, x)),
    ("x_u", lambda x: x[:2]),  # no more points than max(n_novel, topk)
    ("x_u", lambda x: x[:, :3]),
    ("x_u", lambda x: x[:, 0]),
]


@FAST
@given(bad=st.sampled_from(BAD_NOVEL), y_u=st.sampled_from([None, "short"]))
def test_fit_novel_refuses_bad_data_by_name(trained_state, bad, y_u):
    name, damage = bad
    x, y = _data()
    labels = None if y_u is None else y[:-1]
    model = _trained(trained_state)
    with pytest.raises(ConstrainedPairsError) as caught:
        model.fit_novel(damage(x), y_u=labels, epochs=1, batch_size=6, kmeans_restarts=1)
    assert name in str(caught.value) or "y_u" in str(caught.value), str(caught.value)


def test_fit_novel_refuses_labels_of_the_wrong_length(trained_state):
    x, y = _data()
    with pytest.raises(ConstrainedPairsError, match="y_u"):
        _trained(trained_state).fit_novel(x, y_u=y[:-1], epochs=1, kmeans_restarts=1)
