"""Property-based checks of the data-join entry points (issue 12's contract; SPEC §2):
``PairProblem``, ``objective`` and ``wasserstein_radius``.

Every generated call either raises a package error naming the offending argument or returns a
result that matches an independent reference: lists, numpy arrays and tensors of the same values
give the same problem, integer features equal their float conversion, D̄ is the brute-force mean
over the pairs, Ω is the pair-by-pair sum of ``tests/helpers/join_reference.py``, W₁ is an
assignment problem (n_A = n_P) or the 1-D quantile formula, and the exact optimum is invariant
when the data, the radii and κ_P are scaled together.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment
from scipy.stats import wasserstein_distance

import constrained_pairs as cp
from constrained_pairs.errors import ConstrainedPairsError, InvalidTypeError
from tests.helpers.join_reference import brute_objective

FAST = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
DTYPES = {
    "int64": (np.int64, torch.int64),
    "uint8": (np.uint8, torch.uint8),
    "bool": (np.bool_, torch.bool),
    "complex64": (np.complex64, torch.complex64),
    "float16": (np.float16, torch.float16),
    "bfloat16": (None, torch.bfloat16),
    "float32": (np.float32, torch.float32),
    "float64": (np.float64, torch.float64),
}
REFUSED_DTYPES = {"bool", "complex64", "float16", "bfloat16"}
SPECIALS = st.sampled_from([None, math.nan, math.inf, -math.inf, 1e300, -1e300, 1e-300])


def _container(values: np.ndarray, dtype: str, kind: str):
    """``values`` as a list, numpy array or tensor of ``dtype`` (bfloat16: tensors only)."""
    np_dtype, torch_dtype = DTYPES[dtype]
    if np_dtype is None or kind == "tensor":
        return torch.as_tensor(np.asarray(values, dtype=np.float64)).to(torch_dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # 1e300 as float16 is inf, as refused
        array = np.asarray(values).astype(np_dtype)
    return array.tolist() if kind == "list" else array


def _refusal(exc: ConstrainedPairsError, *names: str) -> None:
    """The contract's error: a package error whose message names one of ``names``."""
    assert any(name in str(exc) for name in names), (names, str(exc))


def _brute_mean_distance(x_a: np.ndarray, x_p: np.ndarray, pairs) -> float:
    """Σ_M ‖x_i − x_j‖ / |M| in float64, scaled first so 1e±300 data do not overflow."""
    unit = max(np.abs(x_a).max(), np.abs(x_p).max(), 1e-300)
    total = sum(np.linalg.norm((x_a[i] - x_p[j]) / unit) for i, j in pairs)
    return float(total * unit / len(pairs))


@st.composite
def feature_sets(draw):
    n_a, n_p, d = draw(st.integers(1, 4)), draw(st.integers(2, 4)), draw(st.integers(1, 3))
    x_a = np.array(draw(st.lists(st.integers(0, 9), min_size=n_a * d, max_size=n_a * d)))
    x_p = np.array(draw(st.lists(st.integers(0, 9), min_size=n_p * d, max_size=n_p * d)))
    return x_a.reshape(n_a, d).astype(np.float64), x_p.reshape(n_p, d).astype(np.float64)


# -- PairProblem: features -------------------------------------------------------------------------
@settings(FAST, max_examples=40)
@given(
    data=feature_sets(),
    target=st.sampled_from(["x_a", "x_p", "aux_a"]),
    dtype=st.sampled_from(sorted(DTYPES)),
    kind=st.sampled_from(["list", "numpy", "tensor"]),
    special=SPECIALS,
    shape=st.sampled_from(["ok", "empty", "1-D", "wider"]),
)
def test_features_are_converted_or_refused_by_name(data, target, dtype, kind, special, shape):
    x_a, x_p = data
    arrays = {"x_a": x_a, "x_p": x_p, "aux_a": x_a[:, ::-1] + 1.0}
    value = arrays[target].copy()
    if special is not None:
        value[0, 0] = special
    if shape == "empty":
        value = value[:0]
    elif shape == "1-D":
        value = value[:, 0]
    elif shape == "wider":  # aux_a may have any width; x_a and x_p must share theirs
        value = np.concatenate([value, value[:, :1]], axis=1)
    if special is not None:
        assume(dtype not in ("int64", "uint8", "bool"))  # they cannot hold NaN / inf / 1e300
    given = _container(value, dtype, kind)
    if kind == "list" and dtype != "bfloat16":  # a list holds Python numbers: its own dtype
        dtype = {"float16": "float64", "float32": "float64", "uint8": "int64"}.get(dtype, dtype)
        if DTYPES[dtype][1].is_floating_point:
            value = np.asarray(given, dtype=np.float64).reshape(value.shape)
    np_dtype, torch_dtype = DTYPES[dtype]
    arguments = {**arrays, target: given}
    y_p = [j % 2 for j in range(len(x_p))]
    valid_shape = shape == "ok" or (target == "aux_a" and shape == "wider")
    try:
        problem = cp.PairProblem(
            arguments["x_a"], arguments["x_p"], y_p, arguments["aux_a"], r_a=1.0, r_p=1.0
        )
    except ConstrainedPairsError as exc:
        _refusal(exc, target)
        converted = torch.as_tensor(np.asarray(value, dtype=np.float64)).to(torch_dtype)
        finite = bool(torch.isfinite(converted.to(torch.complex128).abs()).all())
        assert dtype in REFUSED_DTYPES or not valid_shape or not finite, str(exc)
        if dtype in ("bool", "complex64") and value.size:  # an empty list has no dtype
            assert isinstance(exc, InvalidTypeError)
        return
    assert dtype not in REFUSED_DTYPES and valid_shape
    # the float tensor of the same values is the reference: lists, arrays, integers agree
    if torch_dtype.is_floating_point:
        expected = torch.as_tensor(np.asarray(value, dtype=np.float64)).to(torch_dtype).double()
    else:
        expected = torch.as_tensor(value.astype(np_dtype).astype(np.float64))
    assert problem.dtype == torch.float64  # promoted with the other arrays' float64
    assert torch.equal(getattr(problem, target), expected)
    assert torch.isfinite(problem.x_a).all() and torch.isfinite(problem.aux_a).all()
    reference = {**arrays, target: expected}
    pairs = list(itertools.product(range(problem.n_a), range(problem.n_p)))
    brute = _brute_mean_distance(np.asarray(reference["x_a"]), np.asarray(reference["x_p"]), pairs)
    assert problem.mean_distance == pytest.approx(brute, rel=1e-12, abs=0)


@settings(FAST, max_examples=20)
@given(
    dtype=st.sampled_from([*(t for _, t in DTYPES.values()), "float64", None]),
    device=st.sampled_from([None, "cpu", torch.device("cpu"), "cuda", "cuda:7", "tpu", 3]),
)
def test_moving_a_problem_converts_floats_exactly_or_refuses_by_name(dtype, device):
    x = torch.tensor([[0.5, 1.0], [2.0, 0.25], [1.0, 3.0]], dtype=torch.float64)
    problem = cp.PairProblem(x, x.flip(0), [0, 1, 1], x + 1, r_a=1.0, r_p=1.0)
    cuda = torch.cuda.is_available()
    valid_device = device in (None, "cpu", torch.device("cpu")) or (cuda and device == "cuda")
    valid_dtype = dtype in (None, torch.float32, torch.float64)
    try:
        moved = problem.to(device=device, dtype=dtype)
    except ConstrainedPairsError as exc:
        assert not (valid_device and valid_dtype), str(exc)
        _refusal(exc, "dtype" if not valid_dtype else "device")
        return
    assert valid_device and valid_dtype
    target = dtype or torch.float64
    assert moved.dtype == target and moved.y_p.dtype == torch.int64
    for name in ("x_a", "x_p", "aux_a"):
        assert torch.equal(getattr(moved, name).cpu(), getattr(problem, name).to(target))
    assert moved.mean_distance == pytest.approx(problem.mean_distance, rel=1e-6, abs=0)


@FAST
@given(data=feature_sets(), kind=st.sampled_from(["list", "numpy", "tensor"]))
def test_integer_features_equal_their_float_conversion(data, kind):
    x_a, x_p = data
    y_p = [j % 2 for j in range(len(x_p))]
    as_int = _container(x_a, "uint8", kind)
    problem = cp.PairProblem(as_int, _container(x_p, "int64", kind), y_p, r_a=1.0, r_p=1.0)
    floats = cp.PairProblem(
        torch.tensor(x_a, dtype=torch.get_default_dtype()),
        torch.tensor(x_p, dtype=torch.get_default_dtype()),
        torch.tensor(y_p),
        r_a=1.0,
        r_p=1.0,
    )
    assert problem.dtype == torch.get_default_dtype()
    assert torch.equal(problem.x_a, floats.x_a) and torch.equal(problem.x_p, floats.x_p)
    assert problem.mean_distance == floats.mean_distance
    theta = torch.ones(2, x_a.shape[1], dtype=problem.dtype)
    for regime in ("A", "P"):
        point = dict(theta1=theta, alpha_a=0.5, alpha_p=0.5, regime=regime)
        assert torch.equal(cp.objective(problem, **point), cp.objective(floats, **point))


# -- PairProblem: pairs ----------------------------------------------------------------------------
@FAST
@given(
    n_a=st.integers(1, 4),
    n_p=st.integers(2, 4),
    rows=st.lists(st.tuples(st.integers(-1, 4), st.integers(-1, 4)), min_size=0, max_size=6),
    kind=st.sampled_from(["list", "numpy", "tensor", "index tensors", "float", "three columns"]),
)
def test_explicit_pairs_are_rows_i_j_for_every_input_type(n_a, n_p, rows, kind):
    x_a = torch.arange(n_a * 2, dtype=torch.float64).reshape(n_a, 2)
    x_p = torch.arange(n_p * 2, dtype=torch.float64).reshape(n_p, 2).flip(0)
    y_p = torch.arange(n_p) % 2
    table = np.array(rows, dtype=np.int64).reshape(-1, 2)
    given_pairs = {
        "list": table.tolist(),
        "numpy": table,
        "tensor": torch.as_tensor(table),
        "index tensors": (torch.as_tensor(table[:, 0]), torch.as_tensor(table[:, 1])),
        "float": table.astype(np.float64),
        "three columns": np.concatenate([table, table[:, :1]], axis=1),
    }[kind]
    valid_rows = (
        len(rows) > 0
        and all(0 <= i < n_a and 0 <= j < n_p for i, j in rows)
        and kind not in ("float", "three columns")
    )
    try:
        problem = cp.PairProblem(x_a, x_p, y_p, r_a=1.0, r_p=1.0, pairs=given_pairs)
    except ConstrainedPairsError as exc:
        _refusal(exc, "pairs")
        assert not valid_rows, str(exc)
        return
    assert valid_rows
    assert problem.pairs.index_a.tolist() == table[:, 0].tolist()
    assert problem.pairs.index_p.tolist() == table[:, 1].tolist()
    brute = _brute_mean_distance(x_a.numpy(), x_p.numpy(), rows)
    assert problem.mean_distance == pytest.approx(brute, rel=1e-12, abs=0)


def test_a_tuple_of_numpy_index_vectors_is_read_like_the_tensor_tuple_or_refused():
    x = torch.rand(5, 2, dtype=torch.float64)
    tensors = (torch.tensor([0, 1]), torch.tensor([3, 4]))
    expected = cp.PairProblem(x, x, [0, 1, 0, 1, 0], r_a=1.0, r_p=1.0, pairs=tensors)
    try:
        got = cp.PairProblem(
            x, x, [0, 1, 0, 1, 0], r_a=1.0, r_p=1.0, pairs=tuple(t.numpy() for t in tensors)
        )
    except ConstrainedPairsError as exc:
        _refusal(exc, "pairs")
        return
    assert got.pairs.index_p.tolist() == expected.pairs.index_p.tolist()


# -- PairProblem: scalar options -------------------------------------------------------------------
OPTION_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, -1e-9, math.nan, math.inf, -math.inf]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "median", "1.0", "all"]),
    st.just(1 + 2j),
    st.just(torch.tensor(0.5)),
    st.just(torch.tensor([0.5, 0.5])),
    st.just(np.float32(2.0)),
)


def _real(value) -> float | None:
    """``value`` as a float when it is a real number (not bool/str/complex), else None."""
    if isinstance(value, torch.Tensor):
        return float(value) if value.numel() == 1 else None
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        return None
    return float(value)


def _option_valid(name: str, value) -> bool:
    number = _real(value)
    if name in ("r_a", "r_p", "kappa_a", "kappa_p"):
        return number is not None and math.isfinite(number) and number >= 0
    if name == "scale":
        if value is None or value == "median":
            return True
        return number is not None and math.isfinite(number) and number > 0
    if name in ("knn", "num_classes"):
        low = 1 if name == "knn" else 2
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        return ok or (name == "num_classes" and value is None)
    raise AssertionError(name)


@settings(FAST, max_examples=40)
@given(
    name=st.sampled_from(["r_a", "r_p", "kappa_a", "kappa_p", "scale", "knn", "num_classes"]),
    value=OPTION_VALUES,
)
def test_scalar_options_are_accepted_or_refused_by_name(name, value):
    x = torch.tensor([[0.0, 1.0], [2.0, 0.5], [1.0, 1.0]], dtype=torch.float64)
    options = {"r_a": 1.0, "r_p": 1.0, name: value}
    try:
        problem = cp.PairProblem(x, x.flip(0) + 0.25, [0, 1, 1], **options)
    except ConstrainedPairsError as exc:
        _refusal(exc, name)
        assert not _option_valid(name, value), (name, value, str(exc))
        return
    assert _option_valid(name, value), (name, value)
    if name in ("r_a", "r_p", "kappa_a", "kappa_p"):
        assert getattr(problem, name) == _real(value)
    if name == "scale" and _real(value) is not None:
        unscaled = cp.PairProblem(x, x.flip(0) + 0.25, [0, 1, 1], r_a=1.0, r_p=1.0)
        expected = unscaled.mean_distance / _real(value)
        assert problem.mean_distance == pytest.approx(expected, rel=1e-12, abs=0)


# -- objective -------------------------------------------------------------------------------------
@st.composite
def objective_cases(draw):
    n_a, n_p, d = draw(st.integers(1, 3)), draw(st.integers(2, 4)), draw(st.integers(1, 3))
    C = draw(st.integers(2, 3))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x_a = torch.randn(n_a, d, generator=gen, dtype=torch.float64)
    x_p = torch.randn(n_p, d, generator=gen, dtype=torch.float64)
    y_p = torch.arange(n_p) % C
    aux = torch.randn(n_a, 2, generator=gen, dtype=torch.float64) if draw(st.booleans()) else None
    hinge = draw(st.sampled_from(["margin", "seed"] + (["reference"] if C == 2 else [])))
    explicit = draw(st.booleans())
    pairs = "all"
    if explicit:
        all_rows = list(itertools.product(range(n_a), range(n_p)))
        chosen = draw(st.lists(st.sampled_from(all_rows), min_size=1, max_size=5, unique=True))
        pairs = [list(r) for r in chosen]
    problem = cp.PairProblem(
        x_a,
        x_p,
        y_p,
        aux,
        r_a=draw(st.floats(0, 3)),
        r_p=draw(st.floats(0, 3)),
        kappa_a=draw(st.floats(0, 2)),
        kappa_p=draw(st.floats(0, 2)),
        num_classes=C,
        hinge=hinge,
        pairs=pairs,
        normalize=draw(st.sampled_from(["pairs", "seed"])),
        scale=draw(st.sampled_from([None, "median", 2.5])),
    )
    point = dict(
        theta1=torch.randn(C, d, generator=gen, dtype=torch.float64) * 2,
        theta2=torch.randn(C, 2, generator=gen, dtype=torch.float64) if aux is not None else None,
        bias=torch.randn(C, generator=gen, dtype=torch.float64) if draw(st.booleans()) else None,
        alpha_a=draw(st.floats(0, 3)),
        alpha_p=draw(st.floats(0, 3)),
        regime=draw(st.sampled_from(["A", "P"])),
    )
    return problem, point


@FAST
@given(case=objective_cases())
def test_objective_equals_the_pair_by_pair_float64_sum(case):
    problem, point = case
    assume(problem.scale != "median" or float(problem.distance_scale()) > 0)
    got = cp.objective(problem, **point)
    expected = brute_objective(
        problem,
        point["theta1"],
        point["theta2"],
        point["bias"],
        point["alpha_a"],
        point["alpha_p"],
        point["regime"],
    )
    assert got.dtype == torch.float64 and got.shape == ()
    assert float(got) == pytest.approx(float(expected), rel=1e-10, abs=1e-10)
    # integer heads are converted, float32 ones on a float64 problem too (exactly)
    rounded = {**point, "theta1": point["theta1"].round()}
    as_int = {**rounded, "theta1": rounded["theta1"].long()}
    assert torch.equal(cp.objective(problem, **as_int), cp.objective(problem, **rounded))


@FAST
@given(case=objective_cases(), k=st.integers(-300, 300))
def test_objective_is_invariant_to_the_data_unit_at_any_scale(case, k):
    """x, aux, r, κ_P times s and θ, α divided by s (b unchanged) give the same Ω (SPEC §2),
    for s = 10^k up to 1e±300 (with ``scale=None``: a distance scale would be a unit too)."""
    problem, point = case
    s = 10.0**k
    p = problem.replace(scale=None)
    scaled = cp.PairProblem(
        p.x_a * s,
        p.x_p * s,
        p.y_p,
        None if p.aux_a is None else p.aux_a * s,
        r_a=p.r_a * s,
        r_p=p.r_p * s,
        kappa_a=p.kappa_a,
        kappa_p=p.kappa_p * s,
        num_classes=p.num_classes,
        hinge=p.hinge,
        pairs=p.pairs,
        normalize=p.normalize,
    )
    moved = {
        **point,
        "theta1": point["theta1"] / s,
        "theta2": None if point["theta2"] is None else point["theta2"] / s,
        "alpha_a": point["alpha_a"] / s,
        "alpha_p": point["alpha_p"] / s,
    }
    expected = float(cp.objective(p, **point))
    assert float(cp.objective(scaled, **moved)) == pytest.approx(expected, rel=1e-9, abs=1e-9)


BAD_POINTS = [
    ("theta1", lambda t: t.tolist(), InvalidTypeError),
    ("theta1", lambda t: t.numpy(), InvalidTypeError),
    ("theta1", lambda t: t.to(torch.complex128), InvalidTypeError),
    ("theta1", lambda t: t > 0, InvalidTypeError),
    ("theta1", lambda t: t.half(), InvalidTypeError),
    ("theta1", lambda t: t[:, :1].contiguous() if t.shape[1] > 1 else t.T, None),
    ("theta1", lambda t: torch.full_like(t, math.nan), None),
    ("theta1", lambda t: torch.full_like(t, math.inf), None),
    ("bias", lambda t: torch.zeros(t.shape[0] + 1, dtype=t.dtype), None),
    ("bias", lambda t: [0.0] * t.shape[0], InvalidTypeError),
    ("alpha_a", lambda t: -1.0, None),
    ("alpha_a", lambda t: math.nan, None),
    ("alpha_p", lambda t: math.inf, None),
    ("alpha_p", lambda t: "1", InvalidTypeError),
    ("alpha_p", lambda t: True, InvalidTypeError),
    ("alpha_a", lambda t: torch.ones(2, dtype=t.dtype), None),
    ("alpha_a", lambda t: 1j, InvalidTypeError),
    ("regime", lambda t: "B", None),
    ("regime", lambda t: None, None),
]


@FAST
@given(case=objective_cases(), bad=st.sampled_from(BAD_POINTS))
def test_objective_refuses_bad_points_by_name(case, bad):
    problem, point = case
    name, damage, error = bad
    point = {**point, name: damage(point["theta1"])}
    with pytest.raises(ConstrainedPairsError) as caught:
        cp.objective(problem, **point)
    _refusal(caught.value, name)
    if error is not None:
        assert isinstance(caught.value, error)


def test_objective_refuses_a_problem_that_is_not_a_pair_problem():
    with pytest.raises(InvalidTypeError, match="problem"):
        cp.objective({"x_a": 1}, theta1=torch.zeros(2, 2), alpha_a=0.0, alpha_p=0.0)


# -- wasserstein_radius ----------------------------------------------------------------------------
@st.composite
def point_sets(draw):
    n, d = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    n_p = n if draw(st.booleans()) else draw(st.integers(1, 5))
    d = 1 if n_p != n else d  # unequal sizes: 1-D points, whose W₁ has a closed form
    values = st.integers(-20, 20)
    x_a = np.array(draw(st.lists(values, min_size=n * d, max_size=n * d)), dtype=np.float64)
    x_p = np.array(draw(st.lists(values, min_size=n_p * d, max_size=n_p * d)), dtype=np.float64)
    return x_a.reshape(n, d), x_p.reshape(n_p, d), draw(st.integers(-100, 100))


def _reference_w1(x_a: np.ndarray, x_p: np.ndarray) -> float:
    if len(x_a) == len(x_p):  # uniform measures of equal size: an optimal plan is a permutation
        unit = max(np.abs(x_a).max(), np.abs(x_p).max(), 1e-300)
        cost = np.linalg.norm((x_a[:, None] - x_p[None]) / unit, axis=-1)
        rows, cols = linear_sum_assignment(cost)
        return float(cost[rows, cols].mean() * unit)
    return float(wasserstein_distance(x_a[:, 0], x_p[:, 0]))


@FAST
@given(
    sets=point_sets(),
    kind=st.sampled_from(["list", "numpy", "tensor", "float32", "int", "grad"]),
)
def test_wasserstein_radius_matches_an_assignment_or_the_1d_formula(sets, kind):
    x_a, x_p, k = sets  # integer points times 10^k (float32: |k| <= 30; integers: k = 0)
    scale = 1.0 if kind == "int" else 10.0 ** (max(-30, min(30, k)) if kind == "float32" else k)
    x_a, x_p = x_a * scale, x_p * scale
    if kind == "float32":  # the reference sees the float32-rounded points
        x_a, x_p = (
            x_a.astype(np.float32).astype(np.float64),
            x_p.astype(np.float32).astype(np.float64),
        )
    expected = _reference_w1(x_a, x_p)
    convert = {
        "list": lambda v: v.tolist(),
        "numpy": lambda v: v,
        "tensor": torch.as_tensor,
        "float32": lambda v: torch.as_tensor(v, dtype=torch.float32),
        "int": lambda v: torch.as_tensor(v.astype(np.int64)),
        "grad": lambda v: torch.as_tensor(v).requires_grad_(True),
    }[kind]
    got = cp.wasserstein_radius(convert(x_a), convert(x_p))
    assert isinstance(got, float) and math.isfinite(got)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-300)
    value, plan = cp.wasserstein_radius(x_a, x_p, return_plan=True)
    assert value == got
    np.testing.assert_allclose(plan.sum(1), 1 / len(x_a), rtol=1e-9)
    np.testing.assert_allclose(plan.sum(0), 1 / len(x_p), rtol=1e-9)


@pytest.mark.parametrize("k", [-14, -30])
def test_wasserstein_radius_is_exact_at_tiny_scales(k):
    x_a = np.array([[0.0], [0.0], [2.0], [0.0]]) * 10.0**k
    x_p = np.array([[0.0], [0.0], [0.0], [0.0], [1.0]]) * 10.0**k
    expected = wasserstein_distance(x_a[:, 0], x_p[:, 0])  # 0.3 · 10^k
    assert cp.wasserstein_radius(x_a, x_p) == pytest.approx(expected, rel=1e-9, abs=0)


BAD_SETS = [
    ("empty", lambda v: v[:0]),
    ("1-D", lambda v: v[:, 0]),
    ("0-D", lambda v: v[0, 0]),
    ("nan", lambda v: np.where(np.arange(v.size).reshape(v.shape) == 0, math.nan, v)),
    ("inf", lambda v: np.where(np.arange(v.size).reshape(v.shape) == 0, math.inf, v)),
    ("bool", lambda v: v > 0),
    ("complex", lambda v: v.astype(np.complex128)),
    ("half", lambda v: torch.as_tensor(v, dtype=torch.float16)),
    ("wider", lambda v: np.concatenate([v, v], axis=1)),
    ("text", lambda v: "points"),
    ("object", lambda v: np.array([None, 1.0], dtype=object)),
]
BAD_OPTIONS = [
    ("max_pairs", 0),
    ("max_pairs", 2.5),
    ("subsample", -1),
    ("num_samples", 1),
    ("seed", -1),
    ("seed", "abc"),
    ("return_plan", 1),
    ("return_plan", None),
]


@FAST
@given(
    sets=point_sets(),
    side=st.sampled_from(["x_a", "x_p"]),
    bad=st.sampled_from(BAD_SETS),
    option=st.sampled_from([None, *BAD_OPTIONS]),
)
def test_wasserstein_radius_refuses_bad_points_and_options_by_name(sets, side, bad, option):
    x_a, x_p, _ = sets
    label, damage = bad
    arguments = {"x_a": x_a, "x_p": x_p}
    arguments[side] = damage(arguments[side])
    options = {} if option is None else {option[0]: option[1]}
    with pytest.raises(ConstrainedPairsError) as caught:
        cp.wasserstein_radius(arguments["x_a"], arguments["x_p"], **options)
    # options are checked before any work; "wider" names both sets
    names = (option[0],) if option is not None else (side,)
    _refusal(caught.value, *names)
    if label in ("bool", "complex", "text", "object") and option is None:
        assert isinstance(caught.value, InvalidTypeError)


# -- scale invariance of the exact optimum ---------------------------------------------------------
@pytest.fixture(scope="module")
def unit_problem() -> cp.PairProblem:
    gen = torch.Generator().manual_seed(3)
    x_a = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    x_p = torch.randn(6, 2, generator=gen, dtype=torch.float64) + 0.5
    aux = torch.randn(6, 2, generator=gen, dtype=torch.float64)
    base = cp.PairProblem(x_a, x_p, torch.arange(6) % 3, aux, r_a=1.0, r_p=1.0)
    radius = 0.6 * base.mean_distance
    return base.replace(r_a=radius, r_p=radius)


@pytest.fixture(scope="module")
def unit_optimum(unit_problem) -> float:
    result = cp.solve(unit_problem, "exact", regime="A")
    assert result.status == "optimal"
    return result.objective


@settings(FAST, max_examples=6)
@given(k=st.integers(-30, 30))
def test_the_exact_optimum_is_invariant_to_the_data_unit(unit_problem, unit_optimum, k):
    """x, aux, r_A, r_P and κ_P scaled by s = 10^k: θ/s, α/s give the same Ω (SPEC §2)."""
    s = 10.0**k
    p = unit_problem
    scaled = cp.PairProblem(
        p.x_a * s,
        p.x_p * s,
        p.y_p,
        p.aux_a * s,
        r_a=p.r_a * s,
        r_p=p.r_p * s,
        kappa_p=p.kappa_p * s,
    )
    result = cp.solve(scaled, "exact", regime="A")
    assert result.status == "optimal"
    assert result.objective == pytest.approx(unit_optimum, rel=1e-6, abs=1e-6)
