"""Every bad input to solve_qp raises a clear ValueError (InvalidArgumentError) or TypeError."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.qp import solve_qp

F64 = torch.float64
B, N = 3, 4


def _ok():
    return torch.eye(N, dtype=F64).expand(B, N, N).clone(), torch.ones(B, N, dtype=F64)


def _with(**changes):
    Q, p = _ok()
    kwargs = {"Q": Q, "p": p, "lower": 0.0, "upper": 1.0, "A": None, "b": None}
    kwargs.update(changes)
    return kwargs


nan_Q = _ok()[0]
nan_Q[0, 0, 0] = float("nan")
inf_p = _ok()[1]
inf_p[1, 2] = float("inf")
crossed = torch.zeros(B, N, dtype=F64)
crossed[0, 1] = 2.0

BAD = {
    "non-square Q": (_with(Q=torch.ones(B, N, N + 1, dtype=F64)), "square"),
    "Q with 4 dims": (_with(Q=torch.ones(1, B, N, N, dtype=F64)), "Q must have"),
    "p wrong length": (_with(p=torch.ones(B, N + 1, dtype=F64)), "p must have"),
    "batch mismatch": (_with(p=torch.ones(B + 1, N, dtype=F64)), "mismatched batch"),
    "lower > upper": (_with(lower=crossed, upper=1.0), "lower must be <= upper"),
    "scalar lower > upper": (_with(lower=2.0, upper=1.0), "lower must be <= upper"),
    "lower = +inf": (_with(lower=float("inf"), upper=None), "lower"),
    "NaN bound": (_with(upper=float("nan")), "upper contains NaN"),
    "bound wrong length": (_with(lower=torch.zeros(N + 1, dtype=F64)), "lower must have"),
    "bound batch mismatch": (_with(lower=torch.zeros(B + 1, N, dtype=F64)), "batch"),
    "NaN in Q": (_with(Q=nan_Q), "Q contains non-finite"),
    "inf in p": (_with(p=inf_p), "p contains non-finite"),
    "A without b": (_with(A=torch.ones(B, 1, N, dtype=F64)), "A and b"),
    "A wrong columns": (
        _with(A=torch.ones(B, 1, N + 1, dtype=F64), b=torch.zeros(B, 1, dtype=F64)),
        "columns",
    ),
    "b wrong length": (
        _with(A=torch.ones(B, 1, N, dtype=F64), b=torch.zeros(B, 2, dtype=F64)),
        "b must have",
    ),
    "inconsistent equalities": (
        _with(A=torch.ones(B, 2, N, dtype=F64), b=torch.tensor([[0.0, 1.0]] * B, dtype=F64)),
        "infeasible",
    ),
    "equality outside the box": (
        _with(A=torch.ones(B, 1, N, dtype=F64), b=torch.full((B, 1), N + 1.0, dtype=F64)),
        "infeasible",
    ),
    "zero row with nonzero b": (
        _with(A=torch.zeros(B, 1, N, dtype=F64), b=torch.ones(B, 1, dtype=F64)),
        "infeasible",
    ),
    "NaN in b": (
        _with(A=torch.ones(B, 1, N, dtype=F64), b=torch.full((B, 1), float("nan"), dtype=F64)),
        "b contains non-finite",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("backend", ["native", "qpth"])
def test_bad_input_raises_value_error(name, backend):
    kwargs, match = BAD[name]
    with pytest.raises(ValueError, match=match) as err:
        solve_qp(**kwargs, backend=backend)
    assert isinstance(err.value, InvalidArgumentError)


@pytest.mark.parametrize(
    "options, error",
    [
        ({"backend": "gurobi"}, InvalidArgumentError),
        ({"tol": 0.0}, InvalidArgumentError),
        ({"tol": -1e-3}, InvalidArgumentError),
        ({"tol": "small"}, InvalidTypeError),
        ({"max_iter": 0}, InvalidArgumentError),
        ({"max_iter": 2.5}, InvalidTypeError),
    ],
)
def test_bad_options(options, error):
    Q, p = _ok()
    with pytest.raises(error):
        solve_qp(Q, p, 0.0, 1.0, **options)


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="Q must be"):
        solve_qp("not a matrix", torch.ones(N))


def test_numpy_and_list_inputs_are_accepted():
    import numpy as np

    z = solve_qp(np.eye(2) * 2.0, [-4.0, 1.0], lower=0.0, upper=1.5)
    assert z.dtype == torch.float64
    assert torch.allclose(z, torch.tensor([1.5, 0.0], dtype=F64), atol=1e-12)


# -- dtypes (issue 12): half precision refused, mixed floating dtypes named ------------------
BACKENDS = ["native", "qpth", "cvxpylayers"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_half_precision_is_refused_up_front(backend, half):
    with pytest.raises(InvalidArgumentError, match=f"Q has dtype {half}: .* half precision"):
        solve_qp(torch.eye(2, dtype=half), torch.ones(2, dtype=F64), backend=backend)
    with pytest.raises(InvalidArgumentError, match=f"upper has dtype {half}"):
        solve_qp(torch.eye(2, dtype=F64), torch.ones(2, dtype=F64), upper=torch.ones(2, dtype=half))
    with pytest.raises(InvalidArgumentError, match="Q has dtype torch.float16"):
        solve_qp(np.eye(2, dtype=np.float16), [1.0, 1.0], backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["p", "lower", "upper", "A", "b"])
def test_mixed_floating_dtypes_are_refused_naming_both(backend, name):
    args = {
        "Q": torch.eye(2),
        "p": -torch.ones(2),
        "lower": torch.zeros(2),
        "upper": torch.ones(2),
        "A": torch.ones(1, 2),
        "b": torch.ones(1),
    }
    args[name] = args[name].to(F64)
    with pytest.raises(InvalidTypeError, match=f"Q and {name} .* Q torch.float32 and {name} "):
        solve_qp(**args, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_numbers_lists_and_integer_tensors_take_qs_dtype(backend):
    Q = 2 * torch.eye(2)
    reference = solve_qp(Q, torch.tensor([-4.0, 1.0]), 0.0, 1.5, backend=backend)
    z = solve_qp(Q, [-4, 1], torch.zeros(2, dtype=torch.int64), 1.5, backend=backend)
    assert z.dtype == torch.float32 and reference.dtype == torch.float32
    assert torch.allclose(z, reference, atol=1e-5)
    assert torch.allclose(z, torch.tensor([1.5, 0.0]), atol=1e-4)  # box-clipped −p/2
    # without a floating Q, the floating tensors give the dtype: p is never rounded to float32
    p = torch.tensor([-4.0, 1.0 + 1e-12], dtype=F64)
    wide = solve_qp(torch.tensor([[2, 0], [0, 2]]), p, backend=backend)
    assert wide.dtype == F64
    assert torch.allclose(wide, -p / 2, atol=1e-6)


# -- an external solver's failure is a status (issue 12) ------------------------------------
# Q = MMᵀ (no ridge) of the sweep's trial 25: positive definite but ill-conditioned; with
# z >= 0 inactive the minimiser is −Q⁻¹p, yet SCS stops with "unbounded (inaccurate)".
ILL_Q = [
    [3.076377586434295, -1.8390835155271177, 1.1949938717597366],
    [-1.8390835155271177, 1.2657764475102862, -1.803663071315072],
    [1.1949938717597366, -1.803663071315072, 7.600035661878458],
]
ILL_P = [-6.7359649451142065, 1.6920256052214273, -3.8536568939775817]


def test_a_failing_external_solver_returns_the_native_point_as_solver_error(monkeypatch):
    import constrained_pairs.qp.cvxpylayers_backend as backend_module

    def fail(*args, **kwargs):
        raise RuntimeError("the conic solver gave up")

    monkeypatch.setattr(backend_module, "solve_cvxpylayers", fail)
    Q = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64, requires_grad=True)
    p = torch.tensor([-1.0, 1.0], dtype=F64)
    with pytest.warns(RuntimeWarning, match="solver_error"):
        z, info = solve_qp(Q, p, lower=0.0, backend="cvxpylayers", return_info=True)
    assert info.status == ("solver_error",) and not info.all_converged
    assert info.extra["fallback"] == "native"
    assert "RuntimeError: the conic solver gave up" in info.extra["solver_error"]
    assert bool(info.extra["fallback_converged"].all())
    # hand-computed: z₂ = 0 at the bound, z₁ = 1/2 (2 z₁ − 1 = 0)
    assert torch.allclose(z, torch.tensor([0.5, 0.0], dtype=F64), atol=1e-12)
    z.sum().backward()  # the fallback point stays differentiable
    assert torch.isfinite(Q.grad).all()


def test_scs_reporting_a_bounded_problem_unbounded_is_a_status_not_an_error():
    Q, p = torch.tensor(ILL_Q, dtype=F64), torch.tensor(ILL_P, dtype=F64)
    reference = torch.linalg.solve(Q, -p)
    assert bool((reference > 0).all())  # the bound z >= 0 is inactive
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z, info = solve_qp(Q, p, lower=0.0, backend="cvxpylayers", return_info=True)
    assert info.status[0] in ("optimal", "solver_error")
    if info.status[0] == "solver_error":  # SCS's failure (this SCS version): native fallback
        assert info.extra["fallback"] == "native" and "unbounded" in info.extra["solver_error"]
        assert torch.allclose(z, reference, rtol=1e-6)
    else:  # a later SCS solving it must then find the minimiser
        assert torch.allclose(z, reference, rtol=1e-3)
