"""Every first-order method against the exact CVXPY optimum, and the shared loop's options."""

from __future__ import annotations

import pytest
import torch

from constrained_pairs.errors import UnsupportedOptionError
from constrained_pairs.join.constraints import constraint_residuals
from constrained_pairs.join.objective import objective
from constrained_pairs.methods import solve
from constrained_pairs.methods.options import TrainOptions
from constrained_pairs.methods.parametrization import FeasibleHead
from constrained_pairs.methods.projection import ProjectionMethod
from constrained_pairs.methods.training import train

FIRST_ORDER = ("penalty", "projection", "parametrization", "lagrangian", "augmented_lagrangian")
#: Relative gap each method must reach with default options on the small convex instance.
#: Measured: projection ~1e-8, lagrangian ~4e-5, augmented_lagrangian ~7e-4, parametrization
#: ~7e-4, penalty ~1e-6 with violation ~5e-6 (the issue's 1e-3 / 1e-5 targets).
GAP_BOUND = {
    "projection": 1e-4,
    "parametrization": 1e-3,
    "lagrangian": 2e-4,
    "augmented_lagrangian": 1e-3,
    "penalty": 1e-4,
}
VIOLATION_BOUND = {
    "projection": 1e-6,
    "parametrization": 1e-6,
    "lagrangian": 1e-5,
    "augmented_lagrangian": 1e-5,
    "penalty": 1e-5,
}


@pytest.mark.parametrize("method", FIRST_ORDER)
def test_method_against_exact(method, convex_problem, exact_reference):
    result = solve(convex_problem, method, regime="A", reference=exact_reference)
    assert result.method == method
    assert result.gap is not None and result.gap >= -1e-3  # nobody beats the exact optimum
    assert result.gap <= GAP_BOUND[method], result.summary()
    if method in ("projection", "parametrization"):
        # feasible at every logged iterate
        assert max(h["max_violation"] for h in result.history) <= 1e-6
    assert result.max_violation <= VIOLATION_BOUND[method]


def test_parametrization_feasible_for_random_parameters(split):
    for regime in ("A", "P"):
        for norm in ("nuclear", "frobenius", "spectral"):
            head = FeasibleHead(10, 7, 4, regime=regime, kappa_a=0.7, norm=norm)
            from constrained_pairs.join.problem import PairProblem

            problem = PairProblem(
                split.x_a[:, :7],
                split.x_p[:, :7],
                split.y_p,
                split.aux_a[:, :4],
                r_a=5.0,
                r_p=5.0,
                kappa_a=0.7,
                norm=norm,
            )
            generator = torch.Generator().manual_seed(1)
            for _ in range(20):
                with torch.no_grad():
                    for p in head.parameters():
                        p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * 3)
                point = head.point()
                residuals = constraint_residuals(
                    problem,
                    theta1=point.theta1,
                    theta2=point.theta2,
                    alpha_a=point.alpha_a,
                    alpha_p=point.alpha_p,
                    regime=regime,
                )
                assert max(float(v.detach()) for v in residuals.values()) <= 1e-10


@pytest.mark.parametrize("method", ["lagrangian", "penalty"])
def test_checkpoint_resume_gives_same_result(method, convex_problem, tmp_path):
    path = tmp_path / "run.pt"
    full = solve(convex_problem, method, regime="A", max_iter=200)
    stopped = solve(
        convex_problem,
        method,
        regime="A",
        max_iter=200,
        checkpoint=path,
        checkpoint_every=50,
        callback=lambda record: record["iteration"] >= 120,
    )
    assert stopped.status == "max_iter" and stopped.extra["stopped_by"] == "callback"
    assert path.exists()
    resumed = solve(convex_problem, method, regime="A", max_iter=200, checkpoint=path, resume=True)
    torch.testing.assert_close(resumed.theta1, full.theta1)
    assert resumed.objective == pytest.approx(full.objective, rel=1e-12)
    assert [h["objective"] for h in resumed.history] == pytest.approx(
        [h["objective"] for h in full.history]
    )


@pytest.mark.parametrize("method", ["projection", "parametrization"])
def test_lipschitz_norm_is_honoured(method, convex_problem):
    problem = convex_problem.replace(norm="lipschitz")
    result = solve(problem, method, regime="A", max_iter=50, restore_feasibility=False)
    assert result.max_violation <= 1e-9 and max(result.history.max_violation) <= 1e-9


def test_a_norm_a_method_cannot_honour_is_refused(convex_problem):
    class FrobeniusOnly(ProjectionMethod):
        norms = ("frobenius",)

    with pytest.raises(UnsupportedOptionError, match="projection.*nuclear"):
        train(FrobeniusOnly, convex_problem, "A", max_iter=2)


def test_penalty_stages_and_adam_path(convex_problem, exact_reference):
    staged = solve(convex_problem, "penalty", regime="A", max_iter=60, weight=1.0, max_weight=1e2)
    assert staged.extra["optimizer"] == "lbfgs" and staged.extra["factored"]
    assert staged.extra["final_weight"] == 100.0
    # Mini-batches switch to Adam on the plain θ₁ with a geometric weight ramp.
    sampled = solve(convex_problem, "penalty", regime="A", batch_size=512, max_iter=300)
    assert sampled.extra["optimizer"] == "adam" and not sampled.extra["factored"]
    start = objective(
        convex_problem,
        theta1=torch.zeros_like(sampled.theta1),
        theta2=None,
        bias=torch.zeros_like(sampled.bias),
        alpha_a=torch.tensor(1.0, dtype=torch.float64),
        alpha_p=torch.tensor(1.0, dtype=torch.float64),
        regime="A",
    )
    assert exact_reference.objective < sampled.objective < float(start)
    assert sampled.max_violation < 1e-2
    with pytest.raises(ValueError, match="factored"):
        solve(convex_problem.replace(norm="frobenius"), "penalty", max_iter=1, factored=True)


@pytest.mark.parametrize("regime", ["A", "P"])
def test_restore_feasibility_raises_only_alphas(regime, split):
    from constrained_pairs.join.problem import PairProblem

    problem = PairProblem(
        split.x_a, split.x_p, split.y_p, split.aux_a, r_a=3.0, r_p=3.0, kappa_a=0.5
    )
    kw = {"regime": regime, "max_iter": 100, "weight": 1e-3, "max_weight": 1e-3}
    raw = solve(problem, "penalty", restore_feasibility=False, **kw)
    fixed = solve(problem, "penalty", **kw)
    assert raw.max_violation > 1e-4 and "violation_before_restore" not in raw.extra
    assert fixed.extra["violation_before_restore"] == pytest.approx(raw.max_violation)
    assert fixed.max_violation <= 1e-12
    torch.testing.assert_close(fixed.theta1, raw.theta1)
    torch.testing.assert_close(fixed.theta2, raw.theta2)
    assert fixed.alpha_a >= raw.alpha_a and fixed.alpha_p >= raw.alpha_p
    # the smallest raise: some constraint holds with equality after it
    residuals = constraint_residuals(
        problem,
        theta1=fixed.theta1,
        theta2=fixed.theta2,
        alpha_a=torch.as_tensor(fixed.alpha_a, dtype=torch.float64),
        alpha_p=torch.as_tensor(fixed.alpha_p, dtype=torch.float64),
        regime=regime,
    )
    assert max(float(v) for v in residuals.values()) == pytest.approx(0.0, abs=1e-12)


def test_factored_bound_dominates_nuclear_norm():
    from constrained_pairs.methods.head import FactoredHead

    torch.manual_seed(0)
    head = FactoredHead(5, 7, None, init_scale=1.0)
    point = head.point()
    assert torch.linalg.matrix_norm(point.theta1, ord="nuc") <= head.nuclear_bound() + 1e-12
    # Tight at the balanced factorisation U = P √S, V = Q √S of the SVD θ₁ = P S Qᵀ.
    p, s, qt = torch.linalg.svd(point.theta1.detach(), full_matrices=False)
    with torch.no_grad():
        head.left.copy_(p * s.sqrt())
        head.right.copy_(qt.T * s.sqrt())
    torch.testing.assert_close(head.nuclear_bound(), s.sum())


def test_sigmoid_squash_is_reported(convex_problem):
    result = solve(convex_problem, "penalty", regime="A", max_iter=20, distance_squash="sigmoid")
    assert result.extra["note"] == "sigmoid-squashed distance: a different problem"
    assert result.status in ("max_iter", "converged")


def test_nonlinear_backbone_lagrangian(split):
    from constrained_pairs.join.problem import PairProblem

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.Tanh()).double()
    problem = PairProblem(split.x_a, split.x_p, split.y_p, None, r_a=1.5, r_p=1.5)
    result = solve(problem, "lagrangian", regime="A", model=model)
    assert torch.isfinite(torch.tensor(result.objective))
    assert result.theta1.shape == (10, 16)
    assert result.max_violation <= 1e-4


def test_mini_batches_and_bad_options(convex_problem):
    result = solve(convex_problem, "projection", regime="A", batch_size=(8, 16), max_iter=50)
    assert result.extra["batch_size"] == (8, 16) and result.max_violation <= 1e-6
    with pytest.raises(ValueError, match="max_iter"):
        solve(convex_problem, "projection", regime="A", max_iter=0)
    with pytest.raises(TypeError, match="model"):
        solve(convex_problem, "projection", regime="A", model="mlp")
    with pytest.raises(ValueError, match="not_an_option"):
        solve(convex_problem, "projection", regime="A", not_an_option=1)
    for method in ("penalty", "lagrangian"):
        with pytest.raises(ValueError, match="optimizer"):
            solve(convex_problem, method, regime="A", max_iter=1, optimizer="sgd")


def test_train_options_defaults():
    options = TrainOptions()
    assert options.batch_size is None and options.seed == 0 and options.threads is None
    before = torch.get_num_threads()
    result = train(ProjectionMethod, _tiny_problem(), "P", max_iter=5, threads=1)
    assert torch.get_num_threads() == before
    # The record describes the iterate the 5th step started from: after 4 updates.
    assert len(result.history) == 1 and result.history[0]["iteration"] == 4


def _tiny_problem():
    from constrained_pairs.join.problem import PairProblem

    x = torch.rand(6, 3, dtype=torch.float64)
    return PairProblem(x, x.flip(0), torch.tensor([0, 1, 2, 0, 1, 2]), r_a=2.0, r_p=2.0)


@pytest.mark.parametrize("method", FIRST_ORDER)
def test_methods_on_every_device_match_the_cpu(method, convex_problem, device):
    kw = {"regime": "A", "max_iter": 100}
    here = solve(convex_problem, method, device=device, **kw)
    cpu = solve(convex_problem, method, **kw)
    assert here.theta1.device.type == device.type
    assert here.objective == pytest.approx(cpu.objective, rel=1e-6)
