"""Clustering metrics (SPEC §5): accuracy under the best cluster-to-class matching, NMI, ARI.

Every function accepts torch tensors (any device), numpy arrays or sequences of integer labels
(floats are accepted when they hold whole numbers; bools count as two labels). The label values
need not be ``0..K-1`` and the predicted and true label sets may differ in size. Labels that are
empty, not 1-D, of different lengths, NaN, infinite, fractional or not numbers raise an error
naming the argument. NMI and ARI are scikit-learn's; the accuracy solves the assignment problem
with scipy's Hungarian method.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["ari", "cluster_acc", "match_clusters", "nmi"]


_INT64_LIMIT = 2.0**63


def _labels(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor without importing torch here
        value = value.detach().cpu().numpy()
    if isinstance(value, str | bytes | dict | set) or value is None:
        raise InvalidTypeError(
            f"{name} must be a 1-D sequence of labels, got {type(value).__name__}"
        )
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nesting
        raise InvalidArgumentError(f"{name} must be 1-D labels: {exc}") from exc
    if array.ndim != 1:
        raise InvalidArgumentError(f"{name} must be 1-D labels, got shape {array.shape}")
    if array.size == 0:
        raise InvalidArgumentError(f"{name} must not be empty")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise InvalidArgumentError(f"{name} must hold integer labels, got NaN or inf")
        if not np.all(array == np.round(array)) or np.abs(array).max() >= _INT64_LIMIT:
            raise InvalidArgumentError(f"{name} must hold integer labels (whole numbers)")
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iub":
        raise InvalidTypeError(f"{name} must hold integer labels, got dtype {array.dtype}")
    return array


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    true, pred = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if true.shape != pred.shape:
        raise InvalidArgumentError(
            f"y_true and y_pred must have the same length, got {true.size} and {pred.size}"
        )
    return true, pred


def _matching(true: np.ndarray, pred: np.ndarray):
    classes, true_idx = np.unique(true, return_inverse=True)
    clusters, pred_idx = np.unique(pred, return_inverse=True)
    counts = np.zeros((clusters.size, classes.size), dtype=np.int64)
    np.add.at(counts, (pred_idx, true_idx), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return counts, rows, cols, clusters, classes


def match_clusters(y_true: Any, y_pred: Any) -> dict[int, int]:
    """The cluster-to-class matching that maximises the number of agreeing labels.

    Solves the assignment problem on the contingency matrix with the Hungarian method
    (:func:`scipy.optimize.linear_sum_assignment`). With more clusters than classes the surplus
    clusters stay unmatched (absent from the result); with fewer, some classes get no cluster.

    Returns:
        ``{predicted label: true label}`` for the matched clusters.
    """
    _, rows, cols, clusters, classes = _matching(*_pair(y_true, y_pred))
    return {int(clusters[r]): int(classes[c]) for r, c in zip(rows, cols)}


def cluster_acc(y_true: Any, y_pred: Any) -> float:
    """Clustering accuracy: max over one-to-one matchings of the fraction of agreeing labels.

    ``ACC = max_perm 1/N sum_i 1[perm(y_pred_i) = y_true_i]`` (SPEC §5), the optimum of the
    assignment problem on the contingency matrix; points in unmatched clusters count as errors.
    """
    true, pred = _pair(y_true, y_pred)
    counts, rows, cols, _, _ = _matching(true, pred)
    return float(counts[rows, cols].sum() / true.size)


def nmi(y_true: Any, y_pred: Any) -> float:
    """Normalised mutual information (scikit-learn, arithmetic normalisation)."""
    return float(normalized_mutual_info_score(*_pair(y_true, y_pred)))


def ari(y_true: Any, y_pred: Any) -> float:
    """Adjusted Rand index (scikit-learn)."""
    return float(adjusted_rand_score(*_pair(y_true, y_pred)))
