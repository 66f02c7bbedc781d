"""Checking and broadcasting the inputs of :func:`~constrained_pairs.qp.solve_qp` into one batch."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from constrained_pairs._validation import as_real_tensor, is_real_number
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.qp.info import default_tol


@dataclass
class QPProblem:
    """A batch of QPs ``min ½zᵀQz + pᵀz s.t. lower ≤ z ≤ upper, Az = b``, every field batched.

    Attributes:
        Q: ``(B, n, n)`` as given; only its symmetric part ``½(Q + Qᵀ)`` defines the problem.
        p, lower, upper: ``(B, n)`` (bounds hold ±inf where absent).
        A: ``(B, k, n)`` or None. b: ``(B, k)`` or None.
        batched: whether the caller passed batched inputs (else the result is unbatched).
    """

    Q: torch.Tensor
    p: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    A: torch.Tensor | None
    b: torch.Tensor | None
    batched: bool

    @property
    def size(self) -> tuple[int, int]:
        """``(B, n)``: batch size and variables per problem."""
        return self.p.shape[0], self.p.shape[1]

    def symmetrized(self) -> QPProblem:
        """The same problem with Q replaced by ``½(Q + Qᵀ)`` (differentiably)."""
        return replace(self, Q=0.5 * (self.Q + self.Q.mT))


def _as_real(name: str, value, *, dtype=None, device=None, ndim=None, finite=True):
    """:func:`as_tensor` that refuses complex and bool data instead of casting it silently."""
    t = as_real_tensor(name, value, dtype=dtype, device=device, ndim=ndim, finite=False)
    if finite:
        _check_finite(name, t)
    return t


def _bound(name, value, default, B, n, dtype, device) -> torch.Tensor:
    if value is None:
        return torch.full((B, n), default, dtype=dtype, device=device)
    if is_real_number(value):  # checked here, without a pass over a tensor
        if value != value:
            raise InvalidArgumentError(f"{name} contains NaN")
        if value == -default:
            raise InvalidArgumentError(
                f"{name} contains {-default}: a {name} bound must be "
                f"{'below +inf' if default < 0 else 'above -inf'}"
            )
        return torch.full((), float(value), dtype=dtype, device=device).expand(B, n)
    t = _as_real(name, value, dtype=dtype, device=device, ndim=(0, 1, 2), finite=False)
    if bool(torch.isnan(t).any()):
        raise InvalidArgumentError(f"{name} contains NaN")
    if bool((t == -default).any()):
        raise InvalidArgumentError(
            f"{name} contains {-default}: a {name} bound must be "
            f"{'below +inf' if default < 0 else 'above -inf'}"
        )
    if t.dim() >= 1 and t.shape[-1] != n:
        raise InvalidArgumentError(
            f"{name} must have {n} entries per problem, got shape {tuple(t.shape)}"
        )
    if t.dim() == 2 and t.shape[0] != B:
        raise InvalidArgumentError(f"{name} has batch size {t.shape[0]}, expected {B}")
    return t.expand(B, n)


def _check_finite(name: str, t: torch.Tensor) -> None:
    """Raise if ``t`` holds NaN or inf; one reduction (a NaN/inf entry makes the sum non-finite,
    and only a sum that overflows needs the entry-wise check)."""
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise InvalidArgumentError(f"{name} contains non-finite values (NaN or inf)")


def _common_dtype(**arguments: Any) -> torch.dtype:
    """The problem's floating dtype, PyTorch's convention (``torch.mm`` refuses mixed dtypes):
    the floating tensors among the arguments share one dtype, float32 or float64, which numbers,
    lists, arrays and integer tensors are converted to; without floating tensors, Q's array
    dtype when floating (a list of floats is float64), else the default dtype.
    """
    dtype, first = None, None
    for name, value in arguments.items():
        if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
            continue
        _refuse_half(name, value.dtype)
        if dtype is None:
            dtype, first = value.dtype, name
        elif value.dtype != dtype:
            raise InvalidTypeError(
                f"{first} and {name} must have the same floating dtype, got {first} {dtype} and "
                f"{name} {value.dtype}; convert one, e.g. {name}.to({first}.dtype)"
            )
    return dtype


def _refuse_half(name: str, dtype: torch.dtype) -> None:
    if dtype in (torch.float16, torch.bfloat16):
        raise InvalidArgumentError(
            f"{name} has dtype {dtype}: the QP layer does not support half precision (its "
            "factorisations have no float16/bfloat16 kernels); use float32 or float64"
        )


def make_problem(Q, p, lower, upper, A, b, *, check_q: bool = True) -> QPProblem:
    """Validate the user's arguments and broadcast them to a common batch (SPEC §3).

    ``check_q=False`` leaves Q's finiteness to the caller (the native solver finds a NaN or inf
    in the products it computes anyway: :func:`~constrained_pairs.qp.kkt.symmetric_part`).
    """
    dtype = _common_dtype(Q=Q, p=p, lower=lower, upper=upper, A=A, b=b)
    Q = _as_real("Q", Q, ndim=(2, 3), finite=False)
    if dtype is None:
        _refuse_half("Q", Q.dtype)
        dtype = Q.dtype if Q.is_floating_point() else torch.get_default_dtype()
    Q = Q.to(dtype)
    if check_q:
        _check_finite("Q", Q)
    device = Q.device
    if Q.shape[-1] != Q.shape[-2]:
        raise InvalidArgumentError(f"Q must be square (n, n) or (B, n, n), got {tuple(Q.shape)}")
    n = Q.shape[-1]
    if n == 0:
        raise InvalidArgumentError("Q must have at least one variable, got n = 0")
    p = _as_real("p", p, dtype=dtype, device=device, ndim=(1, 2))
    if p.shape[-1] != n:
        raise InvalidArgumentError(
            f"p must have {n} entries to match Q, got shape {tuple(p.shape)}"
        )
    if (A is None) != (b is None):
        raise InvalidArgumentError("A and b must be given together (equality constraints Az = b)")
    if A is not None:
        A = _as_real("A", A, dtype=dtype, device=device, ndim=(2, 3))
        b = _as_real("b", b, dtype=dtype, device=device, ndim=(1, 2))
        if A.shape[-1] != n:
            raise InvalidArgumentError(f"A must have {n} columns to match Q, got {tuple(A.shape)}")
        if A.shape[-2] != b.shape[-1]:
            raise InvalidArgumentError(
                f"b must have one entry per row of A ({A.shape[-2]}), got shape {tuple(b.shape)}"
            )
        if A.shape[-2] == 0:
            A = b = None
    batches = {
        name: t.shape[0]
        for name, t, nd in (("Q", Q, 2), ("p", p, 1), ("A", A, 2), ("b", b, 1))
        if t is not None and t.dim() == nd + 1
    }
    for name, value in (("lower", lower), ("upper", upper)):
        if isinstance(value, torch.Tensor) and value.dim() == 2:
            batches[name] = value.shape[0]
    sizes = set(batches.values())
    if len(sizes) > 1:
        raise InvalidArgumentError(f"inputs have mismatched batch sizes: {batches}")
    batched = bool(sizes)
    B = sizes.pop() if sizes else 1
    if B == 0:
        raise InvalidArgumentError("the batch is empty (batch size 0)")
    # (a tensor already of the batch shape is kept: no view, no autograd node)
    Q = Q if Q.shape == (B, n, n) else Q.expand(B, n, n)
    p = p if p.shape == (B, n) else p.expand(B, n)
    if A is not None:
        k = A.shape[-2]
        A, b = A.expand(B, k, n), b.expand(B, k)
    lower_t = _bound("lower", lower, -float("inf"), B, n, dtype, device)
    upper_t = _bound("upper", upper, float("inf"), B, n, dtype, device)
    if (
        (lower > upper)
        if is_real_number(lower) and is_real_number(upper)
        else bool((lower_t > upper_t).any())
    ):
        raise InvalidArgumentError("lower must be <= upper everywhere (the box is empty)")
    if A is not None:
        _check_equality_feasible(A, b, lower_t, upper_t)
    return QPProblem(Q, p, lower_t, upper_t, A, b, batched)


def _check_equality_feasible(A, b, lower, upper) -> None:
    """Reject ``Az = b`` when it has no solution, or when a row cannot be met inside the box."""
    A_, b_ = A.detach(), b.detach()
    z = (torch.linalg.pinv(A_) @ b_.unsqueeze(-1)).squeeze(-1)
    miss = ((A_ @ z.unsqueeze(-1)).squeeze(-1) - b_).abs().amax(-1)
    scale = 1 + b_.abs().amax(-1) + A_.abs().amax((-2, -1)) * z.abs().amax(-1)
    if bool((miss > 1e-6 * scale).any()):
        raise InvalidArgumentError("the equality constraints Az = b are infeasible (inconsistent)")
    # range of each row a·z over the box; a zero coefficient contributes nothing even if unbounded
    lo, up = lower.detach().unsqueeze(-2), upper.detach().unsqueeze(-2)
    zero = torch.zeros_like(A_)
    at_lo = torch.where(A_ == 0, zero, A_ * lo)
    at_up = torch.where(A_ == 0, zero, A_ * up)
    row_min = torch.minimum(at_lo, at_up).sum(-1)
    row_max = torch.maximum(at_lo, at_up).sum(-1)
    slack = 1e-9 * (1 + b_.abs())
    if bool(((b_ < row_min - slack) | (b_ > row_max + slack)).any()):
        raise InvalidArgumentError(
            "the equality constraints Az = b are infeasible: some row cannot be met inside "
            "the bounds lower <= z <= upper"
        )


def check_options(tol: Any, max_iter: Any, dtype: torch.dtype) -> tuple[float, int | None]:
    """Default and check ``tol`` (1e-8 in float64, 1e-5 in float32) and ``max_iter``."""
    if tol is None:
        tol = default_tol(dtype)
    if not is_real_number(tol):
        raise InvalidTypeError(f"tol must be a positive number, got {tol!r}")
    if not tol > 0 or tol != tol or tol == float("inf"):
        raise InvalidArgumentError(f"tol must be a finite number > 0, got {tol!r}")
    if max_iter is not None:
        if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer):
            raise InvalidTypeError(f"max_iter must be a positive integer, got {max_iter!r}")
        if max_iter < 1:
            raise InvalidArgumentError(f"max_iter must be >= 1, got {max_iter}")
        max_iter = int(max_iter)
    return float(tol), max_iter
