"""Every bad input to solve_qp raises a clear ValueError (InvalidArgumentError) or TypeError."""

from __future__ import annotations

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
