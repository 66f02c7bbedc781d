"""What every solution method shares: turning final parameters into a :class:`Result`."""

from __future__ import annotations

from typing import Any

import torch

from constrained_pairs.join.constraints import constraint_residuals, violations
from constrained_pairs.join.diagnostics import Diagnostics, diagnose
from constrained_pairs.join.objective import objective
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.result import Result


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
    status: str,
    history: list[dict[str, Any]],
    wall_time: float,
    model: torch.nn.Module | None = None,
    extra: dict[str, Any] | None = None,
) -> Result:
    """Evaluate Ω (the true objective, whatever the method optimised), the violations and the
    diagnostics at the final point, and package them as a :class:`Result`."""
    theta1, bias = theta1.detach(), bias.detach()
    tensors = [theta1, bias, torch.as_tensor(alpha_a), torch.as_tensor(alpha_p)]
    if theta2 is not None:
        tensors.append(theta2)
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        return _failed_result(
            problem, method, regime, theta1, theta2, bias, status, history, wall_time, model, extra
        )
    with torch.no_grad():
        theta2 = theta2.detach() if theta2 is not None else None
        alpha_a = torch.as_tensor(alpha_a, dtype=theta1.dtype, device=theta1.device).detach()
        alpha_p = torch.as_tensor(alpha_p, dtype=theta1.dtype, device=theta1.device).detach()
        value = objective(
            problem,
            theta1=theta1,
            theta2=theta2,
            bias=bias,
            alpha_a=alpha_a,
            alpha_p=alpha_p,
            regime=regime,
            model=model,
        )
        residuals = constraint_residuals(
            problem, theta1=theta1, theta2=theta2, alpha_a=alpha_a, alpha_p=alpha_p, regime=regime
        )
    found = violations(residuals)
    value = float(value)
    if not torch.isfinite(torch.tensor(value)) and status in ("optimal", "converged"):
        status = "numerical_error"
    return Result(
        objective=value,
        theta1=theta1,
        theta2=theta2,
        bias=bias,
        alpha_a=float(alpha_a),
        alpha_p=float(alpha_p),
        regime=regime,
        method=method,
        status=status,
        violations=found,
        max_violation=max(found.values()),
        history=history,
        wall_time=wall_time,
        diagnostics=diagnose(
            problem, theta1=theta1, theta2=theta2, bias=bias, regime=regime, model=model
        ),
        model=model,
        extra=extra or {},
    )


def _failed_result(
    problem, method, regime, theta1, theta2, bias, status, history, wall_time, model, extra
) -> Result:
    """A result for a solver that returned no usable point: NaN values, the status says why."""
    if status in ("optimal", "converged"):
        status = "numerical_error"
    nan = float("nan")
    names = ["theta1_norm", "alpha_order", "alpha_a_nonneg", "alpha_p_nonneg"]
    if theta2 is not None:
        names.insert(1, "theta2_norm")
    return Result(
        objective=nan,
        theta1=theta1,
        theta2=theta2,
        bias=bias,
        alpha_a=nan,
        alpha_p=nan,
        regime=regime,
        method=method,
        status=status,
        violations=dict.fromkeys(names, float("inf")),
        max_violation=float("inf"),
        history=history,
        wall_time=wall_time,
        diagnostics=Diagnostics(
            mean_distance=nan,
            radius_sum=problem.r_a + problem.r_p,
            bounded=False,
            class_histogram=[],
            prediction_entropy=nan,
            collapsed=False,
        ),
        model=model,
        extra=extra or {},
    )
