"""svm_duals, the structured solver of MMCL's B reduced SVM duals, against the generic QP layer
on the written-out Q_t (every backend), CVXPY, gradcheck and its own validation (SPEC §3, §7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.mmcl import kernel_matrix
from constrained_pairs.qp import QPInfo, explicit_q, solve_qp, svm_duals
from constrained_pairs.qp.svm_structure import negatives_index
from tests.helpers.qp_cases import cvxpy_reference

F64 = torch.float64
RHO = 0.1


def embeddings(batch=10, dim=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(batch, dim, generator=gen, dtype=F64), dim=1)


@pytest.mark.parametrize("C", [None, 0.5])
@pytest.mark.parametrize("kernel", ["rbf", "poly"])
def test_every_backend_agrees_with_the_structured_solver(kernel, C):
    x = embeddings(8)
    results = {}
    for backend in ("structured", "native", "qpth", "cvxpylayers"):
        xg = x.clone().requires_grad_()
        K = kernel_matrix(xg, xg, kernel)
        if backend == "structured":
            beta, info = svm_duals(K, rho=RHO, C=C, grad="implicit", return_info=True)
            beta = torch.gather(beta, 1, negatives_index(8))
        else:
            p = torch.full((8, 7), -2.0, dtype=F64)
            beta, info = solve_qp(explicit_q(K, RHO), p, 0.0, C, backend=backend, return_info=True)
        assert info.backend == backend and isinstance(info, QPInfo)
        weights = torch.linspace(-1, 1, 56, dtype=F64).view(8, 7)
        (beta * weights).sum().backward()
        results[backend] = (beta.detach(), xg.grad)
    ref = cvxpy_reference(
        explicit_q(kernel_matrix(x, x, kernel), RHO), torch.full((8, 7), -2.0, dtype=F64), 0.0, C
    )
    np.testing.assert_allclose(results["structured"][0].numpy(), ref, atol=1e-6)
    for backend, (beta, grad) in results.items():
        tight = backend in ("structured", "native")
        torch.testing.assert_close(
            beta, results["structured"][0], atol=1e-9 if tight else 1e-4, rtol=0
        )
        torch.testing.assert_close(
            grad, results["structured"][1], atol=1e-8 if tight else 1e-3, rtol=1e-3
        )


@pytest.mark.parametrize("C", [None, 0.4])
def test_implicit_mode_gradcheck_in_float64(C):
    x = embeddings(7, 3, seed=1).requires_grad_()
    weights = torch.randn(7, 7, dtype=F64, generator=torch.Generator().manual_seed(2))

    def f(x):
        return svm_duals(kernel_matrix(x, x, "rbf"), rho=RHO, C=C, grad="implicit") * weights

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_detach_mode_returns_no_graph_and_info_reports_optimal():
    x = embeddings(12).requires_grad_()
    beta, info = svm_duals(kernel_matrix(x, x), rho=RHO, return_info=True)
    assert not beta.requires_grad and beta.shape == (12, 12)
    assert torch.equal(beta.diagonal(), torch.zeros(12, dtype=F64))
    assert info.all_converged and set(info.status) == {"optimal"} and info.tol == 1e-8
    assert info.iterations.shape == (12,) and float(info.kkt_residual.max()) <= 1e-8


def test_anchor_subset_equals_the_rows_of_the_full_solve_with_gradients():
    x = embeddings(9, seed=3)
    anchors = torch.tensor([7, 2, 4])
    grads = []
    for subset in (None, anchors):
        xg = x.clone().requires_grad_()
        beta = svm_duals(
            kernel_matrix(xg, xg, "poly"), rho=RHO, C=0.7, grad="implicit", anchors=subset
        )
        rows = beta[anchors] if subset is None else beta
        if subset is not None:
            assert beta.shape == (3, 9)
            assert torch.equal(beta[torch.arange(3), anchors], torch.zeros(3, dtype=F64))
        (rows * torch.arange(27, dtype=F64).view(3, 9)).sum().backward()
        grads.append((rows.detach(), xg.grad))
    torch.testing.assert_close(grads[1][0], grads[0][0], atol=1e-12, rtol=0)
    torch.testing.assert_close(grads[1][1], grads[0][1], atol=1e-10, rtol=0)


def test_float32_uses_its_tolerance_and_agrees_with_float64():
    x = embeddings(64, 16, seed=4)
    beta64 = svm_duals(kernel_matrix(x, x), rho=RHO)
    beta32, info = svm_duals(kernel_matrix(x.float(), x.float()), rho=RHO, return_info=True)
    assert beta32.dtype == torch.float32 and info.tol == 1e-5 and info.all_converged
    torch.testing.assert_close(beta32.double(), beta64, atol=1e-4, rtol=1e-3)


def test_non_convergence_and_a_non_psd_kernel_are_reported():
    x = embeddings(64, 8, seed=5)
    with pytest.warns(RuntimeWarning, match="max_iter"):
        _, info = svm_duals(kernel_matrix(x, x), rho=RHO, max_iter=1, return_info=True)
    assert "max_iter" in info.status and not info.all_converged
    bad = -5 * torch.eye(6, dtype=F64) + 0.1  # not a kernel matrix: every Q_t indefinite
    with pytest.warns(RuntimeWarning, match="not convex"):
        _, info = svm_duals(bad, rho=RHO, return_info=True)
    assert set(info.status) == {"nonconvex"}


K_OK = kernel_matrix(embeddings(4), embeddings(4))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"kernel": K_OK.numpy()}, InvalidTypeError, "kernel must be a torch.Tensor"),
        ({"kernel": K_OK.long()}, InvalidTypeError, "float32 or float64"),
        ({"kernel": K_OK[:, :3]}, InvalidArgumentError, "square"),
        ({"kernel": K_OK[:1, :1]}, InvalidArgumentError, "B >= 2"),
        ({"kernel": K_OK * float("nan")}, InvalidArgumentError, "non-finite"),
        ({"rho": 0.0}, InvalidArgumentError, "rho"),
        ({"rho": float("inf")}, InvalidArgumentError, "rho"),
        ({"rho": "0.1"}, InvalidTypeError, "rho"),
        ({"C": -1.0}, InvalidArgumentError, "C"),
        ({"C": float("nan")}, InvalidArgumentError, "C"),
        ({"tol": 0.0}, InvalidArgumentError, "tol"),
        ({"max_iter": 0}, InvalidArgumentError, "max_iter"),
        ({"grad": "unrolled"}, InvalidArgumentError, "grad"),
        ({"return_info": 1}, InvalidTypeError, "return_info"),
        ({"anchors": [0, 1]}, InvalidTypeError, "anchors"),
        ({"anchors": torch.tensor([0, 4])}, InvalidArgumentError, "anchors"),
        ({"anchors": torch.tensor([1, 1])}, InvalidArgumentError, "distinct"),
    ],
)
def test_bad_arguments_raise_package_errors_naming_them(kwargs, error, match):
    args = {"kernel": K_OK, "rho": RHO, **kwargs}
    with pytest.raises(error, match=match):
        svm_duals(args.pop("kernel"), **args)
