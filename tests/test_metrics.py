"""Clustering metrics against brute-force matching and hand-computed values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

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
