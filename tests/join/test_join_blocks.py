"""Pairings (k nearest neighbours in each direction), mini-batch blocks, frozen feature
distances, and the constraint geometry (SPEC §2)."""

from __future__ import annotations

import itertools

import pytest
import torch

import constrained_pairs as cpairs
from constrained_pairs.join import (
    CONSTRAINT_NAMES,
    constraint_names,
    constraint_residuals,
    iter_blocks,
    restore_feasibility,
    sample_block,
)
from constrained_pairs.join.blocks import block_of
from constrained_pairs.join.pairs import knn_pairs
from tests.helpers.join_reference import brute_objective

F64 = torch.float64


def data(n_a=6, n_p=5, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_a, x_p = (
        torch.randn(n_a, d, generator=g, dtype=F64),
        torch.randn(n_p, d, generator=g, dtype=F64),
    )
    y_p = torch.randint(0, 3, (n_p,), generator=g)
    aux = torch.randn(n_a, 2, generator=g, dtype=F64)
    return x_a, x_p, y_p, aux


def brute_knn(x_a, x_p, k, direction):
    dist = torch.cdist(x_a, x_p)
    found = set()
    if direction in ("a_to_p", "both"):
        for i in range(len(x_a)):
            found |= {(i, int(j)) for j in dist[i].argsort()[:k]}
    if direction in ("p_to_a", "both"):
        for j in range(len(x_p)):
            found |= {(int(i), j) for i in dist[:, j].argsort()[:k]}
    return found


@pytest.mark.parametrize("direction", ["a_to_p", "p_to_a", "both"])
@pytest.mark.parametrize("k", [1, 3])
def test_knn_pairs_equal_a_brute_force_construction(direction, k):
    x_a, x_p, _, _ = data(n_a=9, n_p=7, seed=k)
    pairs = knn_pairs(x_a, x_p, k, direction)
    found = list(zip(pairs.index_a.tolist(), pairs.index_p.tolist()))
    assert len(found) == len(set(found))  # the union keeps each pair once
    assert set(found) == brute_knn(x_a, x_p, k, direction)


def test_knn_direction_is_a_problem_option_and_normalises_by_the_pairs():
    x_a, x_p, y_p, aux = data()
    problem = cpairs.PairProblem(x_a, x_p, y_p, aux, r_a=1, r_p=1, pairs="knn", knn=1)
    assert problem.knn_direction == "both"
    expected = brute_knn(x_a, x_p, 1, "both")
    assert problem.pairs.size == len(expected)
    mean = sum(float((x_a[i] - x_p[j]).norm()) for i, j in expected) / len(expected)
    assert problem.mean_distance == pytest.approx(mean, rel=1e-12)
    with pytest.raises(ValueError, match="knn_direction"):
        cpairs.PairProblem(x_a, x_p, y_p, r_a=1, r_p=1, pairs="knn", knn_direction="up")


def _problems():
    x_a, x_p, y_p, aux = data()
    kw = {"r_a": 0.3, "r_p": 0.5, "kappa_p": 0.4, "num_classes": 3}
    yield cpairs.PairProblem(x_a, x_p, y_p, aux, **kw)
    yield cpairs.PairProblem(x_a, x_p, y_p, aux, pairs="knn", knn=2, **kw)
    yield cpairs.PairProblem(
        x_a, x_p, y_p, aux, pairs=[[0, 1], [0, 1], [2, 4], [5, 0], [3, 3]], hinge="seed", **kw
    )


@pytest.mark.parametrize("regime", ["A", "P"])
@pytest.mark.parametrize("index", [0, 1, 2])
def test_block_estimate_is_unbiased_by_enumerating_every_block(regime, index):
    problem = list(_problems())[index]
    g = torch.Generator().manual_seed(9)
    point = {
        "theta1": torch.randn(3, 3, generator=g, dtype=F64),
        "theta2": torch.randn(3, 2, generator=g, dtype=F64),
        "bias": torch.randn(3, generator=g, dtype=F64),
        "alpha_a": 0.3,
        "alpha_p": 0.8,
    }
    full = float(cpairs.objective(problem, **point, regime=regime))
    values = []
    for rows_a in itertools.combinations(range(problem.n_a), 3):
        for rows_p in itertools.combinations(range(problem.n_p), 2):
            block = block_of(problem.pairs, torch.tensor(rows_a), torch.tensor(rows_p))
            assert block.weight == pytest.approx(problem.n_a * problem.n_p / 6)
            values.append(float(cpairs.objective(problem, **point, regime=regime, block=block)))
    # every block is equally likely under sample_block: the plain mean is the expectation
    assert sum(values) / len(values) == pytest.approx(full, rel=1e-12)


def test_sampled_blocks_hold_the_pairs_of_their_rows():
    problem = list(_problems())[1]
    g = torch.Generator().manual_seed(0)
    block = sample_block(problem.pairs, 4, 3, g)
    assert block.rows_a.numel() == 4 and len(set(block.rows_a.tolist())) == 4
    full = set(zip(problem.pairs.index_a.tolist(), problem.pairs.index_p.tolist()))
    inside = {(i, j) for i, j in full if i in block.rows_a.tolist() and j in block.rows_p.tolist()}
    local = zip(block.pairs.index_a.tolist(), block.pairs.index_p.tolist())
    assert {(int(block.rows_a[i]), int(block.rows_p[j])) for i, j in local} == inside
    with pytest.raises(ValueError, match="batch_a"):
        sample_block(problem.pairs, 7, 2, g)


@pytest.mark.parametrize("index", [0, 1])
def test_an_epoch_of_blocks_covers_every_pair_once(index):
    problem = list(_problems())[index]
    point = {"theta1": torch.ones(3, 3, dtype=F64), "alpha_a": 0.3, "alpha_p": 0.8}
    point["theta2"] = torch.zeros(3, 2, dtype=F64)
    blocks = list(iter_blocks(problem.pairs, 4, 2, torch.Generator().manual_seed(1)))
    assert len(blocks) == 2 * 3 and all(b.weight == 6 for b in blocks)
    assert sum(b.pairs.size for b in blocks) == problem.pairs.size
    mean = sum(float(cpairs.objective(problem, **point, block=b)) for b in blocks) / len(blocks)
    assert mean == pytest.approx(float(cpairs.objective(problem, **point)), rel=1e-12)


def test_frozen_feature_map_gives_constant_distances_and_the_boundedness_threshold():
    x_a, x_p, y_p, _ = data()
    feature_map = torch.nn.Linear(3, 2, dtype=F64)
    model = torch.nn.Linear(3, 4, dtype=F64)
    problem = cpairs.PairProblem(x_a, x_p, y_p, r_a=0.2, r_p=0.3, distance="feature", num_classes=3)
    theta1 = torch.randn(3, 4, dtype=F64, requires_grad=True)
    value = cpairs.objective(
        problem, theta1=theta1, alpha_a=0.5, alpha_p=0.7, model=model, feature_map=feature_map
    )
    with torch.no_grad():
        d = torch.cdist(feature_map(x_a), feature_map(x_p))
    d_bar = float(d.mean())
    assert problem.mean_distance_with(feature_map) == pytest.approx(d_bar, rel=1e-12)
    without_distance = cpairs.objective(
        problem.replace(distance=lambda a, p: torch.zeros(a.shape[0], dtype=F64)),
        theta1=theta1,
        alpha_a=0.5,
        alpha_p=0.7,
        model=model,
    )
    assert value.item() == pytest.approx(without_distance.item() - 0.5 * d_bar, rel=1e-12)
    value.backward()
    assert all(p.grad is None for p in feature_map.parameters())
    assert all(p.grad is not None for p in model.parameters())
    radii = problem.replace(r_a=0.4 * d_bar, r_p=0.5 * d_bar)
    with pytest.raises(cpairs.UnboundedProblemError):
        cpairs.join.check_bounded(radii, model=model, feature_map=feature_map)
    ok = problem.replace(r_a=0.5 * d_bar, r_p=0.5 * d_bar)
    assert cpairs.join.check_bounded(ok, model=model, feature_map=feature_map) == pytest.approx(
        d_bar
    )


def test_constraint_names_and_lipschitz_scaled_residuals():
    x_a, x_p, y_p, aux = data()
    with_aux = cpairs.PairProblem(x_a, x_p, y_p, aux, r_a=1, r_p=1, aux_norm="lipschitz")
    without = cpairs.PairProblem(x_a, x_p, y_p, r_a=1, r_p=1)
    assert constraint_names(with_aux) == CONSTRAINT_NAMES
    assert "theta2_norm" not in constraint_names(without)
    theta1 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]], dtype=F64)
    theta2 = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]], dtype=F64)
    alpha = torch.tensor(1.0, dtype=F64)
    residuals = constraint_residuals(
        with_aux,
        theta1=theta1,
        theta2=theta2,
        alpha_a=alpha,
        alpha_p=alpha,
        regime="A",
        lipschitz=2.0,
    )
    assert list(residuals) == list(CONSTRAINT_NAMES)
    assert float(residuals["theta1_norm"]) == pytest.approx(2.0 * 3.0 - 2.0)  # 2 · nuclear
    assert float(residuals["theta2_norm"]) == pytest.approx(5.0 - 1.0)  # max row gap ‖(3, 4)‖


@pytest.mark.parametrize("regime", ["A", "P"])
def test_restore_feasibility_is_the_smallest_raise_of_alpha(regime):
    x_a, x_p, y_p, aux = data()
    problem = cpairs.PairProblem(x_a, x_p, y_p, aux, r_a=1, r_p=1, kappa_a=2.0)
    g = torch.Generator().manual_seed(3)
    theta1, theta2 = torch.randn(3, 3, generator=g, dtype=F64), torch.randn(3, 2, generator=g)
    theta2 = theta2.double()
    start = (torch.tensor(0.1, dtype=F64), torch.tensor(-0.2, dtype=F64))
    a, p = restore_feasibility(problem, theta1, theta2, *start, regime, lipschitz=1.5)
    residuals = constraint_residuals(
        problem, theta1=theta1, theta2=theta2, alpha_a=a, alpha_p=p, regime=regime, lipschitz=1.5
    )
    assert max(float(v) for v in residuals.values()) <= 1e-12
    assert float(a) >= 0.1 and float(p) >= -0.2
    # minimal: lowering the raised α breaks a constraint
    nuclear = 1.5 * float(torch.linalg.matrix_norm(theta1, "nuc"))
    if regime == "A":
        assert float(a) == pytest.approx(max(0.1, float(theta2.norm()) / 2.0))
        assert float(p) == pytest.approx(max(float(a), nuclear - float(a)))
    else:
        assert float(p) == pytest.approx(0.0)
        assert float(a) == pytest.approx(max(float(theta2.norm()) / 2.0, nuclear))


def test_pair_sample_argument_still_works():
    problem = list(_problems())[0]
    sample = cpairs.join.sample_pairs(problem.pairs, 4000, torch.Generator().manual_seed(0))
    point = {"theta1": torch.ones(3, 3, dtype=F64) * 0.1, "alpha_a": 0.3, "alpha_p": 0.8}
    point["theta2"] = torch.zeros(3, 2, dtype=F64)
    estimate = float(cpairs.objective(problem, **point, pairs=sample))
    brute = float(brute_objective(problem, point["theta1"], point["theta2"], None, 0.3, 0.8, "A"))
    assert estimate == pytest.approx(brute, rel=0.05)


def test_pairs_blocks_objective_and_projection_on_each_device(device):
    from constrained_pairs.methods.projections import project

    x_a, x_p, y_p, aux = data()
    kw = {"r_a": 1.0, "r_p": 1.0, "num_classes": 3, "pairs": "knn", "knn": 2}
    cpu = cpairs.PairProblem(x_a, x_p, y_p, aux, **kw)
    here = cpairs.PairProblem(x_a.to(device), x_p.to(device), y_p.to(device), aux.to(device), **kw)
    assert here.pairs.index_a.device.type == device.type
    assert torch.equal(here.pairs.index_a.cpu(), cpu.pairs.index_a)
    block = sample_block(here.pairs, 3, 2, torch.Generator().manual_seed(0))
    assert block.rows_a.device.type == device.type
    cpu_block = sample_block(cpu.pairs, 3, 2, torch.Generator().manual_seed(0))
    point = {"theta1": torch.ones(3, 3, dtype=F64), "theta2": torch.ones(3, 2, dtype=F64)}
    moved = {k: v.to(device) for k, v in point.items()}
    for chosen in (None, "block"):
        value = cpairs.objective(
            here, **moved, alpha_a=0.2, alpha_p=0.5, block=block if chosen else None
        )
        expected = cpairs.objective(
            cpu, **point, alpha_a=0.2, alpha_p=0.5, block=cpu_block if chosen else None
        )
        assert value.device.type == device.type
        assert float(value) == pytest.approx(float(expected), rel=1e-12)
    alpha = torch.tensor(0.1, dtype=F64, device=device)
    found = project(
        moved["theta1"], moved["theta2"], alpha, alpha, kappa_a=1.0, regime="A", norm="lipschitz"
    )
    assert found.theta1.device.type == device.type
    exact = cpairs.solve(here.replace(r_a=0.6 * here.mean_distance, r_p=0.6 * here.mean_distance))
    assert exact.theta1.device.type == device.type and exact.status == "optimal"
