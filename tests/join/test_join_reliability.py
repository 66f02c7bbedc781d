"""Regression tests of the robustness sweep (issue 12) for the data join: every bad input to
``PairProblem``, ``objective``, ``Result``, ``wasserstein_radius`` and ``solve(..., "exact")``
raises a package error naming the argument; valid extreme inputs give the right values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import constrained_pairs as cpairs
from constrained_pairs.join.blocks import sample_block
from constrained_pairs.join.objective import omega
from constrained_pairs.join.pairs import sample_pairs

F64 = torch.float64
RNG = np.random.default_rng(12)
X_A, X_P = RNG.normal(size=(4, 3)), RNG.normal(size=(6, 3))
Y_P = np.array([0, 1, 2, 0, 1, 2])
AUX = RNG.normal(size=(4, 2))
INVALID = (cpairs.InvalidArgumentError, cpairs.InvalidTypeError)


def build(x_a=X_A, x_p=X_P, y_p=Y_P, aux=AUX, **options):
    return cpairs.PairProblem(x_a, x_p, y_p, aux, **{"r_a": 2.0, "r_p": 2.0, **options})


def brute_mean_distance(x_a, x_p):
    """D̄ over all pairs, in numpy with the overflow-free hypot-style norm."""
    diff = x_a[:, None, :] - x_p[None, :, :]
    top = np.abs(diff).max(axis=2, keepdims=True)
    top[top == 0] = 1.0
    return float((top[..., 0] * np.sqrt(((diff / top) ** 2).sum(-1))).mean())


# -- PairProblem ------------------------------------------------------------------------------
def test_boolean_labels_are_refused():
    with pytest.raises(cpairs.InvalidTypeError, match="y_p.*bool"):
        build(y_p=torch.tensor(Y_P) > 0)


def test_an_inferred_num_classes_above_the_labelled_rows_is_refused():
    with pytest.raises(cpairs.InvalidArgumentError, match="num_classes"):
        build(y_p=np.zeros(6, dtype=np.int64) + 2**40)
    with pytest.raises(cpairs.InvalidArgumentError, match="y_p must lie in 0..2"):
        build(y_p=np.zeros(6, dtype=np.int64) + 2**40, num_classes=3)
    # Labels up to n_P - 1 are inferred; an explicit C may exceed them (absent classes).
    assert build(y_p=np.array([0, 5, 0, 5, 0, 5])).num_classes == 6
    assert build(y_p=np.array([0, 5, 0, 5, 0, 5]), num_classes=9).num_classes == 9
    assert build(x_p=X_P[:1], y_p=np.array([1])).num_classes == 2


@pytest.mark.parametrize("name", ["r_a", "r_p", "kappa_a", "kappa_p"])
@pytest.mark.parametrize("value", ["1", True, None, [1.0]])
def test_radii_and_kappas_are_real_numbers_only(name, value):
    with pytest.raises(cpairs.InvalidTypeError, match=name):
        build(**{name: value})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_radii_are_finite_and_non_negative(value):
    with pytest.raises(cpairs.InvalidArgumentError, match="r_a"):
        build(r_a=value)


def test_numpy_and_tensor_scalars_are_accepted_as_radii():
    problem = build(r_a=np.float32(2.5), r_p=torch.tensor(3.0, dtype=F64), kappa_a=np.int64(2))
    assert (problem.r_a, problem.r_p, problem.kappa_a) == (2.5, 3.0, 2.0)


@pytest.mark.parametrize(
    ("distance", "error", "match"),
    [
        (lambda a, p: (a - p).norm(), cpairs.InvalidArgumentError, r"shape \(2,\), got shape \(\)"),
        (lambda a, p: "x", cpairs.InvalidTypeError, "got str"),
        (lambda a, p: (a - p).abs(), cpairs.InvalidArgumentError, r"got shape \(2, 3\)"),
        (lambda a, p: (a - p).norm(dim=1) > 0, cpairs.InvalidTypeError, "torch.bool"),
    ],
    ids=["scalar", "string", "wrong-shape", "bool"],
)
def test_a_callable_distance_of_the_wrong_type_or_shape_is_refused_at_construction(
    distance, error, match
):
    with pytest.raises(error, match=f"distance.*{match}"):
        build(distance=distance)


@pytest.mark.parametrize(
    ("distance", "match"),
    [
        (lambda a, p: -(a - p).norm(dim=1), "negative"),
        (lambda a, p: (a - p).norm(dim=1) * float("inf"), "not finite"),
    ],
    ids=["negative", "infinite"],
)
def test_a_callable_distance_with_bad_values_is_refused_before_solving(distance, match):
    problem = build(distance=distance)
    with pytest.raises(cpairs.InvalidArgumentError, match=f"distance.*{match}"):
        problem.mean_distance
    with pytest.raises(cpairs.InvalidArgumentError, match="distance"):
        cpairs.solve(problem, "exact")


def test_a_valid_callable_distance_gives_the_brute_force_mean():
    l1 = build(distance=lambda a, p: (a - p).abs().sum(dim=1))
    expected = np.abs(X_A[:, None, :] - X_P[None, :, :]).sum(-1).mean()
    assert l1.mean_distance == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("scale", [1e-200, 1e-30, 1.0, 1e30, 1e200, 1e300])
def test_mean_distance_is_finite_and_exact_at_every_scale(scale):
    problem = build(X_A * scale, X_P * scale, r_a=2 * scale, r_p=2 * scale)
    assert problem.mean_distance == pytest.approx(scale * brute_mean_distance(X_A, X_P), rel=1e-12)
    median = build(X_A * scale, X_P * scale, r_a=2 * scale, r_p=2 * scale, scale="median")
    assert median.mean_distance == pytest.approx(build(scale="median").mean_distance, rel=1e-12)


def test_float32_data_far_from_unit_scale_do_not_overflow():
    x_a, x_p = torch.tensor(X_A * 1e30, dtype=torch.float32), torch.tensor(X_P * 1e30)
    problem = cpairs.PairProblem(x_a, x_p.float(), Y_P, r_a=1e31, r_p=1e31)
    assert problem.mean_distance == pytest.approx(1e30 * brute_mean_distance(X_A, X_P), rel=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_moving_to_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(cpairs.InvalidArgumentError, match="device='cuda'.*CUDA is not available"):
        build().to(device="cuda")


@pytest.mark.parametrize("device", ["bogus", 3.5, "meta"])
def test_moving_to_an_unknown_device_is_a_clear_error(device):
    with pytest.raises(cpairs.InvalidArgumentError, match="device"):
        build().to(device=device)


def test_replace_refuses_unknown_options_listing_the_valid_ones():
    problem = build()
    with pytest.raises(cpairs.InvalidArgumentError, match="'bogus'.*Valid options: aux_a"):
        problem.replace(bogus=1)
    with pytest.raises(cpairs.InvalidArgumentError, match="did you mean 'r_a'"):
        problem.replace(r_aa=1.0)
    assert problem.replace(r_a=3.0).r_a == 3.0 and problem.to(device="cpu") is problem


def test_replace_with_new_data_recomputes_distances_and_knn_pairs():
    problem = build(pairs="knn", knn=1)
    assert problem.mean_distance > 0  # fills the cache
    moved = problem.replace(x_a=-X_A)
    fresh = build(x_a=-X_A, pairs="knn", knn=1)
    assert moved.pairs.index_a.tolist() == fresh.pairs.index_a.tolist()
    assert moved.pairs.index_p.tolist() == fresh.pairs.index_p.tolist()
    assert moved.mean_distance == fresh.mean_distance
    assert build().replace(x_p=X_P * 10).mean_distance == pytest.approx(
        brute_mean_distance(X_A, X_P * 10), rel=1e-12
    )


# -- objective --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def point():
    problem = build()
    g = torch.Generator().manual_seed(0)
    head = {
        "theta1": 0.1 * torch.randn(3, 3, generator=g, dtype=F64),
        "theta2": 0.1 * torch.randn(3, 2, generator=g, dtype=F64),
        "bias": 0.1 * torch.randn(3, generator=g, dtype=F64),
    }
    return problem, head


def _objective(point, **changes):
    problem, head = point
    arguments = {"problem": problem, **head, "alpha_a": 0.5, "alpha_p": 0.7, **changes}
    return cpairs.objective(**arguments)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"problem": "P"}, cpairs.InvalidTypeError, "problem must be a PairProblem"),
        ({"model": "identity"}, cpairs.InvalidTypeError, "model must be a torch.nn.Module"),
        ({"feature_map": 3}, cpairs.InvalidTypeError, "feature_map must be"),
        ({"pairs": "all"}, cpairs.InvalidTypeError, "pairs must be a PairSet"),
        ({"block": 5}, cpairs.InvalidTypeError, "block must be a Block"),
        ({"alpha_a": "x"}, cpairs.InvalidTypeError, "alpha_a must be a real number"),
        ({"alpha_p": None}, cpairs.InvalidTypeError, "alpha_p must be a real number"),
        ({"alpha_a": True}, cpairs.InvalidTypeError, "alpha_a must be a real number"),
        ({"alpha_a": torch.ones(2)}, cpairs.InvalidArgumentError, "alpha_a must be a scalar"),
        ({"regime": "B"}, cpairs.InvalidArgumentError, "regime"),
    ],
)
def test_objective_refuses_arguments_of_the_wrong_kind(point, changes, error, match):
    with pytest.raises(error, match=match):
        _objective(point, **changes)


@pytest.mark.parametrize("name", ["theta1", "theta2", "bias"])
@pytest.mark.parametrize(
    "convert",
    [
        lambda t: t.tolist(),
        lambda t: t.numpy(),
        lambda t: t.half(),
        lambda t: t > 0,
        lambda t: torch.complex(t, t),
    ],
    ids=["list", "numpy", "half", "bool", "complex"],
)
def test_objective_refuses_heads_that_are_not_tensors_of_the_problems_dtype(point, name, convert):
    problem, head = point
    with pytest.raises(cpairs.InvalidTypeError, match=name):
        _objective(point, **{name: convert(head[name])})


def test_float32_heads_on_a_float64_problem_are_converted_exactly(point):
    problem, head = point
    rounded = {k: v.float() for k, v in head.items()}
    expected = _objective(point, **{k: v.double() for k, v in rounded.items()})
    assert torch.equal(_objective(point, **rounded), expected)
    on_float32 = problem.to(dtype=torch.float32)
    with pytest.raises(cpairs.InvalidTypeError, match="theta1.*float32"):
        cpairs.objective(on_float32, theta1=head["theta1"], alpha_a=0.5, alpha_p=0.7)


def test_objective_refuses_a_wrong_shape(point):
    problem, head = point
    with pytest.raises(cpairs.InvalidArgumentError, match="theta1 must have shape"):
        _objective(point, theta1=head["theta1"][:, :2])


def _omega(point, **changes):
    problem, head = point
    return omega(problem, **{**head, "alpha_a": 0.5, "alpha_p": 0.7, **changes})


def test_the_methods_evaluator_is_defined_for_any_alpha_and_non_finite_inputs(point):
    # omega, which the methods evaluate at infeasible and diverging points every step.
    # Regime A: for fixed θ and α_P, Ω is affine in α_A (slope r_A − D̄), negative α_A included.
    values = [float(_omega(point, alpha_a=a)) for a in (-1.0, 0.0, 1.0)]
    problem = point[0]
    assert values[2] - values[1] == pytest.approx(problem.r_a - problem.mean_distance, rel=1e-12)
    assert values[1] - values[0] == pytest.approx(values[2] - values[1], rel=1e-12)
    nan_head = point[1]["theta1"].clone()
    nan_head[0, 0] = float("nan")
    assert torch.isnan(_omega(point, theta1=nan_head))
    assert not torch.isfinite(_omega(point, alpha_p=float("inf")))
    assert float(_omega(point)) == float(_objective(point))  # the same Ω inside the domain


def _poisoned(tensor, value):
    bad = tensor.clone()
    bad.view(-1)[0] = value
    return bad


@pytest.mark.parametrize("name", ["alpha_a", "alpha_p"])
@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -1.0, -1, torch.tensor(-0.5, dtype=F64), torch.tensor([np.nan])],
    ids=["nan", "inf", "negative", "negative-int", "negative-tensor", "nan-tensor"],
)
def test_objective_refuses_non_finite_or_negative_alphas(point, name, value):
    with pytest.raises(cpairs.InvalidArgumentError, match=f"{name} must be a finite number >= 0"):
        _objective(point, **{name: value})


@pytest.mark.parametrize("name", ["theta1", "theta2", "bias"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_objective_refuses_non_finite_heads(point, name, value):
    with pytest.raises(cpairs.InvalidArgumentError, match=f"{name} contains non-finite"):
        _objective(point, **{name: _poisoned(point[1][name], value)})


@pytest.mark.parametrize("name", ["theta1", "theta2", "bias"])
def test_integer_heads_are_converted_to_the_problems_dtype(point, name):
    problem, head = point
    integer = (10 * head[name]).round().to(torch.int64)
    value = _objective(point, **{name: integer})
    assert value.dtype == F64
    assert float(value) == float(_objective(point, **{name: integer.to(F64)}))
    on_float32 = problem.to(dtype=torch.float32)
    head32 = {k: v.float() for k, v in head.items()}
    value32 = cpairs.objective(on_float32, **{**head32, name: integer}, alpha_a=0.5, alpha_p=0.7)
    assert value32.dtype == torch.float32


def test_objective_accepts_pair_samples_and_blocks(point):
    problem = point[0]
    g = torch.Generator().manual_seed(1)
    sample = sample_pairs(problem.pairs, 10, g)
    block = sample_block(problem.pairs, 2, 3, g)
    assert torch.isfinite(_objective(point, pairs=sample))
    assert torch.isfinite(_objective(point, block=block))


# -- Result -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    return cpairs.solve(build(), "exact", regime="A")


def test_predictions_are_the_argmax_of_the_affine_logits(fitted):
    x, aux = torch.tensor(X_A), torch.tensor(AUX)
    logits = x @ fitted.theta1.T + aux @ fitted.theta2.T + fitted.bias
    assert torch.equal(fitted.predict(x, aux), logits.argmax(1))
    y = logits.argmax(1)
    assert fitted.accuracy(x, y, aux) == 1.0
    assert fitted.accuracy(X_A, y.numpy(), AUX) == 1.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r: r.predict(X_P[:, :2], ignore_aux=True), cpairs.InvalidArgumentError, "x must"),
        (lambda r: r.predict(X_A[0], ignore_aux=True), cpairs.InvalidArgumentError, "x must"),
        (lambda r: r.predict(X_A, AUX[:, :1]), cpairs.InvalidArgumentError, "aux must have 2"),
        (lambda r: r.predict(X_A, AUX[:3]), cpairs.InvalidArgumentError, "aux must have 4 rows"),
        (lambda r: r.logits(X_A, AUX, ignore_aux="yes"), cpairs.InvalidTypeError, "ignore_aux"),
        (lambda r: r.accuracy(X_A, [0, 1, 2], AUX), cpairs.InvalidArgumentError, "y must have"),
        (lambda r: r.accuracy(X_A, [0.5, 1, 2, 0], AUX), cpairs.InvalidArgumentError, "y must"),
        (lambda r: r.accuracy(X_A, [True] * 4, AUX), cpairs.InvalidTypeError, "y must"),
        (
            lambda r: r.predict(np.full((2, 3), np.nan), ignore_aux=True),
            cpairs.InvalidArgumentError,
            "x",
        ),
        (lambda r: r.predict(X_A, np.full((4, 2), np.inf)), cpairs.InvalidArgumentError, "aux"),
        (lambda r: r.predict("x", ignore_aux=True), cpairs.InvalidTypeError, "x"),
    ],
    ids=[
        "width",
        "one-dim",
        "aux-width",
        "aux-rows",
        "ignore-aux-type",
        "y-length",
        "y-fractional",
        "y-bool",
        "nan-x",
        "inf-aux",
        "string-x",
    ],
)
def test_result_predictors_refuse_bad_inputs(fitted, call, error, match):
    with pytest.raises(error, match=match):
        call(fitted)


def test_aux_given_to_a_result_without_theta2_is_refused():
    result = cpairs.solve(build(aux=None), "exact", regime="A")
    with pytest.raises(cpairs.InvalidArgumentError, match="no theta2"):
        result.predict(X_A, AUX)
    assert result.predict(X_A).shape == (4,)


# -- wasserstein_radius -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("option", "error"),
    [
        ({"subsample": 0}, cpairs.InvalidArgumentError),
        ({"subsample": 2.5}, cpairs.InvalidTypeError),
        ({"subsample": True}, cpairs.InvalidTypeError),
        ({"num_samples": -1}, cpairs.InvalidArgumentError),
        ({"num_samples": 1}, cpairs.InvalidArgumentError),
        ({"seed": "a"}, cpairs.InvalidTypeError),
        ({"seed": -1}, cpairs.InvalidArgumentError),
        ({"return_plan": "yes"}, cpairs.InvalidTypeError),
        ({"return_plan": 1}, cpairs.InvalidTypeError),
        ({"max_pairs": 0}, cpairs.InvalidArgumentError),
        ({"max_pairs": None}, cpairs.InvalidTypeError),
    ],
)
def test_wasserstein_radius_validates_its_options_up_front(option, error):
    # Validated even where they would not be used (the exact solve ignores subsample etc.).
    with pytest.raises(error, match=next(iter(option))):
        cpairs.wasserstein_radius(X_A, X_P, **option)


# -- solve(..., "exact") ----------------------------------------------------------------------
@pytest.mark.parametrize("verbose", ["yes", 1, None])
def test_exact_verbose_must_be_a_bool(verbose):
    with pytest.raises(cpairs.InvalidTypeError, match="verbose"):
        cpairs.solve(build(), "exact", verbose=verbose)


@pytest.mark.parametrize(
    ("solver", "setting", "error"),
    [
        (None, {"tol_gap_rel": -1.0}, cpairs.InvalidArgumentError),
        (None, {"tol_gap_rel": float("nan")}, cpairs.InvalidArgumentError),
        (None, {"tol_feas": float("inf")}, cpairs.InvalidArgumentError),
        (None, {"max_iter": "x"}, cpairs.InvalidTypeError),
        (None, {"max_iter": True}, cpairs.InvalidTypeError),
        (None, {"max_iter": 2.5}, cpairs.InvalidTypeError),
        (None, {"presolve_enable": 1}, cpairs.InvalidTypeError),
        (None, {"time_limit": -1.0}, cpairs.InvalidArgumentError),
        (None, {"verbose": True}, cpairs.InvalidArgumentError),
        (None, {"direct_solve_method": "bogus"}, cpairs.InvalidArgumentError),
        (None, {"max_iter": 2**70}, cpairs.InvalidArgumentError),
        ("SCS", {"max_iters": "x"}, cpairs.InvalidTypeError),
        ("SCS", {"eps_abs": -1e-3}, cpairs.InvalidArgumentError),
        ("SCS", {"warm_start": "no"}, cpairs.InvalidTypeError),
    ],
)
def test_exact_solver_settings_are_checked_and_solver_refusals_named(solver, setting, error):
    (name,) = setting
    with pytest.raises(error, match=f"solver_options.*{name}"):
        cpairs.solve(build(), "exact", solver=solver, solver_options=setting)


def test_exact_accepts_valid_limits_and_reports_them_in_the_status():
    problem = build()
    assert cpairs.solve(problem, "exact", solver_options={"time_limit": float("inf")}).status == (
        "optimal"
    )
    assert cpairs.solve(problem, "exact", solver_options={"max_iter": 0}).status == "max_iter"


def test_a_genuine_solver_failure_stays_a_status_with_its_explanation(monkeypatch):
    import cvxpy

    def fail(self, *args, **kwargs):
        raise cvxpy.error.SolverError("numerical trouble in the KKT solve")

    monkeypatch.setattr(cvxpy.Problem, "solve", fail)
    result = cpairs.solve(build(), "exact", regime="A", solver="CLARABEL")
    assert result.status == "solver_error"
    assert "numerical trouble" in result.extra["solver_errors"]["CLARABEL"]
