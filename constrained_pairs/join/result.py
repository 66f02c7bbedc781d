"""The result every solution method returns (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.join.diagnostics import Diagnostics
from constrained_pairs.join.objective import features


@dataclass
class Result:
    """A solution of the data-join problem, identical in form for every method.

    Attributes:
        objective: Ω at the returned point (float).
        theta1: classifier layer θ₁, (C, d).
        theta2: auxiliary weights θ₂, (C, m), or None.
        bias: bias b, (C,).
        alpha_a: α_A.
        alpha_p: α_P.
        regime: ``"A"`` or ``"P"``.
        method: the method's name.
        status: the solver's status (``"optimal"``, ``"converged"``, ``"max_iter"``, ...).
        violations: each constraint's violation max(g, 0).
        max_violation: the largest of them.
        history: one dict per iteration (objective, max_violation, time, ...).
        wall_time: seconds.
        diagnostics: see :class:`~constrained_pairs.Diagnostics`.
        model: the trained backbone φ, or None for the linear model.
        feature_map: the frozen map of ``distance="feature"`` (pass it to ``objective`` with
            ``model`` to reproduce ``objective``), or None.
        reference_objective: the exact optimum when one was computed.
        gap: relative gap (objective − reference) / max(1, |reference|), when known.
        extra: method-specific details (e.g. the other regime's result under ``regime="auto"``).
    """

    objective: float
    theta1: torch.Tensor
    theta2: torch.Tensor | None
    bias: torch.Tensor
    alpha_a: float
    alpha_p: float
    regime: str
    method: str
    status: str
    violations: dict[str, float]
    max_violation: float
    history: list[dict[str, Any]]
    wall_time: float
    diagnostics: Diagnostics
    model: torch.nn.Module | None = None
    feature_map: torch.nn.Module | None = None
    reference_objective: float | None = None
    gap: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def logits(
        self, x: torch.Tensor, aux: torch.Tensor | None = None, *, ignore_aux: bool = False
    ) -> torch.Tensor:
        """g(x, a) = θ₁φ(x) + θ₂a + b.

        Raises:
            InvalidArgumentError: when θ₂ is non-zero and ``aux`` is missing (the predictor
                would silently drop θ₂a); pass ``ignore_aux=True`` to use θ₁φ(x) + b on purpose.
        """
        x = torch.as_tensor(x, dtype=self.theta1.dtype, device=self.theta1.device)
        uses_aux = self.theta2 is not None and bool((self.theta2 != 0).any())
        if aux is None and uses_aux and not ignore_aux:
            raise InvalidArgumentError(
                "aux is required: this result's theta2 is non-zero, so predictions need the "
                "auxiliary features (pass aux=...), or ignore_aux=True to predict from x alone"
            )
        with torch.no_grad():
            out = features(self.model, x) @ self.theta1.T + self.bias
            if aux is not None and self.theta2 is not None and not ignore_aux:
                aux = torch.as_tensor(aux, dtype=self.theta2.dtype, device=self.theta2.device)
                out = out + aux @ self.theta2.T
        return out

    def predict(
        self, x: torch.Tensor, aux: torch.Tensor | None = None, *, ignore_aux: bool = False
    ) -> torch.Tensor:
        """Predicted class labels, (n,) (``aux`` as in :meth:`logits`)."""
        return self.logits(x, aux, ignore_aux=ignore_aux).argmax(dim=1)

    def accuracy(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        aux: torch.Tensor | None = None,
        *,
        ignore_aux: bool = False,
    ) -> float:
        """Fraction of correct predictions (``aux`` as in :meth:`logits`)."""
        y = torch.as_tensor(y, device=self.theta1.device)
        return float((self.predict(x, aux, ignore_aux=ignore_aux) == y).double().mean())

    def summary(self) -> str:
        """One line: method, regime, objective, max violation, status, time."""
        gap = f", gap {self.gap:.2e}" if self.gap is not None else ""
        return (
            f"{self.method} (regime {self.regime}): objective {self.objective:.6f}{gap}, "
            f"max violation {self.max_violation:.1e}, {self.status}, {self.wall_time:.2f}s"
        )
