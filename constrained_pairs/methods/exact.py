"""``method="exact"``: the CVXPY reference for the linear model (SPEC §2).

With g linear the problem is jointly convex: cross-entropy of affine logits written as
log_sum_exp − true-class logit, hinges of affine (or convex, for ``"margin"``) expressions, norm
constraints bounded by linear functions of α, and linear α terms. The nuclear norm needs an
SDP-capable solver: Clarabel first, SCS as a fallback. Everything is float64.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from constrained_pairs.errors import UnsupportedOptionError
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.result import Result
from constrained_pairs.methods.common import make_result

SOLVERS = ("CLARABEL", "SCS")
#: Clarabel's gap tolerances: 1e-7 relative is far below the 1e-4 gaps first-order methods are
#: measured at, and Clarabel's default 1e-8 often stalls a hair above on exp-cone problems.
CLARABEL_OPTIONS = {"tol_gap_abs": 1e-7, "tol_gap_rel": 1e-7}
#: A returned point violating a constraint by more than this is reported as inaccurate.
FEASIBILITY_TOL = 1e-6


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()


def _row_basis(x: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d, r) of the span of the rows of x."""
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    rank = int((singular > singular[0] * max(x.shape) * np.finfo(float).eps).sum())
    return vt[:rank].T


def _theta1_norm(cp: Any, theta1: Any, norm: str) -> Any:
    if norm == "nuclear":
        return cp.normNuc(theta1)
    if norm == "frobenius":
        return cp.norm(theta1, "fro")
    if norm == "spectral":
        return cp.sigma_max(theta1)
    rows = theta1.shape[0]
    return cp.max(
        cp.hstack(
            [cp.norm(theta1[k] - theta1[j], 2) for k in range(rows) for j in range(k + 1, rows)]
        )
    )


def _counted_loss(cp: Any, logits: Any, counts: np.ndarray, threshold: Any, hinge: str) -> Any:
    """Σ_r Σ_c counts_rc [lse(z_r) − z_rc + hinge(z_r, c)] for an affine (R, C) expression."""
    rows, classes = counts.shape
    loss = counts.sum(1) @ cp.log_sum_exp(logits, axis=1) - cp.sum(cp.multiply(counts, logits))
    if hinge == "seed":
        margins = logits - threshold
    else:
        row_min = cp.reshape(cp.min(logits, axis=1), (rows, 1), order="C") @ np.ones((1, classes))
        margins = logits - row_min - threshold
    return loss + cp.sum(cp.multiply(counts, cp.pos(margins)))


def _pair_loss_a_aux(
    cp: Any,
    u: Any,
    v: Any,
    problem: PairProblem,
    y: np.ndarray,
    threshold: Any,
) -> Any:
    """Regime A with auxiliary features: one logit row per pair (i, j)."""
    pairs = problem.pairs
    if pairs.is_all:
        index_a = np.repeat(np.arange(problem.n_a), problem.n_p)
        index_p = np.tile(np.arange(problem.n_p), problem.n_a)
    else:
        index_a, index_p = pairs.index_a.cpu().numpy(), pairs.index_p.cpu().numpy()
    logits = u[index_p, :] + v[index_a, :]
    onehot = np.eye(problem.num_classes)[y[index_p]]
    return _counted_loss(cp, logits, onehot, threshold, problem.hinge)


@dataclass
class _Program:
    """A CVXPY program of Ω^regime and the variables to read back."""

    program: Any
    phi: Any
    basis: np.ndarray
    bias: Any
    alpha_a: Any
    alpha_p: Any
    theta2: Any


def _build(cp: Any, problem: PairProblem, regime: str, lift: bool) -> _Program:
    n_classes = problem.num_classes
    x_a, x_p, y = _numpy(problem.x_a.flatten(1)), _numpy(problem.x_p.flatten(1)), problem.y_p
    # θ₁ acts only through θ₁x for the x the regime evaluates; projecting its rows onto their
    # span leaves the loss unchanged and does not increase any of the norms (all unitarily
    # invariant, and the Lipschitz seminorm too), so θ₁ = Φ Bᵀ with B an orthonormal basis.
    basis = _row_basis(x_p if regime == "A" else x_a)
    phi = cp.Variable((n_classes, basis.shape[1]), name="theta1_in_span")
    theta1 = phi @ basis.T
    bias = cp.Variable(n_classes, name="bias")
    alpha_a = cp.Variable(nonneg=True, name="alpha_a")
    alpha_p = cp.Variable(nonneg=True, name="alpha_p")
    theta2 = None
    if problem.has_aux:
        theta2 = cp.Variable((n_classes, problem.aux_a.shape[1]), name="theta2")
    threshold = problem.kappa_p * alpha_p
    lifted: list[Any] = []

    def logits(expression: Any, rows: int) -> Any:
        # Lifting logits into their own variables keeps each exponential cone on a few scalars:
        # the KKT system stays sparse (dense in θ otherwise, and 2-10x slower).
        if not lift:
            return expression
        variable = cp.Variable((rows, n_classes))
        lifted.append(variable == expression)
        return variable

    def affine(x: np.ndarray, aux: np.ndarray | None = None) -> Any:
        ones = np.ones((x.shape[0], 1))
        out = x @ theta1.T + ones @ cp.reshape(bias, (1, n_classes), order="C")
        return logits(out + aux @ theta2.T if aux is not None else out, x.shape[0])

    y_np = y.cpu().numpy()
    if regime == "A" and problem.has_aux:
        aux_logits = logits(_numpy(problem.aux_a) @ theta2.T, problem.n_a)
        loss = _pair_loss_a_aux(cp, affine(x_p), aux_logits, problem, y_np, threshold)
    elif regime == "A":
        mult = _numpy(problem.pairs.p_multiplicity(torch.device("cpu"), torch.float64))
        counts = np.eye(n_classes)[y_np] * mult[:, None]
        keep = mult > 0
        loss = _counted_loss(cp, affine(x_p[keep]), counts[keep], threshold, problem.hinge)
    else:
        counts = _numpy(problem.pairs.class_counts(y, n_classes, torch.float64))
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
    constraints = [*lifted, _theta1_norm(cp, phi, problem.norm) <= alpha_a + alpha_p]
    constraints.append(alpha_a <= alpha_p if regime == "A" else alpha_p <= alpha_a)
    if theta2 is not None:
        constraints.append(cp.norm(theta2, "fro") <= problem.kappa_a * alpha_a)
    program = cp.Problem(cp.Minimize(cost), constraints)
    return _Program(program, phi, basis, bias, alpha_a, alpha_p, theta2)


def _run(cp: Any, built: _Program, solver: str | None, verbose: bool, options: dict) -> tuple:
    """Solve with ``solver`` or Clarabel then SCS; return (status, solver used)."""
    status, used = "solver_error", None
    for name in (solver,) if solver else SOLVERS:
        settings = {**CLARABEL_OPTIONS, **options} if name == "CLARABEL" else options
        try:
            with warnings.catch_warnings():  # the inaccuracy is reported in the result's status
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                built.program.solve(solver=name, verbose=verbose, **settings)
        except cp.error.SolverError:
            continue
        used, status = name, built.program.status
        # Fall back only when the solver produced no usable point: SCS is first-order and would
        # replace an "optimal_inaccurate" interior-point answer by a less accurate one.
        if built.program.value is not None:
            break
    return status, used


def solve_exact(
    problem: PairProblem,
    regime: str,
    *,
    solver: str | None = None,
    verbose: bool = False,
    model: torch.nn.Module | None = None,
    **solver_options: Any,
) -> Result:
    """Solve Ω^regime exactly with CVXPY; see the module docstring.

    The logits are first lifted into variables (fast); if the interior-point solver stops just
    short of its tolerance there ("optimal_inaccurate"), the un-lifted program is solved too and
    an "optimal" answer from it is kept.

    Args:
        problem: the data-join problem (linear model).
        regime: ``"A"`` or ``"P"``.
        solver: a CVXPY solver name; by default Clarabel (relative gap 1e-7, see
            ``CLARABEL_OPTIONS``), then SCS if Clarabel returns no solution.
        verbose: print the solver's log.
        model: must be None (the exact reference exists for the linear model only).
        **solver_options: passed to ``cvxpy.Problem.solve``.
    """
    import cvxpy as cp

    if model is not None:
        raise UnsupportedOptionError("method='exact' needs the linear model (model=None)")
    if not problem.distance_is_constant():
        raise UnsupportedOptionError(
            f"method='exact' needs a distance that does not depend on the parameters, "
            f"got distance={problem.distance!r} (the problem is then not convex)"
        )
    start = time.perf_counter()
    built = _build(cp, problem, regime, lift=True)
    status, used = _run(cp, built, solver, verbose, solver_options)
    if status == cp.OPTIMAL_INACCURATE:
        plain = _build(cp, problem, regime, lift=False)
        plain_status, plain_used = _run(cp, plain, solver, verbose, solver_options)
        if plain_status == cp.OPTIMAL:
            built, status, used = plain, plain_status, plain_used
    wall = time.perf_counter() - start

    def value(var: Any, shape: tuple[int, ...]) -> torch.Tensor:
        data = var.value if var is not None and var.value is not None else np.full(shape, np.nan)
        return torch.as_tensor(np.asarray(data), dtype=torch.float64, device=problem.device)

    basis = torch.as_tensor(built.basis.T, device=problem.device)
    result = make_result(
        problem.to(dtype=torch.float64),
        method="exact",
        regime=regime,
        theta1=value(built.phi, built.phi.shape) @ basis,
        theta2=value(built.theta2, built.theta2.shape) if built.theta2 is not None else None,
        bias=value(built.bias, (problem.num_classes,)),
        alpha_a=value(built.alpha_a, ()),
        alpha_p=value(built.alpha_p, ()),
        status=status,
        history=[],
        wall_time=wall,
        extra={"solver": used, "cvxpy_value": built.program.value},
    )
    if result.status == "optimal" and result.max_violation > FEASIBILITY_TOL:
        result.status = "optimal_inaccurate"
    result.history.append(
        {
            "iteration": 0,
            "objective": result.objective,
            "max_violation": result.max_violation,
            "time": wall,
        }
    )
    result.reference_objective, result.gap = result.objective, 0.0
    return result
