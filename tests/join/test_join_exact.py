"""method="exact" against an independent CVXPY formulation, and the unboundedness threshold."""

from __future__ import annotations

import pytest
import torch

import constrained_pairs as cpairs
from tests.helpers.join_reference import brute_objective, cvxpy_reference

F64 = torch.float64


def small_problem(aux=True, **options):
    g = torch.Generator().manual_seed(3)
    x_a = torch.rand(4, 3, generator=g, dtype=F64)
    x_p = torch.rand(6, 3, generator=g, dtype=F64)
    y_p = torch.tensor([0, 1, 2, 0, 1, 2])
    aux_a = torch.rand(4, 2, generator=g, dtype=F64) if aux else None
    base = cpairs.PairProblem(x_a, x_p, y_p, aux_a, r_a=0.0, r_p=0.0)
    d_bar = base.mean_distance
    return base.replace(r_a=0.6 * d_bar, r_p=0.5 * d_bar, kappa_p=0.5, **options)


@pytest.mark.parametrize(
    ("regime", "norm", "hinge", "aux"),
    [
        ("A", "nuclear", "seed", True),
        ("P", "nuclear", "seed", True),
        ("A", "nuclear", "margin", False),
        ("P", "frobenius", "margin", True),
        ("A", "spectral", "seed", True),
        ("P", "lipschitz", "seed", False),
    ],
)
def test_exact_matches_independent_cvxpy(regime, norm, hinge, aux):
    problem = small_problem(aux=aux, norm=norm, hinge=hinge)
    result = cpairs.solve(problem, method="exact", regime=regime)
    status, reference = cvxpy_reference(problem, regime)
    assert status == "optimal" and result.status == "optimal"
    assert result.objective == pytest.approx(reference, rel=1e-5, abs=1e-6)
    # The returned point is feasible and its value is the objective's, not just the solver's.
    assert result.max_violation <= 1e-6
    recomputed = brute_objective(
        problem, result.theta1, result.theta2, result.bias, result.alpha_a, result.alpha_p, regime
    )
    assert float(recomputed) == pytest.approx(result.objective, rel=1e-10)
    assert result.method == "exact" and result.regime == regime and len(result.history) == 1


def test_auto_regime_keeps_the_lower_objective():
    problem = small_problem()
    result = cpairs.solve(problem, method="exact", regime="auto")
    other = result.extra["other"]
    assert {result.regime, other.regime} == {"A", "P"}
    assert result.objective <= other.objective
    labels = result.predict(problem.x_p, torch.zeros(6, 2, dtype=F64))
    assert labels.shape == (6,) and labels.dtype == torch.long


@pytest.mark.parametrize("factor", [0.9, 0.99, 1.01, 1.1])
@pytest.mark.parametrize("regime", ["A", "P"])
def test_unbounded_error_exactly_where_cvxpy_says_unbounded(factor, regime):
    problem = small_problem()
    d_bar = problem.mean_distance
    problem = problem.replace(r_a=0.5 * factor * d_bar, r_p=0.5 * factor * d_bar)
    status, _ = cvxpy_reference(problem, regime)
    if factor < 1:
        assert status.startswith("unbounded")
        with pytest.raises(cpairs.UnboundedProblemError, match="r_a \\+ r_p") as info:
            cpairs.solve(problem, method="exact", regime=regime)
        assert f"{d_bar:.6g}" in str(info.value)
    else:
        assert status == "optimal"
        assert cpairs.solve(problem, method="exact", regime=regime).status == "optimal"


def test_logit_distance_is_always_unbounded_and_exact_refuses_nonconvex():
    problem = small_problem(distance="logit")
    with pytest.raises(cpairs.UnboundedProblemError, match="logit"):
        cpairs.solve(problem)
    with pytest.raises(NotImplementedError, match="exact"):
        cpairs.methods.exact.solve_exact(problem, "A")
    with pytest.raises(NotImplementedError, match="linear model"):
        cpairs.solve(small_problem(), model=torch.nn.Identity())


def test_solve_rejects_bad_arguments():
    problem = small_problem()
    with pytest.raises(ValueError, match="method"):
        cpairs.solve(problem, method="newton")
    with pytest.raises(ValueError, match="regime"):
        cpairs.solve(problem, regime="Q")
    with pytest.raises(TypeError, match="PairProblem"):
        cpairs.solve("problem")


def test_gap_to_a_reference():
    problem = small_problem()
    exact = cpairs.solve(problem, regime="A")
    again = cpairs.solve(problem, regime="A", reference=exact)
    assert again.gap == pytest.approx(0.0, abs=1e-9)


def test_solver_trouble_is_reported_in_the_status():
    # OSQP cannot take exponential cones: no point comes back, and the result says so.
    result = cpairs.solve(small_problem(), method="exact", regime="A", solver="OSQP")
    assert result.status == "solver_error"
    assert result.max_violation == float("inf") and result.objective != result.objective
    assert result.diagnostics.class_histogram == []
