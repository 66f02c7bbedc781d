"""solve()'s reliability contract (SPEC §7): options checked before any work, the caller's
modules and RNG untouched, divergence as a status, checkpoints that resume only their own run."""

from __future__ import annotations

import math

import pytest
import torch

import constrained_pairs as cp
from constrained_pairs.errors import CheckpointError, InvalidArgumentError, InvalidTypeError
from constrained_pairs.join.objective import objective
from constrained_pairs.join.problem import PairProblem


@pytest.fixture(scope="module")
def aux_problem(split):
    d_bar = PairProblem(split.x_a, split.x_p, split.y_p, None, r_a=1.0, r_p=1.0).mean_distance
    return PairProblem(
        split.x_a, split.x_p, split.y_p, split.aux_a, r_a=0.6 * d_bar, r_p=0.6 * d_bar
    )


@pytest.fixture(scope="module")
def split():
    from constrained_pairs.data import digits_join

    return digits_join(n_a=30, n_p=60, n_test=200)


def _mlp(dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(32, 16), torch.nn.Tanh(), torch.nn.Dropout(dropout)
    ).double()


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_iters": 5}, InvalidArgumentError, "did you mean 'max_iter'"),
        ({"lr": float("nan")}, InvalidArgumentError, "lr"),
        ({"lr": float("inf")}, InvalidArgumentError, "lr"),
        ({"lr": -1.0}, InvalidArgumentError, "lr"),
        ({"seed": "abc"}, InvalidTypeError, "seed"),
        ({"callback": 3}, InvalidTypeError, "callback"),
        ({"dtype": torch.int64}, InvalidArgumentError, "dtype"),
        ({"dtype": torch.float16}, InvalidArgumentError, "dtype"),
        ({"batch_size": (4, 0)}, InvalidArgumentError, "batch_size"),
        ({"dual_lr": float("nan")}, InvalidArgumentError, "dual_lr"),
        ({"alpha_init": float("nan")}, InvalidArgumentError, "alpha_init"),
        ({"checkpoint": "/no/such/folder/run.pt"}, InvalidArgumentError, "does not exist"),
        ({"resume": True}, InvalidArgumentError, "checkpoint"),
    ],
)
def test_bad_options_are_refused_before_any_work(aux_problem, options, error, match):
    with pytest.raises(error, match=match):
        cp.solve(aux_problem, "lagrangian", regime="A", max_iter=5, **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_cuda_is_a_clear_error(aux_problem):
    with pytest.raises(InvalidArgumentError, match="CUDA is not available"):
        cp.solve(aux_problem, "projection", regime="A", device="cuda", max_iter=2)


def test_callers_model_and_rng_are_untouched_and_results_match_their_models(aux_problem):
    model = _mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(11)
    expected = torch.rand(4)
    torch.manual_seed(11)
    result = cp.solve(aux_problem, "projection", regime="auto", model=model, max_iter=40)
    assert torch.equal(torch.rand(4), expected)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    other = result.extra["other"]
    assert result.model is not other.model and result.model is not model
    for res in (result, other):
        value = objective(
            aux_problem,
            theta1=res.theta1,
            theta2=res.theta2,
            bias=res.bias,
            alpha_a=res.alpha_a,
            alpha_p=res.alpha_p,
            regime=res.regime,
            model=res.model,
        )
        assert float(value.detach()) == pytest.approx(res.objective, rel=1e-12)


@pytest.mark.parametrize(
    ("method", "options"),
    [("penalty", {"optimizer": "adam"}), ("lagrangian", {}), ("parametrization", {})],
)
def test_a_huge_learning_rate_ends_as_diverged_with_a_finite_point(aux_problem, method, options):
    result = cp.solve(
        aux_problem, method, regime="A", lr=1e300, max_iter=50, log_every=1, **options
    )
    assert result.status == cp.Status.DIVERGED
    assert torch.isfinite(result.theta1).all() and math.isfinite(result.objective)
    assert all(math.isfinite(v) for v in result.history.objective)


def test_auto_regime_keeps_one_checkpoint_per_regime(aux_problem, tmp_path):
    path = tmp_path / "run.pt"
    kw = {"regime": "auto", "max_iter": 60, "checkpoint": path, "checkpoint_every": 20}
    first = cp.solve(aux_problem, "projection", **kw)
    assert (tmp_path / "run.A.pt").exists() and (tmp_path / "run.P.pt").exists()
    again = cp.solve(aux_problem, "projection", resume=True, **kw)
    assert again.regime == first.regime and again.objective == first.objective
    assert again.extra["other"].objective == first.extra["other"].objective
    with pytest.raises(CheckpointError, match="max_iter"):
        cp.solve(aux_problem, "projection", resume=True, **{**kw, "max_iter": 30})
    with pytest.raises(CheckpointError, match="r_a"):
        cp.solve(aux_problem.replace(r_a=aux_problem.r_a * 1.1), "projection", resume=True, **kw)
    with pytest.raises(CheckpointError, match="kind"):
        cp.solve(aux_problem, "augmented_lagrangian", resume=True, **kw)


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("projection", {"model": "dropout", "max_iter": 60}),
        ("lagrangian", {"tol": 1e-3, "patience": 20, "max_iter": 400}),
    ],
)
def test_an_interrupted_run_resumes_bitwise(aux_problem, tmp_path, method, options):
    options = dict(options)
    if options.get("model") == "dropout":
        options["model"] = _mlp(dropout=0.2)
    path = tmp_path / "run.pt"
    full = cp.solve(aux_problem, method, regime="A", **options)

    def interrupt(record):
        if record.iteration >= 29:
            raise _Interrupt

    kw = {"regime": "A", "checkpoint": path, "checkpoint_every": 10, **options}
    with pytest.raises(_Interrupt):
        cp.solve(aux_problem, method, callback=interrupt, **kw)
    resumed = cp.solve(aux_problem, method, resume=True, **kw)
    assert resumed.status == full.status
    assert resumed.history.objective == full.history.objective
    assert torch.equal(resumed.theta1, full.theta1)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_first_order_optimum_is_invariant_to_the_data_unit(aux_problem, scale):
    def scaled(c: float) -> PairProblem:
        p = aux_problem
        return PairProblem(
            p.x_a * c,
            p.x_p * c,
            p.y_p,
            p.aux_a * c,
            r_a=p.r_a * c,
            r_p=p.r_p * c,
            kappa_p=p.kappa_p * c,
        )

    base = cp.solve(aux_problem, "projection", regime="A", max_iter=200)
    found = cp.solve(scaled(scale), "projection", regime="A", max_iter=200)
    assert found.status == base.status
    assert found.objective == pytest.approx(base.objective, rel=1e-8)
    torch.testing.assert_close(found.theta1 * scale, base.theta1, rtol=1e-6, atol=1e-9)
    assert found.alpha_a * scale == pytest.approx(base.alpha_a, rel=1e-6)


def test_conflicting_or_unusable_options_are_refused(aux_problem):
    with pytest.raises(InvalidArgumentError, match="epochs or max_iter"):
        cp.solve(aux_problem, "projection", regime="A", epochs=2, max_iter=3)
    with pytest.raises(InvalidArgumentError, match="feature_map"):
        cp.solve(aux_problem, "projection", regime="A", max_iter=2, feature_map=_mlp())
    wrong = torch.nn.Linear(5, 3).double()
    with pytest.raises(InvalidArgumentError, match="model cannot be applied"):
        cp.solve(aux_problem, "projection", regime="A", max_iter=2, model=wrong)


def test_feature_distances_of_a_free_backbone_cannot_be_exploited(split):
    """A free MLP with distance="feature" trains against a frozen copy: Ω never falls below
    α(r_A + r_P − D̄) >= 0, whatever the backbone does (SPEC §2, "Deep backbones")."""
    model = _mlp()
    probe = PairProblem(split.x_a, split.x_p, split.y_p, None, r_a=0.0, r_p=0.0, distance="feature")
    d_bar = probe.mean_distance_with(model)
    problem = probe.replace(r_a=0.51 * d_bar, r_p=0.51 * d_bar)
    result = cp.solve(
        problem,
        "projection",
        regime="A",
        model=model,
        max_iter=150,
        backbone_lr=0.05,
        log_every=1,
    )
    assert result.status in (cp.Status.MAX_ITER, cp.Status.CONVERGED)
    assert min(result.history.objective) >= 0.0
    value = objective(
        problem,
        theta1=result.theta1,
        bias=result.bias,
        alpha_a=result.alpha_a,
        alpha_p=result.alpha_p,
        regime="A",
        model=result.model,
        feature_map=result.feature_map,
    )
    assert float(value.detach()) == pytest.approx(result.objective, rel=1e-12)
    assert result.diagnostics.mean_distance == pytest.approx(d_bar, rel=1e-9)


def test_parametrization_alpha_init_is_checked_and_large_values_work(aux_problem):
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidArgumentError, match="alpha_init"):
            cp.solve(aux_problem, "parametrization", regime="A", max_iter=2, alpha_init=bad)
    result = cp.solve(aux_problem, "parametrization", regime="A", max_iter=2, alpha_init=1e3)
    assert math.isfinite(result.objective)


def test_an_exploding_run_ends_as_diverged(aux_problem):
    result = cp.solve(aux_problem, "projection", regime="A", lr=1e300, max_iter=50, log_every=1)
    assert result.status == cp.Status.DIVERGED
    assert abs(result.objective) < 1e12 * max(1.0, abs(result.history[0]["objective"]))


def test_an_exact_point_worse_than_the_trivial_one_is_never_returned(aux_problem):
    import dataclasses

    from constrained_pairs.methods import _never_worse_than_trivial

    good = cp.solve(aux_problem, "exact", regime="A")
    assert _never_worse_than_trivial(aux_problem, good) is good
    for status, value in (("unbounded", float("nan")), ("optimal_inaccurate", 1e6)):
        bad = dataclasses.replace(good, status=cp.Status(status), objective=value, extra={})
        fixed = _never_worse_than_trivial(aux_problem, bad)
        assert fixed.status == cp.Status.OPTIMAL_INACCURATE
        assert fixed.objective == pytest.approx(math.log(aux_problem.num_classes), rel=1e-12)
        assert fixed.max_violation == 0.0 and fixed.extra["solver_status"] == status
