"""The exact projection onto C^A / C^P against CVXPY's projection on random points."""

from __future__ import annotations

import zlib

import cvxpy as cp
import pytest
import torch

from constrained_pairs.errors import UnsupportedOptionError
from constrained_pairs.methods.projections import project


def _cvxpy_projection(t1, t2, a0, p0, kappa, regime, norm):
    theta1, theta2 = cp.Variable(t1.shape), cp.Variable(t2.shape)
    a, p = cp.Variable(), cp.Variable()
    norm_of = {
        "nuclear": cp.normNuc,
        "frobenius": lambda x: cp.norm(x, "fro"),
        "spectral": cp.sigma_max,
    }[norm]
    constraints = [
        norm_of(theta1) <= a + p,
        # ‖θ₂‖ <= 0 written as θ₂ = 0: the same set, without Clarabel's trouble on a cone
        # of empty interior
        cp.norm(theta2, "fro") <= kappa * a if kappa > 0 else theta2 == 0,
        a >= 0,
        p >= 0,
        a <= p if regime == "A" else p <= a,
    ]
    distance = (
        cp.sum_squares(theta1 - t1)
        + cp.sum_squares(theta2 - t2)
        + cp.square(a - a0)
        + cp.square(p - p0)
    )
    problem = cp.Problem(cp.Minimize(distance), constraints)
    problem.solve(solver="CLARABEL")
    return problem.value


def _distance2(found, t1, t2, a0, p0):
    return float(
        ((found.theta1 - t1) ** 2).sum()
        + ((found.theta2 - t2) ** 2).sum()
        + (found.alpha_a - a0) ** 2
        + (found.alpha_p - p0) ** 2
    )


@pytest.mark.parametrize("norm", ["nuclear", "frobenius", "spectral"])
@pytest.mark.parametrize("regime", ["A", "P"])
@pytest.mark.parametrize("kappa", [0.0, 0.5, 2.0])
def test_projection_matches_cvxpy(norm, regime, kappa):
    # A seed that is the same in every process (str hashes are salted per process).
    generator = torch.Generator().manual_seed(zlib.crc32(f"{norm}-{regime}-{kappa}".encode()))
    for scale in (0.3, 3.0):
        t1 = torch.randn(4, 6, generator=generator, dtype=torch.float64) * scale
        t2 = torch.randn(4, 3, generator=generator, dtype=torch.float64) * scale
        a0, p0 = torch.randn(2, generator=generator, dtype=torch.float64)
        found = project(t1, t2, a0, p0, kappa_a=kappa, regime=regime, norm=norm)
        # feasible to rounding
        value = {
            "nuclear": torch.linalg.matrix_norm(found.theta1, "nuc"),
            "frobenius": found.theta1.norm(),
            "spectral": torch.linalg.matrix_norm(found.theta1, 2),
        }[norm]
        assert value <= found.alpha_a + found.alpha_p + 1e-10
        assert found.theta2.norm() <= kappa * found.alpha_a + 1e-10
        assert min(float(found.alpha_a), float(found.alpha_p)) >= 0
        order = found.alpha_a - found.alpha_p if regime == "A" else found.alpha_p - found.alpha_a
        assert order <= 1e-12
        # and nearest: its squared distance is CVXPY's optimum (up to the solver's accuracy)
        ours = _distance2(found, t1, t2, a0, p0)
        theirs = _cvxpy_projection(
            t1.numpy(), t2.numpy(), float(a0), float(p0), kappa, regime, norm
        )
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-7)


def test_projection_keeps_feasible_points():
    t1 = torch.tensor([[1.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    t2 = torch.tensor([[0.2], [0.1]], dtype=torch.float64)
    a, p = torch.tensor(1.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)
    found = project(t1, t2, a, p, kappa_a=1.0, regime="A")
    torch.testing.assert_close(found.theta1, t1)
    torch.testing.assert_close(found.theta2, t2)
    assert float(found.alpha_a) == pytest.approx(1.0) and float(found.alpha_p) == pytest.approx(2.0)


def test_projection_hand_computed_nuclear():
    # θ₁ = diag(3, 1), α = (0, 0), no θ₂, regime A. For s = a + p the best split is a = p = s/2
    # (cost s²/4); with only σ₁ above the threshold τ = 3 − s, F'(s) = s/2 − τ = 0 gives s = 2,
    # τ = 1: θ₁ = diag(2, 0), α = (1, 1).
    t1 = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    zero = torch.tensor(0.0, dtype=torch.float64)
    found = project(t1, None, zero, zero, kappa_a=1.0, regime="A")
    torch.testing.assert_close(found.theta1, torch.diag(torch.tensor([2.0, 0.0]).double()))
    assert float(found.alpha_a) == pytest.approx(1.0) and float(found.alpha_p) == pytest.approx(1.0)


def test_lipschitz_norm_is_refused():
    t1 = torch.zeros(3, 2)
    with pytest.raises(UnsupportedOptionError, match="lipschitz"):
        project(
            t1,
            None,
            torch.tensor(1.0),
            torch.tensor(1.0),
            kappa_a=1.0,
            regime="A",
            norm="lipschitz",
        )
