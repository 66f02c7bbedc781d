"""Property-based checks of ``MMCLLoss`` (issue 12's contract; SPEC §3): every constructor option
is accepted or refused by name, every forward input is a finite loss equal to an independent
reference (kernels written out in numpy, each anchor's dual minimised by enumerating its active
sets) or a package error naming the input, and the loss of normalised embeddings does not depend
on their scale."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constrained_pairs.errors import ConstrainedPairsError, InvalidTypeError
from constrained_pairs.mmcl import MMCLLoss

FAST = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- the independent reference ---------------------------------------------------------------------
def _box_argmin(Q: np.ndarray, p: np.ndarray, C: float | None) -> np.ndarray:
    """argmin ½βᵀQβ + pᵀβ over 0 <= β <= C (Q positive definite, n <= 4) by enumerating which
    variables sit at 0, at C or strictly inside, keeping the feasible stationary points."""
    n = len(p)
    best, best_value = None, math.inf
    for states in itertools.product((0, 1, 2) if C is not None else (0, 1), repeat=n):
        beta = np.array([0.0 if s == 0 else (C if s == 2 else 0.0) for s in states])
        free = np.array([s == 1 for s in states])
        if free.any():
            rhs = -p[free] - Q[np.ix_(free, ~free)] @ beta[~free]
            beta[free] = np.linalg.solve(Q[np.ix_(free, free)], rhs)
        upper = math.inf if C is None else C
        if np.any(beta < -1e-12) or np.any(beta > upper + 1e-12):
            continue
        value = 0.5 * beta @ Q @ beta + p @ beta
        if value < best_value:
            best, best_value = beta, value
    return best


def _kernel(x: np.ndarray, y: np.ndarray, kind: str, sigma: float, degree: int, coef0: float):
    if kind == "linear":
        return x @ y.T
    if kind == "poly":
        return (x @ y.T + coef0) ** degree
    sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return np.exp(-sq / sigma)


def reference_loss(z1, z2, kernel, sigma, C, rho, degree, coef0) -> float:
    """SPEC §3 written out: L = 1/B Σ_t [Σ_{j≠t} β_tj K(x_j, z_t) − (Σ_j β_tj) K(x_t, z_t)]."""
    x = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
    z = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    K = _kernel(x, x, kernel, sigma, degree, coef0)
    cross = _kernel(x, z, kernel, sigma, degree, coef0)  # cross[j, t] = K(x_j, z_t)
    B = len(x)
    total = 0.0
    for t in range(B):
        neg = [j for j in range(B) if j != t]
        Q = np.array(
            [[K[t, t] + rho * (i == j) + K[i, j] - K[t, i] - K[t, j] for j in neg] for i in neg]
        )
        beta = _box_argmin(Q, -2 * np.ones(B - 1), C)
        total += sum(b * cross[j, t] for b, j in zip(beta, neg)) - beta.sum() * cross[t, t]
    return total / B


@st.composite
def embeddings(draw, dtype=None):
    B, d = draw(st.integers(2, 4)), draw(st.integers(1, 3))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    dtype = dtype or draw(st.sampled_from([torch.float32, torch.float64]))
    z1 = torch.randn(B, d, generator=gen, dtype=torch.float64) + 0.1
    z2 = z1 + draw(st.sampled_from([0.0, 0.3, 3.0])) * torch.randn(B, d, generator=gen).double()
    return z1.to(dtype), z2.to(dtype)


HYPERS = st.fixed_dictionaries(
    {
        "kernel": st.sampled_from(["rbf", "linear", "poly"]),
        "sigma": st.sampled_from([0.1, 1.0, 5.0, 100.0]),
        "C": st.sampled_from([None, 0.1, 1.0, 50.0]),
        "rho": st.sampled_from([1e-3, 0.1, 1.0, 10.0]),
        "degree": st.integers(1, 4),
        "coef0": st.sampled_from([0.0, 0.5, 2.0]),
    }
)


@FAST
@given(views=embeddings(), hypers=HYPERS, backend=st.sampled_from(["structured", "native"]))
def test_the_loss_is_finite_and_equals_the_written_out_reference(views, hypers, backend):
    z1, z2 = views
    loss_fn = MMCLLoss(backend=backend, **hypers)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = loss_fn(z1, z2)
    assert loss.shape == () and loss.dtype == z1.dtype and torch.isfinite(loss)
    assert all(s == "optimal" for s in loss_fn.last_info.status) or caught
    if not all(s == "optimal" for s in loss_fn.last_info.status):
        return
    expected = reference_loss(z1.double().numpy(), z2.double().numpy(), **hypers)
    rtol = 1e-6 if z1.dtype == torch.float64 else 1e-3
    assert float(loss) == pytest.approx(expected, rel=rtol, abs=rtol)


@pytest.mark.parametrize("backend", ["qpth", "cvxpylayers"])
def test_the_external_backends_give_the_reference_loss(backend):
    gen = torch.Generator().manual_seed(1)
    z1 = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    z2 = z1 + 0.3 * torch.randn(3, 2, generator=gen, dtype=torch.float64)
    hypers = dict(kernel="rbf", sigma=1.0, C=None, rho=0.1, degree=3, coef0=0.5)
    loss = MMCLLoss(backend=backend, **hypers)(z1, z2)
    expected = reference_loss(z1.numpy(), z2.numpy(), **hypers)
    assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-6)


@settings(FAST, max_examples=20)
@given(views=embeddings(dtype=torch.float64), k=st.integers(-8, 15))
def test_the_loss_does_not_depend_on_the_scale_of_the_embeddings(views, k):
    z1, z2 = views
    loss_fn = MMCLLoss(kernel="rbf", sigma=1.0)
    base = loss_fn(z1, z2)
    scaled = loss_fn(z1 * 10.0**k, z2 * 10.0**k)
    assert float(scaled) == pytest.approx(float(base), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("scale", [1e-20, 1e-300, 1e160, 1e300])
def test_the_loss_is_scale_invariant_at_extreme_scales(scale):
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    z2 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    loss_fn = MMCLLoss()
    assert float(loss_fn(z1 * scale, z2 * scale)) == pytest.approx(float(loss_fn(z1, z2)))


def test_an_overflowing_polynomial_kernel_is_refused_naming_degree():
    z = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ConstrainedPairsError, match="degree|coef0"):
        MMCLLoss(kernel="poly", degree=3000)(z, z)


# -- constructor options ---------------------------------------------------------------------------
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.sampled_from([0.0, 1e-300, 1e300, -1.0, math.nan, math.inf, -math.inf, 2.5]),
    st.sampled_from(["rbf", "linear", "poly", "detach", "implicit", "structured", "qpth", "x"]),
    st.just(torch.tensor(1.0)),
    st.just(1j),
)


def _valid(name: str, value) -> bool:
    real = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        or (isinstance(value, torch.Tensor) and value.numel() == 1)
    )
    number = float(value) if real else None
    finite = number is not None and math.isfinite(number)
    if name == "kernel":
        return value in ("rbf", "linear", "poly")
    if name == "grad":
        return value in ("detach", "implicit")
    if name == "backend":
        return value in ("structured", "native", "qpth", "cvxpylayers")
    if name in ("sigma", "rho"):
        return finite and number > 0
    if name == "C":
        return value is None or (finite and number > 0)
    if name == "coef0":
        return finite and number >= 0
    if name == "tol":
        return value is None or (finite and number > 0 and not isinstance(value, torch.Tensor))
    if name in ("degree", "max_iter"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        return ok or (name == "max_iter" and value is None)
    if name == "gather":
        return value is None or isinstance(value, bool)
    raise AssertionError(name)


NAMES = ["kernel", "sigma", "C", "rho", "grad", "backend", "degree", "coef0", "tol", "max_iter"]


@settings(FAST, max_examples=60)
@given(name=st.sampled_from([*NAMES, "gather"]), value=VALUES)
def test_constructor_options_are_accepted_or_refused_by_name(name, value):
    try:
        loss_fn = MMCLLoss(**{name: value})
    except ConstrainedPairsError as exc:
        assert name in str(exc), (name, value, str(exc))
        assert not _valid(name, value), (name, value, str(exc))
        return
    assert _valid(name, value), (name, value)
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    if loss_fn.backend in ("structured", "native"):  # the external backends are slow
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert torch.isfinite(loss_fn(z1, z1.flip(0)))


# -- forward inputs --------------------------------------------------------------------------------
BAD_VIEWS = [
    ("z1", InvalidTypeError, lambda z1, z2: (z1.tolist(), z2)),
    ("z2", InvalidTypeError, lambda z1, z2: (z1, z2.numpy())),
    ("z1", InvalidTypeError, lambda z1, z2: (z1.long(), z2.long())),
    ("z2", InvalidTypeError, lambda z1, z2: (z1, z2 > 0)),
    ("z1", InvalidTypeError, lambda z1, z2: (z1.to(torch.complex128), z2)),
    ("z1", None, lambda z1, z2: (z1.half(), z2.half())),
    ("z2", None, lambda z1, z2: (z1.bfloat16(), z2.bfloat16())),
    ("z2", InvalidTypeError, lambda z1, z2: (z1.float(), z2.double())),
    ("z1", None, lambda z1, z2: (torch.full_like(z1, math.nan), z2)),
    ("z2", None, lambda z1, z2: (z1, torch.full_like(z2, math.inf))),
    ("z1", None, lambda z1, z2: (z1[0], z2[0])),
    ("z1", None, lambda z1, z2: (z1[:1], z2[:1])),
    ("z1", None, lambda z1, z2: (z1[:0], z2[:0])),
    ("z2", None, lambda z1, z2: (z1, z2[:, :1] if z2.shape[1] > 1 else z2[:1])),
    ("z1", None, lambda z1, z2: (z1[None], z2[None])),
]


@FAST
@given(views=embeddings(), bad=st.sampled_from(BAD_VIEWS))
def test_bad_views_are_refused_naming_them(views, bad):
    name, error, damage = bad
    z1, z2 = damage(*views)
    with pytest.raises(ConstrainedPairsError) as caught:
        MMCLLoss()(z1, z2)
    message = str(caught.value)
    assert name in message or "batch" in message, message
    if error is not None:
        assert isinstance(caught.value, error)
