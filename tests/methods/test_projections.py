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


def _lipschitz(theta):
    rows = theta.shape[0]
    return max(float((theta[k] - theta[m]).norm()) for k in range(rows) for m in range(k + 1, rows))


def _cvxpy_lipschitz_projection(t1, t2, a0, p0, kappa, regime, lipschitz, aux_norm):
    """The exact projection for C = 2 with the pairwise-norm constraints written out."""
    theta1, theta2 = cp.Variable(t1.shape), cp.Variable(t2.shape)
    a, p = cp.Variable(), cp.Variable()
    aux = cp.norm(theta2[1] - theta2[0]) if aux_norm == "lipschitz" else cp.norm(theta2, "fro")
    constraints = [
        lipschitz * cp.norm(theta1[1] - theta1[0]) <= a + p,
        aux <= kappa * a,
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


@pytest.mark.parametrize("regime", ["A", "P"])
@pytest.mark.parametrize("aux_norm", ["frobenius", "lipschitz"])
@pytest.mark.parametrize("lipschitz", [1.0, 2.5])
def test_lipschitz_projection_matches_cvxpy_for_two_classes(regime, aux_norm, lipschitz):
    seed = zlib.crc32(f"lip-{regime}-{aux_norm}-{lipschitz}".encode())
    generator = torch.Generator().manual_seed(seed)
    for scale in (0.3, 3.0):
        t1 = torch.randn(2, 5, generator=generator, dtype=torch.float64) * scale
        t2 = torch.randn(2, 3, generator=generator, dtype=torch.float64) * scale
        a0, p0 = torch.randn(2, generator=generator, dtype=torch.float64)
        found = project(
            t1,
            t2,
            a0,
            p0,
            kappa_a=0.7,
            regime=regime,
            norm="lipschitz",
            aux_norm=aux_norm,
            lipschitz=lipschitz,
        )
        assert lipschitz * _lipschitz(found.theta1) <= float(found.alpha_a + found.alpha_p) + 1e-10
        aux = _lipschitz(found.theta2) if aux_norm == "lipschitz" else float(found.theta2.norm())
        assert aux <= 0.7 * float(found.alpha_a) + 1e-10
        ours = _distance2(found, t1, t2, a0, p0)
        theirs = _cvxpy_lipschitz_projection(
            t1.numpy(), t2.numpy(), float(a0), float(p0), 0.7, regime, lipschitz, aux_norm
        )
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("norm", ["nuclear", "frobenius", "spectral"])
def test_scaled_projection_matches_cvxpy(norm):
    # L‖θ₁‖ <= α_A + α_P: the Euclidean projection in the original variables.
    generator = torch.Generator().manual_seed(zlib.crc32(f"scaled-{norm}".encode()))
    t1 = torch.randn(3, 4, generator=generator, dtype=torch.float64) * 2
    t2 = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    a0, p0 = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64)
    found = project(t1, t2, a0, p0, kappa_a=1.0, regime="A", norm=norm, lipschitz=3.0)
    theta1, theta2 = cp.Variable(t1.shape), cp.Variable(t2.shape)
    a, p = cp.Variable(), cp.Variable()
    norm_of = {
        "nuclear": cp.normNuc,
        "frobenius": lambda x: cp.norm(x, "fro"),
        "spectral": cp.sigma_max,
    }[norm]
    program = cp.Problem(
        cp.Minimize(
            cp.sum_squares(theta1 - t1.numpy())
            + cp.sum_squares(theta2 - t2.numpy())
            + cp.square(a - 0.3)
            + cp.square(p - 0.1)
        ),
        [3.0 * norm_of(theta1) <= a + p, cp.norm(theta2, "fro") <= a, a >= 0, a <= p],
    )
    program.solve(solver="CLARABEL")
    assert _distance2(found, t1, t2, a0, p0) == pytest.approx(program.value, rel=1e-5, abs=1e-7)


def test_lipschitz_projection_for_more_classes_is_feasible_and_keeps_the_mean_row():
    # C > 2: the exact projection onto the certified subset √2‖R‖₂ <= s (module docstring).
    generator = torch.Generator().manual_seed(7)
    t1 = torch.randn(4, 6, generator=generator, dtype=torch.float64) * 3
    t2 = torch.randn(4, 2, generator=generator, dtype=torch.float64) * 3
    zero = torch.tensor(0.1, dtype=torch.float64)
    found = project(
        t1, t2, zero, zero, kappa_a=0.5, regime="A", norm="lipschitz", aux_norm="lipschitz"
    )
    assert _lipschitz(found.theta1) <= float(found.alpha_a + found.alpha_p) + 1e-10
    assert _lipschitz(found.theta2) <= 0.5 * float(found.alpha_a) + 1e-10
    torch.testing.assert_close(found.theta1.mean(0), t1.mean(0))
    torch.testing.assert_close(found.theta2.mean(0), t2.mean(0))
    # A feasible point stays where it is.
    again = project(
        found.theta1,
        found.theta2,
        found.alpha_a,
        found.alpha_p,
        kappa_a=0.5,
        regime="A",
        norm="lipschitz",
        aux_norm="lipschitz",
    )
    torch.testing.assert_close(again.theta1, found.theta1)


def test_unknown_norm_is_refused():
    with pytest.raises(UnsupportedOptionError, match="trace"):
        project(
            torch.zeros(3, 2),
            None,
            torch.tensor(1.0),
            torch.tensor(1.0),
            kappa_a=1.0,
            regime="A",
            norm="trace",
        )


@pytest.mark.parametrize("classes", [2, 4])
def test_parametrized_head_is_feasible_for_the_lipschitz_norms(classes):
    from constrained_pairs.methods.parametrization import FeasibleHead

    torch.manual_seed(classes)
    head = FeasibleHead(
        classes, 5, 3, regime="A", kappa_a=0.7, norm="lipschitz", aux_norm="lipschitz", lipschitz=2
    )
    for _ in range(5):
        with torch.no_grad():
            for parameter in head.parameters():
                parameter.normal_(0, 3)
        with torch.no_grad():
            point = head.point()
        budget = float(point.alpha_a + point.alpha_p)
        assert 2 * _lipschitz(point.theta1) <= budget + 1e-10
        assert _lipschitz(point.theta2) <= 0.7 * float(point.alpha_a) + 1e-10
        assert float(point.alpha_a) <= float(point.alpha_p)
    if classes == 2:  # the set is exactly the lipschitz ball: its boundary is reached
        with torch.no_grad():
            head.spectrum.fill_(30.0)
            point = head.point()
        assert 2 * _lipschitz(point.theta1) == pytest.approx(float(point.alpha_a + point.alpha_p))
