"""The reliability contract of SPEC §7 for the data join: orientation, dtypes, non-finite
distances, scales, solver options, W₁ and predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

import constrained_pairs as cpairs
from constrained_pairs.join.scaling import data_scale, scale_point_back
from tests.helpers.join_reference import cvxpy_reference

F64 = torch.float64
RNG = np.random.default_rng(0)
X_A, X_P = RNG.normal(size=(4, 3)), RNG.normal(size=(5, 3))
Y_P = np.array([0, 1, 2, 1, 0])
AUX = RNG.normal(size=(4, 2))


def build(x_a=X_A, x_p=X_P, y_p=Y_P, aux=AUX, **options):
    return cpairs.PairProblem(x_a, x_p, y_p, aux, **{"r_a": 1.0, "r_p": 1.0, **options})


@pytest.mark.parametrize(
    "pairs",
    [[[0, 3], [1, 4]], np.array([[0, 3], [1, 4]]), torch.tensor([[0, 3], [1, 4]])],
    ids=["list", "array", "tensor"],
)
def test_pairs_are_rows_i_j_for_every_input_type(pairs):
    problem = build(pairs=pairs)
    assert problem.pairs.index_a.tolist() == [0, 1]
    assert problem.pairs.index_p.tolist() == [3, 4]


def test_only_a_tuple_of_tensors_is_read_as_index_vectors():
    problem = build(pairs=(torch.tensor([0, 1, 2]), torch.tensor([3, 4, 0])))
    assert problem.pairs.index_a.tolist() == [0, 1, 2]
    assert problem.pairs.index_p.tolist() == [3, 4, 0]
    # a tuple of two lists is two rows (i, j), like any nested sequence
    rows = build(pairs=([0, 3], [1, 4]))
    assert rows.pairs.index_a.tolist() == [0, 1] and rows.pairs.index_p.tolist() == [3, 4]
    with pytest.raises(ValueError, match="pairs"):
        build(pairs=[[0, 1, 2], [3, 4, 0]])  # (2, 3): not rows (i, j)
    with pytest.raises(ValueError, match="integer"):
        build(pairs=np.array([[0.0, 1.0]]))


def test_integer_features_are_converted_not_truncated():
    images = RNG.integers(0, 256, size=(4, 3)).astype(np.uint8)
    problem = build(x_a=images, x_p=images[:3].astype(np.int64), y_p=Y_P[:3], aux=None)
    assert problem.dtype == torch.get_default_dtype()
    assert torch.equal(problem.x_a, torch.as_tensor(images.astype(np.float64)).to(problem.dtype))
    exact = build(x_a=images.astype(np.float64), x_p=images[:3].astype(np.float64), y_p=Y_P[:3])
    assert problem.mean_distance == pytest.approx(exact.mean_distance, rel=1e-6)
    as_list = build(x_a=images.tolist(), x_p=images[:3].tolist(), y_p=Y_P[:3].tolist())
    assert torch.equal(as_list.x_a, problem.x_a)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"x_a": X_A + 1j}, TypeError, "x_a"),
        ({"x_p": X_P > 0}, TypeError, "x_p"),
        ({"aux": AUX.astype(np.complex128)}, TypeError, "aux_a"),
        ({"x_a": torch.tensor(X_A, dtype=torch.float16)}, ValueError, "half precision"),
        ({"x_p": torch.tensor(X_P, dtype=torch.bfloat16)}, ValueError, "half precision"),
        ({"y_p": Y_P + 0j}, TypeError, "y_p"),
    ],
)
def test_bad_dtypes_are_refused_up_front(changes, error, match):
    with pytest.raises(error, match=match):
        build(**changes)


def test_to_requires_a_supported_floating_dtype():
    problem = build()
    for dtype in (torch.int64, torch.float16, torch.complex64):
        with pytest.raises(cpairs.InvalidArgumentError, match="dtype"):
            problem.to(dtype=dtype)
    assert problem.to(dtype=torch.float32).dtype == torch.float32


def test_non_finite_distances_are_an_error_before_solving():
    nan_distance = build(distance=lambda a, p: torch.full((a.shape[0],), float("nan")))
    with pytest.raises(cpairs.InvalidArgumentError, match="not finite"):
        cpairs.solve(nan_distance, "exact")
    duplicated = build(x_a=np.zeros((4, 3)), x_p=np.zeros((5, 3)), scale="median")
    with pytest.raises(cpairs.InvalidArgumentError, match="median"):
        cpairs.solve(duplicated, "exact")


def test_unboundedness_message_speaks_plain_words():
    problem = build(r_a=0.1, r_p=0.1)
    with pytest.raises(cpairs.UnboundedProblemError) as info:
        cpairs.solve(problem, "exact")
    text = str(info.value)
    assert "no minimum" in text and "rate" not in text
    assert f"{problem.mean_distance:.6g}" in text and "r_a + r_p" in text


def _scaled_problem(scale):
    g = torch.Generator().manual_seed(3)
    x_a, x_p = torch.rand(4, 3, generator=g, dtype=F64), torch.rand(6, 3, generator=g, dtype=F64)
    aux = torch.rand(4, 2, generator=g, dtype=F64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    base = cpairs.PairProblem(x_a, x_p, y, aux, r_a=0.0, r_p=0.0)
    d_bar = base.mean_distance
    return cpairs.PairProblem(
        x_a * scale,
        x_p * scale,
        y,
        aux * scale,
        r_a=0.6 * d_bar * scale,
        r_p=0.5 * d_bar * scale,
        kappa_p=0.5 * scale,
    )


@pytest.mark.parametrize("regime", ["A", "P"])
def test_exact_optimum_is_the_same_at_every_scale(regime):
    reference = cpairs.solve(_scaled_problem(1.0), "exact", regime=regime)
    status, independent = cvxpy_reference(_scaled_problem(1.0), regime)
    assert status == "optimal"
    assert reference.objective == pytest.approx(independent, rel=1e-6)
    for scale in (1e-30, 1e-8, 1e8, 1e30):
        result = cpairs.solve(_scaled_problem(scale), "exact", regime=regime)
        assert result.status == "optimal", scale
        assert result.objective == pytest.approx(reference.objective, rel=1e-7), scale
        assert result.alpha_a * scale == pytest.approx(reference.alpha_a, rel=1e-4, abs=1e-6)
        assert result.extra["data_scale"] == data_scale(_scaled_problem(scale))


def test_rescaled_problem_has_the_same_objective_at_mapped_points():
    problem = build(scale="median", kappa_p=0.3)
    g = torch.Generator().manual_seed(2)
    point = {
        "theta1": torch.randn(3, 3, generator=g, dtype=F64),
        "theta2": torch.randn(3, 2, generator=g, dtype=F64),
        "bias": torch.randn(3, generator=g, dtype=F64),
        "alpha_a": torch.tensor(0.4, dtype=F64),
        "alpha_p": torch.tensor(0.7, dtype=F64),
    }
    for s in (1e-3, 7.0):
        scaled = problem.rescaled(s)
        for regime in ("A", "P"):
            mapped = {k: (v * s if k != "bias" else v) for k, v in point.items()}
            value = cpairs.objective(scaled, **mapped, regime=regime)
            assert float(value) == pytest.approx(
                float(cpairs.objective(problem, **point, regime=regime)), rel=1e-12
            )
            back = scale_point_back(s, **mapped)
            torch.testing.assert_close(back["theta1"], point["theta1"])
            torch.testing.assert_close(back["bias"], point["bias"])


def test_exact_validates_solver_and_its_settings():
    problem = _scaled_problem(1.0)
    with pytest.raises(cpairs.InvalidArgumentError, match="CLARABEL"):
        cpairs.solve(problem, "exact", solver="clarabel_typo")
    with pytest.raises(cpairs.InvalidArgumentError, match="max_iter"):
        cpairs.solve(problem, "exact", solver_options={"max_iters": 5})  # Clarabel's is max_iter
    with pytest.raises(cpairs.InvalidArgumentError, match="solver_options"):
        cpairs.solve(problem, "exact", epoch=3)
    result = cpairs.solve(problem, "exact", regime="A", solver="clarabel")
    assert result.status == "optimal" and result.extra["solver"] == "CLARABEL"
    assert result.extra["duality_gap"] < 1e-5
    # a budget too small for the optimum: the float64 re-check does not call it optimal
    short = cpairs.solve(problem, "exact", regime="A", solver_options={"max_iter": 3})
    assert short.status != "optimal"


def test_wasserstein_matches_a_transport_lp_on_unequal_sizes_with_its_plan():
    a, p = RNG.normal(size=(7, 3)), RNG.normal(size=(4, 3))
    cost = np.linalg.norm(a[:, None] - p[None], axis=2)
    equalities = [np.kron(np.eye(7), np.ones(4)), np.kron(np.ones(7), np.eye(4))]
    lp = linprog(
        cost.ravel(), A_eq=np.vstack(equalities), b_eq=np.r_[np.full(7, 1 / 7), np.full(4, 1 / 4)]
    )
    value, plan = cpairs.wasserstein_radius(a, p, return_plan=True)
    assert value == pytest.approx(lp.fun, rel=1e-10)
    np.testing.assert_allclose(plan.sum(1), np.full(7, 1 / 7), atol=1e-12)
    np.testing.assert_allclose(plan.sum(0), np.full(4, 1 / 4), atol=1e-12)
    assert float((plan * cost).sum()) == pytest.approx(lp.fun, rel=1e-10)


def test_wasserstein_at_the_paper_sizes_and_beyond():
    a, p = RNG.normal(size=(229, 5)), RNG.normal(size=(30, 5))
    exact = cpairs.wasserstein_radius(torch.tensor(a, requires_grad=True), p)
    assert exact > 0
    from constrained_pairs.join.wasserstein import wasserstein_estimate

    sampled = wasserstein_estimate(a, p, max_pairs=100, subsample=25, num_samples=8)
    assert not sampled.exact and sampled.stderr > 0 and sampled.num_samples == 8
    assert sampled.value >= exact - 4 * sampled.stderr  # subsampling biases W₁ upwards


@pytest.mark.parametrize(
    ("x_a", "match"),
    [
        (np.zeros((0, 3)), "at least one"),
        (np.zeros(3), r"\(n, d\)"),
        (np.full((2, 3), np.nan), "non-finite"),
    ],
)
def test_wasserstein_validates_its_inputs(x_a, match):
    with pytest.raises(cpairs.InvalidArgumentError, match=match):
        cpairs.wasserstein_radius(x_a, np.zeros((2, 3)))
    with pytest.raises(cpairs.InvalidArgumentError, match="dimension"):
        cpairs.wasserstein_radius(np.zeros((2, 3)), np.zeros((2, 4)))


def test_predictions_require_aux_when_theta2_is_used():
    problem = _scaled_problem(1.0)
    result = cpairs.solve(problem, "exact", regime="A")
    assert bool((result.theta2 != 0).any())
    with pytest.raises(cpairs.InvalidArgumentError, match="aux"):
        result.predict(problem.x_p)
    with pytest.raises(cpairs.InvalidArgumentError, match="ignore_aux"):
        result.accuracy(problem.x_p, problem.y_p)
    without = result.accuracy(problem.x_p, problem.y_p, ignore_aux=True)
    with_aux = result.accuracy(problem.x_p, problem.y_p, torch.zeros(6, 2, dtype=F64))
    assert without == with_aux  # zero aux features: the same logits


def test_huge_radii_never_claim_a_wrong_optimum():
    # Radii far above the data's scale force α = 0 and θ = 0: the optimum is the prior-only
    # predictor, log C for balanced labels. A solver that misses it must not say "optimal".
    base = _scaled_problem(1.0)
    for radius in (1e3, 1e8):
        problem = base.replace(r_a=radius, r_p=radius)
        for regime in ("A", "P"):
            result = cpairs.solve(problem, "exact", regime=regime)
            if result.status == "optimal":
                assert result.objective == pytest.approx(np.log(3), abs=1e-6), (radius, regime)
            else:
                assert result.status == "optimal_inaccurate"
    assert cpairs.solve(base.replace(r_a=1e3, r_p=1e3), "exact", regime="A").status == "optimal"
