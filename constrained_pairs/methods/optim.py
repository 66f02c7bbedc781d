"""A step rule compatible with Euclidean projection: Adam with one shared second moment.

Adam's per-coordinate scaling changes the metric, so "Adam step then Euclidean projection" has
fixed points that are not the constrained optimum. Normalising every coordinate by the same scalar
(the root-mean-square gradient over the group) keeps the step a positive multiple of the momentum
direction, so projected iterations stop only at points where −∇Ω lies in the normal cone.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class ScalarAdam(torch.optim.Optimizer):
    """Momentum step ``x -= lr * m̂ / (sqrt(v̂) + eps)`` with v a scalar per parameter group.

    Args:
        params: parameters (or groups).
        lr: learning rate.
        betas: decay of the first moment (per coordinate) and of the scalar second moment.
        eps: added to sqrt(v̂).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-12,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch.optim.Optimizer API
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            first = params[0]
            state = self.state[first]
            if not state:
                state["step"] = 0
                state["v"] = torch.zeros((), dtype=first.dtype, device=first.device)
            state["step"] += 1
            t = state["step"]
            square = sum((p.grad**2).sum() for p in params) / sum(p.numel() for p in params)
            state["v"].mul_(beta2).add_((1 - beta2) * square)
            denom = (state["v"] / (1 - beta2**t)).sqrt() + group["eps"]
            for p in params:
                pstate = self.state[p]
                if "m" not in pstate:
                    pstate["m"] = torch.zeros_like(p)
                pstate["m"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                p.sub_(group["lr"] * pstate["m"] / ((1 - beta1**t) * denom))
        return None
