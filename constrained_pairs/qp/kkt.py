"""The reduced KKT system of a box-constrained QP with its active set fixed (SPEC §3).

With the fixed (active) variables removed, the free variables F and the equality multipliers
solve ``[[Q_FF, A_Fᵀ], [A_F, 0]] [z_F; nu] = [r_F; r_b]``. Every problem of the batch gathers
its free variables to the front and is padded with identity rows to the largest free set, so one
batched Cholesky factorisation of ``Q_FF`` serves the batch; the few equality rows enter through
the Schur complement ``A_F Q_FF⁻¹ A_Fᵀ``. The forward pass and the implicit backward pass of
:mod:`constrained_pairs.qp.native` share these factorisations.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from constrained_pairs.errors import InvalidArgumentError


@dataclass
class KKTFactor:
    """Factorisation of the reduced KKT matrix ``[[Q_FF, A_Fᵀ], [A_F, 0]]`` of a free set F.

    The free variables of each problem are gathered to the front (``index``) and the batch is
    padded to the largest free set ``m`` with identity rows (``valid`` is 0 there), so one batched
    Cholesky of size ``m`` serves every problem.

    Attributes:
        free_mask: ``(B, n)`` bool mask of the free variables.
        index: ``(B, m)`` positions of the free variables (then 0 on padding).
        valid: ``(B, m)`` 0/1 mask of the real (non-padding) entries of ``index``.
        chol: ``(B, m, m)`` upper Cholesky factor U of ``Q_FF + δI = UᵀU`` (identity on padding).
        At: ``(B, m, k)`` gathered equality columns ``A_Fᵀ``, or None without equalities.
        Y: ``(B, m, k)`` ``(Q_FF + δI)⁻¹ A_Fᵀ``.
        rows: ``(B, m, n)`` rows ``Q[index]`` (padding rows are arbitrary: products weight them
            by ``valid``), or None when nothing is fixed (then the rows are Q itself); they give
            ``Q dx`` for dx supported on F.
        flat: ``(B·m,)`` positions of the free variables in the flattened batch (with ``rows``).
        schur: ``(B, k, k)`` upper Cholesky factor of the Schur complement ``A_F Q_FF⁻¹ A_Fᵀ``.
    """

    free_mask: torch.Tensor
    index: torch.Tensor
    valid: torch.Tensor
    chol: torch.Tensor
    rows: torch.Tensor | None = None
    flat: torch.Tensor | None = None
    At: torch.Tensor | None = None
    Y: torch.Tensor | None = None
    schur: torch.Tensor | None = None

    @property
    def free(self) -> torch.Tensor:
        return self.free_mask.to(self.chol.dtype)


@lru_cache(maxsize=32)
def _positions(B: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``arange(n)`` expanded to ``(B, n)`` and the row offsets ``b·n`` ``(B, 1)`` of a flattened
    batch (cached: the solvers ask for them every iteration)."""
    with torch.inference_mode(False):
        cols = torch.arange(n, device=device).expand(B, n)
        return cols, torch.arange(B, device=device).unsqueeze(-1) * n


def front_index(
    mask: torch.Tensor, m: int, pos: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of each row's True entries, in order, padded with 0 to ``m`` columns.

    Returns ``(index, valid)``, both ``(B, m)``; ``valid`` (bool) marks the real entries. A
    cumulative count ``pos`` (``mask.cumsum(-1)``, when the caller has it) and one scatter (no
    sort): entry j of a row goes to column ``#True up to j`` when it is True, else to a spare
    column; the spare and the unused first column are cut off.
    """
    B, n = mask.shape
    cols, _ = _positions(B, n, mask.device)
    pos = mask.cumsum(-1) if pos is None else pos
    # entry j goes to column pos[j] (1-based) when True, else to the spare column m + 1
    target = torch.where(mask, pos, m + 1)
    index = torch.zeros(B, m + 2, dtype=torch.long, device=mask.device).scatter_(-1, target, cols)
    valid = cols[0, :m] < pos[:, -1:]
    return index[:, 1 : m + 1], valid


def gather_rows(Q: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``Q[b, index[b], :]`` for every problem b, ``(B, m, n)`` (a fresh tensor), and the
    positions ``(B·m,)`` of ``index`` in the flattened batch.

    One ``index_select`` on the flattened batch (much faster than ``gather`` on the CPU); a
    batch-broadcast Q (stride 0) is indexed once.
    """
    B, m = index.shape
    n = Q.shape[-1]
    _, offset = _positions(B, n, Q.device)
    flat = (index + offset).view(-1)
    if Q.stride(0) == 0:
        return Q[0].index_select(0, index.reshape(-1)).view(B, m, n), flat
    if Q.is_contiguous():
        return Q.reshape(-1, n).index_select(0, flat).view(B, m, n), flat
    return Q.gather(-2, index.unsqueeze(-1).expand(B, m, n)), flat


def times_free(
    fac: KKTFactor, Q: torch.Tensor, dx: torch.Tensor, add: torch.Tensor
) -> torch.Tensor:
    """``add + Q dx`` for ``dx`` supported on the free set of ``fac``, from the gathered rows."""
    if fac.rows is None:
        return matvec(Q, dx, add)
    weights = dx.gather(-1, fac.index).mul_(fac.valid)
    return torch.baddbmm(add.unsqueeze(-2), weights.unsqueeze(-2), fac.rows).squeeze(-2)


def _chol_solve(chol: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``(UᵀU)⁻¹ rhs`` for the upper Cholesky factor U."""
    y = torch.linalg.solve_triangular(chol.mT, rhs, upper=False)
    return torch.linalg.solve_triangular(chol, y, upper=True)


def factorize(
    Q: torch.Tensor,
    free_mask: torch.Tensor,
    A: torch.Tensor | None,
    jitter: torch.Tensor | None,
    sizes: tuple[int, int] | None = None,
    positions: torch.Tensor | None = None,
) -> tuple[KKTFactor, torch.Tensor]:
    """Factorise the reduced KKT system of the free set ``free_mask`` for every problem.

    ``jitter`` ``(B, 1)`` or None is added to the free diagonal (so a singular ``Q_FF`` factors).
    ``sizes`` = (smallest, largest) free-set size and ``positions`` = ``free_mask.cumsum(-1)``
    when the caller already has them. Returns the factor and a ``(B,)`` bool tensor flagging
    problems whose factorisation failed.
    """
    dtype = Q.dtype
    B, n = free_mask.shape
    if sizes is None:
        count = free_mask.sum(-1)
        sizes = tuple(torch.stack([count.min(), count.max()]).tolist())
    least, most = sizes
    if least == n:  # nothing fixed: no gathering needed
        index, _ = _positions(B, n, Q.device)
        valid = torch.ones(B, n, dtype=dtype, device=Q.device)
        M, rows, flat = Q, None, None
        if jitter is not None:
            M = Q.clone()
            M.diagonal(dim1=-2, dim2=-1).add_(jitter)
    else:
        m = max(most, 1)
        index, real = front_index(free_mask, m, positions)
        valid = real.to(dtype)
        rows, flat = gather_rows(Q, index)  # padding rows hold Q[0]: products mask their weights
        M = rows.gather(-1, index.unsqueeze(-2).expand(B, m, m))
        # padding rows and columns of M are those of the identity (float masks: a broadcast
        # bool mask over M costs several times more)
        M.mul_(valid.unsqueeze(-1) * valid.unsqueeze(-2))
        shift = 1 - valid if jitter is None else torch.where(real, jitter, 1.0)
        M.diagonal(dim1=-2, dim2=-1).add_(shift)
    chol, info = torch.linalg.cholesky_ex(M, upper=True)  # UᵀU: faster than LLᵀ on the CPU
    if A is None:
        return KKTFactor(free_mask, index, valid, chol, rows, flat), info.bool()
    At = A.gather(-1, index.unsqueeze(-2).expand(-1, A.shape[-2], -1)).mT * valid.unsqueeze(-1)
    Y = _chol_solve(chol, At)
    S = At.mT @ Y
    # a row whose variables are all fixed gives a zero row of S: jitter keeps it invertible
    s_jitter = torch.finfo(dtype).eps ** 0.75 * (1 + S.diagonal(dim1=-2, dim2=-1).amax(-1))
    S.diagonal(dim1=-2, dim2=-1).add_(s_jitter.unsqueeze(-1))
    schur, s_info = torch.linalg.cholesky_ex(S, upper=True)
    factor = KKTFactor(free_mask, index, valid, chol, rows, flat, At, Y, schur)
    return factor, info.bool() | s_info.bool()


def newton_step(
    fac: KKTFactor, g: torch.Tensor, r_bot: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The Newton step of the reduced KKT system against the gradient ``g``, in the compact
    layout of ``fac``: ``(d, dnu)`` with ``x_F ← x_F − d`` (d ``(B, m)``, zero on padding) and
    ``nu ← nu + dnu``, i.e. ``[[Q_FF + δI, A_Fᵀ], [A_F, 0]] [−d; dnu] = [−g_F; r_bot]``.

    Padding rows of the factor are those of the identity, so g's padding entries only reach d's
    padding, which is zeroed.
    """
    full = fac.rows is None  # nothing fixed: the compact layout is the full one, no padding
    d = _chol_solve(fac.chol, (g if full else g.gather(-1, fac.index)).unsqueeze(-1))
    dnu = None
    if fac.At is not None:
        t = _chol_solve(fac.schur, fac.At.mT @ d + r_bot.unsqueeze(-1))
        d = d - fac.Y @ t
        dnu = t.squeeze(-1).neg()
    d = d.squeeze(-1)
    return (d if full else d.mul_(fac.valid)), dnu


def take_step(fac: KKTFactor, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``x − d`` with the compact step d of :func:`newton_step` placed on the free set."""
    if fac.rows is None:  # nothing fixed: the compact layout is the full one
        return x - d
    return x.reshape(-1).index_add(0, fac.flat, d.view(-1), alpha=-1).view_as(x)


def minus_rows_times(fac: KKTFactor, Q: torch.Tensor, d: torch.Tensor, add: torch.Tensor):
    """``add − Q_{:F} d`` for the compact step d of :func:`newton_step` (one product)."""
    rows = Q if fac.rows is None else fac.rows
    return torch.baddbmm(add.unsqueeze(-2), d.unsqueeze(-2), rows, alpha=-1).squeeze(-2)


def kkt_solve(fac: KKTFactor, r_top: torch.Tensor, r_bot: torch.Tensor | None):
    """Solve ``[[Q_FF + δI, A_Fᵀ], [A_F, 0]] [x_F; nu] = [r_F; r_bot]`` (only r's free part is
    read); returns ``(x, nu)`` with x zero off F: the :func:`newton_step` against ``−r_top``."""
    d, nu = newton_step(fac, r_top.neg(), r_bot)
    return take_step(fac, torch.zeros_like(r_top), d), nu


def matvec(M: torch.Tensor, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """``M x (+ add)`` for a batch of symmetric M, as one (fused) batched product."""
    if add is None:
        return (x.unsqueeze(-2) @ M).squeeze(-2)
    return torch.baddbmm(add.unsqueeze(-2), x.unsqueeze(-2), M).squeeze(-2)


def kkt_apply(Q, A, fac: KKTFactor, x: torch.Tensor, nu: torch.Tensor | None):
    """The exact reduced KKT operator applied to ``[x; nu]`` (x supported on F)."""
    free = fac.free
    top = free * matvec(Q, free * x)
    if A is None:
        return top, None
    top = top + free * (A.mT @ nu.unsqueeze(-1)).squeeze(-1)
    return top, (A @ (free * x).unsqueeze(-1)).squeeze(-1)


def refined_solve(Q, A, fac, r_top, r_bot, steps: int = 1):
    """:func:`kkt_solve` followed by ``steps`` rounds of iterative refinement."""
    x, nu = kkt_solve(fac, r_top, r_bot)
    for _ in range(steps):
        top, bot = kkt_apply(Q, A, fac, x, nu)
        dx, dnu = kkt_solve(fac, r_top - top, None if r_bot is None else r_bot - bot)
        x = x + dx
        nu = None if nu is None else nu + dnu
    return x, nu


@lru_cache(maxsize=32)
def _probe(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A fixed pseudo-random probe vector (seeded: every call sees the same one)."""
    generator = torch.Generator().manual_seed(20_240_607)
    v = torch.rand(n, generator=generator, dtype=torch.float64).add_(0.5)
    return v.to(device=device, dtype=dtype)


def symmetric_part(Q: torch.Tensor) -> torch.Tensor:
    """``½(Q + Qᵀ)``, or Q itself where Q is symmetric to working precision; checks that Q is
    finite on the way.

    A transposed pass over Q costs several times a product with it, so symmetry is probed with
    one fixed vector v: when ``‖(Q − Qᵀ)v‖∞ ≤ 8·n·eps·(‖Qv‖∞ + ‖Qᵀv‖∞)`` for every problem, the
    asymmetry is below the backward error of the Cholesky factorisation that uses Q (the
    solution is the same to working precision) and Q is returned as it is. v is positive, so a
    NaN or inf entry makes the products non-finite; only then is Q scanned entry by entry.

    Raises:
        InvalidArgumentError: Q holds NaN or inf.
    """
    n = Q.shape[-1]
    v = _probe(n, Q.dtype, Q.device)
    Qv, Qtv = Q @ v, v @ Q
    slack = 8 * n * torch.finfo(Q.dtype).eps
    bound = (Qv.abs().amax(-1) + Qtv.abs().amax(-1)).mul_(slack)
    ok = ((Qv - Qtv).abs().amax(-1) <= bound) & bound.isfinite()
    if bool(ok.all()):
        return Q
    if not bool(torch.isfinite(Q).all()):
        raise InvalidArgumentError("Q contains non-finite values (NaN or inf)")
    return (Q + Q.mT).mul_(0.5)
