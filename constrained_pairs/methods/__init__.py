"""Solution methods behind one entry point, :func:`solve` (SPEC §2).

Each method is a function ``(problem, regime, **options) -> Result`` registered under its name.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from constrained_pairs._validation import check_choice
from constrained_pairs.engine import check_float
from constrained_pairs.errors import InvalidTypeError
from constrained_pairs.join.diagnostics import check_bounded
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.result import Result
from constrained_pairs.methods.common import make_result
from constrained_pairs.status import Status

METHOD_NAMES = (
    "exact",
    "penalty",
    "projection",
    "parametrization",
    "lagrangian",
    "augmented_lagrangian",
)
REGIMES = ("auto", "A", "P")

_REGISTRY: dict[str, Callable[..., Result]] = {}


def register(name: str) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Decorator adding a method ``fn(problem, regime, **options) -> Result`` to :func:`solve`."""

    def add(fn: Callable[..., Result]) -> Callable[..., Result]:
        _REGISTRY[name] = fn
        return fn

    return add


def _load_methods() -> None:
    from constrained_pairs.methods import exact

    register("exact")(exact.solve_exact)
    try:  # first-order methods live in their own modules (see methods/registry below)
        from constrained_pairs.methods import first_order  # noqa: F401
    except ImportError as exc:  # pragma: no cover - only while they do not exist yet
        if "first_order" not in str(exc):
            raise


def _regime_checkpoint(path: Any, regime: str) -> Any:
    """``run.pt`` -> ``run.A.pt``: one checkpoint file per regime under ``regime="auto"``."""
    if not isinstance(path, str | os.PathLike):
        return path  # the checkpointer names the wrong type
    path = Path(path)
    return path.with_name(f"{path.stem}.{regime}{path.suffix}")


def _never_worse_than_trivial(problem: PairProblem, result: Result) -> Result:
    """An exact solve of a bounded problem never returns a point worse than the feasible
    θ = 0, α = 0, b = 0, whose Ω is known (log C with the shift-invariant hinges): when the
    solver's point is worse, or it reports the problem unbounded or infeasible (radii far above
    D̄ strain the conic solver), that point is returned with ``optimal_inaccurate`` and the
    solver's outcome in ``extra``."""
    if Status(result.status).ok or result.status == Status.SOLVER_ERROR:
        return result  # a solver that returned nothing is reported as such
    zero = torch.zeros_like(result.theta1, dtype=torch.float64)
    theta2 = None if result.theta2 is None else zero.new_zeros(result.theta2.shape)
    trivial = make_result(
        problem.to(dtype=torch.float64),
        method=result.method,
        regime=result.regime,
        theta1=zero,
        theta2=theta2,
        bias=torch.zeros(zero.shape[0], dtype=torch.float64, device=zero.device),
        alpha_a=0.0,
        alpha_p=0.0,
        status=Status.OPTIMAL_INACCURATE,
        history=result.history,
        wall_time=result.wall_time,
        extra=result.extra,
    )
    if math.isfinite(result.objective) and result.objective <= trivial.objective:
        return result
    trivial.extra = {
        **result.extra,
        "solver_status": str(result.status),
        "solver_objective": result.objective,
        "note": "the solver's point was worse than the feasible theta = 0, alpha = 0, b = 0",
    }
    return trivial


def solve(
    problem: PairProblem, method: str = "exact", regime: str = "auto", **options: Any
) -> Result:
    """Solve the data-join problem with one of the methods of SPEC §2.

    Args:
        problem: a :class:`~constrained_pairs.PairProblem`.
        method: ``"exact"`` (CVXPY), ``"penalty"``, ``"projection"``, ``"parametrization"``,
            ``"lagrangian"`` or ``"augmented_lagrangian"``.
        regime: ``"A"``, ``"P"`` or ``"auto"`` (solve both, keep the lower objective; the other
            regime's result is in ``result.extra["other"]``, and ``wall_time`` covers both).
        **options: method options (see each method; a misspelled one raises an error listing
            the valid ones); ``reference`` (a float or a Result) sets ``result.gap``.

    Raises:
        UnboundedProblemError: before any solving, when the radii make Ω unbounded below.
        InvalidArgumentError: an unknown option or a value out of range (before any work).
    """
    started = time.perf_counter()
    if not isinstance(problem, PairProblem):
        raise InvalidTypeError(f"problem must be a PairProblem, got {type(problem).__name__}")
    check_choice("method", method, METHOD_NAMES)
    check_choice("regime", regime, REGIMES)
    if not _REGISTRY:
        _load_methods()
    reference = options.pop("reference", None)
    if reference is not None:
        ref = reference.objective if isinstance(reference, Result) else reference
        ref = check_float("reference", ref, minimum=-math.inf, optional=False)
    fn = _REGISTRY[method]
    check = getattr(fn, "check_options", None)
    if check is not None:
        check(options)
    model = options.get("model")
    feature_map = options.get("feature_map")
    if feature_map is None and problem.distance == "feature":
        feature_map = model
    bounded = {"model": model, "distance_squash": options.get("distance_squash")}
    if feature_map is not None:
        bounded["feature_map"] = feature_map
    check_bounded(problem, **bounded)
    if regime != "auto":
        result = fn(problem, regime, **options)
    else:
        both = {}
        for r in ("A", "P"):
            own = dict(options)
            if own.get("checkpoint") is not None:
                own["checkpoint"] = _regime_checkpoint(own["checkpoint"], r)
            both[r] = fn(problem, r, **own)
        finite = [r for r in both.values() if math.isfinite(r.objective)]
        result = min(finite or both.values(), key=lambda r: r.objective)
        result.extra["other"] = both["P" if result.regime == "A" else "A"]
        result.wall_time = time.perf_counter() - started
    if method == "exact":
        result = _never_worse_than_trivial(problem, result)
        if "other" in result.extra:
            result.extra["other"] = _never_worse_than_trivial(problem, result.extra["other"])
    if reference is not None:
        result.reference_objective = ref
        result.gap = (result.objective - ref) / max(1.0, abs(ref))
    return result


__all__ = ["METHOD_NAMES", "register", "solve"]
