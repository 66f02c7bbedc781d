"""The result every solution method returns (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from constrained_pairs._validation import check_flag
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.join.diagnostics import Diagnostics
from constrained_pairs.join.objective import features
from constrained_pairs.join.validation import label_tensor, predictor_input


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

        Args:
            x: features, (n, d) (or (n, ...) for a backbone), finite.
            aux: auxiliary features, (n, m), finite; needed when θ₂ is non-zero.
            ignore_aux: True to use θ₁φ(x) + b on purpose (``aux`` is then not used).

        Raises:
            InvalidArgumentError: when θ₂ is non-zero and ``aux`` is missing (the predictor
                would silently drop θ₂a); for ``x``/``aux`` of the wrong width or row count, for
                ``aux`` given to a result without θ₂, and for NaN or infinite inputs.
            InvalidTypeError: for non-numeric inputs or a non-bool ``ignore_aux``.
        """
        ignore_aux = check_flag("ignore_aux", ignore_aux)
        width = self.theta1.shape[1] if self.model is None else None
        x = predictor_input("x", x, self.theta1, width)
        uses_aux = self.theta2 is not None and bool((self.theta2 != 0).any())
        if aux is None and uses_aux and not ignore_aux:
            raise InvalidArgumentError(
                "aux is required: this result's theta2 is non-zero, so predictions need the "
                "auxiliary features (pass aux=...), or ignore_aux=True to predict from x alone"
            )
        if aux is not None and not ignore_aux:
            if self.theta2 is None:
                raise InvalidArgumentError(
                    "aux was given but this result has no theta2 (its problem had no aux_a): "
                    "predict from x alone (aux=None)"
                )
            aux = predictor_input("aux", aux, self.theta2, self.theta2.shape[1], x.shape[0])
        with torch.no_grad():
            phi = features(self.model, x)
            if phi.shape[1] != self.theta1.shape[1]:
                raise InvalidArgumentError(
                    f"x: the model's features have width {phi.shape[1]}, theta1 expects "
                    f"{self.theta1.shape[1]} (check the input shape)"
                )
            out = phi @ self.theta1.T + self.bias
            if aux is not None and not ignore_aux:
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
        """Fraction of correct predictions (``aux`` as in :meth:`logits`; ``y``: integer labels,
        one per row of ``x``)."""
        predicted = self.predict(x, aux, ignore_aux=ignore_aux)
        y = label_tensor("y", y, predicted.shape[0], self.theta1.device)
        if y.is_floating_point() and not bool((y == y.round()).all()):
            raise InvalidArgumentError("y must hold integer class labels")
        return float((predicted == y).double().mean())

    def summary(self) -> str:
        """One line: method, regime, objective, max violation, status, time."""
        gap = f", gap {self.gap:.2e}" if self.gap is not None else ""
        return (
            f"{self.method} (regime {self.regime}): objective {self.objective:.6f}{gap}, "
            f"max violation {self.max_violation:.1e}, {self.status}, {self.wall_time:.2f}s"
        )
