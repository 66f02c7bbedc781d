"""Reliability of the first-order methods (issue 12): the penalty method at huge radii and in
any unit, the range of ``alpha_init``, ``alpha_init=0`` for the parametrisation, and the
penalty's L-BFGS (:class:`~constrained_pairs.methods.penalty.WolfeLBFGS`)."""

from __future__ import annotations

import math
import re

import pytest
import torch

import constrained_pairs as cp
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.join.scaling import data_scale
from constrained_pairs.methods.options import ALPHA_INIT_MAX
from constrained_pairs.methods.parametrization import ZERO_ALPHA
from constrained_pairs.methods.penalty import WolfeLBFGS

F64 = torch.float64
FIRST_ORDER = ("penalty", "projection", "parametrization", "lagrangian", "augmented_lagrangian")
LOG3 = math.log(3.0)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(3)
    x_a = torch.rand(4, 3, generator=g, dtype=F64)
    x_p = torch.rand(6, 3, generator=g, dtype=F64)
    y_p = torch.tensor([0, 1, 2, 0, 1, 2])
    aux = torch.rand(4, 2, generator=g, dtype=F64)
    d_bar = cp.PairProblem(x_a, x_p, y_p, aux, r_a=0.0, r_p=0.0).mean_distance
    return x_a, x_p, y_p, aux, d_bar


def _problem(data, factor: float = 0.6, s: float = 1.0) -> cp.PairProblem:
    """Radii factor·D̄ each; ``s`` scales x, aux, the radii and κ_P together (Ω invariant)."""
    x_a, x_p, y_p, aux, d_bar = data
    r = factor * d_bar * s
    return cp.PairProblem(x_a * s, x_p * s, y_p, aux * s, r_a=r, r_p=r, kappa_p=s)


# -- 1. penalty at radii >> D̄: θ = α = 0 is optimal, Ω* = log 3 (balanced labels, C = 3) --------
@pytest.mark.parametrize("factor", [1e4, 1e12, 1e30])
def test_penalty_reaches_log_c_at_huge_radii(data, factor):
    result = cp.solve(_problem(data, factor), "penalty", regime="auto", max_iter=100)
    assert result.status in (cp.Status.MAX_ITER, cp.Status.CONVERGED)
    # feasible up to round-off in Ω's units (α's unit is 1/r here), so Ω >= Ω* = log 3 up to
    # that round-off; it used to end at 3e5 ... 1e30
    assert result.max_violation * result.diagnostics.radius_sum < 1e-12
    assert LOG3 - 1e-12 <= result.objective <= LOG3 + 1e-4
    # c = (r_A + r_P)/(10 D̄) = 2·factor/10
    assert result.extra["variable_scale"] == pytest.approx(factor / 5, rel=1e-9)


def test_penalty_keeps_its_variables_at_usual_radii(data):
    result = cp.solve(_problem(data, 0.6), "penalty", regime="A", max_iter=5)
    assert result.extra["variable_scale"] == 1.0


# -- 4. penalty in any unit -----------------------------------------------------------------------
@pytest.mark.parametrize("regime", ["A", "P"])
def test_penalty_is_exact_under_a_change_of_unit(data, regime):
    reference = cp.solve(_problem(data), "penalty", regime=regime, max_iter=30).objective
    for s in (1e-30, 1e-6, 1.0 + 2.0**-40, 3.0, 1e12, 1e30):
        value = cp.solve(_problem(data, s=s), "penalty", regime=regime, max_iter=30).objective
        assert abs(value - reference) < 1e-9, s  # it differed by up to 7e-4


# -- 2. the range of alpha_init -------------------------------------------------------------------
def _limit(problem: cp.PairProblem) -> float:
    """1e8 / D̄ in the units the methods train in (the data divided by their largest entry)."""
    x = torch.cat([problem.x_a.flatten(), problem.x_p.flatten(), problem.aux_a.flatten()])
    return ALPHA_INIT_MAX / (problem.mean_distance / float(x.abs().max()))


@pytest.mark.parametrize("method", FIRST_ORDER)
def test_alpha_init_out_of_range_is_refused_by_every_method(data, method):
    problem = _problem(data)
    limit = _limit(problem)
    expected = re.escape(f"alpha_init must be in [0, {limit:.4g}]")
    with pytest.raises(InvalidArgumentError, match=expected):
        cp.solve(problem, method, regime="A", max_iter=5, alpha_init=1e300)
    with pytest.raises(InvalidArgumentError, match="alpha_init"):
        cp.solve(problem, method, regime="A", max_iter=5, alpha_init=1.01 * limit)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(InvalidArgumentError, match="alpha_init"):
            cp.solve(problem, method, regime="A", max_iter=5, alpha_init=bad)
    for good in (0.0, 1e3):
        result = cp.solve(problem, method, regime="A", max_iter=5, alpha_init=good)
        assert math.isfinite(result.objective)


def test_the_alpha_init_range_is_in_the_training_unit(data):
    # The same start in any unit: the bound does not move with s.
    for s in (1e-12, 1e12):
        problem = _problem(data, s=s)
        assert _limit(problem) == pytest.approx(_limit(_problem(data)), rel=1e-9)
        cp.solve(problem, "projection", regime="A", max_iter=2, alpha_init=0.5 * _limit(problem))


# -- 3. parametrization with alpha_init = 0 --------------------------------------------------------
def test_parametrization_accepts_alpha_init_zero_as_a_tiny_positive_start(data):
    problem = _problem(data)
    scaled = problem.rescaled(data_scale(problem))
    tiny = ZERO_ALPHA / scaled.mean_distance  # α·D̄ = 1e-4 in the training unit
    zero = cp.solve(problem, "parametrization", regime="A", max_iter=60, alpha_init=0.0)
    explicit = cp.solve(problem, "parametrization", regime="A", max_iter=60, alpha_init=tiny)
    assert zero.objective == explicit.objective
    assert zero.alpha_a == explicit.alpha_a
    # not frozen: Adam moves log α_A by ~lr per step from there
    start = tiny / data_scale(problem)
    assert abs(math.log(zero.alpha_a / start)) > 0.5
    assert zero.objective < zero.history[0]["objective"]


# -- the penalty's L-BFGS --------------------------------------------------------------------------
def _run(optimizer: WolfeLBFGS, fn, x: torch.Tensor, steps: int) -> float:
    def closure():
        optimizer.zero_grad()
        value = fn(x)
        value.backward()
        return value

    for _ in range(steps):
        value = optimizer.step(closure)
    return float(value.detach())


def test_wolfe_lbfgs_finds_the_rosenbrock_minimum():
    x = torch.tensor([-1.2, 1.0], dtype=F64, requires_grad=True)
    rosenbrock = lambda z: 100 * (z[1] - z[0] ** 2) ** 2 + (1 - z[0]) ** 2  # noqa: E731
    _run(WolfeLBFGS([x]), rosenbrock, x, 60)
    assert torch.allclose(x.detach(), torch.ones(2, dtype=F64), atol=1e-8)


def test_wolfe_lbfgs_stops_cleanly_at_a_kink():
    # min |x₀| + (x₁ − 1)² = 0 at (0, 1), a kink: no NaN, no endless retry, the minimum reached.
    x = torch.tensor([0.3, -2.0], dtype=F64, requires_grad=True)
    optimizer = WolfeLBFGS([x])
    value = _run(optimizer, lambda z: z[0].abs() + (z[1] - 1) ** 2, x, 60)
    assert value < 1e-9
    assert torch.allclose(x.detach(), torch.tensor([0.0, 1.0], dtype=F64), atol=1e-9)
    assert optimizer.state[x]["stalled"]  # stationary to round-off: later steps do nothing
    before = x.detach().clone()
    _run(optimizer, lambda z: z[0].abs() + (z[1] - 1) ** 2, x, 3)
    assert torch.equal(x.detach(), before)
