"""qpth and cvxpylayers backends: CVXPY agreement and gradients against the native backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from constrained_pairs.qp import solve_qp
from tests.helpers.qp_cases import cvxpy_reference, mmcl_problem, random_spd

F64 = torch.float64


def test_qpth_runs_on_numpy_2():
    import qpth.qp  # noqa: F401  (importing must work on numpy 2)

    assert int(np.__version__.split(".")[0]) >= 2
    Q = torch.diag(torch.tensor([2.0, 1.0], dtype=F64))
    p = torch.tensor([-4.0, 1.0], dtype=F64)
    z = solve_qp(Q, p, 0.0, 1.5, backend="qpth")
    assert torch.allclose(z, torch.tensor([1.5, 0.0], dtype=F64), atol=1e-6)


CASES = {
    "box": lambda B, n: (0.0, 1.0, None, None),
    "lower_only": lambda B, n: (0.0, None, None, None),
    "box_equality": lambda B, n: (
        -1.0,
        1.0,
        torch.sign(torch.randn(B, 1, n, dtype=F64)),
        torch.zeros(B, 1, dtype=F64),
    ),
    "tensor_bounds": lambda B, n: (
        -torch.rand(B, n, dtype=F64),
        torch.rand(B, n, dtype=F64),
        None,
        None,
    ),
}


@pytest.mark.parametrize("backend", ["qpth", "cvxpylayers"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_backend_matches_cvxpy(backend, case):
    B, n = 4, 8
    Q, p = random_spd(B, n), torch.randn(B, n, dtype=F64)
    lower, upper, A, b = CASES[case](B, n)
    z, info = solve_qp(Q, p, lower, upper, A, b, backend=backend, return_info=True)
    ref = cvxpy_reference(Q, p, lower, upper, A, b)
    assert np.abs(z.detach().numpy() - ref).max() <= 1e-4
    assert info.backend == backend and float(info.kkt_residual.max()) <= 1e-6
    native = solve_qp(Q, p, lower, upper, A, b)
    assert torch.allclose(native, z, atol=1e-4)


@pytest.mark.parametrize("backend", ["qpth", "cvxpylayers"])
def test_backend_float32(backend):
    B, n = 3, 8
    Q, p = random_spd(B, n), torch.randn(B, n, dtype=F64)
    z = solve_qp(Q.float(), p.float(), 0.0, 1.0, backend=backend)
    assert z.dtype == torch.float32
    ref = cvxpy_reference(Q, p, 0.0, 1.0)
    assert np.abs(z.detach().double().numpy() - ref).max() <= 1e-4


def _grads(backend, Q, p, lower, upper, A, b, weights):
    leaves = [t.detach().clone().requires_grad_() for t in (Q, p, lower, upper, b)]
    Qg, pg, lg, ug, bg = leaves
    z = solve_qp(Qg, pg, lg, ug, A, bg, backend=backend)
    (z * weights).sum().backward()
    return [t.grad for t in leaves]


@pytest.mark.parametrize("backend", ["qpth", "cvxpylayers"])
def test_backend_gradients_agree_with_native(backend):
    B, n = 3, 8
    Q, p = random_spd(B, n, ridge=0.3), torch.randn(B, n, dtype=F64)
    lower = torch.full((B, n), -0.4, dtype=F64)
    upper = torch.full((B, n), 0.5, dtype=F64)
    A = torch.sign(torch.randn(B, 1, n, dtype=F64))
    b = torch.full((B, 1), 0.1, dtype=F64)
    weights = torch.randn(B, n, dtype=F64)
    ours = _grads("native", Q, p, lower, upper, A, b, weights)
    theirs = _grads(backend, Q, p, lower, upper, A, b, weights)
    for name, g_ours, g_theirs in zip(("Q", "p", "lower", "upper", "b"), ours, theirs):
        assert g_ours is not None and g_theirs is not None, name
        assert torch.allclose(g_ours, g_theirs, atol=2e-4, rtol=1e-3), name


def test_backends_agree_on_mmcl_dual_forward_and_backward():
    Q, p = mmcl_problem(8)
    results = {}
    for backend in ("native", "qpth", "cvxpylayers"):
        Qg = Q.clone().requires_grad_()
        z = solve_qp(Qg, p, 0.0, 10.0, backend=backend)
        z.sum().backward()
        results[backend] = (z.detach(), Qg.grad)
    for backend in ("qpth", "cvxpylayers"):
        assert torch.allclose(results[backend][0], results["native"][0], atol=1e-4)
        assert torch.allclose(results[backend][1], results["native"][1], atol=1e-3, rtol=1e-3)
