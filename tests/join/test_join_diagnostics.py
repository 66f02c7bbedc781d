"""Diagnostics of SPEC §2: collapse, histogram, entropy, and the W₁ radius."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

import constrained_pairs as cpairs
from constrained_pairs.join import diagnose

F64 = torch.float64


def test_large_radii_collapse_to_one_class_and_small_radii_do_not():
    data = cpairs.data.digits_join(n_a=8, n_p=60, n_test=10, seed=1)
    base = data.problem(r_a=0.0, r_p=0.0, pairs="knn", knn=3, normalize="pairs")
    d_bar = base.mean_distance
    tight = cpairs.solve(base.replace(r_a=0.52 * d_bar, r_p=0.52 * d_bar), regime="A")
    loose = cpairs.solve(base.replace(r_a=2 * d_bar, r_p=2 * d_bar), regime="A")
    assert not tight.diagnostics.collapsed and tight.diagnostics.prediction_entropy > 1.0
    assert loose.diagnostics.collapsed
    assert float(torch.linalg.matrix_norm(loose.theta1, ord="nuc")) < 1e-5
    assert "collapsed" in loose.diagnostics.explain()
    assert sum(loose.diagnostics.class_histogram) == base.pairs.size


def test_histogram_entropy_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=F64)
    problem = cpairs.PairProblem(x[:2], x, torch.tensor([0, 1, 0]), r_a=5.0, r_p=5.0)
    diag = diagnose(problem, theta1=torch.eye(2, dtype=F64), regime="A")
    # Regime A predicts on x_p = rows (class 0, 1, 0), each in n_A = 2 pairs.
    assert diag.class_histogram == [4, 2]
    assert diag.prediction_entropy == pytest.approx(
        -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3)
    )
    assert diag.bounded and not diag.collapsed


def test_wasserstein_equal_sizes_against_all_permutations():
    rng = np.random.default_rng(0)
    a, p = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    best = min(
        np.mean([np.linalg.norm(a[i] - p[j]) for i, j in enumerate(perm)])
        for perm in itertools.permutations(range(5))
    )
    assert cpairs.wasserstein_radius(a, p) == pytest.approx(best, rel=1e-12)


def test_wasserstein_unequal_sizes_against_transport_lp():
    rng = np.random.default_rng(1)
    a, p = rng.normal(size=(4, 2)), rng.normal(size=(6, 2))
    cost = np.linalg.norm(a[:, None] - p[None], axis=2)
    eq = [np.kron(np.eye(4), np.ones(6)), np.kron(np.ones(4), np.eye(6))]
    lp = linprog(cost.ravel(), A_eq=np.vstack(eq), b_eq=np.r_[np.full(4, 1 / 4), np.full(6, 1 / 6)])
    assert cpairs.wasserstein_radius(torch.tensor(a), torch.tensor(p)) == pytest.approx(
        lp.fun, rel=1e-9
    )
    # W₁ is a lower bound for the all-pairs mean distance D̄.
    problem = cpairs.PairProblem(a, p, np.zeros(6, dtype=int), r_a=0, r_p=0, num_classes=2)
    assert lp.fun <= problem.mean_distance
    with pytest.raises(ValueError, match="return_plan"):
        cpairs.wasserstein_radius(a, p, max_pairs=5, return_plan=True)
