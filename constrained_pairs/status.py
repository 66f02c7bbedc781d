"""The one status vocabulary of every solver and training loop (SPEC §7).

Explanations never go into the status string: they go to ``extra`` (``Result.extra``,
``QPInfo``) or the history records.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """Outcome of a solve or a training run; a ``str`` enum, so ``status == "optimal"`` works.

    Attributes:
        OPTIMAL: an exact solver's optimum, re-checked in float64 (feasibility, duality gap).
        OPTIMAL_INACCURATE: an exact solver's point that failed the re-check's tolerances.
        CONVERGED: a first-order method met its stopping tolerance.
        MAX_ITER: the iteration or epoch budget ran out first (or a callback stopped the run).
        DIVERGED: an iterate or the objective became non-finite; the last finite point is kept.
        UNBOUNDED: the problem is unbounded below (e.g. r_A + r_P < D̄).
        INFEASIBLE: no feasible point exists.
        NONCONVEX: the problem is not convex (e.g. an indefinite QP Hessian).
        SOLVER_ERROR: the underlying solver failed.
    """

    OPTIMAL = "optimal"
    OPTIMAL_INACCURATE = "optimal_inaccurate"
    CONVERGED = "converged"
    MAX_ITER = "max_iter"
    DIVERGED = "diverged"
    UNBOUNDED = "unbounded"
    INFEASIBLE = "infeasible"
    NONCONVEX = "nonconvex"
    SOLVER_ERROR = "solver_error"

    def __str__(self) -> str:
        return self.value

    @property
    def ok(self) -> bool:
        """Whether the status claims success (optimal or converged)."""
        return self in (Status.OPTIMAL, Status.CONVERGED)


__all__ = ["Status"]
