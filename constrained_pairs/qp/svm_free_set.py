"""Linear solves on the free sets of all B reduced SVM duals at once (SPEC §3).

:class:`FreeSetSolver` solves (Q_t)_FF x_F = r_F for every anchor t. Its systems are only as large
as the smaller of each anchor's free and bound sets: a Cholesky factor of (Q_t)_FF when the free
set is small, the Woodbury form of the batch-shared (K + ρI)⁻¹ on the bound set otherwise. The
active-set iterations of :mod:`constrained_pairs.qp.svm` and their implicit backward share it.
"""

from __future__ import annotations

import torch

from constrained_pairs.qp.svm_structure import q_on

#: Anchors with |F_t| <= ratio·|A_t| factor (Q_t)_FF directly (at B = 256 the direct path is
#: faster until the bound set A_t is under a quarter of the batch).
_DIRECT_RATIO = 3


def _padded_lists(mask: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column indices of the True entries of each row, padded to ``width``, and their validity."""
    index = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :width]
    return index, torch.gather(mask, 1, index)


class FreeSetSolver:
    """Solves (Q_t)_FF x_F = r_F for every anchor t at once (x = 0 off the free set F_t).

    ``free`` is (T, B): row r is anchor ``anchors[r]`` (default: row t is anchor t).

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
        anchors: torch.Tensor | None = None,
    ) -> None:
        size = kernel.shape[0]
        if anchors is None:
            anchors = torch.arange(size, device=kernel.device)
        self.cache = {} if cache is None else cache
        # One host sync per active-set iteration: the padded shapes depend on the data.
        counts = free.sum(1).tolist()
        self.blocks: list[_DirectBlock | _ComplementBlock] = []
        #: (T,) rows whose factorisation failed: (Q_t)_FF not positive definite (K not PSD)
        self.failed = torch.zeros(len(counts), dtype=torch.bool, device=kernel.device)
        is_direct = [c <= _DIRECT_RATIO * (size - c) for c in counts]
        direct = sorted((c, t) for t, c in enumerate(counts) if is_direct[t])
        for chunk in _chunks(direct, groups):
            rows = torch.tensor([t for _, t in chunk], device=kernel.device)
            self.blocks.append(
                _DirectBlock(kernel, rho, rows, free, max(chunk[-1][0], 1), anchors[rows])
            )
        complement = sorted((size - c, t) for t, c in enumerate(counts) if not is_direct[t])
        if complement:
            kernel64 = kernel.double()
            if "p" not in self.cache:  # P depends on K and ρ only: shared by every iteration
                eye = torch.eye(size, dtype=torch.float64, device=kernel.device)
                factor, info = torch.linalg.cholesky_ex(kernel64 + rho * eye)
                self.cache["p"] = torch.cholesky_inverse(factor)
                self.cache["p_failed"] = bool(info > 0)
            for chunk in _chunks(complement, groups):
                rows = torch.tensor([t for _, t in chunk], device=kernel.device)
                self.blocks.append(
                    _ComplementBlock(
                        kernel64, rho, rows, free, chunk[-1][0], self.cache["p"], anchors[rows]
                    )
                )
                if self.cache["p_failed"]:
                    self.failed[rows] = True
        for block in self.blocks:
            self.failed[block.rows] |= block.failed

    def __call__(self, rhs: torch.Tensor) -> torch.Tensor:
        """x (T, B) with (Q_t)_FF x_F = rhs_F on each row's free set and x = 0 elsewhere."""
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

    def __init__(self, kernel, rho, rows, free, width, anchors) -> None:
        self.rows = rows
        self.index, self.valid = _padded_lists(free[rows], width)
        pair = self.valid[:, :, None] & self.valid[:, None, :]
        eye = torch.eye(width, dtype=kernel.dtype, device=kernel.device)
        q_free = torch.where(pair, q_on(kernel, anchors, self.index, rho), eye)
        self.factor, info = torch.linalg.cholesky_ex(q_free)
        self.failed = info > 0

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

    def __init__(self, kernel, rho, rows, free, width, p, anchors) -> None:
        size = kernel.shape[0]
        self.rows, self.p = rows, p
        eye_b = torch.eye(size, dtype=kernel.dtype, device=kernel.device)
        p1 = p.sum(1)
        v = torch.stack([p1.expand(len(rows), size), eye_b[anchors] - rho * p[anchors]], 2)
        s = torch.empty(len(rows), 2, 2, dtype=kernel.dtype, device=kernel.device)
        s[:, 0, 0] = p1.sum()
        s[:, 0, 1] = s[:, 1, 0] = -rho * p1[anchors]
        s[:, 1, 1] = -rho + rho**2 * p.diagonal()[anchors]
        self.v, self.s_inv = v, torch.linalg.inv(s)
        self.fixed = ~free[rows]
        self.index, self.valid = _padded_lists(self.fixed, width)
        v_a = torch.gather(v, 1, self.index[:, :, None].expand(-1, -1, 2))
        p_a = p[self.index].mT  # (T, B, a): columns A_t of P
        self.m_cols = p_a - v @ self.s_inv @ v_a.mT  # M_t[:, A_t]
        m_aa = torch.gather(self.m_cols, 1, self.index[:, :, None].expand(-1, -1, width))
        pair = self.valid[:, :, None] & self.valid[:, None, :]
        eye = torch.eye(width, dtype=kernel.dtype, device=kernel.device)
        self.factor, info = torch.linalg.cholesky_ex(torch.where(pair, m_aa, eye))
        self.failed = info > 0

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        r = rhs.double().masked_fill(self.fixed, 0.0)  # r = 0 on A_t
        m_r = r @ self.p - (self.v @ (self.s_inv @ (self.v.mT @ r.unsqueeze(-1)))).squeeze(-1)
        m_r_a = torch.where(self.valid, torch.gather(m_r, 1, self.index), 0.0)
        mu = torch.cholesky_solve(m_r_a.unsqueeze(-1), self.factor)
        return (m_r - (self.m_cols @ mu).squeeze(-1)).masked_fill(self.fixed, 0.0)
