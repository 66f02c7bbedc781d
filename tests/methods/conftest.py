"""Fixtures for the first-order method tests: small instances and their exact optima."""

from __future__ import annotations

import pytest
import torch

from constrained_pairs.data import digits_join
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.methods import solve


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: one thread avoids oversubscription on the shared 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def split():
    return digits_join(n_a=30, n_p=60, n_test=200)


@pytest.fixture(scope="session")
def convex_problem(split):
    """Regime-A instance without auxiliary features: its exact solve takes a second."""
    d_bar = PairProblem(split.x_a, split.x_p, split.y_p, None, r_a=1.0, r_p=1.0).mean_distance
    return PairProblem(split.x_a, split.x_p, split.y_p, None, r_a=0.52 * d_bar, r_p=0.52 * d_bar)


@pytest.fixture(scope="session")
def exact_reference(convex_problem):
    return solve(convex_problem, "exact", regime="A")
