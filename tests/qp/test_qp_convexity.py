"""Non-convex and unbounded QPs are reported (status + warning), never "optimal" (SPEC §7)."""

from __future__ import annotations

import warnings

import pytest
import torch

from constrained_pairs.errors import UnsupportedOptionError
from constrained_pairs.qp import solve_qp
from constrained_pairs.status import Status
from tests.helpers.qp_cases import cvxpy_reference, random_spd

F64 = torch.float64
BACKENDS = ["native", "qpth", "cvxpylayers"]

# issue 12 item 4: (Q, p, lower, upper), all non-convex
NONCONVEX = {
    "saddle, z >= 0": (
        torch.diag(torch.tensor([1.0, -1.0], dtype=F64)),
        torch.zeros(2, dtype=F64),
        0.0,
        None,
    ),
    "concave, box": (-torch.eye(2, dtype=F64), torch.full((2,), 0.1, dtype=F64), 0.0, 1.0),
    "concave, free": (-torch.eye(2, dtype=F64), torch.ones(2, dtype=F64), None, None),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(NONCONVEX))
def test_nonconvex_problems_are_reported(backend, case):
    Q, p, lower, upper = NONCONVEX[case]
    with pytest.warns(RuntimeWarning, match="not convex"):
        z, info = solve_qp(Q, p, lower, upper, backend=backend, return_info=True)
    assert info.status == (Status.NONCONVEX,) and not info.all_converged
    assert float(info.extra["min_eigenvalue"][0]) == pytest.approx(-1.0)
    assert bool(torch.isfinite(z).all())
    if lower is not None:  # the point returned stays feasible
        assert bool((z >= lower - 1e-9).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_nonconvex_problem_does_not_spoil_the_rest_of_the_batch(backend):
    Q = random_spd(3, 4)
    Q[1] = -Q[1]
    p = torch.randn(3, 4, dtype=F64)
    with pytest.warns(RuntimeWarning, match="1 of 3 problems are not convex"):
        z, info = solve_qp(Q, p, 0.0, 1.0, backend=backend, return_info=True)
    assert info.status[0] == info.status[2] == "optimal" and info.status[1] == "nonconvex"
    keep = [0, 2]
    ref = cvxpy_reference(Q[keep], p[keep], 0.0, 1.0)
    assert float((z[keep].detach() - torch.from_numpy(ref)).abs().max()) <= 1e-4


def test_check_convexity_on_request_and_psd_round_off_is_not_nonconvex():
    Q = random_spd(4, 6, rank=3, ridge=0.0)  # PSD, singular: eigenvalues ~ -1e-16 by round-off
    p = torch.randn(4, 6, dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z, info = solve_qp(Q, p, -1.0, 1.0, check_convexity=True, return_info=True)
    assert info.all_converged and set(info.status) == {"optimal"}
    assert info.extra["min_eigenvalue"].shape == (4,)
    Q[2] -= 1e-3 * torch.eye(6, dtype=F64)  # now slightly indefinite
    with pytest.warns(RuntimeWarning, match="not convex"):
        _, info = solve_qp(Q, p, -1.0, 1.0, check_convexity=True, return_info=True)
    assert info.status[2] == "nonconvex" and info.status.count("optimal") == 3


@pytest.mark.parametrize("backend", ["native", "cvxpylayers"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_unbounded_problems_are_reported(backend, sign):
    # min ±z2 with zero curvature along z2, bounded only on the other side: unbounded below
    Q = torch.diag(torch.tensor([1.0, 0.0], dtype=F64))
    p = torch.tensor([0.3, sign], dtype=F64)
    lower, upper = (None, 0.0) if sign > 0 else (0.0, None)
    with pytest.warns(RuntimeWarning, match="unbounded"):
        _, info = solve_qp(Q, p, lower, upper, backend=backend, return_info=True)
    assert info.status == (Status.UNBOUNDED,)
    # the same Q with the bound on the other side has a minimum: optimal, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        z, info = solve_qp(Q, p, upper, lower, backend=backend, return_info=True)
    assert info.status == (Status.OPTIMAL,)
    assert float(z[1]) == pytest.approx(0.0, abs=1e-6)


def test_unbounded_direction_blocked_by_an_equality_is_bounded():
    Q = torch.diag(torch.tensor([1.0, 0.0, 0.0], dtype=F64))
    p = torch.tensor([0.0, 1.0, -1.0], dtype=F64)  # descends along (0, -1, 1) ...
    A, b = torch.tensor([[0.0, 1.0, 1.0]], dtype=F64), torch.zeros(1, dtype=F64)
    with pytest.warns(RuntimeWarning, match="unbounded"):  # ... which A allows
        _, info = solve_qp(Q, p, None, None, A, b, max_iter=20, return_info=True)
    assert info.status == ("unbounded",)
    A = torch.tensor([[0.0, 1.0, -1.0]], dtype=F64)  # ... which this A forbids: bounded? no:
    # along (0, 1, 1) the objective is constant, so a minimiser exists
    z, info = solve_qp(Q, p, None, None, A, b, max_iter=20, return_info=True)
    assert info.status == ("optimal",) and float(z[0]) == pytest.approx(0.0, abs=1e-9)


def test_qpth_needs_a_positive_definite_q():
    Q = torch.diag(torch.tensor([1.0, 0.0], dtype=F64))
    with pytest.raises(UnsupportedOptionError, match="positive definite"):
        solve_qp(Q, torch.tensor([0.0, 1.0], dtype=F64), None, 0.0, backend="qpth")


def test_check_convexity_must_be_a_flag():
    with pytest.raises(TypeError, match="check_convexity"):
        solve_qp(torch.eye(2), torch.ones(2), check_convexity="yes")
