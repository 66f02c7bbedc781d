"""The CVXPY program of Ω^A / Ω^P for ``method="exact"`` (reductions: see ``methods/exact.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from constrained_pairs.join.hinges import SHIFT_INVARIANT
from constrained_pairs.join.problem import PairProblem


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()


def row_basis(x: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d, r) of the span of the rows of x."""
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    if singular.size == 0 or singular[0] == 0:
        return vt[:1].T
    rank = int((singular > singular[0] * max(x.shape) * np.finfo(float).eps).sum())
    return vt[:rank].T


def centring_basis(num_classes: int) -> np.ndarray:
    """Orthonormal basis Q (C, C−1) of the vectors whose entries sum to zero."""
    full = np.linalg.qr(np.eye(num_classes) - 1.0 / num_classes)[0]
    q, _ = np.linalg.qr(full[:, : num_classes - 1])
    return q


def _pairwise_max(cp: Any, rows: Any) -> Any:
    count = rows.shape[0]
    return cp.max(
        cp.hstack(
            [cp.norm(rows[k] - rows[j], 2) for k in range(count) for j in range(k + 1, count)]
        )
    )


def _theta_norm(cp: Any, coefficients: Any, left: np.ndarray | None, norm: str) -> Any:
    """‖left @ coefficients‖ for an orthonormal-column ``left`` (None: the identity)."""
    if norm == "lipschitz":
        return _pairwise_max(cp, left @ coefficients if left is not None else coefficients)
    if coefficients.shape[0] == 1 or norm == "frobenius":
        return cp.norm(coefficients, "fro")  # a row vector: nuclear = spectral = ‖·‖₂ (a SOC)
    return cp.normNuc(coefficients) if norm == "nuclear" else cp.sigma_max(coefficients)


def _counted_loss(cp: Any, logits: Any, counts: np.ndarray, threshold: Any, hinge: str) -> Any:
    """Σ_r Σ_c counts_rc [lse(z_r) − z_rc + hinge(z_r, c)] for an affine (R, C) expression."""
    rows, classes = counts.shape
    loss = counts.sum(1) @ cp.log_sum_exp(logits, axis=1) - cp.sum(cp.multiply(counts, logits))
    if hinge == "reference":
        score = logits[:, 1] - logits[:, 0]
        return loss + counts.sum(1) @ cp.pos(score - threshold)
    if hinge == "seed":
        margins = logits - threshold
    else:
        row_min = cp.reshape(cp.min(logits, axis=1), (rows, 1), order="C") @ np.ones((1, classes))
        margins = logits - row_min - threshold
    return loss + cp.sum(cp.multiply(counts, cp.pos(margins)))


@dataclass
class Program:
    """A CVXPY program of Ω^regime and how to read its variables back.

    θ₁ = left @ phi @ basisᵀ and θ₂ = left @ psi (left = Q for shift-invariant hinges, else I).
    """

    program: Any
    phi: Any
    psi: Any
    left: np.ndarray | None
    basis: np.ndarray
    bias: Any
    alpha_a: Any
    alpha_p: Any
    kind: str

    @property
    def num_features(self) -> int:
        return self.basis.shape[0]

    @property
    def has_theta2(self) -> bool:
        return self.psi is not None

    @property
    def aux_dim(self) -> int:
        return self.psi.shape[1]

    def _full(self, value: Any, rows: int) -> np.ndarray | None:
        if value is None:
            return None
        value = np.asarray(value).reshape(rows, -1)
        return self.left @ value if self.left is not None else value

    def theta1_value(self) -> np.ndarray | None:
        full = self._full(self.phi.value, self.phi.shape[0])
        return full @ self.basis.T if full is not None else None

    def theta2_value(self) -> np.ndarray | None:
        return self._full(self.psi.value, self.psi.shape[0])


def build_program(problem: PairProblem, regime: str, lift: bool) -> Program:
    """The program of Ω^regime on ``problem`` (float64, already scale-normalised)."""
    import cvxpy as cp

    n_classes = problem.num_classes
    x_a, x_p, y = _numpy(problem.x_a.flatten(1)), _numpy(problem.x_p.flatten(1)), problem.y_p
    basis = row_basis(x_p if regime == "A" else x_a)
    centred = problem.hinge in SHIFT_INVARIANT
    left = centring_basis(n_classes) if centred else None
    rows = n_classes - 1 if centred else n_classes
    phi = cp.Variable((rows, basis.shape[1]), name="theta1_coefficients")
    theta1 = (left @ phi if centred else phi) @ basis.T
    bias = cp.Variable(n_classes, name="bias")
    alpha_a = cp.Variable(nonneg=True, name="alpha_a")
    alpha_p = cp.Variable(nonneg=True, name="alpha_p")
    psi = theta2 = None
    if problem.has_aux:
        psi = cp.Variable((rows, problem.aux_a.shape[1]), name="theta2_coefficients")
        theta2 = left @ psi if centred else psi
    threshold = problem.kappa_p * alpha_p
    lifted: list[Any] = []

    def logits(expression: Any, count: int) -> Any:
        # Lifting logits into their own variables keeps each exponential cone on a few scalars:
        # the KKT system stays sparse (dense in θ otherwise, and 2-10x slower).
        if not lift:
            return expression
        variable = cp.Variable((count, n_classes))
        lifted.append(variable == expression)
        return variable

    def affine(x: np.ndarray, aux: np.ndarray | None = None) -> Any:
        ones = np.ones((x.shape[0], 1))
        out = x @ theta1.T + ones @ cp.reshape(bias, (1, n_classes), order="C")
        return logits(out + aux @ theta2.T if aux is not None else out, x.shape[0])

    y_np = y.cpu().numpy()
    pairs = problem.pairs
    if regime == "A" and problem.has_aux:
        aux_logits = logits(_numpy(problem.aux_a) @ theta2.T, problem.n_a)
        if pairs.is_all:
            index_a = np.repeat(np.arange(problem.n_a), problem.n_p)
            index_p = np.tile(np.arange(problem.n_p), problem.n_a)
        else:
            index_a, index_p = pairs.index_a.cpu().numpy(), pairs.index_p.cpu().numpy()
        pair_logits = affine(x_p)[index_p, :] + aux_logits[index_a, :]
        onehot = np.eye(n_classes)[y_np[index_p]]
        loss = _counted_loss(cp, pair_logits, onehot, threshold, problem.hinge)
    elif regime == "A":
        mult = _numpy(pairs.p_multiplicity(torch.device("cpu"), torch.float64))
        counts = np.eye(n_classes)[y_np] * mult[:, None]
        keep = mult > 0
        loss = _counted_loss(cp, affine(x_p[keep]), counts[keep], threshold, problem.hinge)
    else:
        counts = _numpy(pairs.class_counts(y, n_classes, torch.float64))
        keep = counts.sum(1) > 0
        aux = _numpy(problem.aux_a)[keep] if problem.has_aux else None
        loss = _counted_loss(cp, affine(x_a[keep], aux), counts[keep], threshold, problem.hinge)

    distance_weight = alpha_a if regime == "A" else alpha_p
    cost = (
        problem.r_a * alpha_a
        + problem.r_p * alpha_p
        + loss / problem.normalizer
        - problem.mean_distance * distance_weight
    )
    constraints = [*lifted, _theta_norm(cp, phi, left, problem.norm) <= alpha_a + alpha_p]
    constraints.append(alpha_a <= alpha_p if regime == "A" else alpha_p <= alpha_a)
    if psi is not None:
        if problem.kappa_a == 0:  # the same set, without a cone of empty interior
            constraints.append(psi == 0)
        else:
            aux_norm = _theta_norm(cp, psi, left, problem.aux_norm)
            constraints.append(aux_norm <= problem.kappa_a * alpha_a)
    uses_sdp = problem.norm in ("nuclear", "spectral") and rows > 1
    kind = ("centred " if centred else "") + ("SDP" if uses_sdp else "SOC/exp-cone")
    program = cp.Problem(cp.Minimize(cost), constraints)
    return Program(program, phi, psi, left, basis, bias, alpha_a, alpha_p, kind)
