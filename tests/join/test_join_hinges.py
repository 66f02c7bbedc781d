"""The three hinges of SPEC §2, the reference code's binary formulation, and the fast exact path."""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest
import torch

import constrained_pairs as cpairs
from constrained_pairs.join.hinges import SHIFT_INVARIANT
from tests.helpers.join_reference import brute_objective, cvxpy_reference

F64 = torch.float64


def binary_problem(hinge="margin", aux=True, seed=0, n_a=7, n_p=9, **options):
    g = torch.Generator().manual_seed(seed)
    x_a = torch.randn(n_a, 3, generator=g, dtype=F64)
    x_p = torch.randn(n_p, 3, generator=g, dtype=F64)
    y_p = torch.tensor([0, 1] * (n_p // 2) + [1] * (n_p % 2))
    aux_a = torch.randn(n_a, 2, generator=g, dtype=F64) if aux else None
    base = cpairs.PairProblem(x_a, x_p, y_p, aux_a, r_a=0.0, r_p=0.0, hinge=hinge, **options)
    d_bar = base.mean_distance
    return base.replace(r_a=0.6 * d_bar, r_p=0.55 * d_bar, kappa_a=1.5, kappa_p=0.4)


@pytest.mark.parametrize("regime", ["A", "P"])
def test_kappa_p_changes_the_optimum_under_the_default_hinge_and_not_under_seed(regime):
    problem = binary_problem()
    assert problem.hinge == "margin" and problem.normalize == "pairs"
    problem = problem.replace(r_a=0.51 * problem.mean_distance, r_p=0.51 * problem.mean_distance)
    values = {}
    for hinge in ("margin", "seed"):
        values[hinge] = [
            cpairs.solve(problem.replace(hinge=hinge, kappa_p=k), "exact", regime=regime).objective
            for k in (0.0, 2.0, 1e6)
        ]
    margin, seed = values["margin"], values["seed"]
    assert margin[0] - margin[1] > 1e-3 and margin[1] - margin[2] > 1e-3  # κ_P matters
    assert max(seed) - min(seed) < 1e-6  # the bias shift makes the seed hinge vanish
    # With κ_P → ∞ both hinges vanish: the same problem (CE alone).
    assert margin[2] == pytest.approx(seed[2], abs=1e-6)


def test_seed_hinge_inactivity_is_reported_and_explained():
    problem = binary_problem(hinge="seed")
    result = cpairs.solve(problem, "exact", regime="A")
    assert result.diagnostics.hinge == "seed"
    assert result.diagnostics.hinge_active is not None and result.diagnostics.hinge_active < 1e-3
    text = result.diagnostics.explain()
    assert "inactive" in text and "bias" in text and "hinge='margin'" in text
    margin = cpairs.solve(problem.replace(hinge="margin", kappa_p=0.0), "exact", regime="A")
    assert margin.diagnostics.hinge_active > 0.5 and "inactive" not in margin.diagnostics.explain()


def test_reference_hinge_is_binary_only():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 2, generator=g, dtype=F64)
    with pytest.raises(cpairs.InvalidArgumentError, match="num_classes=2"):
        cpairs.PairProblem(x, x, torch.tensor([0, 1, 2, 0]), r_a=1, r_p=1, hinge="reference")
    assert set(SHIFT_INVARIANT) == {"margin", "reference"}


def _binary_logistic(problem, regime, lipschitz_budget):
    """The reference code's formulation, written by hand: score s = w·x + w₂·a + c, labels ±1,
    log(1 + e^{−ys}) + max(0, s − α_P κ_P), ‖w‖ <= budget·(α_A + α_P), ‖w₂‖ <= κ_A α_A."""
    x_a, x_p = problem.x_a.numpy(), problem.x_p.numpy()
    aux = problem.aux_a.numpy()
    y = 2 * problem.y_p.numpy() - 1
    pairs = list(zip(problem.pairs.index_a.tolist(), problem.pairs.index_p.tolist()))
    w, w2, c = cp.Variable(x_p.shape[1]), cp.Variable(aux.shape[1]), cp.Variable()
    aa, ap = cp.Variable(nonneg=True), cp.Variable(nonneg=True)
    terms = []
    for i, j in pairs:
        s = (x_p[j] if regime == "A" else x_a[i]) @ w + aux[i] @ w2 + c
        terms.append(cp.logistic(-y[j] * s) + cp.pos(s - problem.kappa_p * ap))
    d_bar = np.mean([np.linalg.norm(x_a[i] - x_p[j]) for i, j in pairs])
    weight = aa if regime == "A" else ap
    cost = problem.r_a * aa + problem.r_p * ap + cp.sum(cp.hstack(terms)) / len(terms)
    cost = cost - weight * d_bar
    cons = [
        cp.norm(w, 2) <= lipschitz_budget * (aa + ap),
        cp.norm(w2, 2) <= problem.kappa_a * aa,
        aa <= ap if regime == "A" else ap <= aa,
    ]
    program = cp.Problem(cp.Minimize(cost), cons)
    program.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return program.value


@pytest.mark.parametrize("regime", ["A", "P"])
def test_reference_hinge_matches_a_hand_written_binary_logistic_formulation(regime):
    # For C = 2 with θ₁ = [−w/2; w/2] the logits' difference is the score and
    # max_{k<l}‖θ₁[k] − θ₁[l]‖ = ‖w‖: norm="lipschitz" is the reference code's ‖w‖₂ ≤ α_A + α_P.
    problem = binary_problem(
        hinge="reference", pairs="knn", knn=2, norm="lipschitz", aux_norm="lipschitz"
    )
    ours = cpairs.solve(
        problem,
        "exact",
        regime=regime,
        solver_options={"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
    )
    assert ours.status == "optimal"
    assert ours.objective == pytest.approx(_binary_logistic(problem, regime, 1.0), abs=1e-8)
    # The nuclear (= Frobenius = spectral) norm of a centred two-row θ₁ is ‖w‖/√2: the same
    # problem with the budget ‖w‖₂ <= √2 (α_A + α_P) (and ‖w₂‖ <= √2 κ_A α_A for Frobenius θ₂).
    nuclear = problem.replace(norm="nuclear", aux_norm="lipschitz")
    value = cpairs.solve(
        nuclear,
        "exact",
        regime=regime,
        solver_options={"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10},
    ).objective
    assert value == pytest.approx(_binary_logistic(nuclear, regime, math.sqrt(2)), abs=1e-8)


@pytest.mark.parametrize("hinge", ["margin", "reference"])
@pytest.mark.parametrize("norm", ["nuclear", "spectral"])
def test_two_class_fast_path_is_a_cone_program_with_the_sdp_optimum(hinge, norm):
    problem = binary_problem(hinge=hinge, norm=norm)
    result = cpairs.solve(problem, "exact", regime="A")
    assert result.extra["program"] == "centred SOC/exp-cone"
    status, reference = cvxpy_reference(problem, "A")  # θ₁ free, normNuc / sigma_max: an SDP
    assert status == "optimal" and result.status == "optimal"
    assert result.objective == pytest.approx(reference, rel=1e-6, abs=1e-7)
    # the returned θ₁ is feasible for the norm as stated (centred rows ±w/2)
    recomputed = brute_objective(
        problem, result.theta1, result.theta2, result.bias, result.alpha_a, result.alpha_p, "A"
    )
    assert float(recomputed) == pytest.approx(result.objective, rel=1e-10)
    assert result.max_violation <= 1e-6


@pytest.mark.parametrize(("hinge", "regime"), [("margin", "P"), ("reference", "A")])
def test_objective_with_each_hinge_matches_the_pair_loop(hinge, regime):
    problem = binary_problem(hinge=hinge, n_a=5, n_p=6)
    g = torch.Generator().manual_seed(5)
    theta1, theta2 = torch.randn(2, 3, generator=g, dtype=F64), torch.randn(2, 2, generator=g)
    theta2 = theta2.double()
    bias = torch.randn(2, generator=g, dtype=F64)
    for kappa in (0.0, 0.7):
        variant = problem.replace(kappa_p=kappa)
        ours = cpairs.objective(
            variant,
            theta1=theta1,
            theta2=theta2,
            bias=bias,
            alpha_a=0.4,
            alpha_p=0.9,
            regime=regime,
        )
        brute = brute_objective(variant, theta1, theta2, bias, 0.4, 0.9, regime)
        assert float(ours) == pytest.approx(float(brute), rel=1e-12)


def test_three_class_margin_exact_matches_the_general_sdp():
    g = torch.Generator().manual_seed(4)
    x_a, x_p = torch.rand(4, 3, generator=g, dtype=F64), torch.rand(6, 3, generator=g, dtype=F64)
    base = cpairs.PairProblem(x_a, x_p, torch.tensor([0, 1, 2, 0, 1, 2]), r_a=0.0, r_p=0.0)
    d_bar = base.mean_distance
    problem = base.replace(r_a=0.6 * d_bar, r_p=0.5 * d_bar, kappa_p=0.5)
    result = cpairs.solve(problem, "exact", regime="P")
    assert result.extra["program"] == "centred SDP"
    status, reference = cvxpy_reference(problem, "P")
    assert status == "optimal"
    assert result.objective == pytest.approx(reference, rel=1e-5, abs=1e-6)
