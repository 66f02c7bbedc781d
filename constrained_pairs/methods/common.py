"""What every solution method shares: turning final parameters into a :class:`Result`."""

from __future__ import annotations

import math
from typing import Any

import torch

from constrained_pairs.join.constraints import constraint_names, constraint_residuals, violations
from constrained_pairs.join.diagnostics import Diagnostics, diagnose
from constrained_pairs.join.objective import omega
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.result import Result
from constrained_pairs.status import Status


def make_result(
    problem: PairProblem,
    *,
    method: str,
    regime: str,
    theta1: torch.Tensor,
    theta2: torch.Tensor | None,
    bias: torch.Tensor,
    alpha_a: torch.Tensor | float,
    alpha_p: torch.Tensor | float,
    status: Status | str,
    history: list[dict[str, Any]],
    wall_time: float,
    model: torch.nn.Module | None = None,
    feature_map: torch.nn.Module | None = None,
    extra: dict[str, Any] | None = None,
) -> Result:
    """Evaluate Ω (the true objective, whatever the method optimised), the violations and the
    diagnostics at the final point, and package them as a :class:`Result`.

    A point with non-finite entries (a solver that returned nothing usable) gives NaN values,
    infinite violations and a status that says so, never a silent NaN.
    """
    theta1, bias = theta1.detach(), bias.detach()
    theta2 = theta2.detach() if theta2 is not None else None
    alpha_a = torch.as_tensor(alpha_a, dtype=theta1.dtype, device=theta1.device).detach()
    alpha_p = torch.as_tensor(alpha_p, dtype=theta1.dtype, device=theta1.device).detach()
    head = {"theta1": theta1, "theta2": theta2, "alpha_a": alpha_a, "alpha_p": alpha_p}
    if all(bool(torch.isfinite(t).all()) for t in (*head.values(), bias) if t is not None):
        with torch.no_grad():
            frozen = {} if feature_map is None else {"feature_map": feature_map}
            value = float(omega(problem, **head, bias=bias, regime=regime, model=model, **frozen))
            found = violations(constraint_residuals(problem, **head, regime=regime))
        diagnostics = diagnose(
            problem,
            theta1=theta1,
            theta2=theta2,
            bias=bias,
            regime=regime,
            model=model,
            alpha_p=alpha_p,
            feature_map=feature_map,
        )
    else:
        value = float("nan")
        found = dict.fromkeys(constraint_names(problem), float("inf"))
        diagnostics = Diagnostics(
            mean_distance=float("nan"),
            radius_sum=problem.r_a + problem.r_p,
            bounded=False,
            class_histogram=[],
            prediction_entropy=float("nan"),
            collapsed=False,
        )
    if not math.isfinite(value) and Status(status).ok:
        status = Status.DIVERGED
    return Result(
        objective=value,
        theta1=theta1,
        theta2=theta2,
        bias=bias,
        alpha_a=float(alpha_a),
        alpha_p=float(alpha_p),
        regime=regime,
        method=method,
        status=Status(status),
        violations=found,
        max_violation=max(found.values()),
        history=history,
        wall_time=wall_time,
        diagnostics=diagnostics,
        model=model,
        feature_map=feature_map,
        extra=extra or {},
    )
