"""Native backend: exact solutions against CVXPY and planted optima, QPInfo, implicit gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from constrained_pairs.qp import QPInfo, solve_qp
from tests.helpers.qp_cases import cvxpy_reference, mmcl_problem, planted_box_problem, random_spd

F64 = torch.float64


def _bounds_case(case: str, B: int, n: int):
    if case == "box":
        return 0.0, 1.0
    if case == "lower_only":
        return 0.0, None
    if case == "upper_only":
        return None, 0.2
    if case == "tensor":  # per-problem bounds, some of them infinite
        lower = -0.5 * torch.rand(B, n, dtype=F64)
        upper = 0.5 * torch.rand(B, n, dtype=F64)
        lower[:, ::3] = -float("inf")
        upper[:, 1::4] = float("inf")
        return lower, upper
    if case == "fixed":  # lower == upper on some variables
        lower = torch.full((B, n), -0.3, dtype=F64)
        upper = torch.full((B, n), 0.3, dtype=F64)
        upper[:, :2] = lower[:, :2]
        return lower, upper
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["box", "lower_only", "upper_only", "tensor", "fixed"])
def test_native_matches_cvxpy_on_random_box_problems(case):
    B, n = 6, 12
    Q, p = random_spd(B, n), torch.randn(B, n, dtype=F64)
    lower, upper = _bounds_case(case, B, n)
    z, info = solve_qp(Q, p, lower, upper, return_info=True)
    ref = cvxpy_reference(Q, p, lower, upper)
    assert np.abs(z.numpy() - ref).max() <= 1e-6
    assert info.all_converged and info.status == ("optimal",) * B
    assert float(info.kkt_residual.max()) <= 1e-8


@pytest.mark.parametrize("k", [1, 2])
def test_native_matches_cvxpy_with_equality_rows(k):
    B, n = 6, 10
    Q, p = random_spd(B, n), torch.randn(B, n, dtype=F64)
    A = torch.randn(B, k, n, dtype=F64)
    A[:, 0] = torch.sign(A[:, 0])  # an SVM-like row y^T z = 0
    b = torch.zeros(B, k, dtype=F64)
    b[:, 1:] = 0.1
    z, info = solve_qp(Q, p, -1.0, 1.0, A, b, return_info=True)
    ref = cvxpy_reference(Q, p, -1.0, 1.0, A, b)
    assert np.abs(z.numpy() - ref).max() <= 1e-6
    assert info.all_converged
    assert torch.allclose(A @ z.unsqueeze(-1), b.unsqueeze(-1), atol=1e-10)


def test_native_recovers_planted_solution_with_degenerate_active_set():
    Q, p, z_star = planted_box_problem(8, 16, weakly_active=3)
    z, info = solve_qp(Q, p, 0.0, 1.0, return_info=True)
    assert info.all_converged
    assert torch.allclose(z, z_star, atol=1e-9)


def test_native_handles_psd_not_pd_matrices():
    B, n = 5, 12
    Q = random_spd(B, n, rank=4, ridge=0.0)  # rank 4 < n: singular
    p = torch.randn(B, n, dtype=F64)
    z, info = solve_qp(Q, p, -1.0, 1.0, return_info=True)
    ref = cvxpy_reference(Q, p, -1.0, 1.0)

    def obj(v):
        return 0.5 * (v.unsqueeze(-2) @ Q @ v.unsqueeze(-1)).flatten() + (p * v).sum(-1)

    # the minimiser need not be unique: compare objective values and feasibility
    assert torch.allclose(obj(z), obj(torch.from_numpy(ref)), atol=1e-8)
    assert bool(((z >= -1) & (z <= 1)).all()) and info.all_converged


def test_native_hand_computed_values():
    # diagonal Q: the solution is the clamped unconstrained minimiser, coordinate by coordinate
    Q = torch.diag(torch.tensor([2.0, 1.0, 4.0], dtype=F64))
    p = torch.tensor([-4.0, 1.0, -2.0], dtype=F64)
    z = solve_qp(Q, p, lower=0.0, upper=1.5)
    assert z.shape == (3,)
    assert torch.allclose(z, torch.tensor([1.5, 0.0, 0.5], dtype=F64), atol=1e-12)
    # min ½‖z‖² s.t. 1ᵀz = 1, z ≥ 0: the uniform vector
    n = 5
    z = solve_qp(
        torch.eye(n, dtype=F64),
        torch.zeros(n, dtype=F64),
        0.0,
        None,
        torch.ones(1, n, dtype=F64),
        torch.ones(1, dtype=F64),
    )
    assert torch.allclose(z, torch.full((n,), 1 / n, dtype=F64), atol=1e-12)


@pytest.mark.parametrize("upper", [None, 100.0, 0.5])
def test_native_on_mmcl_svm_dual(upper):
    Q, p = mmcl_problem(12)
    z, info = solve_qp(Q, p, 0.0, upper, return_info=True)
    ref = cvxpy_reference(Q, p, 0.0, upper)
    assert np.abs(z.numpy() - ref).max() <= 1e-6 * max(1.0, np.abs(ref).max())
    assert info.all_converged


def test_native_float32_matches_cvxpy():
    B, n = 6, 20
    Q, p = random_spd(B, n), torch.randn(B, n, dtype=F64)
    z, info = solve_qp(Q.float(), p.float(), 0.0, 1.0, return_info=True)
    assert z.dtype == torch.float32 and info.all_converged and info.tol == 1e-5
    ref = cvxpy_reference(Q, p, 0.0, 1.0)
    assert np.abs(z.double().numpy() - ref).max() <= 1e-4


def test_non_convergence_is_reported_and_warned():
    Q, p = random_spd(4, 20), torch.randn(4, 20, dtype=F64)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        z, info = solve_qp(Q, p, 0.0, 0.5, max_iter=1, return_info=True)
    assert isinstance(info, QPInfo)
    assert not info.all_converged
    assert set(info.status) <= {"optimal", "max_iter"} and "max_iter" in info.status
    assert bool(torch.isfinite(z).all())
    assert info.iterations.shape == (4,) and int(info.iterations.max()) == 1


@pytest.mark.parametrize("B, n, fast", [(1, 5, False), (3, 8, True)])
def test_gradcheck_box_and_tensor_bounds(B, n, fast):
    Q = random_spd(B, n, ridge=0.3).requires_grad_()
    p = (0.3 * torch.randn(B, n, dtype=F64)).requires_grad_()
    lower = torch.full((B, n), -0.3, dtype=F64, requires_grad=True)
    upper = torch.full((B, n), 0.4, dtype=F64, requires_grad=True)
    z = solve_qp(Q, p, lower, upper)
    assert 0 < int(((z == lower) | (z == upper)).sum()) < B * n  # a mixed active set
    assert torch.autograd.gradcheck(lambda *a: solve_qp(*a), (Q, p, lower, upper), fast_mode=fast)


def test_gradcheck_lower_only_with_equality():
    B, n, k = 2, 6, 2
    Q = random_spd(B, n, ridge=0.3).requires_grad_()
    p = torch.randn(B, n, dtype=F64, requires_grad=True)
    lower = torch.full((B, n), -0.2, dtype=F64, requires_grad=True)
    A = torch.randn(B, k, n, dtype=F64, requires_grad=True)
    b = (0.1 * torch.randn(B, k, dtype=F64)).requires_grad_()

    def fn(Q, p, lower, A, b):
        return solve_qp(Q, p, lower, None, A, b)

    assert torch.autograd.gradcheck(fn, (Q, p, lower, A, b), fast_mode=True)


def test_gradient_matches_central_finite_differences_on_mmcl():
    Q, p = mmcl_problem(10)
    Q.requires_grad_()
    weights = torch.randn(9, dtype=F64)

    def loss(Q):
        return (solve_qp(Q, p, 0.0, 1.0) * weights).sum()

    loss(Q).backward()
    h = 1e-6
    direction = torch.randn_like(Q)
    direction = direction + direction.mT
    with torch.no_grad():
        fd = (loss(Q + h * direction) - loss(Q - h * direction)) / (2 * h)
    analytic = (Q.grad * direction).sum()
    assert abs(float(fd - analytic)) <= 1e-4 * max(1.0, abs(float(fd)))


def test_unbatched_inputs_broadcast_against_batched():
    Q = random_spd(1, 5)[0]
    p = torch.randn(4, 5, dtype=F64)
    z = solve_qp(Q, p, 0.0, 1.0)
    assert z.shape == (4, 5)
    z0 = solve_qp(Q, p[0], 0.0, 1.0)
    assert z0.shape == (5,) and torch.allclose(z0, z[0], atol=1e-12)


def test_unbounded_problem_is_reported_not_solved():
    # min z2 s.t. z2 <= 0 with a zero curvature direction: unbounded below
    Q = torch.diag(torch.tensor([1.0, 0.0], dtype=F64))
    p = torch.tensor([0.0, 1.0], dtype=F64)
    with pytest.warns(RuntimeWarning, match="unbounded"):
        _, info = solve_qp(Q, p, None, 0.0, max_iter=10, return_info=True)
    assert info.status == ("unbounded",) and not info.all_converged


def test_asymmetric_q_is_solved_as_its_symmetric_part():
    torch.manual_seed(11)
    B, n = 4, 9
    Q_sym, p = random_spd(B, n), torch.randn(B, n, dtype=F64)
    S = torch.randn(B, n, n, dtype=F64)
    Q = Q_sym + (S - S.mT)  # ½zᵀQz = ½zᵀQ_sym z: the antisymmetric part is invisible
    z, info = solve_qp(Q, p, 0.0, 1.0, return_info=True)
    ref = cvxpy_reference(Q_sym, p, 0.0, 1.0)
    assert info.all_converged
    assert np.abs(z.numpy() - ref).max() <= 1e-6
    # the gradient is with respect to the entries of the unsymmetrised Q
    Qg = Q[:1].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda q: solve_qp(q, p[:1], 0.0, 1.0), (Qg,))


def test_symmetric_part_keeps_round_off_symmetric_q_and_symmetrises_the_rest():
    from constrained_pairs.qp.kkt import symmetric_part

    torch.manual_seed(12)
    Q = random_spd(3, 20)
    assert symmetric_part(Q) is Q
    # round-off asymmetry (as from K − k 1ᵀ − 1 kᵀ built in two orders): kept as it is
    k = torch.rand(3, 20, dtype=F64)
    noisy = Q - k[:, :, None] - k[:, None, :]
    noisy = noisy + 1e-16 * torch.randn_like(noisy) * noisy.abs()
    assert symmetric_part(noisy) is noisy
    # a small genuine asymmetry, far above round-off, is removed
    E = torch.zeros_like(Q)
    E[1, 3, 7] = 1e-9
    out = symmetric_part(Q + E)
    assert torch.equal(out, 0.5 * ((Q + E) + (Q + E).mT))
