"""Solution methods behind one entry point, :func:`solve` (SPEC §2).

Each method is a function ``(problem, regime, **options) -> Result`` registered under its name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from constrained_pairs._validation import check_choice
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.join.diagnostics import check_bounded
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.result import Result

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


def solve(
    problem: PairProblem, method: str = "exact", regime: str = "auto", **options: Any
) -> Result:
    """Solve the data-join problem with one of the methods of SPEC §2.

    Args:
        problem: a :class:`~constrained_pairs.PairProblem`.
        method: ``"exact"`` (CVXPY), ``"penalty"``, ``"projection"``, ``"parametrization"``,
            ``"lagrangian"`` or ``"augmented_lagrangian"``.
        regime: ``"A"``, ``"P"`` or ``"auto"`` (solve both, keep the lower objective; the other
            regime's result is in ``result.extra["other"]``).
        **options: method options (see each method); ``reference`` (a float or a Result) sets
            ``result.gap``.

    Raises:
        UnboundedProblemError: before any solving, when the radii make Ω unbounded below.
        NotImplementedError: for a method that is not available.
    """
    if not isinstance(problem, PairProblem):
        raise InvalidTypeError(f"problem must be a PairProblem, got {type(problem).__name__}")
    check_choice("method", method, METHOD_NAMES)
    check_choice("regime", regime, REGIMES)
    if not _REGISTRY:
        _load_methods()
    if method not in _REGISTRY:
        raise NotImplementedError(f"method={method!r} is not implemented yet")
    reference = options.pop("reference", None)
    check_bounded(
        problem, model=options.get("model"), distance_squash=options.get("distance_squash")
    )
    fn = _REGISTRY[method]
    if regime != "auto":
        result = fn(problem, regime, **options)
    else:
        both = {r: fn(problem, r, **options) for r in ("A", "P")}
        finite = [r for r in both.values() if math.isfinite(r.objective)]
        result = min(finite or both.values(), key=lambda r: r.objective)
        result.extra["other"] = both["P" if result.regime == "A" else "A"]
    if reference is not None:
        ref = reference.objective if isinstance(reference, Result) else float(reference)
        if not math.isfinite(ref):
            raise InvalidArgumentError(f"reference must be finite, got {ref}")
        result.reference_objective = ref
        result.gap = (result.objective - ref) / max(1.0, abs(ref))
    return result


__all__ = ["METHOD_NAMES", "register", "solve"]
