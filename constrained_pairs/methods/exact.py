"""``method="exact"``: the CVXPY reference for the linear model (SPEC §2).

With g linear the problem is jointly convex: cross-entropy of affine logits written as
log_sum_exp − true-class logit, hinges of affine (or convex, for ``"margin"``) expressions, norm
constraints bounded by linear functions of α, and linear α terms. Everything is float64.

Reductions that keep the optimum exact and the program small:

* **Scale.** The program is built on ``problem.rescaled(s)`` with s = ``data_scale(problem)`` (a
  power of two), where the entries are O(1); the optimum maps back as θ = θ'/s, α = α'/s, b
  unchanged (``join/scaling.py``), so data at 1e-30 or 1e30 give the same optimum.
* **Rank.** θ₁ acts only through θ₁x for the x the regime evaluates; projecting its rows onto
  their span leaves the loss unchanged and does not increase any of the norms (all unitarily
  invariant, the Lipschitz seminorm too), so θ₁ = Φ Bᵀ with B an orthonormal basis of rank r:
  the cone sizes follow the rank of the data, not d.
* **Shift.** With a shift-invariant hinge (``"margin"``, ``"reference"``) the loss depends on θ₁,
  θ₂ only through row differences, and centring the rows (the orthogonal projection onto
  1^⊥) never increases a unitarily invariant norm nor the Lipschitz seminorm; so θ₁ = Q Φ Bᵀ
  and θ₂ = Q Ψ with Q an orthonormal C×(C−1) basis of 1^⊥. For C = 2, Φ is a row vector and the
  nuclear (= Frobenius = spectral) norm is the second-order cone ‖Φ‖₂ = ‖θ₁[1] − θ₁[0]‖₂/√2 —
  no SDP. With the ``"seed"`` hinge no such reduction holds and the nuclear norm needs an SDP.

The default solver is Clarabel (SCS as a fallback). ``"optimal"`` is reported only after the
returned point passes a float64 re-check: every constraint within ``FEASIBILITY_TOL`` (in the
scaled units) and a duality gap (solver's primal − dual objective, plus the distance between the
float64 re-evaluation of Ω and the solver's value) within ``GAP_TOL`` relative, and a value no
worse than the feasible point θ = 0, α = 0 with the returned bias; otherwise
``"optimal_inaccurate"``. A slightly inaccurate solver answer that passes this re-check is
reported ``"optimal"``.
"""

from __future__ import annotations

import difflib
import time
from typing import Any

import numpy as np
import torch

from constrained_pairs._validation import check_flag
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError, UnsupportedOptionError
from constrained_pairs.join.constraints import constraint_residuals, violations
from constrained_pairs.join.diagnostics import diagnose
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.result import Result
from constrained_pairs.join.scaling import data_scale
from constrained_pairs.methods.common import make_result
from constrained_pairs.methods.exact_program import Program, build_program

SOLVERS = ("CLARABEL", "SCS")
#: Clarabel's gap tolerances: 1e-7 relative is far below the 1e-4 gaps first-order methods are
#: measured at, and Clarabel's default 1e-8 often stalls a hair above on exp-cone problems.
CLARABEL_OPTIONS = {"tol_gap_abs": 1e-7, "tol_gap_rel": 1e-7}
#: A returned point violating a constraint by more than this (scaled units) is inaccurate.
FEASIBILITY_TOL = 1e-6
#: Largest relative duality gap of an "optimal" answer.
GAP_TOL = 1e-5
#: The options of ``method="exact"`` (CVXPY settings go in ``solver_options``).
EXACT_OPTIONS = ("solver", "solver_options", "verbose", "model")
#: SCS settings accepted through ``solver_options`` (CVXPY passes them to SCS), with their types.
SCS_SETTINGS = {
    **dict.fromkeys(("max_iters", "acceleration_lookback", "acceleration_interval"), int),
    **dict.fromkeys(("eps_abs", "eps_rel", "eps_infeas", "alpha", "scale", "rho_x"), float),
    "time_limit_secs": float,
    **dict.fromkeys(("adaptive_scale", "normalize", "warm_start", "use_indirect"), bool),
}


#: CVXPY's statuses in the package's vocabulary (constrained_pairs.Status).
CVXPY_STATUS = {
    "optimal": "optimal",
    "optimal_inaccurate": "optimal_inaccurate",
    "infeasible": "infeasible",
    "infeasible_inaccurate": "infeasible",
    "unbounded": "unbounded",
    "unbounded_inaccurate": "unbounded",
    "user_limit": "max_iter",
    "infeasible_or_unbounded": "solver_error",
    "solver_error": "solver_error",
}


def _closest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    match = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


def solver_settings(name: str) -> dict[str, type] | None:
    """The settings a solver accepts through ``solver_options`` and the type of each (None:
    not known here). ``verbose`` is the method's own option, not a setting."""
    if name == "CLARABEL":
        import clarabel

        defaults = clarabel.DefaultSettings()
        return {
            a: type(getattr(defaults, a))
            for a in dir(defaults)
            if not a.startswith("_") and a not in ("default", "verbose")
        }
    if name == "SCS":
        return SCS_SETTINGS
    return None


def _check_setting(solver: str, key: str, value: Any, kind: type | None) -> None:
    """A bool setting takes a bool; a numeric one (or any number, for a solver whose types are
    not known) a real number >= 0, finite (time limits may be inf). Others go to the solver."""
    where = f"solver_options[{key!r}] ({solver})"
    flag, real = isinstance(value, bool | np.bool_), isinstance(value, int | float | np.number)
    if kind is bool or (kind is None and flag):
        if not flag:
            raise InvalidTypeError(f"{where} must be True or False, got {value!r}")
    elif kind in (int, float) or (kind is None and real):
        if flag or not real or (kind is int and not isinstance(value, int | np.integer)):
            expected = "an integer" if kind is int else "a real number"
            raise InvalidTypeError(f"{where} must be {expected}, got {value!r}")
        finite = isinstance(value, int | np.integer) or np.isfinite(value)
        if not (value >= 0 and (finite or ("time" in key and value == np.inf))):
            raise InvalidArgumentError(
                f"{where} must be a finite number >= 0 (a tolerance, count or limit), got {value!r}"
            )


def _check_options(solver: Any, solver_options: Any, unknown: dict[str, Any]) -> tuple:
    """Validate ``solver`` and ``solver_options``; return (solver names to try, settings)."""
    import cvxpy as cp

    if unknown:
        name = sorted(unknown)[0]
        raise InvalidArgumentError(
            f"method='exact' got an unknown option {name!r}{_closest(name, EXACT_OPTIONS)} "
            f"Valid options: {EXACT_OPTIONS}; CVXPY solver settings go in solver_options={{...}}"
        )
    installed = tuple(cp.installed_solvers())
    if solver is None and solver_options:
        names = (SOLVERS[0],)  # settings are the default solver's: no fallback to another
    elif solver is None:
        names = tuple(s for s in SOLVERS if s in installed)
    else:
        if not isinstance(solver, str):
            raise InvalidTypeError(f"solver must be a CVXPY solver name, got {solver!r}")
        if solver.upper() not in installed:
            raise InvalidArgumentError(
                f"solver={solver!r} is not an installed CVXPY solver"
                f"{_closest(solver.upper(), installed)} Installed: {installed}"
            )
        names = (solver.upper(),)
    settings = {} if solver_options is None else solver_options
    if not isinstance(settings, dict):
        raise InvalidTypeError(f"solver_options must be a dict, got {type(settings).__name__}")
    for key in settings:
        if key == "verbose":
            raise InvalidArgumentError("solver_options: pass verbose=True to solve(), not here")
    for name in names:
        valid = solver_settings(name)
        for key, value in settings.items():
            if valid is not None and key not in valid:
                raise InvalidArgumentError(
                    f"solver_options: {key!r} is not a {name} setting{_closest(key, list(valid))} "
                    f"Valid {name} settings: {tuple(valid)}"
                )
            _check_setting(name, key, value, valid.get(key) if valid is not None else None)
    return names, dict(settings)


def _recording_solver(name: str) -> Any:
    """A CVXPY solver instance that keeps the raw solution (for the primal/dual objectives)."""
    if name == "CLARABEL":
        from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL as base
    elif name == "SCS":
        from cvxpy.reductions.solvers.conic_solvers.scs_conif import SCS as base
    else:
        return None

    class Recording(base):  # type: ignore[misc, valid-type]
        raw: Any = None

        def name(self) -> str:
            return f"{name}_RECORDING"

        def solve_via_data(self, *args: Any, **kwargs: Any) -> Any:
            self.raw = super().solve_via_data(*args, **kwargs)
            return self.raw

    return Recording()


def _solver_gap(name: str, raw: Any) -> float:
    """|primal − dual| objective reported by the solver (conic form), NaN when unknown."""
    try:
        if name == "CLARABEL":
            return abs(float(raw.obj_val) - float(raw.obj_val_dual))
        if name == "SCS":
            return abs(float(raw["info"]["pobj"]) - float(raw["info"]["dobj"]))
    except (AttributeError, KeyError, TypeError):
        pass
    return float("nan")


def _bad_setting(options: dict, exc: Exception) -> InvalidArgumentError:
    """The solver refused a setting's value: name the setting when its message tells which."""
    named = [key for key in options if key in str(exc)] or sorted(options)
    return InvalidArgumentError(
        f"solver_options: the solver refused the setting {', '.join(map(repr, named))}: {exc}"
    )


def _run(built: Program, names: tuple[str, ...], verbose: bool, options: dict) -> tuple:
    """Solve with the first solver of ``names`` that returns a point; (status, solver, gap,
    {solver: error message} of the solvers that failed)."""
    import warnings

    import cvxpy as cp

    status, used, gap, errors = "solver_error", None, float("nan"), {}
    for name in names:
        settings = {**CLARABEL_OPTIONS, **options} if name == "CLARABEL" else options
        recorder = _recording_solver(name)
        try:
            with warnings.catch_warnings():  # the inaccuracy is reported in the result's status
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                built.program.solve(solver=recorder or name, verbose=verbose, **settings)
        except cp.error.SolverError as exc:
            errors[name] = str(exc)
            continue
        except Exception as exc:  # Clarabel raises a bare Exception for a bad setting value
            if not options:
                raise
            raise _bad_setting(options, exc) from exc
        used, status = name, CVXPY_STATUS.get(built.program.status, "solver_error")
        gap = _solver_gap(name, recorder.raw) if recorder is not None else float("nan")
        # Fall back only when the solver produced no usable point: SCS is first-order and would
        # replace an "optimal_inaccurate" interior-point answer by a less accurate one.
        if built.program.value is not None:
            break
    return status, used, gap, errors


def _tensor(value: Any, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    data = value if value is not None else np.full(shape, np.nan)
    return torch.as_tensor(np.asarray(data, dtype=np.float64), device=device).reshape(shape)


def solve_exact(
    problem: PairProblem,
    regime: str,
    *,
    solver: str | None = None,
    solver_options: dict[str, Any] | None = None,
    verbose: bool = False,
    model: torch.nn.Module | None = None,
    **unknown: Any,
) -> Result:
    """Solve Ω^regime exactly with CVXPY; see the module docstring.

    The logits are first lifted into variables (fast); if the interior-point solver stops just
    short of its tolerance there ("optimal_inaccurate"), the un-lifted program is solved too and
    an "optimal" answer from it is kept.

    Args:
        problem: the data-join problem (linear model).
        regime: ``"A"`` or ``"P"``.
        solver: an installed CVXPY solver name; by default Clarabel (relative gap 1e-7, see
            ``CLARABEL_OPTIONS``), then SCS if Clarabel returns no solution.
        solver_options: the solver's own settings, checked against the solver's list and types
            (bools for switches; numbers finite and >= 0, time limits may be inf); without
            ``solver`` they are Clarabel's, and no SCS fallback is tried. A value the solver
            refuses raises; a solver that fails on the problem gives ``status="solver_error"``
            with its message in ``extra["solver_errors"]``.
        verbose: print the solver's log (True or False).
        model: must be None (the exact reference exists for the linear model only).

    Raises:
        InvalidArgumentError: for an unknown option, an uninstalled solver, an unknown solver
            setting (naming the closest valid one) or a setting value out of range.
        InvalidTypeError: for a non-bool ``verbose`` or a setting of the wrong type.
    """
    names, settings = _check_options(solver, solver_options, unknown)
    verbose = check_flag("verbose", verbose)
    if model is not None:
        raise UnsupportedOptionError("method='exact' needs the linear model (model=None)")
    if not problem.distance_is_constant():
        raise UnsupportedOptionError(
            f"method='exact' needs a distance that does not depend on the parameters, "
            f"got distance={problem.distance!r} (the problem is then not convex)"
        )
    start = time.perf_counter()
    scale = data_scale(problem)
    work = problem.to(dtype=torch.float64)
    work = work.rescaled(scale) if scale != 1.0 else work
    built = build_program(work, regime, lift=True)
    status, used, gap, errors = _run(built, names, verbose, settings)
    if (
        status == "optimal_inaccurate"
        and _recheck(work, regime, built, "optimal", gap) == "optimal"
    ):
        status = "optimal"  # a hair short of the solver's own tolerance, certified below
    if status == "optimal_inaccurate":
        plain = build_program(work, regime, lift=False)
        plain_status, plain_used, plain_gap, plain_errors = _run(plain, names, verbose, settings)
        if plain_status == "optimal":
            built, status, used, gap, errors = plain, "optimal", plain_used, plain_gap, plain_errors
    status = _recheck(work, regime, built, status, gap)
    wall = time.perf_counter() - start

    point = _point(built, problem)
    theta1, theta2, bias = point["theta1"], point["theta2"], point["bias"]
    alpha_a, alpha_p = point["alpha_a"], point["alpha_p"]
    original = problem.to(dtype=torch.float64)
    result = make_result(
        original,
        method="exact",
        regime=regime,
        theta1=theta1 / scale,
        theta2=theta2 / scale if theta2 is not None else None,
        bias=bias,
        alpha_a=alpha_a / scale,
        alpha_p=alpha_p / scale,
        status=status,
        history=[],
        wall_time=wall,
        extra={
            "solver": used,
            "cvxpy_value": built.program.value,
            "data_scale": scale,
            "duality_gap": gap,
            "program": built.kind,
            **({"solver_errors": errors} if errors else {}),
        },
    )
    if torch.isfinite(theta1).all():
        result.diagnostics = diagnose(
            original,
            theta1=result.theta1,
            theta2=result.theta2,
            bias=result.bias,
            regime=regime,
            alpha_p=result.alpha_p,
        )
    if status != "optimal" and result.status == "optimal":
        result.status = status
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


def _point(built: Program, problem: PairProblem) -> dict[str, torch.Tensor | None]:
    """The solver's (θ₁, θ₂, b, α_A, α_P) as float64 tensors (NaN where there is none)."""
    device, classes = problem.device, problem.num_classes
    theta2 = None
    if built.has_theta2:
        theta2 = _tensor(built.theta2_value(), (classes, built.aux_dim), device)
    return {
        "theta1": _tensor(built.theta1_value(), (classes, built.num_features), device),
        "theta2": theta2,
        "bias": _tensor(built.bias.value, (classes,), device),
        "alpha_a": _tensor(built.alpha_a.value, (), device),
        "alpha_p": _tensor(built.alpha_p.value, (), device),
    }


def _recheck(work: PairProblem, regime: str, built: Program, status: str, gap: float) -> str:
    """ "optimal" only when the float64 re-check holds in the scaled units (module docstring)."""
    if status != "optimal":
        return status
    from constrained_pairs.join.objective import omega

    point = _point(built, work)
    if not all(bool(torch.isfinite(t).all()) for t in point.values() if t is not None):
        return "solver_error"
    with torch.no_grad():
        found = violations(constraint_residuals(work, **_without_bias(point), regime=regime))
        value = float(omega(work, **point, regime=regime))
        # θ = 0, α = 0 with the same bias is feasible: an optimum is never worse than it (a
        # solver whose dual went infeasible can report a tiny gap at a poor point).
        zero = {
            k: torch.zeros_like(v) if v is not None and k != "bias" else v for k, v in point.items()
        }
        trivial = float(omega(work, **zero, regime=regime))
    solver_gap = gap if gap == gap else 0.0  # NaN: a solver that reports no dual objective
    total_gap = solver_gap + abs(value - float(built.program.value))
    tolerance = GAP_TOL * max(1.0, abs(value))
    if max(found.values()) > FEASIBILITY_TOL or not total_gap <= tolerance:
        return "optimal_inaccurate"
    if trivial < value - tolerance:
        return "optimal_inaccurate"
    return "optimal"


def _without_bias(point: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in point.items() if k != "bias"}
