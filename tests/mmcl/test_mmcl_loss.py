"""MMCLLoss against independent references: CVXPY duals, a hand-written gradient, finite
differences and the generic QP layer (SPEC §3)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch

from constrained_pairs.errors import InvalidTypeError
from constrained_pairs.mmcl import MMCLLoss, explicit_q, kernel_matrix
from constrained_pairs.qp import solve_qp
from constrained_pairs.qp.svm import solve_dual
from constrained_pairs.qp.svm_structure import batched_q_times, negatives_index

SIGMA, RHO, COEF0, DEGREE = 5.0, 0.1, 0.5, 3
CASES = [
    ("rbf", None),
    ("rbf", 0.4),
    ("linear", None),
    ("linear", 0.4),
    ("poly", None),
    ("poly", 0.4),
]


def views(batch=8, dim=5, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    z1 = torch.randn(batch, dim, generator=gen, dtype=dtype)
    z2 = z1 + 0.4 * torch.randn(batch, dim, generator=gen, dtype=dtype)
    return z1, z2


def np_kernel(a, b, kernel):
    if kernel == "rbf":
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / SIGMA)
    if kernel == "linear":
        return a @ b.T
    return (a @ b.T + COEF0) ** DEGREE


def normalise(v):
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def cvxpy_betas(x, kernel, C):
    """β_t of every anchor by CLARABEL on the written-out dual of SPEC §3 (numpy, no torch)."""
    k = np_kernel(x, x, kernel)
    batch = len(x)
    betas = np.zeros((batch, batch))
    for t in range(batch):
        idx = [j for j in range(batch) if j != t]
        q = (
            k[t, t]
            + RHO * np.eye(batch - 1)
            + k[np.ix_(idx, idx)]
            - k[t, idx][:, None]
            - k[t, idx][None, :]
        )
        beta = cp.Variable(batch - 1)
        constraints = [beta >= 0] + ([beta <= C] if C is not None else [])
        objective = cp.Minimize(0.5 * cp.quad_form(beta, cp.psd_wrap(q)) - 2 * cp.sum(beta))
        cp.Problem(objective, constraints).solve(
            solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
        )
        betas[t, idx] = beta.value
    return betas


def cvxpy_loss(z1, z2, kernel, C):
    x, z = normalise(z1), normalise(z2)
    betas = cvxpy_betas(x, kernel, C)
    cross = np_kernel(x, z, kernel)  # cross[j, t] = K(x_j, z_t)
    return ((betas * cross.T).sum() - (betas.sum(1) * np.diag(cross)).sum()) / len(x), betas


@pytest.mark.parametrize("kernel,C", CASES)
def test_value_and_duals_match_cvxpy(kernel, C):
    z1, z2 = views()
    loss_fn = MMCLLoss(kernel=kernel, C=C)
    value = loss_fn(z1, z2)
    expected, betas = cvxpy_loss(z1.numpy(), z2.numpy(), kernel, C)
    assert abs(float(value) - expected) < 1e-6
    np.testing.assert_allclose(loss_fn.last_beta.numpy(), betas, atol=1e-6)
    info = loss_fn.last_info
    assert info.all_converged and set(info.status) == {"optimal"}
    assert float(info.kkt_residual.max()) < 1e-10


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_detach_gradient_matches_formula_with_fixed_beta(kernel):
    z1, z2 = views(seed=1)
    a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    loss_fn = MMCLLoss(kernel=kernel, grad="detach")
    loss_fn(a, b).backward()
    # Hand-derived gradient: β constant, only the cross kernel values K(x_j, z_t) carry gradient.
    x, z = normalise(z1.numpy()), normalise(z2.numpy())
    betas = cvxpy_betas(x, kernel, None)
    batch = len(x)
    grad_x, grad_z = np.zeros_like(x), np.zeros_like(z)
    for t in range(batch):
        for j in range(batch):
            weight = betas[t, j] / batch
            for row, sign in ((j, 1.0), (t, -1.0)):  # +β K(x_j, z_t) and -β K(x_t, z_t)
                if kernel == "rbf":
                    value = np.exp(-((x[row] - z[t]) ** 2).sum() / SIGMA)
                    d_x = value * 2 / SIGMA * (z[t] - x[row])
                    d_z = value * 2 / SIGMA * (x[row] - z[t])
                else:
                    d_x, d_z = z[t], x[row]
                grad_x[row] += sign * weight * d_x
                grad_z[t] += sign * weight * d_z

    def through_normalisation(raw, unit, grad):
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return (grad - (grad * unit).sum(1, keepdims=True) * unit) / norms

    np.testing.assert_allclose(
        a.grad.numpy(), through_normalisation(z1.numpy(), x, grad_x), atol=1e-7
    )
    np.testing.assert_allclose(
        b.grad.numpy(), through_normalisation(z2.numpy(), z, grad_z), atol=1e-7
    )


@pytest.mark.parametrize("kernel,C", [("rbf", None), ("linear", 0.4), ("poly", None)])
def test_implicit_gradient_gradcheck(kernel, C):
    z1, z2 = views(batch=7, dim=4, seed=2)
    loss_fn = MMCLLoss(kernel=kernel, C=C, grad="implicit")
    inputs = (z1.requires_grad_(), z2.requires_grad_())
    assert torch.autograd.gradcheck(loss_fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("kernel,C", [("rbf", None), ("poly", 0.4)])
def test_implicit_gradient_matches_cvxpy_finite_differences(kernel, C):
    z1, z2 = views(batch=6, dim=4, seed=3)
    a = z1.clone().requires_grad_()
    loss_fn = MMCLLoss(kernel=kernel, C=C, grad="implicit")
    loss_fn(a, z2).backward()
    gen = np.random.default_rng(0)
    for _ in range(2):
        direction = gen.standard_normal(z1.shape)
        h = 1e-4
        plus, _ = cvxpy_loss(z1.numpy() + h * direction, z2.numpy(), kernel, C)
        minus, _ = cvxpy_loss(z1.numpy() - h * direction, z2.numpy(), kernel, C)
        numeric = (plus - minus) / (2 * h)
        analytic = float((a.grad.numpy() * direction).sum())
        assert abs(analytic - numeric) < 1e-4 * max(1.0, abs(numeric))


def test_implicit_and_detach_differ_only_by_the_beta_path():
    z1, z2 = views(seed=4)
    grads = {}
    for mode in ("detach", "implicit"):
        a = z1.clone().requires_grad_()
        MMCLLoss(grad=mode)(a, z2).backward()
        grads[mode] = a.grad
    b = z2.clone().requires_grad_()
    MMCLLoss(grad="implicit")(z1, b).backward()
    c = z2.clone().requires_grad_()
    MMCLLoss(grad="detach")(z1, c).backward()
    torch.testing.assert_close(b.grad, c.grad)  # β does not depend on view 2
    assert (grads["detach"] - grads["implicit"]).abs().max() > 1e-6


@pytest.mark.parametrize("backend", ["native", "qpth", "cvxpylayers"])
def test_generic_backends_agree_in_value_and_implicit_gradient(backend):
    z1, z2 = views(batch=6, dim=4, seed=5)
    results = []
    for name in ("structured", backend):
        a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
        loss_fn = MMCLLoss(C=0.5, grad="implicit", backend=name)
        value = loss_fn(a, b)
        value.backward()
        results.append((value.detach(), a.grad, b.grad))
        assert loss_fn.last_info.backend == name
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("C", [None, 1.0])
def test_structured_solver_matches_solve_qp_on_a_full_batch(C):
    gen = torch.Generator().manual_seed(6)
    centres = torch.randn(10, 16, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 10, (64,), generator=gen)
    x = torch.nn.functional.normalize(
        3 * centres[labels] + torch.randn(64, 16, generator=gen, dtype=torch.float64), dim=1
    )
    kernel = kernel_matrix(x, x)
    solution = solve_dual(kernel, RHO, C)
    assert bool(solution.converged.all())
    q = explicit_q(kernel, RHO)
    p = torch.full((64, 63), -2.0, dtype=torch.float64)
    reference = solve_qp(q, p, lower=0.0, upper=C, backend="native")
    ours = torch.gather(solution.beta, 1, negatives_index(64))
    torch.testing.assert_close(ours, reference, atol=1e-7, rtol=1e-7)


def test_structured_product_matches_explicit_matrices():
    x = torch.nn.functional.normalize(torch.randn(9, 3, dtype=torch.float64), dim=1)
    kernel = kernel_matrix(x, x, "poly")
    v = torch.rand(9, 9, dtype=torch.float64).fill_diagonal_(0)
    index = negatives_index(9)
    explicit = (explicit_q(kernel, RHO) @ torch.gather(v, 1, index).unsqueeze(-1)).squeeze(-1)
    structured = torch.gather(batched_q_times(kernel, v, RHO), 1, index)
    torch.testing.assert_close(structured, explicit)


def test_float32_batch_128_converges_and_agrees_with_float64():
    z1, z2 = views(batch=128, dim=32, seed=7, dtype=torch.float32)
    loss32 = MMCLLoss()
    value32 = loss32(z1, z2)
    loss64 = MMCLLoss()
    value64 = loss64(z1.double(), z2.double())
    assert loss32.last_info.all_converged and loss64.last_info.all_converged
    assert abs(float(value32) - float(value64)) < 1e-4 * max(1.0, abs(float(value64)))


def test_non_convergence_is_reported_not_silent():
    z1, z2 = views(batch=64, dim=8, seed=8)
    loss_fn = MMCLLoss()
    loss_fn.max_iter = 1
    with pytest.warns(RuntimeWarning, match="did not converge"):
        value = loss_fn(z1, z2)
    assert torch.isfinite(value)
    assert "max_iter" in loss_fn.last_info.status
    assert not loss_fn.last_info.all_converged


@pytest.mark.parametrize(
    "z1,z2,match",
    [
        (torch.randn(4, 3), torch.randn(5, 3), "same shape"),
        (torch.randn(4, 3), torch.randn(4, 2), "same shape"),
        (torch.randn(1, 3), torch.randn(1, 3), "at least 2"),
        (torch.randn(4), torch.randn(4), "dimensions"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), torch.ones(2, 2), "non-finite"),
        (torch.ones(2, 2), torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), "non-finite"),
    ],
)
def test_bad_embeddings_raise_value_error(z1, z2, match):
    with pytest.raises(ValueError, match=match):
        MMCLLoss()(z1, z2)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"kernel": "cosine"}, "kernel"),
        ({"grad": "unrolled"}, "grad"),
        ({"backend": "osqp"}, "backend"),
        ({"sigma": 0.0}, "sigma"),
        ({"rho": -1.0}, "rho"),
        ({"C": 0.0}, "C"),
        ({"coef0": -1.0}, "coef0"),
        ({"degree": 0}, "degree"),
    ],
)
def test_bad_options_raise_value_error(options, match):
    with pytest.raises(ValueError, match=match):
        MMCLLoss(**options)


@pytest.mark.parametrize("kernel", ["rbf", "poly"])
@pytest.mark.parametrize("density", [0.2, 0.9])
def test_free_set_solver_both_paths_match_dense_solves(kernel, density):
    # density 0.2: Cholesky on the free block; 0.9: Woodbury + Schur complement on the bound set.
    from constrained_pairs.qp.svm_free_set import FreeSetSolver, _ComplementBlock

    gen = torch.Generator().manual_seed(9)
    size = 12
    x = torch.nn.functional.normalize(
        torch.randn(size, 4, generator=gen, dtype=torch.float64), dim=1
    )
    kernel_mat = kernel_matrix(x, x, kernel)
    free = (torch.rand(size, size, generator=gen) < density).fill_diagonal_(False)
    rhs = torch.randn(size, size, generator=gen, dtype=torch.float64)
    solver = FreeSetSolver(kernel_mat, RHO, free, groups=2)
    assert any(isinstance(b, _ComplementBlock) for b in solver.blocks) == (density > 0.5)
    out = solver(rhs)
    for t in range(size):
        f = np.nonzero(free[t].numpy())[0]
        k = kernel_mat.numpy()
        q = k[t, t] + RHO * np.eye(len(f)) + k[np.ix_(f, f)] - k[t, f][:, None] - k[t, f][None, :]
        expected = np.linalg.solve(q, rhs[t, f].numpy()) if len(f) else np.zeros(0)
        np.testing.assert_allclose(out[t].numpy()[f], expected, atol=1e-10, rtol=1e-10)
        assert float(out[t][~free[t]].abs().max()) == 0.0


def test_nearly_collapsed_embeddings_large_free_sets():
    # An untrained encoder maps everything close together: almost every negative is a support
    # vector, the regime of the complement path.
    gen = torch.Generator().manual_seed(10)
    z1 = torch.ones(48, 8, dtype=torch.float64) + 0.05 * torch.randn(
        48, 8, generator=gen, dtype=torch.float64
    )
    solution = solve_dual(
        kernel_matrix(
            torch.nn.functional.normalize(z1, dim=1), torch.nn.functional.normalize(z1, dim=1)
        ),
        RHO,
    )
    assert bool(solution.converged.all())
    assert float((solution.beta > 0).sum(1).double().mean()) > 24
    x = torch.nn.functional.normalize(z1, dim=1)
    q = explicit_q(kernel_matrix(x, x), RHO)
    reference = solve_qp(q, torch.full((48, 47), -2.0, dtype=torch.float64), lower=0.0)
    torch.testing.assert_close(
        torch.gather(solution.beta, 1, negatives_index(48)), reference, atol=1e-7, rtol=1e-7
    )


def test_implicit_gradient_gradcheck_through_the_complement_path():
    gen = torch.Generator().manual_seed(11)
    z1 = torch.ones(8, 3, dtype=torch.float64) + 0.1 * torch.randn(
        8, 3, generator=gen, dtype=torch.float64
    )
    z2 = z1 + 0.1 * torch.randn(8, 3, generator=gen, dtype=torch.float64)
    loss_fn = MMCLLoss(grad="implicit")
    loss_fn(z1, z2)
    assert float((loss_fn.last_beta > 0).sum(1).double().min()) > 4.5  # |F| > |A|: complement
    inputs = (z1.requires_grad_(), z2.requires_grad_())
    assert torch.autograd.gradcheck(loss_fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize(
    "options,error,match",
    [
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"max_iter": 2.5}, TypeError, "max_iter"),
        ({"tol": -1e-3}, ValueError, "tol"),
        ({"tol": float("nan")}, ValueError, "tol"),
        ({"coef0": float("inf")}, ValueError, "coef0"),
        ({"sigma": float("nan")}, ValueError, "sigma"),
        ({"sigma": float("inf")}, ValueError, "sigma"),
        ({"rho": float("inf")}, ValueError, "rho"),
        ({"C": float("inf")}, ValueError, "C"),
        ({"sigma": "5"}, TypeError, "sigma"),
        ({"degree": 2.5}, TypeError, "degree"),
        ({"gather": 1}, TypeError, "gather"),
        ({"backend": "native-structured"}, ValueError, "backend"),
    ],
)
def test_every_hyper_parameter_is_validated(options, error, match):
    with pytest.raises(error, match=match):
        MMCLLoss(**options)


def test_max_iter_and_tol_set_later_are_validated_too():
    loss_fn = MMCLLoss()
    with pytest.raises(ValueError, match="max_iter"):
        loss_fn.max_iter = 0
    with pytest.raises(ValueError, match="tol"):
        loss_fn.tol = 0.0
    loss_fn.max_iter, loss_fn.tol = 7, 1e-6
    assert (loss_fn.max_iter, loss_fn.tol) == (7, 1e-6)


def test_half_precision_and_integer_embeddings_are_refused():
    with pytest.raises(ValueError, match="float16"):
        MMCLLoss()(torch.randn(4, 3).half(), torch.randn(4, 3).half())
    with pytest.raises(TypeError, match="floating"):
        MMCLLoss()(torch.ones(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long))


@pytest.mark.parametrize("backend,max_iter", [("native", 40), ("qpth", 40), ("cvxpylayers", 5000)])
def test_explicit_backends_take_tol_and_max_iter(backend, max_iter):
    z1, z2 = views(batch=6, dim=4, seed=12)
    loss_fn = MMCLLoss(backend=backend, C=1.0, tol=1e-6, max_iter=max_iter)
    value = loss_fn(z1, z2)
    reference = MMCLLoss(C=1.0)(z1, z2)
    assert loss_fn.last_info.backend == backend and loss_fn.last_info.tol == 1e-6
    assert abs(float(value) - float(reference)) < 1e-5


@pytest.mark.parametrize(
    "convert", [lambda t: t.tolist(), lambda t: t.numpy()], ids=["list", "numpy"]
)
@pytest.mark.parametrize("name", ["z1", "z2"])
def test_non_tensor_embeddings_are_refused_naming_the_argument(convert, name):
    views_ = dict(zip(("z1", "z2"), views(batch=4, dim=3, seed=1)))
    views_[name] = convert(views_[name])
    with pytest.raises(InvalidTypeError, match=f"{name} must be a torch.Tensor"):
        MMCLLoss()(**views_)


def test_mixed_dtypes_are_refused_naming_both():
    z1, z2 = views(batch=4, dim=3, seed=2)
    with pytest.raises(InvalidTypeError, match="z1 torch.float32 and z2 torch.float64"):
        MMCLLoss()(z1.float(), z2.double())
    with pytest.raises(InvalidTypeError, match="z1 torch.float64 and z2 torch.float32"):
        MMCLLoss()(z1.double(), z2.float())
    same = MMCLLoss()(z1.double(), z2.double())
    assert same.dtype == torch.float64 and torch.isfinite(same)
