"""Clustering metrics against brute-force matching, hand-computed values and scikit-learn, on
fixed and random (hypothesis) labels, and their argument checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn import metrics as skm

from constrained_pairs.errors import ConstrainedPairsError, InvalidArgumentError, InvalidTypeError
from constrained_pairs.metrics import ari, cluster_acc, match_clusters, nmi


def brute_force_acc(y_true, y_pred) -> float:
    """Best one-to-one relabelling of the predicted clusters, by enumerating every matching."""
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    classes, clusters = sorted(set(true.tolist())), sorted(set(pred.tolist()))
    # Surplus clusters map to None (never correct).
    targets = classes + [None] * max(0, len(clusters) - len(classes))
    best = 0
    for image in itertools.permutations(targets, len(clusters)):
        mapping = dict(zip(clusters, image))
        best = max(best, sum(mapping[p] == t for p, t in zip(pred.tolist(), true.tolist())))
    return best / true.size


@pytest.mark.parametrize("n_true,n_pred", [(2, 2), (3, 3), (4, 2), (2, 4), (3, 5), (5, 3)])
def test_cluster_acc_matches_brute_force(n_true, n_pred):
    rng = np.random.default_rng(n_true * 10 + n_pred)
    for _ in range(20):
        y_true = rng.integers(0, n_true, size=14)
        y_pred = rng.integers(0, n_pred, size=14) * 3 + 7  # arbitrary label values
        assert cluster_acc(y_true, y_pred) == pytest.approx(brute_force_acc(y_true, y_pred))


def test_cluster_acc_accepts_tensors_arrays_and_lists():
    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [4, 4, 9, 9, 9, 1, 1]
    expected = 6 / 7  # 4->0, 9->1 (2 of 3), 1->2: 2 + 2 + 2 = 6
    assert cluster_acc(y_true, y_pred) == pytest.approx(expected)
    assert cluster_acc(np.array(y_true), torch.tensor(y_pred)) == pytest.approx(expected)
    assert cluster_acc(torch.tensor(y_true, dtype=torch.float64), y_pred) == pytest.approx(expected)


def test_match_clusters_with_more_clusters_than_classes():
    mapping = match_clusters([0, 0, 1, 1, 1], [5, 5, 6, 6, 7])
    assert mapping == {5: 0, 6: 1}
    assert cluster_acc([0, 0, 1, 1, 1], [5, 5, 6, 6, 7]) == pytest.approx(4 / 5)


def test_nmi_and_ari_hand_computed():
    y_true, y_pred = [0, 0, 1, 1], [0, 0, 1, 2]
    # MI = ln 2 (the prediction determines the class), H(true) = ln 2, H(pred) = 1.5 ln 2.
    assert nmi(y_true, y_pred) == pytest.approx(math.log(2) / (2.5 * math.log(2) / 2))
    # ARI: sum C(n_ij, 2) = 1, rows 2, columns 1, C(4, 2) = 6 -> (1 - 1/3) / (1.5 - 1/3) = 4/7.
    assert ari(torch.tensor(y_true), np.array(y_pred)) == pytest.approx(4 / 7)
    assert nmi([3, 3, 1], [0, 0, 2]) == pytest.approx(1.0)
    assert ari([3, 3, 1], [0, 0, 2]) == pytest.approx(1.0)


@pytest.mark.parametrize("metric", [cluster_acc, nmi, ari])
def test_bad_labels_raise(metric):
    with pytest.raises(ValueError, match="same length"):
        metric([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        metric([], [])
    with pytest.raises(ValueError, match="1-D"):
        metric([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="integer"):
        metric([0.5, 1.0], [0, 1])


@st.composite
def labellings(draw, max_size=9, max_labels=4):
    n = draw(st.integers(1, max_size))
    values = st.integers(-3, max_labels - 4)  # arbitrary, also negative, label values
    true = draw(hnp.arrays(np.int64, (n,), elements=values))
    pred = draw(hnp.arrays(np.int64, (n,), elements=values.map(lambda v: 10 * v)))
    return true, pred


@settings(max_examples=100, deadline=None)
@given(labellings(), st.sampled_from(["list", "numpy", "tensor", "float"]))
def test_metrics_against_brute_force_and_scikit_learn(labels, form):
    true, pred = labels
    convert = {
        "list": lambda a: a.tolist(),
        "numpy": lambda a: a,
        "tensor": torch.from_numpy,
        "float": lambda a: torch.from_numpy(a.astype(np.float64)),
    }[form]
    assert cluster_acc(convert(true), convert(pred)) == pytest.approx(brute_force_acc(true, pred))
    assert nmi(convert(true), convert(pred)) == pytest.approx(
        skm.normalized_mutual_info_score(true, pred)
    )
    assert ari(convert(true), convert(pred)) == pytest.approx(skm.adjusted_rand_score(true, pred))
    mapping = match_clusters(true, pred)
    assert len(set(mapping.values())) == len(mapping)  # one-to-one
    hits = sum(mapping.get(p) == t for p, t in zip(pred.tolist(), true.tolist()))
    assert hits / len(true) == pytest.approx(cluster_acc(true, pred))


BAD_LABELS = st.sampled_from(
    [
        [0.0, float("nan")],
        [0.0, float("inf")],
        np.array([0.5, 1.0]),
        [0, 1e300],
        [],
        [[0, 1]],
        "01",
        None,
        {0, 1},
        [0, None],
        [[0], [1, 2]],
        np.array(["a", "b"]),
        torch.tensor([0.0, 1.0 + 1j]),
    ]
)


@settings(max_examples=60, deadline=None)
@given(BAD_LABELS, st.sampled_from([cluster_acc, nmi, ari, match_clusters]), st.booleans())
def test_bad_labels_raise_package_errors(bad, metric, as_pred):
    good = [0, 1]
    with pytest.raises(ConstrainedPairsError, match="y_pred" if as_pred else "y_true"):
        metric(good, bad) if as_pred else metric(bad, good)


def test_bad_labels_error_types():
    with pytest.raises(InvalidArgumentError, match="NaN or inf"):
        cluster_acc([0, float("nan")], [0, 1])
    with pytest.raises(InvalidTypeError, match="y_pred must hold integer labels"):
        nmi([0, 1], np.array(["a", "b"]))
    with pytest.raises(InvalidTypeError, match="y_true must be a 1-D sequence"):
        ari("01", [0, 1])
    with pytest.raises(InvalidArgumentError, match="same length"):
        cluster_acc(torch.tensor([0, 1, 1]), torch.tensor([0, 1]))
