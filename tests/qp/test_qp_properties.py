"""Property-based checks of the QP layer (issue 12's contract; SPEC §3): ``solve_qp`` on its
three backends and ``svm_duals``.

Every generated call either raises a package error naming the offending argument or returns a
point; an ``optimal`` point lies inside the bounds, meets ``Az = b`` and reaches the minimum that
a brute-force enumeration of active sets finds (n <= 3); any other status comes with a
``RuntimeWarning``; non-convex problems are never ``optimal``. Lists, arrays and tensors give the
same point, integer data the same point as their float conversion, and scaling the objective by
10^k leaves the minimiser unchanged.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from constrained_pairs.errors import ConstrainedPairsError, InvalidArgumentError, InvalidTypeError
from constrained_pairs.qp import solve_qp, svm_duals
from constrained_pairs.status import Status

FAST = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# -- the independent reference ---------------------------------------------------------------------
def brute_minimum(Q, p, lower, upper, A=None, b=None) -> float | None:
    """min ½zᵀQz + pᵀz over lower <= z <= upper, Az = b (Q PSD, n <= 3) by enumerating which
    variables sit at a finite bound: the minimum is a stationary point of one face problem.
    Returns None when no face has a feasible stationary point (an unbounded problem)."""
    Q, p = np.asarray(Q, float), np.asarray(p, float)
    n = len(p)
    lower = np.broadcast_to(np.asarray(-np.inf if lower is None else lower, float), (n,))
    upper = np.broadcast_to(np.asarray(np.inf if upper is None else upper, float), (n,))
    A = np.zeros((0, n)) if A is None else np.asarray(A, float)
    b = np.zeros(0) if b is None else np.asarray(b, float)
    best = None
    for states in itertools.product(("free", "lower", "upper"), repeat=n):
        z = np.zeros(n)
        fixed = np.array([s != "free" for s in states])
        if any(
            (s == "lower" and not np.isfinite(lo)) or (s == "upper" and not np.isfinite(up))
            for s, lo, up in zip(states, lower, upper)
        ):
            continue
        z[fixed] = [
            lower[i] if s == "lower" else upper[i] for i, s in enumerate(states) if fixed[i]
        ]
        free = ~fixed
        k, f = A.shape[0], int(free.sum())
        kkt = np.block([[Q[np.ix_(free, free)], A[:, free].T], [A[:, free], np.zeros((k, k))]])
        rhs = np.concatenate(
            [-p[free] - Q[np.ix_(free, fixed)] @ z[fixed], b - A[:, fixed] @ z[fixed]]
        )
        if kkt.size:
            sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
            if np.abs(kkt @ sol - rhs).max(initial=0) > 1e-9 * (1 + np.abs(rhs).max(initial=0)):
                continue  # no stationary point on this face
            z[free] = sol[:f]
        elif np.abs(b).max(initial=0) > 1e-12:
            continue
        slack = 1e-9 * (1 + np.abs(z).max())
        if np.any(z < lower - slack) or np.any(z > upper + slack):
            continue
        value = 0.5 * z @ Q @ z + p @ z
        best = value if best is None else min(best, value)
    return best


def _value(Q, p, z) -> float:
    Q, p, z = (np.asarray(t, float) for t in (Q, p, z))
    return float(0.5 * z @ Q @ z + p @ z)


@st.composite
def convex_qps(draw, max_n=3, equality=True):
    """A convex QP with small integer data: Q = XXᵀ (+ I), optional box and equality rows."""
    n = draw(st.integers(1, max_n))
    ints = st.integers(-3, 3)
    X = np.array(draw(st.lists(ints, min_size=n * n, max_size=n * n)), float).reshape(n, n)
    Q = X @ X.T + (np.eye(n) if draw(st.booleans()) else 0)
    p = np.array(draw(st.lists(ints, min_size=n, max_size=n)), float)
    kind = draw(st.sampled_from(["box", "lower", "upper", "none", "mixed"]))
    lower = upper = None
    if kind in ("box", "lower", "mixed"):
        lower = np.array(draw(st.lists(st.integers(-2, 0), min_size=n, max_size=n)), float)
    if kind in ("box", "upper", "mixed"):
        upper = np.array(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)), float)
    if kind == "mixed":
        lower[0], upper[-1] = -np.inf, np.inf
    A = b = None
    if equality and draw(st.booleans()):
        A = np.array([draw(st.lists(st.integers(-1, 1), min_size=n, max_size=n))], float)
        assume(np.abs(A).sum() > 0)
        inside = np.zeros(n) if lower is None else np.maximum(lower, 0)
        if upper is not None:
            inside = np.minimum(inside, upper)
        b = A @ inside  # a feasible point exists
    return Q, p, lower, upper, A, b


def _solve(*args, **kwargs):
    """solve_qp with the warnings it raised (a non-optimal status must come with one)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        z, info = solve_qp(*args, return_info=True, **kwargs)
    return z, info, [w for w in caught if issubclass(w.category, RuntimeWarning)]


def _check_point(Q, p, lower, upper, A, b, z, info, warned, *, rel=1e-6):
    """The contract on one returned point (unbatched)."""
    assert len(info.status) == 1 and info.status[0] in set(Status)
    if info.status[0] != Status.OPTIMAL:
        assert warned, f"status {info.status[0]} without a RuntimeWarning"
        return
    z = z.detach().double().numpy()
    assert np.all(np.isfinite(z))
    n = len(z)
    lo = np.full(n, -np.inf) if lower is None else np.asarray(lower, float)
    up = np.full(n, np.inf) if upper is None else np.asarray(upper, float)
    slack = 1e-7 * (1 + np.abs(z).max())
    assert np.all(z >= lo - slack) and np.all(z <= up + slack)
    if A is not None:
        assert np.abs(np.asarray(A) @ z - np.asarray(b)).max() <= 1e-6 * (1 + np.abs(b).max())
    best = brute_minimum(Q, p, lower, upper, A, b)
    assert best is not None, "optimal reported for a problem without a minimiser"
    scale = 1 + abs(best) + np.abs(Q).max() * (1 + np.abs(z).max()) ** 2
    assert _value(Q, p, z) <= best + rel * scale, (_value(Q, p, z), best)


# -- native backend: correctness -------------------------------------------------------------------
@FAST
@given(qp=convex_qps())
def test_native_optimal_points_are_feasible_minimisers(qp):
    Q, p, lower, upper, A, b = qp
    t = lambda v: None if v is None else torch.as_tensor(v, dtype=torch.float64)  # noqa: E731
    z, info, warned = _solve(t(Q), t(p), t(lower), t(upper), t(A), t(b))
    _check_point(Q, p, lower, upper, A, b, z, info, warned)
    if brute_minimum(Q, p, lower, upper, A, b) is not None and np.linalg.eigvalsh(Q).min() > 0.5:
        assert info.status[0] == Status.OPTIMAL  # a strictly convex, bounded problem is solved


@FAST
@given(qp=convex_qps(), kind=st.sampled_from(["list", "numpy", "int tensor", "int numpy"]))
def test_lists_arrays_and_integers_give_the_float_tensor_point(qp, kind):
    Q, p, lower, upper, A, b = qp
    convert = {
        "list": lambda v: v.tolist(),
        "numpy": lambda v: v,
        "int tensor": lambda v: torch.as_tensor(v.astype(np.int64)),
        "int numpy": lambda v: v.astype(np.int64),
    }[kind]
    # bounds keep their float form when given as tensors (they may hold ±inf)
    Qc, pc, Ac, bc = (None if v is None else convert(v) for v in (Q, p, A, b))
    if kind.startswith("int"):
        lower_c, upper_c = (
            None if v is None else torch.as_tensor(v, dtype=torch.float64) for v in (lower, upper)
        )
        # the documented rule: a floating tensor argument sets the dtype, else the default one
        dtype = torch.float64 if lower_c is not None or upper_c is not None else None
        dtype = dtype or torch.get_default_dtype()
    else:
        lower_c, upper_c = (None if v is None else convert(v) for v in (lower, upper))
        dtype = torch.float64  # float lists and arrays are float64
    as_tensor = lambda v: None if v is None else torch.as_tensor(v, dtype=dtype)  # noqa: E731
    reference, ref_info, _ = _solve(*(as_tensor(v) for v in (Q, p, lower, upper, A, b)))
    z, info, _ = _solve(Qc, pc, lower_c, upper_c, Ac, bc)
    assert z.dtype == dtype
    assert info.status == ref_info.status
    assert torch.equal(z, reference)


@FAST
@given(qp=convex_qps(equality=False), k=st.integers(-150, 150))
def test_scaling_the_objective_leaves_the_minimiser_unchanged(qp, k):
    Q, p, lower, upper, _, _ = qp
    assume(np.linalg.eigvalsh(Q).min() > 0.5)  # a unique minimiser
    t = lambda v: None if v is None else torch.as_tensor(v, dtype=torch.float64)  # noqa: E731
    s = 10.0**k
    base, base_info, _ = _solve(t(Q), t(p), t(lower), t(upper))
    z, info, warned = _solve(t(Q * s), t(p * s), t(lower), t(upper))
    assert base_info.status[0] == Status.OPTIMAL
    if info.status[0] == Status.OPTIMAL:
        torch.testing.assert_close(z, base, rtol=1e-6, atol=1e-6)
    else:
        assert warned


@FAST
@given(
    n=st.integers(1, 3),
    negative=st.floats(-1e3, -1e-3),
    p=st.floats(-2, 2),
    kind=st.sampled_from(["box", "lower", "none"]),
    check=st.sampled_from([None, True]),
)
def test_nonconvex_problems_are_never_optimal(n, negative, p, kind, check):
    """Q with a negative eigenvalue: status ``nonconvex`` with a warning, never ``optimal``."""
    Q = torch.eye(n, dtype=torch.float64)
    Q[0, 0] = negative
    lower = 0.0 if kind in ("box", "lower") else None
    upper = 1.0 if kind == "box" else None
    z, info, warned = _solve(
        Q, torch.full((n,), p, dtype=torch.float64), lower, upper, check_convexity=check
    )
    assert info.status[0] == Status.NONCONVEX, info.status
    assert warned and not bool(info.converged.any())


@FAST
@given(
    n=st.integers(1, 3),
    p=st.floats(-5, -0.1),
)
def test_unbounded_problems_are_never_optimal(n, p):
    """Q = 0 and a descent direction no bound stops: ``unbounded`` with a warning."""
    Q = torch.zeros(n, n, dtype=torch.float64)
    z, info, warned = _solve(Q, torch.full((n,), p, dtype=torch.float64), lower=0.0)
    assert info.status[0] == Status.UNBOUNDED, info.status
    assert warned


# -- refused inputs --------------------------------------------------------------------------------
def _q(n=2, dtype=torch.float64):
    return torch.eye(n, dtype=dtype) * 2


BAD_CALLS = [
    # (names the message must contain, error class or None, arguments)
    (
        ("Q", "p"),
        InvalidTypeError,
        lambda: dict(Q=_q(dtype=torch.float32), p=torch.ones(2, dtype=torch.float64)),
    ),
    (("Q",), InvalidArgumentError, lambda: dict(Q=_q(dtype=torch.float16), p=[1.0, 1.0])),
    (
        ("p",),
        InvalidArgumentError,
        lambda: dict(Q=[[2.0, 0.0], [0.0, 2.0]], p=torch.ones(2, dtype=torch.bfloat16)),
    ),
    (("Q",), InvalidTypeError, lambda: dict(Q=_q().to(torch.complex128), p=torch.ones(2))),
    (("Q",), InvalidTypeError, lambda: dict(Q=_q() > 0, p=[1.0, 1.0])),
    (("p",), InvalidTypeError, lambda: dict(Q=_q(), p=np.array([1 + 1j, 0]))),
    (("Q",), InvalidTypeError, lambda: dict(Q="Q", p=[1.0, 1.0])),
    (("Q",), None, lambda: dict(Q=torch.ones(2, 3, dtype=torch.float64), p=torch.ones(2))),
    (("Q",), None, lambda: dict(Q=torch.ones(2, dtype=torch.float64), p=torch.ones(2))),
    (("Q",), None, lambda: dict(Q=torch.zeros(0, 0, dtype=torch.float64), p=torch.zeros(0))),
    (("Q",), None, lambda: dict(Q=torch.full((2, 2), math.nan, dtype=torch.float64), p=[1.0, 1.0])),
    (("Q",), None, lambda: dict(Q=torch.full((2, 2), math.inf, dtype=torch.float64), p=[1.0, 1.0])),
    (("p",), None, lambda: dict(Q=_q(), p=torch.ones(3, dtype=torch.float64))),
    (("p",), None, lambda: dict(Q=_q(), p=[math.nan, 1.0])),
    (("p",), None, lambda: dict(Q=_q(), p=[math.inf, 1.0])),
    (("p",), None, lambda: dict(Q=_q(), p=[1e308 * 10, 1.0])),
    (("lower",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], lower=math.nan)),
    (("lower",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], lower=math.inf)),
    (("upper",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], upper=-math.inf)),
    (("lower",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], lower=1.0, upper=0.0)),
    (("lower",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], lower=[0.0, 0.0, 0.0])),
    (
        ("upper",),
        None,
        lambda: dict(
            Q=_q(),
            p=torch.ones(2, 2, dtype=torch.float64),
            upper=torch.ones(3, 2, dtype=torch.float64),
        ),
    ),
    (("A", "b"), None, lambda: dict(Q=_q(), p=[1.0, 1.0], A=[[1.0, 1.0]])),
    (("A",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], A=[[1.0, 1.0, 1.0]], b=[1.0])),
    (("b",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], A=[[1.0, 1.0]], b=[1.0, 2.0])),
    (
        ("Az = b",),
        None,
        lambda: dict(Q=_q(), p=[1.0, 1.0], A=[[1.0, 1.0], [1.0, 1.0]], b=[1.0, 2.0]),
    ),
    (
        ("Az = b",),
        None,
        lambda: dict(Q=_q(), p=[1.0, 1.0], lower=0.0, upper=1.0, A=[[1.0, 1.0]], b=[3.0]),
    ),
    (
        ("batch",),
        None,
        lambda: dict(Q=_q().expand(2, 2, 2), p=torch.ones(3, 2, dtype=torch.float64)),
    ),
    (("backend",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], backend="gurobi")),
    (("tol",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], tol=0.0)),
    (("tol",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], tol=math.nan)),
    (("tol",), InvalidTypeError, lambda: dict(Q=_q(), p=[1.0, 1.0], tol="1e-8")),
    (("max_iter",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], max_iter=0)),
    (("max_iter",), InvalidTypeError, lambda: dict(Q=_q(), p=[1.0, 1.0], max_iter=2.0)),
    (("max_iter",), InvalidTypeError, lambda: dict(Q=_q(), p=[1.0, 1.0], max_iter=True)),
    (("check_convexity",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], check_convexity=1)),
    (("return_info",), None, lambda: dict(Q=_q(), p=[1.0, 1.0], return_info="yes")),
]


@settings(FAST, max_examples=60)
@given(call=st.sampled_from(BAD_CALLS), backend=st.sampled_from(["native", "qpth", "cvxpylayers"]))
def test_bad_inputs_are_refused_naming_the_argument(call, backend):
    names, error, arguments = call
    arguments = {"backend": backend, **arguments()}
    with pytest.raises(ConstrainedPairsError) as caught:
        solve_qp(**arguments)
    assert any(name in str(caught.value) for name in names), (names, str(caught.value))
    if error is not None:
        assert isinstance(caught.value, error)


# -- external backends: a few tiny cases -----------------------------------------------------------
@settings(FAST, max_examples=4)
@given(qp=convex_qps(max_n=2, equality=False), backend=st.sampled_from(["qpth", "cvxpylayers"]))
def test_external_backends_return_feasible_minimisers_or_say_why_not(qp, backend):
    Q, p, lower, upper, _, _ = qp
    if backend == "qpth":  # qpth's interior point needs a strictly convex Q
        Q = Q + np.eye(len(p))
    t = lambda v: None if v is None else torch.as_tensor(v, dtype=torch.float64)  # noqa: E731
    try:
        z, info, warned = _solve(t(Q), t(p), t(lower), t(upper), backend=backend)
    except ConstrainedPairsError as exc:  # a documented limitation of the backend, named
        assert backend in str(exc), str(exc)
        return
    _check_point(Q, p, lower, upper, None, None, z, info, warned, rel=1e-4)


@pytest.mark.parametrize("backend", ["native", "qpth", "cvxpylayers"])
def test_a_concave_qp_is_reported_nonconvex_by_every_backend(backend):
    Q = -torch.eye(2, dtype=torch.float64)
    z, info, warned = _solve(
        Q, torch.full((2,), 0.1, dtype=torch.float64), 0.0, 1.0, backend=backend
    )
    assert info.status == (Status.NONCONVEX,) and warned


# -- svm_duals ------------------------------------------------------------------------------------
@st.composite
def kernels(draw):
    B, d = draw(st.integers(2, 4)), draw(st.integers(1, 3))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = torch.nn.functional.normalize(torch.randn(B, d, generator=gen, dtype=torch.float64), dim=1)
    if draw(st.booleans()):
        K = torch.exp(-(torch.cdist(x, x) ** 2) / draw(st.sampled_from([0.5, 5.0])))
    else:
        K = x @ x.T
    rho = draw(st.sampled_from([1e-3, 0.1, 1.0, 10.0]))
    C = draw(st.sampled_from([None, 0.5, 2.0, 100.0]))
    return K, rho, C


@FAST
@given(case=kernels())
def test_svm_duals_reach_the_brute_force_minimum_of_every_anchor(case):
    K, rho, C = case
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        beta, info = svm_duals(K, rho=rho, C=C, return_info=True)
    B = K.shape[0]
    assert beta.shape == (B, B) and torch.all(beta.diagonal() == 0)
    for t in range(B):
        if info.status[t] != Status.OPTIMAL:
            assert caught
            continue
        neg = [j for j in range(B) if j != t]
        k = K.numpy()
        Qt = np.array(
            [[k[t, t] + rho * (i == j) + k[i, j] - k[t, i] - k[t, j] for j in neg] for i in neg]
        )
        p = -2 * np.ones(B - 1)
        bt = beta[t, neg].numpy()
        assert np.all(bt >= -1e-9) and (C is None or np.all(bt <= C + 1e-9))
        best = brute_minimum(Qt, p, np.zeros(B - 1), None if C is None else np.full(B - 1, C))
        assert _value(Qt, p, bt) <= best + 1e-6 * (1 + abs(best))


SVM_BAD = [
    (("kernel",), InvalidTypeError, lambda K: dict(kernel=K.tolist())),
    (("kernel",), InvalidTypeError, lambda K: dict(kernel=K.long())),
    (("kernel",), InvalidTypeError, lambda K: dict(kernel=K.to(torch.complex128))),
    (("kernel",), InvalidTypeError, lambda K: dict(kernel=K.half())),
    (("kernel",), None, lambda K: dict(kernel=K[0])),
    (("kernel",), None, lambda K: dict(kernel=K[:, :1])),
    (("kernel",), None, lambda K: dict(kernel=K[:1, :1])),
    (("kernel",), None, lambda K: dict(kernel=K * math.nan)),
    (("rho",), None, lambda K: dict(rho=0.0)),
    (("rho",), None, lambda K: dict(rho=-1.0)),
    (("rho",), None, lambda K: dict(rho=math.inf)),
    (("rho",), InvalidTypeError, lambda K: dict(rho="0.1")),
    (("C",), None, lambda K: dict(C=0.0)),
    (("C",), None, lambda K: dict(C=math.nan)),
    (("C",), InvalidTypeError, lambda K: dict(C=True)),
    (("grad",), None, lambda K: dict(grad="unrolled")),
    (("tol",), None, lambda K: dict(tol=-1.0)),
    (("max_iter",), None, lambda K: dict(max_iter=0)),
    (("return_info",), None, lambda K: dict(return_info=None)),
    (("anchors",), InvalidTypeError, lambda K: dict(anchors=[0])),
    (("anchors",), None, lambda K: dict(anchors=torch.tensor([0, 0]))),
    (("anchors",), None, lambda K: dict(anchors=torch.tensor([K.shape[0]]))),
    (("anchors",), None, lambda K: dict(anchors=torch.tensor([], dtype=torch.long))),
]


@FAST
@given(case=kernels(), bad=st.sampled_from(SVM_BAD))
def test_svm_duals_refuse_bad_arguments_by_name(case, bad):
    K, rho, C = case
    names, error, damage = bad
    arguments = {"kernel": K, "rho": rho, "C": C, **damage(K)}
    with pytest.raises(ConstrainedPairsError) as caught:
        svm_duals(**arguments)
    assert any(name in str(caught.value) for name in names), (names, str(caught.value))
    if error is not None:
        assert isinstance(caught.value, error)


def test_svm_duals_never_call_an_indefinite_anchor_problem_optimal():
    from constrained_pairs.qp import explicit_q

    K = torch.tensor(
        [[-58.5, -41.9, -123.8], [-41.9, 99.0, 35.4], [-123.8, 35.4, -128.0]],
        dtype=torch.float64,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, info = svm_duals(K, rho=1.0, return_info=True)
    lowest = torch.linalg.eigvalsh(explicit_q(K, 1.0))[:, 0]
    assert float(lowest[0]) < -50
    assert info.status[0] == Status.NONCONVEX
