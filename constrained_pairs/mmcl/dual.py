"""The B reduced SVM duals of MMCL (SPEC §3), solved together by exploiting their shared structure.

For a batch kernel matrix K (B, B) and anchor t, the dual over the negatives j ≠ t is

    Q_t[i, j] = K_tt + ρ δ_ij + K_ij - K_ti - K_tj,   β_t = argmin_{0 ≤ β ≤ C} ½ βᵀQ_tβ - 2·1ᵀβ.

SPEC §3 writes ``1`` for K_tt: they agree for the RBF and linear kernels on unit vectors; for the
polynomial kernel K_tt = (1 + c)^p is the value the general SVM dual gives, and it keeps
Q_t = ρI + Gram(φ_i - φ_t) positive definite.

Every β_t is stored as row t of a (B, B) matrix with a zero diagonal (β_tt is pinned at 0).
Because Q_t is K + ρI updated by rank two, the products Q_t β_t of all anchors cost one B×B
matmul (:func:`batched_q_times`). The solver runs accelerated projected gradient with restarts to
guess the support vectors, then block principal pivoting (an exact active-set method with
Murty's finite-termination backup). Its linear systems (:class:`FreeSetSolver`) are only as
large as the smaller of each anchor's free and bound sets; the implicit backward reuses the last
factorisations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_LOWER, _FREE, _UPPER = 0, 1, 2
#: Anchors with |F_t| <= ratio·|A_t| factor (Q_t)_FF directly (at B = 256 the direct path is
#: faster until the bound set A_t is under a quarter of the batch).
_DIRECT_RATIO = 3



@dataclass
class DualSolution:
    """Solution of the B reduced duals and what the implicit backward needs.

    Attributes:
        beta: (B, B) dual variables, row t is β_t with β_tt = 0.
        kkt_residual: (B,) relative KKT residual per anchor (:func:`kkt_residual`).
        converged: (B,) whether ``kkt_residual <= tol``.
        iterations: accelerated-gradient plus active-set iterations used.
        free_solve: the :class:`FreeSetSolver` of the final free sets (solves (Q_t)_FF x = r_F).
    """

    beta: torch.Tensor
    kkt_residual: torch.Tensor
    converged: torch.Tensor
    iterations: int
    free_solve: FreeSetSolver


def batched_q_times(kernel: torch.Tensor, v: torch.Tensor, rho: float) -> torch.Tensor:
    """Rows ``Q_t v_t`` for every anchor t, for v (B, B) with zero diagonal: one B×B matmul.

    (Q_t v)_i = K_tt s + ρ v_i + (Kv)_i - K_ti s - K_t·v, with s = Σ_j v_j (SPEC §3). Entry (t, t)
    of the result is meaningless and must be ignored by the caller.
    """
    s = v.sum(1, keepdim=True)
    k_tt = kernel.diagonal()[:, None]
    return k_tt * s + rho * v + v @ kernel - kernel * s - (v * kernel).sum(1, keepdim=True)


def negatives_index(size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(B, B-1) indices: row t lists the negatives j ≠ t of anchor t in increasing order."""
    keep = ~torch.eye(size, dtype=torch.bool, device=device)
    return torch.arange(size, device=device).expand(size, size)[keep].view(size, size - 1)


def explicit_q(kernel: torch.Tensor, rho: float) -> torch.Tensor:
    """The B matrices Q_t (B, B-1, B-1) written out, for the generic QP backends and checks."""
    size = kernel.shape[0]
    return _q_on(kernel, torch.arange(size, device=kernel.device),
                 negatives_index(size, kernel.device), rho)


def _q_on(kernel: torch.Tensor, rows: torch.Tensor, idx: torch.Tensor, rho: float) -> torch.Tensor:
    """Q_t for the anchors ``rows`` (T,) restricted to their index lists idx (T, f): (T, f, f)."""
    count, width = idx.shape
    k_ti = torch.gather(kernel[rows], 1, idx)
    # Rows F_t of K, then columns F_t: faster than one two-index gather.
    k_rows = kernel.index_select(0, idx.reshape(-1)).view(count, width, -1)
    q = torch.gather(k_rows, 2, idx[:, None, :].expand(-1, width, -1))
    q = q.sub_(k_ti[:, :, None]).sub_(k_ti[:, None, :]).add_(kernel.diagonal()[rows][:, None, None])
    q.diagonal(dim1=1, dim2=2).add_(rho)
    return q


def _padded_lists(mask: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column indices of the True entries of each row, padded to ``width``, and their validity."""
    index = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :width]
    return index, torch.gather(mask, 1, index)


class FreeSetSolver:
    """Solves (Q_t)_FF x_F = r_F for every anchor t at once (x = 0 off the free set F_t).

    Anchors whose free set is at most half the batch use a Cholesky factor of (Q_t)_FF
    (:class:`_DirectBlock`). The others work on the complement A_t (the bound variables and t
    itself) through the batch-shared inverse P = (K + ρI)⁻¹ (:class:`_ComplementBlock`).
    Anchors are grouped by size (``groups`` buckets per kind, each padded only to its own
    largest set), since the cost grows with the cube of the padded size.
    """

    def __init__(
        self,
        kernel: torch.Tensor,
        rho: float,
        free: torch.Tensor,
        cache: dict | None = None,
        groups: int = 4,
    ) -> None:
        size = kernel.shape[0]
        self.cache = {} if cache is None else cache
        # One host sync per active-set iteration: the padded shapes depend on the data.
        counts = free.sum(1).tolist()
        self.blocks: list[_DirectBlock | _ComplementBlock] = []
        is_direct = [c <= _DIRECT_RATIO * (size - c) for c in counts]
        direct = sorted((c, t) for t, c in enumerate(counts) if is_direct[t])
        for chunk in _chunks(direct, groups):
            rows = torch.tensor([t for _, t in chunk], device=kernel.device)
            self.blocks.append(_DirectBlock(kernel, rho, rows, free, max(chunk[-1][0], 1)))
        complement = sorted((size - c, t) for t, c in enumerate(counts) if not is_direct[t])
        if complement:
            kernel64 = kernel.double()
            if "p" not in self.cache:  # P depends on K and ρ only: shared by every iteration
                eye = torch.eye(size, dtype=torch.float64, device=kernel.device)
                factor = torch.linalg.cholesky(kernel64 + rho * eye)
                self.cache["p"] = torch.cholesky_inverse(factor)
            for chunk in _chunks(complement, groups):
                rows = torch.tensor([t for _, t in chunk], device=kernel.device)
                self.blocks.append(
                    _ComplementBlock(kernel64, rho, rows, free, chunk[-1][0], self.cache["p"])
                )

    def __call__(self, rhs: torch.Tensor) -> torch.Tensor:
        """x (B, B) with (Q_t)_FF x_F = rhs_F on each row t's free set and x = 0 elsewhere."""
        out = torch.zeros_like(rhs)
        for block in self.blocks:
            out[block.rows] = block.solve(rhs[block.rows]).to(rhs.dtype)
        return out


def _chunks(items: list, groups: int) -> list[list]:
    """``items`` cut into at most ``groups`` consecutive, nearly equal, non-empty chunks."""
    bounds = [round(i * len(items) / groups) for i in range(groups + 1)]
    return [items[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


class _DirectBlock:
    """Cholesky factors of (Q_t)_FF for the anchors ``rows``, padded to ``width``."""

    def __init__(self, kernel, rho, rows, free, width) -> None:
        self.rows = rows
        self.index, self.valid = _padded_lists(free[rows], width)
        pair = self.valid[:, :, None] & self.valid[:, None, :]
        eye = torch.eye(width, dtype=kernel.dtype, device=kernel.device)
        q_free = torch.where(pair, _q_on(kernel, rows, self.index, rho), eye)
        self.factor = torch.linalg.cholesky_ex(q_free)[0]

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        r = torch.where(self.valid, torch.gather(rhs, 1, self.index), 0.0)
        x = torch.cholesky_solve(r.unsqueeze(-1), self.factor).squeeze(-1)
        return torch.zeros_like(rhs).scatter(1, self.index, torch.where(self.valid, x, 0.0))


class _ComplementBlock:
    """The free block of Q_t inverted through its complement A_t, in float64.

    Q̃_t = K + ρI + U_t W U_tᵀ with U_t = [1, K_t] (rank two), so M_t = Q̃_t⁻¹ = P - V_t S_t⁻¹ V_tᵀ
    (Woodbury, V_t = PU_t = [P1, e_t - ρP_t]), and the free block is inverted by the Schur
    complement on A_t: x = M_t r - M_t[:, A] (M_t[A, A])⁻¹ (M_t r)_A. Cost O(B·|A_t| + |A_t|³)
    per anchor instead of O(|F_t|³).
    """

    def __init__(self, kernel, rho, rows, free, width, p) -> None:
        size = kernel.shape[0]
        self.rows, self.p = rows, p
        eye_b = torch.eye(size, dtype=kernel.dtype, device=kernel.device)
        p1 = p.sum(1)
        v = torch.stack([p1.expand(len(rows), size), eye_b[rows] - rho * p[rows]], 2)
        s = torch.empty(len(rows), 2, 2, dtype=kernel.dtype, device=kernel.device)
        s[:, 0, 0] = p1.sum()
        s[:, 0, 1] = s[:, 1, 0] = -rho * p1[rows]
        s[:, 1, 1] = -rho + rho**2 * p.diagonal()[rows]
        self.v, self.s_inv = v, torch.linalg.inv(s)
        self.fixed = ~free[rows]
        self.index, self.valid = _padded_lists(self.fixed, width)
        v_a = torch.gather(v, 1, self.index[:, :, None].expand(-1, -1, 2))
        p_a = p[self.index].mT  # (T, B, a): columns A_t of P
        self.m_cols = p_a - v @ self.s_inv @ v_a.mT  # M_t[:, A_t]
        m_aa = torch.gather(self.m_cols, 1, self.index[:, :, None].expand(-1, -1, width))
        pair = self.valid[:, :, None] & self.valid[:, None, :]
        eye = torch.eye(width, dtype=kernel.dtype, device=kernel.device)
        self.factor = torch.linalg.cholesky_ex(torch.where(pair, m_aa, eye))[0]

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        r = rhs.double().masked_fill(self.fixed, 0.0)  # r = 0 on A_t
        m_r = r @ self.p - (self.v @ (self.s_inv @ (self.v.mT @ r.unsqueeze(-1)))).squeeze(-1)
        m_r_a = torch.where(self.valid, torch.gather(m_r, 1, self.index), 0.0)
        mu = torch.cholesky_solve(m_r_a.unsqueeze(-1), self.factor)
        return (m_r - (self.m_cols @ mu).squeeze(-1)).masked_fill(self.fixed, 0.0)


def _lipschitz(kernel: torch.Tensor, rho: float) -> torch.Tensor:
    """Upper bound ρ + ‖Q_t - ρI‖_F ≥ λ_max(Q_t) for every anchor, in O(B²) (closed form)."""
    size = kernel.shape[0]
    k_tt, row = kernel.diagonal(), kernel.sum(1)
    # Σ_ij (K_ij - a_i - a_j + c)² with a = K_t, c = K_tt, expanded into batch-shared sums.
    fro2 = (
        (kernel * kernel).sum()
        + 2 * size * (kernel * kernel).sum(1)
        + 2 * row**2
        + size**2 * k_tt**2
        - 4 * kernel @ row
        + 2 * k_tt * row.sum()
        - 4 * size * k_tt * row
    )
    return rho + fro2.clamp(min=0).sqrt()


def _project(beta: torch.Tensor, upper: float | None) -> torch.Tensor:
    return beta.clamp(min=0) if upper is None else beta.clamp(0, upper)


def _accelerated_gradient(kernel, rho, upper, diag, iterations):
    """FISTA with gradient restarts from β = 0; returns the last iterate, its gradient and step."""
    step = 1 / _lipschitz(kernel, rho)[:, None]
    x = torch.zeros_like(kernel)
    y, momentum_t = x, torch.ones_like(step)
    for _ in range(iterations):
        x_new = _project(y - step * (batched_q_times(kernel, y, rho) - 2), upper)
        x_new = x_new.masked_fill(diag, 0)
        restart = ((y - x_new) * (x_new - x)).sum(1, keepdim=True) > 0
        t_new = (1 + torch.sqrt(1 + 4 * momentum_t**2)) / 2
        coef = torch.where(restart, 0.0, (momentum_t - 1) / t_new)
        momentum_t = torch.where(restart, 1.0, t_new)
        y, x = x_new + coef * (x_new - x), x_new
    return x, batched_q_times(kernel, x, rho) - 2, step


def _state_guess(x, grad, step, upper, diag):
    """Lower / free / upper classification of every variable from one projected step."""
    guess = x - step * grad
    state = torch.where(guess > 0, _FREE, _LOWER)
    if upper is not None:
        state = torch.where(guess >= upper, _UPPER, state)
    return state.masked_fill(diag, _LOWER)


def kkt_residual(kernel, beta, rho, upper) -> torch.Tensor:
    """Relative KKT residual per anchor: ‖β - Π(β - ∇)‖∞ / (1 + (ρ + 4 max|K|)·‖β‖₁).

    ∇ = Q_tβ - 2 and Π projects on the box. The scale bounds Σ_j |Q_t[i,j] β_j|, the size of the
    terms whose rounding limits how well ∇ can be computed (entries of Q_t are ≤ ρ + 4 max|K|).
    """
    diag = torch.eye(kernel.shape[0], dtype=torch.bool, device=kernel.device)
    grad = batched_q_times(kernel, beta, rho) - 2
    gap = (beta - _project(beta - grad, upper)).masked_fill(diag, 0)
    scale = 1 + (rho + 4 * kernel.abs().amax()) * beta.abs().sum(1)
    return gap.abs().amax(1) / scale


def solve_dual(
    kernel: torch.Tensor,
    rho: float,
    upper: float | None = None,
    *,
    tol: float | None = None,
    max_iter: int = 100,
    warm_iterations: int = 60,
) -> DualSolution:
    """Solve the B reduced duals of SPEC §3 for the kernel matrix ``kernel`` (B, B), exactly.

    Args:
        kernel: symmetric kernel matrix of the view-1 embeddings (no gradient is taken).
        rho: ridge ρ > 0 on the diagonal of every Q_t.
        upper: the box bound C, or None for β ≥ 0 only.
        tol: KKT tolerance (default 1e-8 in float64, 1e-5 in float32).
        max_iter: cap on active-set (block principal pivoting) iterations.
        warm_iterations: accelerated projected-gradient steps that guess the active sets.
    """
    kernel = kernel.detach()
    size, dtype, device = kernel.shape[0], kernel.dtype, kernel.device
    if tol is None:
        tol = 1e-8 if dtype == torch.float64 else 1e-5
    diag = torch.eye(size, dtype=torch.bool, device=device)
    x, grad, step = _accelerated_gradient(kernel, rho, upper, diag, warm_iterations)
    state = _state_guess(x, grad, step, upper, diag)

    # Block principal pivoting (Júdice & Pires; Kim & Park's backup rule) on every anchor at once.
    eps = 32 * torch.finfo(dtype).eps
    positions = torch.arange(size, device=device)
    best = torch.full((size,), size + 1, device=device)
    backup = torch.full((size,), 3, device=device)
    cache: dict = {}
    for iteration in range(1, max_iter + 1):
        used = iteration
        free = state == _FREE
        free_solve = FreeSetSolver(kernel, rho, free, cache)
        at_upper = torch.zeros_like(kernel)
        if upper is not None:
            at_upper = (state == _UPPER).to(dtype) * upper
        beta = at_upper + free_solve(2 - batched_q_times(kernel, at_upper, rho))
        grad = batched_q_times(kernel, beta, rho) - 2
        scale = eps * (1 + beta.abs().amax(1, keepdim=True))
        infeasible = (free & (beta < -scale)) | ((state == _LOWER) & (grad < -scale) & ~diag)
        if upper is not None:
            infeasible |= (free & (beta > upper + scale)) | ((state == _UPPER) & (grad > scale))
        count = infeasible.sum(1)
        # Stop when no variable is misclassified, or when rounding alone (float32) flags some but
        # the projected point already meets the tolerance.
        if not bool(count.any()) or bool(
            (kkt_residual(kernel, _project(beta, upper).masked_fill(diag, 0), rho, upper)
             <= tol).all()
        ):
            break
        improved = count < best
        best = torch.where(improved, count, best)
        backup = torch.where(improved, 3, backup - 1)
        # Murty's backup: flip only the infeasible variable of largest index.
        last = (infeasible * positions).argmax(1, keepdim=True)
        single = torch.zeros_like(infeasible).scatter(1, last, True) & infeasible
        flip = torch.where((backup >= 0)[:, None], infeasible, single)
        to_bound = torch.where(beta < 0, _LOWER, _UPPER)
        state = torch.where(flip, torch.where(free, to_bound, _FREE), state)

    beta = _project(beta, upper).masked_fill(diag, 0)
    residual = kkt_residual(kernel, beta, rho, upper)
    return DualSolution(
        beta=beta,
        kkt_residual=residual,
        converged=residual <= tol,
        iterations=warm_iterations + used,
        free_solve=free_solve,
    )


def implicit_beta(kernel: torch.Tensor, solution: DualSolution) -> torch.Tensor:
    """``solution.beta`` as a differentiable function of ``kernel`` (implicit KKT backward)."""
    return _ImplicitDual.apply(kernel, solution.beta, solution.free_solve)


class _ImplicitDual(torch.autograd.Function):
    """β(K) of every anchor, differentiated through the KKT conditions on the free sets.

    With u_t = (Q_t)_FF⁻¹ (∂L/∂β_t)_F (zero off the free set F), ∂L/∂Q_t = -u_t β_tᵀ, which the
    rank-two structure of Q_t maps back onto K with one B×B matmul.
    """

    @staticmethod
    def forward(ctx, kernel, beta, free_solve):
        ctx.save_for_backward(beta)
        ctx.free_solve = free_solve
        return beta.clone()

    @staticmethod
    def backward(ctx, grad_beta):
        (beta,) = ctx.saved_tensors
        u = ctx.free_solve(grad_beta)
        s_beta, s_u = beta.sum(1), u.sum(1)
        # Q_t[i,j] = K_tt + ρδ_ij + K_ij - K_ti - K_tj and ∂L/∂Q_t = -u_t β_tᵀ.
        grad_k = u * s_beta[:, None] + beta * s_u[:, None] - u.T @ beta
        grad_k = grad_k - torch.diag_embed(s_u * s_beta)
        return grad_k, None, None
