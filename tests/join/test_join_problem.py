"""PairProblem validates everything at construction, naming the argument (SPEC §2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import constrained_pairs as cpairs

X_A = np.random.default_rng(0).normal(size=(4, 3))
X_P = np.random.default_rng(1).normal(size=(5, 3))
Y_P = np.array([0, 1, 2, 1, 0])
AUX = np.ones((4, 2))


def build(**changes):
    args = {"x_a": X_A, "x_p": X_P, "y_p": Y_P, "aux_a": AUX, "r_a": 1.0, "r_p": 1.0}
    args.update(changes)
    return cpairs.PairProblem(
        args.pop("x_a"), args.pop("x_p"), args.pop("y_p"), args.pop("aux_a"), **args
    )


def test_accepts_numpy_and_torch_and_infers_classes():
    problem = build()
    assert problem.num_classes == 3 and problem.n_a == 4 and problem.n_p == 5
    assert problem.x_a.dtype == torch.float64 and problem.has_aux
    same = build(x_a=torch.tensor(X_A), x_p=torch.tensor(X_P), y_p=torch.tensor(Y_P))
    assert torch.equal(same.x_p, problem.x_p)
    assert build(pairs="knn", knn=2, knn_direction="a_to_p").pairs.size == 8


@pytest.mark.parametrize(
    ("changes", "argument"),
    [
        ({"x_a": np.full((4, 3), np.nan)}, "x_a"),
        ({"x_p": np.c_[X_P[:, :2], [np.inf] * 5]}, "x_p"),
        ({"x_p": X_P[:, :2]}, "feature dimension"),
        ({"aux_a": np.ones((3, 2))}, "aux_a"),
        ({"aux_a": np.ones(4)}, "aux_a"),
        ({"y_p": Y_P[:4]}, "y_p"),
        ({"y_p": np.array([0, 1, 5, 1, 0]), "num_classes": 3}, "y_p"),
        ({"y_p": np.array([0, -1, 2, 1, 0])}, "y_p"),
        ({"y_p": np.array([0.5, 1, 2, 1, 0])}, "y_p"),
        ({"r_a": -0.1}, "r_a"),
        ({"r_p": float("nan")}, "r_p"),
        ({"kappa_a": -1.0}, "kappa_a"),
        ({"kappa_p": -1.0}, "kappa_p"),
        ({"norm": "trace"}, "norm"),
        ({"hinge": "square"}, "hinge"),
        ({"distance": "cosine"}, "distance"),
        ({"scale": "mean"}, "scale"),
        ({"scale": 0.0}, "scale"),
        ({"normalize": "batch"}, "normalize"),
        ({"pairs": "some"}, "pairs"),
        ({"pairs": np.array([[0, 9]])}, "pairs"),
        ({"pairs": np.array([[0, 1, 2]])}, "pairs"),
        ({"pairs": "knn", "knn": 6}, "knn"),
        ({"knn": 0}, "knn"),
        ({"num_classes": 1}, "num_classes"),
    ],
)
def test_bad_input_names_the_argument(changes, argument):
    with pytest.raises(ValueError, match=argument):
        build(**changes)


def test_error_types_are_our_own():
    with pytest.raises(cpairs.InvalidArgumentError):
        build(norm="trace")
    with pytest.raises(TypeError, match="x_a"):
        build(x_a="not an array")


def test_replace_revalidates_and_keeps_data():
    problem = build()
    bigger = problem.replace(r_a=3.0)
    assert bigger.r_a == 3.0 and bigger.mean_distance == pytest.approx(problem.mean_distance)
    with pytest.raises(ValueError, match="r_a"):
        problem.replace(r_a=-1.0)


def test_mean_distance_is_the_pair_average():
    problem = build(pairs=np.array([[0, 0], [1, 2], [3, 4]]), normalize="pairs")
    pairs = [(0, 0), (1, 2), (3, 4)]
    expected = np.mean([np.linalg.norm(X_A[i] - X_P[j]) for i, j in pairs])
    assert problem.mean_distance == pytest.approx(expected, rel=1e-12)
    seed_norm = build(pairs=np.array([[0, 0], [1, 2], [3, 4]]), normalize="seed")
    assert seed_norm.mean_distance == pytest.approx(3 * expected / 20, rel=1e-12)
    median = build(scale="median")
    all_d = np.linalg.norm(X_A[:, None] - X_P[None], axis=2)
    assert median.mean_distance == pytest.approx(all_d.mean() / np.median(all_d), rel=1e-12)
