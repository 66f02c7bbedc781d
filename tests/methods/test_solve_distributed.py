"""solve() under torch.distributed (SPEC §6): 2 CPU processes on gloo give the one-process
result, a checkpoint written by rank 0 resumes on every rank, mismatched data fails fast.

One launch runs every case (starting processes is the expensive part).
"""

from __future__ import annotations

import pytest
import torch

import constrained_pairs as cp
from constrained_pairs.distributed import launch
from constrained_pairs.join.problem import PairProblem

# Lagrangian descent-ascent follows the nuclear norm's subgradient U Vᵀ, which is discontinuous
# at the rank-deficient start θ₁ ≈ 0: the sharded and the one-process sums differ in round-off
# (1e-16) and that flips it within ~30 iterations. The smooth Frobenius norm keeps the two runs
# within 1e-15; projection (a continuous prox) is equal with the nuclear norm.
CASES = {"projection": "nuclear", "lagrangian": "frobenius"}
ITERATIONS = 100


def _problem(norm: str = "nuclear", shift: float = 0.0) -> PairProblem:
    from constrained_pairs.data import digits_join

    split = digits_join(n_a=31, n_p=40, n_test=50)
    d_bar = PairProblem(split.x_a, split.x_p, split.y_p, None, r_a=1.0, r_p=1.0).mean_distance
    return PairProblem(
        split.x_a + shift,
        split.x_p,
        split.y_p,
        split.aux_a,
        r_a=0.6 * d_bar,
        r_p=0.6 * d_bar,
        norm=norm,
    )


def _summary(result) -> dict:
    return {
        "theta1": result.theta1,
        "theta2": result.theta2,
        "alpha": (result.alpha_a, result.alpha_p),
        "objective": result.objective,
        "history": result.history.column("objective"),
        "status": str(result.status),
    }


def _worker(rank: int, path: str) -> dict:
    torch.set_num_threads(1)
    found = {
        method: _summary(cp.solve(_problem(norm), method, regime="A", max_iter=ITERATIONS))
        for method, norm in CASES.items()
    }
    options = {"max_iter": ITERATIONS, "checkpoint": path, "checkpoint_every": 10}
    stop = {"callback": lambda record: record.iteration >= 29}
    cp.solve(_problem("frobenius"), "lagrangian", regime="A", **options, **stop)
    resumed = cp.solve(_problem("frobenius"), "lagrangian", regime="A", resume=True, **options)
    found["resumed"] = _summary(resumed)
    try:
        cp.solve(_problem(shift=1e-3 * rank), "projection", regime="A", max_iter=2)
        found["mismatch"] = "no error"
    except cp.InvalidArgumentError as exc:
        found["mismatch"] = str(exc)
    return found


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("distributed") / "run.pt")
    return launch(_worker, 2, path, threads=1)


@pytest.mark.parametrize("method", list(CASES))
def test_two_processes_give_the_single_process_result(ranks, method):
    torch.set_num_threads(1)
    problem = _problem(CASES[method])
    single = _summary(cp.solve(problem, method, regime="A", max_iter=ITERATIONS))
    for found in (r[method] for r in ranks):
        torch.testing.assert_close(found["theta1"], single["theta1"], atol=1e-10, rtol=0)
        torch.testing.assert_close(found["theta2"], single["theta2"], atol=1e-10, rtol=0)
        assert found["alpha"] == pytest.approx(single["alpha"], abs=1e-10)
        assert found["objective"] == pytest.approx(single["objective"], abs=1e-10)
        assert found["status"] == single["status"]
    torch.testing.assert_close(
        ranks[0][method]["theta1"], ranks[1][method]["theta1"], atol=0, rtol=0
    )


def test_a_checkpoint_of_two_processes_resumes_to_the_same_result(ranks):
    for found in ranks:
        assert found["resumed"]["history"] == found["lagrangian"]["history"]
        torch.testing.assert_close(
            found["resumed"]["theta1"], found["lagrangian"]["theta1"], atol=0, rtol=0
        )


def test_mismatched_data_fails_fast_on_every_rank(ranks):
    for found in ranks:
        assert "problem differs across ranks" in found["mismatch"], found["mismatch"]
