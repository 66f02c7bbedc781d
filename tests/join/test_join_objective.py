"""Ω^A / Ω^P against hand-computed values and pair-by-pair references (SPEC §2)."""

from __future__ import annotations

import math

import pytest
import torch

import constrained_pairs as cpairs
from constrained_pairs.join import pairs as pairs_module
from constrained_pairs.join.pairs import sample_pairs
from tests.helpers.join_reference import brute_objective

F64 = torch.float64


def make_problem(n_a=5, n_p=7, d=3, m=2, C=3, aux=True, seed=0, **options):
    g = torch.Generator().manual_seed(seed)
    x_a = torch.randn(n_a, d, generator=g, dtype=F64)
    x_p = torch.randn(n_p, d, generator=g, dtype=F64)
    y_p = torch.randint(0, C, (n_p,), generator=g)
    aux_a = torch.randn(n_a, m, generator=g, dtype=F64) if aux else None
    options = {"r_a": 0.3, "r_p": 0.4, "kappa_p": 0.6, "num_classes": C, **options}
    return cpairs.PairProblem(x_a, x_p, y_p, aux_a, **options)


def make_params(problem, d=None, seed=1, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    C = problem.num_classes
    d = d or problem.x_a.shape[1]
    theta1 = scale * torch.randn(C, d, generator=g, dtype=F64)
    theta2 = (
        scale * torch.randn(C, problem.aux_a.shape[1], generator=g, dtype=F64)
        if problem.has_aux
        else None
    )
    bias = torch.randn(C, generator=g, dtype=F64)
    return theta1, theta2, bias


def test_hand_computed_single_pair():
    # x_a = (0, 0), x_p = (3, 4): d = 5; θ₁ = I, y = 0: z = (3, 4), CE = log(1 + e);
    # seed hinge max(3 − α_P κ_P, 0) = 1 with α_P = 2, κ_P = 1; α_A r_A + α_P r_P = 0.5 + 0.5.
    problem = cpairs.PairProblem(
        torch.tensor([[0.0, 0.0]], dtype=F64),
        torch.tensor([[3.0, 4.0]], dtype=F64),
        torch.tensor([0]),
        r_a=0.5,
        r_p=0.25,
        kappa_p=1.0,
        num_classes=2,
        hinge="seed",
    )
    value = cpairs.objective(problem, theta1=torch.eye(2, dtype=F64), alpha_a=1.0, alpha_p=2.0)
    expected = 1.0 + math.log(1 + math.e) + 1.0 - 5.0
    assert float(value) == pytest.approx(expected, abs=1e-12)
    # Regime P evaluates g on x_a = 0: z = 0, CE = log 2, hinge max(0 − 2, 0) = 0, −α_P d = −10.
    value_p = cpairs.objective(
        problem, theta1=torch.eye(2, dtype=F64), alpha_a=1.0, alpha_p=2.0, regime="P"
    )
    assert float(value_p) == pytest.approx(1.0 + math.log(2) - 10.0, abs=1e-12)
    # The margin hinge max(max_k(z_y − z_k) − t, 0): z_0 − min z = 0 → 0.
    margin = problem.replace(hinge="margin")
    value_m = cpairs.objective(margin, theta1=torch.eye(2, dtype=F64), alpha_a=1.0, alpha_p=2.0)
    assert float(value_m) == pytest.approx(1.0 + math.log(1 + math.e) - 5.0, abs=1e-12)


@pytest.mark.parametrize("regime", ["A", "P"])
@pytest.mark.parametrize("hinge", ["seed", "margin"])
@pytest.mark.parametrize("aux", [True, False])
@pytest.mark.parametrize("pairs", ["all", "knn", "explicit"])
@pytest.mark.parametrize("normalize", ["seed", "pairs"])
def test_matches_pair_by_pair_reference(regime, hinge, aux, pairs, normalize):
    explicit = torch.tensor([[0, 1], [0, 1], [2, 6], [4, 0], [3, 3], [1, 5]])
    problem = make_problem(
        aux=aux,
        hinge=hinge,
        normalize=normalize,
        knn=3,
        pairs=explicit if pairs == "explicit" else pairs,
    )
    theta1, theta2, bias = make_params(problem)
    got = cpairs.objective(
        problem, theta1=theta1, theta2=theta2, bias=bias, alpha_a=0.4, alpha_p=0.9, regime=regime
    )
    want = brute_objective(problem, theta1, theta2, bias, 0.4, 0.9, regime)
    assert float(got) == pytest.approx(float(want), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("distance", ["feature", "logit", "callable"])
@pytest.mark.parametrize("scale", [None, "median", 2.5])
@pytest.mark.parametrize("regime", ["A", "P"])
def test_distances_and_scales(distance, scale, regime):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh()).double()
    fn = (lambda a, b: (a - b).abs().sum(dim=1)) if distance == "callable" else distance
    problem = make_problem(distance=fn, scale=scale)
    theta1, theta2, bias = make_params(problem, d=4)
    got = cpairs.objective(
        problem,
        theta1=theta1,
        theta2=theta2,
        bias=bias,
        alpha_a=0.4,
        alpha_p=0.9,
        regime=regime,
        model=model,
    )
    want = brute_objective(problem, theta1, theta2, bias, 0.4, 0.9, regime, model=model)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-12)


def test_sigmoid_squash_variant():
    problem = make_problem(distance="logit")
    theta1, theta2, bias = make_params(problem)
    got = cpairs.objective(
        problem,
        theta1=theta1,
        theta2=theta2,
        bias=bias,
        alpha_a=0.4,
        alpha_p=0.9,
        distance_squash="sigmoid",
    )
    want = brute_objective(problem, theta1, theta2, bias, 0.4, 0.9, "A", squash=True)
    assert float(got) == pytest.approx(float(want), rel=1e-12)


@pytest.mark.parametrize("hinge", ["seed", "margin"])
def test_streaming_in_many_chunks_is_exact_and_differentiable(monkeypatch, hinge):
    problem = make_problem(n_a=9, n_p=11, hinge=hinge)
    theta1, theta2, bias = make_params(problem)
    whole = cpairs.objective(
        problem, theta1=theta1, theta2=theta2, bias=bias, alpha_a=0.3, alpha_p=0.8
    )
    monkeypatch.setattr(pairs_module, "CHUNK_ELEMENTS", 7)  # one row of A per chunk
    params = [t.clone().requires_grad_() for t in (theta1, theta2, bias)]
    alphas = [torch.tensor(v, dtype=F64, requires_grad=True) for v in (0.3, 0.8)]

    def f(t1, t2, b, aa, ap):
        return cpairs.objective(problem, theta1=t1, theta2=t2, bias=b, alpha_a=aa, alpha_p=ap)

    assert float(f(*params, *alphas).detach()) == pytest.approx(float(whole), rel=1e-13)
    assert torch.autograd.gradcheck(f, (*params, *alphas))


def test_underflowing_products_are_recomputed_exactly():
    # Logit gaps of ~200 underflow float32 products of shifted exponentials.
    problem = make_problem(n_a=6, n_p=8, C=4).to(dtype=torch.float32)
    theta1, theta2, bias = (t.float() for t in make_params(problem.to(dtype=F64), scale=60.0))
    got = cpairs.objective(
        problem, theta1=theta1, theta2=theta2, bias=bias, alpha_a=0.3, alpha_p=0.8
    )
    want = brute_objective(
        problem.to(dtype=F64), theta1.double(), theta2.double(), bias.double(), 0.3, 0.8, "A"
    )
    assert torch.isfinite(got)
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def test_minibatch_estimate_is_unbiased():
    problem = make_problem(n_a=4, n_p=5, pairs="all")
    theta1, theta2, bias = make_params(problem)
    full = float(
        cpairs.objective(problem, theta1=theta1, theta2=theta2, bias=bias, alpha_a=0.3, alpha_p=0.8)
    )
    g = torch.Generator().manual_seed(0)
    draws = torch.tensor(
        [
            float(
                cpairs.objective(
                    problem,
                    theta1=theta1,
                    theta2=theta2,
                    bias=bias,
                    alpha_a=0.3,
                    alpha_p=0.8,
                    pairs=sample_pairs(problem.pairs, 8, g),
                )
            )
            for _ in range(3000)
        ]
    )
    stderr = float(draws.std()) / math.sqrt(len(draws))
    assert abs(float(draws.mean()) - full) < 4 * stderr
    assert float(draws.std()) > 0  # the estimate really is random


def test_objective_rejects_bad_parameters():
    problem = make_problem()
    theta1, theta2, bias = make_params(problem)
    with pytest.raises(ValueError, match="theta1"):
        cpairs.objective(problem, theta1=theta1[:, :2], alpha_a=0.1, alpha_p=0.2)
    with pytest.raises(ValueError, match="theta2"):
        cpairs.objective(problem, theta1=theta1, theta2=theta2[:, :1], alpha_a=0.1, alpha_p=0.2)
    with pytest.raises(ValueError, match="regime"):
        cpairs.objective(problem, theta1=theta1, alpha_a=0.1, alpha_p=0.2, regime="B")
    no_aux = make_problem(aux=False)
    with pytest.raises(ValueError, match="aux_a"):
        cpairs.objective(no_aux, theta1=theta1, theta2=theta2, alpha_a=0.1, alpha_p=0.2)
