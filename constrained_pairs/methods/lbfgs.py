"""L-BFGS with a strong-Wolfe line search whose decisions do not hinge on rounding (SPEC §2).

The penalty method's stages are solved by L-BFGS (Nocedal & Wright, algorithms 3.5/3.6 and
7.4, with the constants of ``torch.optim.LBFGS``). ``torch.optim.LBFGS`` branches in its cubic
interpolation on the sign of a discriminant that is exactly 0 on a linear segment (Ω is linear
in α wherever no penalty is active), so a one-ulp change of the data changed the trial steps and,
after a few iterations, the result at the 1e-4 level; here a discriminant below 1e-6 of its terms
means "no interior minimiser". A line search without decrease clears the memory and the next
step is steepest descent (``torch.optim.LBFGS`` retries the failing direction).
"""

from __future__ import annotations

import math
from typing import Any

import torch


def _cubic_minimiser(first: tuple, second: tuple) -> float | None:
    """The minimiser of the cubic through (t, φ, φ') at two points (Nocedal & Wright, eq. 3.59),
    or None when it has none or the data are, to round-off, those of a line.

    The discriminant d₁² − φ'₁φ'₂ is exactly zero on a linear segment, so its sign there is
    round-off: anything below 1e-6 of its terms counts as no minimiser, a stable decision.
    """
    (t1, f1, g1, _), (t2, f2, g2, _) = first, second
    if not all(math.isfinite(v) for v in (f1, f2, g1, g2)) or t1 == t2:
        return None
    d1 = g1 + g2 - 3.0 * (f1 - f2) / (t1 - t2)
    disc = d1 * d1 - g1 * g2
    if disc <= 1e-6 * max(d1 * d1, abs(g1 * g2)):
        return None
    d2 = math.copysign(math.sqrt(disc), t2 - t1)
    denominator = g2 - g1 + 2.0 * d2
    if abs(denominator) <= 1e-6 * (abs(g2 - g1) + 2.0 * abs(d2)):
        return None
    return t2 - (t2 - t1) * (g2 + d2 - d1) / denominator


class WolfeLBFGS(torch.optim.Optimizer):
    """L-BFGS with a strong-Wolfe line search that round-off cannot steer.

    One iteration per :meth:`step`. The line search is the one torch's L-BFGS also follows
    (Nocedal & Wright 3.5/3.6: sufficient decrease f(t) <= f(0) + c₁ t f'(0), curvature
    |f'(t)| <= c₂ |f'(0)|, c₁ = 1e-4, c₂ = 0.9, cubic interpolation, extrapolation up to 10×)
    except on the cubic's degenerate data (:func:`_cubic_minimiser`): torch branches on the sign
    of the cubic's discriminant, exactly zero on a linear segment (Ω is linear in α wherever no
    penalty is active), so round-off chose the step and runs at data scales 1 and 1 + 2⁻⁴⁰
    parted after a dozen iterations (issue 12). When no step decreases f (next to a kink of Ω,
    such as the hinge at equal logits) the memory is dropped and the next step is steepest
    descent, not the same failing direction again; when that fails too, the point is
    stationary to round-off and steps do nothing until the owner clears the state (a new ρ).

    Args:
        params: the parameters.
        history_size: curvature pairs kept.
        max_eval: function evaluations per line search.
    """

    def __init__(self, params: Any, history_size: int = 20, max_eval: int = 25) -> None:
        super().__init__(params, {"history_size": history_size, "max_eval": max_eval})
        self._params = [p for g in self.param_groups for p in g["params"]]

    def _flat_grad(self) -> torch.Tensor:
        return torch.cat(
            [
                (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                for p in self._params
            ]
        )

    def _set(self, x0: list[torch.Tensor], t: float, d: torch.Tensor) -> None:
        offset = 0
        with torch.no_grad():
            for p, start in zip(self._params, x0, strict=True):
                n = p.numel()
                p.copy_(start + t * d[offset : offset + n].view_as(p))
                offset += n

    def _direction(self, g: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        """−H g by the two-loop recursion (H₀ = γI, γ = sᵀy / yᵀy of the newest pair)."""
        steps, diffs = state.get("steps", []), state.get("diffs", [])
        if not steps:
            return -g
        q, alphas = g.clone(), []
        for s, y in zip(reversed(steps), reversed(diffs), strict=True):
            a = s.dot(q) / y.dot(s)
            alphas.append(a)
            q -= a * y
        q *= steps[-1].dot(diffs[-1]) / diffs[-1].dot(diffs[-1])
        for (s, y), a in zip(zip(steps, diffs, strict=True), reversed(alphas), strict=True):
            q += (a - y.dot(q) / y.dot(s)) * s
        return -q

    @torch.no_grad()
    def step(self, closure: Any) -> torch.Tensor:  # type: ignore[override]
        """One iteration; ``closure`` clears the gradients, evaluates f, backpropagates and
        returns f. Returns f at the starting point."""
        c1, c2 = 1e-4, 0.9
        group, state = self.param_groups[0], self.state[self._params[0]]
        evaluate = torch.enable_grad()(closure)
        start = evaluate()
        if state.get("stalled"):  # steepest descent found no decrease: a stationary point
            return start
        f0, g0 = float(start), self._flat_grad()
        d = self._direction(g0, state)
        slope = float(g0.dot(d))
        if not slope < 0:  # no descent direction from the memory: steepest descent
            state.clear()
            d, slope = -g0, -float(g0.dot(g0))
        if not slope < 0:
            return start
        t = 1.0 if state.get("steps") else min(1.0, 1.0 / float(g0.abs().sum()))
        x0 = [p.detach().clone() for p in self._params]
        reach = float(d.abs().max())

        def at(t: float) -> tuple[float, float, float, torch.Tensor]:
            self._set(x0, t, d)
            f = float(evaluate())
            f = f if math.isfinite(f) else math.inf
            g = self._flat_grad()
            return t, f, float(g.dot(d)) if f < math.inf else math.nan, g

        # Nocedal & Wright, algorithms 3.5 (bracketing) and 3.6 (zoom), on φ(t) = f(x + t d).
        found, prev, low, high = None, (0.0, f0, slope, g0), None, None
        for _ in range(group["max_eval"]):
            if low is None:  # bracketing
                point = at(t)
                if point[1] > f0 + c1 * t * slope or point[1] >= prev[1]:
                    low, high = prev, point
                elif abs(point[2]) <= -c2 * slope:
                    found = point
                    break
                elif point[2] >= 0:
                    low, high = point, prev
                else:
                    lo, hi = t + 0.01 * (t - prev[0]), 10.0 * t
                    guess = _cubic_minimiser(prev, point)
                    prev, t = point, hi if guess is None else min(max(guess, lo), hi)
                    continue
            else:  # zoom in the bracket [low, high], low the best point so far
                width = abs(high[0] - low[0])
                if width * reach < 1e-9:  # the bracket moves no entry by more than 1e-9
                    break
                near = min(low[0], high[0]) + 0.1 * width, max(low[0], high[0]) - 0.1 * width
                guess = _cubic_minimiser(low, high)
                t = 0.5 * (low[0] + high[0]) if guess is None else guess
                if not near[0] <= t <= near[1]:
                    t = 0.5 * (low[0] + high[0])
                point = at(t)
                if point[1] > f0 + c1 * t * slope or point[1] >= low[1]:
                    high = point
                elif abs(point[2]) <= -c2 * slope:
                    found = point
                    break
                else:
                    if point[2] * (high[0] - low[0]) >= 0:
                        high = low
                    low = point
        best = prev if low is None else low  # the best point with sufficient decrease
        if found is None and best[0] > 0:
            found = best  # out of evaluations before the curvature condition held
        if found is None:  # no decrease: stay, and retry from steepest descent (once)
            self._set(x0, 0.0, d)
            stalled = not state.get("steps")
            state.clear()
            state["stalled"] = stalled
            return start
        t, _, _, g = found
        self._set(x0, t, d)
        s, y = t * d, g - g0
        if float(y.dot(s)) > 0:
            state.setdefault("steps", []).append(s)
            state.setdefault("diffs", []).append(y)
            if len(state["steps"]) > group["history_size"]:
                state["steps"].pop(0)
                state["diffs"].pop(0)
        return start
