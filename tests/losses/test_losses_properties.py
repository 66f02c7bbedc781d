"""Property-based tests of the losses (hypothesis): random valid inputs agree with references
written independently here in numpy (or pytorch-metric-learning for the heads, brute force for
the mining), and random hyper-parameters either give a finite loss (when valid) or a package
error (when not), never a raw exception or a silent NaN."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from constrained_pairs import losses as L
from constrained_pairs.errors import ConstrainedPairsError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REDUCTIONS = st.sampled_from(["mean", "sum", "none"])
VALUES = st.floats(-50, 50, allow_nan=False, width=64)


def _reduce(values: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return values
    if values.size == 0:  # the package's convention: the mean of nothing is 0
        return np.array(0.0)
    return values.mean() if reduction == "mean" else values.sum()


def _close(got: torch.Tensor, expected: np.ndarray, rtol: float = 1e-9, atol: float = 1e-9):
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=rtol, atol=atol)


@st.composite
def pairs_of_arrays(draw, min_dims=1, max_dims=3, low=-50.0, high=50.0):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=5))
    elements = st.floats(low, high, allow_nan=False, width=64)
    a = draw(hnp.arrays(np.float64, shape, elements=elements))
    b = draw(hnp.arrays(np.float64, shape, elements=elements))
    return a, b


@FAST
@given(pairs_of_arrays(), REDUCTIONS, st.floats(0.01, 20))
def test_regression_against_numpy(arrays, reduction, delta):
    a, b = arrays
    x, t = torch.from_numpy(a), torch.from_numpy(b)
    r = a - b
    _close(L.mae(x, t, reduction), _reduce(np.abs(r), reduction))
    _close(L.mse(x, t, reduction), _reduce(r**2, reduction))
    quadratic = np.abs(r) <= delta
    huber = np.where(quadratic, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))
    _close(L.huber(x, t, delta, reduction), _reduce(huber, reduction))
    if reduction == "none":
        _close(L.rmse(x, t, reduction), np.abs(r))
    else:
        _close(L.rmse(x, t, reduction), np.sqrt(_reduce(r**2, reduction)))


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


@FAST
@given(
    pairs_of_arrays(low=-40.0, high=40.0),
    REDUCTIONS,
    st.none() | st.floats(0, 10),
    st.floats(0, 1),
    st.floats(0, 4),
)
def test_binary_losses_against_numpy(arrays, reduction, pos_weight, alpha, gamma):
    a, b = arrays
    x, t = torch.from_numpy(a), torch.from_numpy(1 / (1 + np.exp(-b)))  # targets in (0, 1)
    p_target = t.numpy()
    w = 1.0 if pos_weight is None else pos_weight
    bce = -(w * p_target * _log_sigmoid(a) + (1 - p_target) * _log_sigmoid(-a))
    _close(L.bce(x, t, reduction, pos_weight=pos_weight), _reduce(bce, reduction))
    hard = (b > 0).astype(np.float64)
    p = 1 / (1 + np.exp(-a))
    p_t = p * hard + (1 - p) * (1 - hard)
    ce = -(hard * _log_sigmoid(a) + (1 - hard) * _log_sigmoid(-a))
    focal = (alpha * hard + (1 - alpha) * (1 - hard)) * (1 - p_t) ** gamma * ce
    got = L.focal_loss(x, torch.from_numpy(hard), alpha, gamma, reduction)
    _close(got, _reduce(focal, reduction), rtol=1e-7, atol=1e-12)


@st.composite
def logits_and_labels(draw):
    n, c = draw(st.integers(0, 6)), draw(st.integers(2, 5))
    logits = draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-30, 30, width=64)))
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    return logits, labels


@FAST
@given(logits_and_labels(), REDUCTIONS, st.floats(0, 4), st.booleans())
def test_multiclass_losses_against_numpy(data, reduction, gamma, weighted):
    logits, labels = data
    n, c = logits.shape
    log_p = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    log_p_y = log_p[np.arange(n), labels]
    x, y = torch.from_numpy(logits), torch.from_numpy(labels)
    _close(L.cross_entropy(x, y, reduction), _reduce(-log_p_y, reduction))
    soft = np.exp(log_p[:, ::-1].copy())  # some other distribution as soft targets
    expected = _reduce(-(soft * log_p).sum(1), reduction)
    _close(L.cross_entropy(x, torch.from_numpy(soft), reduction), expected)
    alpha = np.linspace(0.5, 2.0, c) if weighted else None
    focal = -((1 - np.exp(log_p_y)) ** gamma) * log_p_y * (1 if alpha is None else alpha[labels])
    got = L.focal_loss_multiclass(x, y, gamma, None if alpha is None else alpha.tolist(), reduction)
    _close(got, _reduce(focal, reduction), rtol=1e-7, atol=1e-10)


@st.composite
def labelled_batch(draw, max_batch=7):
    b, d = draw(st.integers(0, max_batch)), draw(st.integers(1, 3))
    # a coarse grid of values makes ties between distances (the mining's edge cases) common
    points = draw(hnp.arrays(np.float64, (b, d), elements=st.integers(-3, 3).map(float)))
    labels = draw(hnp.arrays(np.int64, (b,), elements=st.integers(0, 2)))
    return points, labels


@FAST
@given(labelled_batch(), st.sampled_from(L.metric.MINING), st.booleans(), st.floats(0, 5))
def test_triplets_against_brute_force(batch, mining, squared, margin):
    points, labels = batch
    n = len(labels)
    dist = ((points[:, None] - points[None]) ** 2).sum(-1)
    dist = dist if squared else np.sqrt(dist)
    expected, costs = [], []
    for a, p, q in itertools.product(range(n), repeat=3):
        if a == p or labels[a] != labels[p] or labels[q] == labels[a]:
            continue
        gap = dist[a, q] - dist[a, p]
        keep = {"all": True, "hard": gap < 0, "semihard": 0 <= gap < margin, "easy": gap >= margin}
        if keep[mining]:
            expected.append((a, p, q))
            costs.append(max(dist[a, p] - dist[a, q] + margin, 0.0))
    x, y = torch.from_numpy(points), torch.from_numpy(labels)
    mined = L.mine_triplets(x, y, margin, mining, squared)
    assert list(zip(*(t.tolist() for t in mined))) == expected
    got = L.triplet_loss(x, y, margin, mining, squared, "sum")
    _close(got, np.sum(costs), atol=1e-9)


@FAST
@given(labelled_batch(), st.floats(0, 5), REDUCTIONS)
def test_contrastive_against_numpy(batch, margin, reduction):
    points, labels = batch
    other = points[::-1].copy()
    same = labels == labels[::-1]
    d2 = ((points - other) ** 2).sum(1)
    expected = np.where(same, d2, np.maximum(margin**2 - d2, 0.0))
    x1, x2 = torch.from_numpy(points), torch.from_numpy(other)
    got = L.contrastive_loss(x1, x2, torch.from_numpy(same), margin, reduction)
    _close(got, _reduce(expected, reduction))


@st.composite
def head_batch(draw):
    n, d, c = draw(st.integers(1, 6)), draw(st.integers(2, 4)), draw(st.integers(2, 4))
    x = draw(hnp.arrays(np.float64, (n, d), elements=st.floats(-5, 5, width=64)))
    w = draw(hnp.arrays(np.float64, (c, d), elements=st.floats(-5, 5, width=64)))
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    assume(np.linalg.norm(x, axis=1).min() > 1e-2 and np.linalg.norm(w, axis=1).min() > 1e-2)
    return x, w, y


@pytest.fixture(scope="module")
def pml_losses():
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import losses

    return losses


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pml's scipy binomials on NumPy 2
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    head_batch(),
    st.sampled_from(["normface", "lsoftmax", "sphereface", "cosface", "arcface"]),
    st.floats(1, 30),
    st.floats(0, 1.2),
    st.integers(1, 5),
)
def test_heads_against_pytorch_metric_learning(pml_losses, batch, kind, s, margin, m_int):
    x, w, y = batch
    c, d = w.shape
    if kind == "normface":
        ours = L.NormFace(d, c, s=s)
        theirs = pml_losses.NormalizedSoftmaxLoss(c, d, temperature=1 / s)
    elif kind in ("lsoftmax", "sphereface"):
        ours = L.HEADS[kind](d, c, m=m_int)
        peer = (
            pml_losses.LargeMarginSoftmaxLoss if kind == "lsoftmax" else pml_losses.SphereFaceLoss
        )
        theirs = peer(c, d, margin=m_int)
    elif kind == "cosface":
        ours = L.CosFace(d, c, s=s, m=margin)
        theirs = pml_losses.CosFaceLoss(c, d, margin=margin, scale=s)
    else:
        ours = L.ArcFace(d, c, s=s, m=margin)
        theirs = pml_losses.ArcFaceLoss(c, d, margin=math.degrees(margin), scale=s)
        cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (
            w / np.linalg.norm(w, axis=1, keepdims=True)
        ).T
        theta = np.arccos(np.clip(cos[np.arange(len(y)), y], -1, 1))
        assume(np.abs(theta - (math.pi - margin)).min() > 1e-6)  # the fallback's switch
    ours = ours.double()
    with torch.no_grad():
        ours.weight.copy_(torch.from_numpy(w))
    theirs.W.data = torch.from_numpy(w.T.copy())
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    got, expected = ours(xt, yt), theirs(xt, yt)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, expected.to(got.dtype), rtol=1e-6, atol=1e-6)


# -- random hyper-parameters: valid -> finite loss, invalid -> package error ---------------------

JUNK = st.sampled_from(["1", None, [1.0], (), {}, True, object(), torch.tensor([1.0, 2.0])])
NUMBERS = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10, 10)
PARAMETER = NUMBERS | JUNK


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


INF = float("inf")
X = torch.randn(5, 3, dtype=torch.float64)
T = torch.rand(5, 3, dtype=torch.float64)
Y = torch.tensor([0, 1, 2, 0, 1])
HYPER = {
    # name: (call with the value, is the value valid)
    "bce pos_weight": (
        lambda v: L.bce(X, T, pos_weight=v),
        lambda v: v is None or v == [1.0] or (_is_number(v) and v >= 0),  # [1.0] broadcasts
    ),
    "focal gamma": (lambda v: L.focal_loss(X, T, gamma=v), lambda v: _is_number(v) and v >= 0),
    "focal alpha": (
        lambda v: L.focal_loss(X, T, alpha=v),
        lambda v: v is None or (_is_number(v) and 0 <= v <= 1),
    ),
    "focal_mc gamma": (
        lambda v: L.focal_loss_multiclass(X, Y, gamma=v),
        lambda v: _is_number(v) and v >= 0,
    ),
    "focal_mc alpha": (
        lambda v: L.focal_loss_multiclass(X, Y, alpha=v),
        lambda v: v is None or (_is_number(v) and v >= 0),
    ),
    "huber delta": (lambda v: L.huber(X, T, delta=v), lambda v: _is_number(v) and v > 0),
    "contrastive margin": (
        lambda v: L.contrastive_loss(X, T, Y > 0, margin=v),
        lambda v: _is_number(v) and v >= 0 and math.isfinite(float(v) ** 2 if v < 1e155 else INF),
    ),
    "triplet margin": (
        lambda v: L.triplet_loss(X, Y, margin=v),
        lambda v: _is_number(v) and v >= 0,
    ),
    "cosface s": (
        lambda v: L.CosFace(3, 3, s=v).double()(X, Y),
        lambda v: _is_number(v) and v > 0,
    ),
    "cosface m": (
        lambda v: L.CosFace(3, 3, m=v).double()(X, Y),
        lambda v: _is_number(v) and v >= 0,
    ),
    "arcface m": (
        lambda v: L.ArcFace(3, 3, m=v).double()(X, Y),
        lambda v: _is_number(v) and 0 <= v < math.pi,
    ),
    "sphereface m": (
        lambda v: L.SphereFace(3, 3, m=v).double()(X, Y),
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    ),
    "reduction": (lambda v: L.mse(X, T, reduction=v), lambda v: False),
}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(HYPER)), PARAMETER)
def test_random_hyper_parameters_give_a_finite_loss_or_a_package_error(name, value):
    call, valid = HYPER[name]
    if valid(value):
        loss = call(value)
        assert not torch.isnan(loss).any(), (name, value)
        # finite, unless a huge scale or margin overflows the float64 logits (as in torch)
        assert torch.isfinite(loss).all() or abs(value) > 1e100, (name, value)
    else:
        with pytest.raises(ConstrainedPairsError):
            call(value)


TENSOR_JUNK = st.sampled_from(
    [
        [1.0, 2.0],
        np.ones((5, 3)),
        3.0,
        None,
        "x",
        torch.ones(5, 3, dtype=torch.long),
        torch.ones(5, 3, dtype=torch.complex128),
        torch.ones(5, 3, dtype=torch.bool),
        torch.ones(4, 3, dtype=torch.float64),
        torch.ones(5, 3, 1, dtype=torch.float64),
    ]
)
CALLS = {
    "mse": lambda v: L.mse(v, T),
    "mae target": lambda v: L.mae(X, v),
    "bce": lambda v: L.bce(v, T),
    "cross_entropy": lambda v: L.cross_entropy(v, Y),
    "focal target": lambda v: L.focal_loss(X, v),
    "contrastive": lambda v: L.contrastive_loss(v, X, Y > 0),
    "triplet": lambda v: L.triplet_loss(v, Y),
    "mine_triplets": lambda v: L.mine_triplets(v, Y),
    "head x": lambda v: L.ArcFace(3, 3).double()(v, Y),
}


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(sorted(CALLS)), TENSOR_JUNK)
def test_bad_tensors_raise_package_errors(name, value):
    ok_shape = isinstance(value, torch.Tensor) and value.shape == (5, 3)
    valid = ok_shape and value.is_floating_point()
    if name in ("mae target", "focal target") and ok_shape and not value.is_complex():
        valid = True  # integer and bool targets are fine for these
    if valid:
        assert torch.isfinite(CALLS[name](value)).all()
    else:
        with pytest.raises(ConstrainedPairsError):
            CALLS[name](value)
