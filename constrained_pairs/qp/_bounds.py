"""Turning ``lower ≤ z ≤ upper`` into the finite inequality rows that external solvers need."""

from __future__ import annotations

import torch


def finite_bound_columns(bound: torch.Tensor) -> torch.Tensor:
    """Indices of the variables whose bound is finite in at least one problem of the batch."""
    return torch.isfinite(bound).any(0).nonzero().flatten()


def finite_bound_values(bound: torch.Tensor, columns: torch.Tensor, span: torch.Tensor):
    """``bound[:, columns]`` with remaining infinite entries replaced by a far finite value.

    A column can be bounded in one problem and unbounded in another; external solvers need a
    fixed constraint structure, so the unbounded entries get ``±(1e6 · span)``, far outside any
    solution of a well-scaled problem. ``span`` is ``(B, 1)``: the scale of each problem.
    """
    values = bound[:, columns]
    far = torch.where(values > 0, 1e6 * span, -1e6 * span).expand_as(values)
    return torch.where(torch.isfinite(values), values, far)


def problem_span(problem) -> torch.Tensor:
    """A per-problem scale ``(B, 1)``: 1 + the largest finite bound and linear-term magnitude."""
    finite = torch.cat([problem.lower, problem.upper], -1)
    finite = torch.where(torch.isfinite(finite), finite.abs(), torch.zeros_like(finite))
    return 1 + torch.maximum(finite.amax(-1, keepdim=True), problem.p.abs().amax(-1, keepdim=True))
