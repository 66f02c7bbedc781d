"""The constrained head (θ₁, θ₂, b, α_A, α_P) of SPEC §2 as trainable parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Point:
    """One value of the head's variables.

    Attributes:
        theta1: classifier layer θ₁, (C, d).
        theta2: auxiliary weights θ₂, (C, m), or None.
        bias: bias b, (C,).
        alpha_a: α_A, 0-dim.
        alpha_p: α_P, 0-dim.
    """

    theta1: torch.Tensor
    theta2: torch.Tensor | None
    bias: torch.Tensor
    alpha_a: torch.Tensor
    alpha_p: torch.Tensor

    def constraint_kwargs(self) -> dict[str, torch.Tensor | None]:
        """θ₁, θ₂, α_A, α_P as the keyword arguments of ``constraint_residuals``."""
        return {
            "theta1": self.theta1,
            "theta2": self.theta2,
            "alpha_a": self.alpha_a,
            "alpha_p": self.alpha_p,
        }

    def kwargs(self) -> dict[str, torch.Tensor | None]:
        """Every variable as the keyword arguments of ``objective`` and ``make_result``."""
        return {**self.constraint_kwargs(), "bias": self.bias}

    def detach(self) -> Point:
        theta2 = self.theta2.detach() if self.theta2 is not None else None
        return Point(
            self.theta1.detach(),
            theta2,
            self.bias.detach(),
            self.alpha_a.detach(),
            self.alpha_p.detach(),
        )


class FreeHead(nn.Module):
    """θ₁, θ₂, b, α_A, α_P held as free parameters, initialised at the feasible point
    θ = 0, b = 0, α_A = α_P = ``alpha_init`` (feasible in both regimes).

    Args:
        num_classes: C.
        num_features: d, the (backbone) feature size θ₁ acts on.
        aux_dim: m, or None without auxiliary features.
        alpha_init: initial α_A = α_P.
        dtype: floating dtype.
        device: torch device.
    """

    def __init__(
        self,
        num_classes: int,
        num_features: int,
        aux_dim: int | None,
        *,
        alpha_init: float = 1.0,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.theta1 = nn.Parameter(torch.zeros(num_classes, num_features, **kw))
        self.theta2 = nn.Parameter(torch.zeros(num_classes, aux_dim, **kw)) if aux_dim else None
        self.bias = nn.Parameter(torch.zeros(num_classes, **kw))
        self.alpha_a = nn.Parameter(torch.full((), float(alpha_init), **kw))
        self.alpha_p = nn.Parameter(torch.full((), float(alpha_init), **kw))

    def point(self) -> Point:
        return Point(self.theta1, self.theta2, self.bias, self.alpha_a, self.alpha_p)


class FactoredHead(FreeHead):
    """θ₁ = U Vᵀ with U (C, k), V (d, k), k = min(C, d); θ₂, b, α as in :class:`FreeHead`.

    The nuclear norm has the variational form ‖θ₁‖_nuc = min_{UVᵀ = θ₁} ½(‖U‖²_F + ‖V‖²_F), so
    :meth:`nuclear_bound` is a smooth upper bound of ‖UVᵀ‖_nuc, tight at the minimising
    factorisation. Constraints written on it are smooth and imply the true ones (SPEC §2).
    U and V start small and random (U = V = 0 is a saddle point).

    Args:
        num_classes: C.
        num_features: d.
        aux_dim: m, or None.
        init_scale: standard deviation of the initial entries of U and V.
        **options: ``alpha_init``, ``dtype``, ``device`` as in :class:`FreeHead`.
    """

    def __init__(
        self,
        num_classes: int,
        num_features: int,
        aux_dim: int | None,
        *,
        init_scale: float = 1e-2,
        **options: Any,
    ) -> None:
        super().__init__(num_classes, num_features, aux_dim, **options)
        del self.theta1
        rank = min(num_classes, num_features)
        kw = {"dtype": self.bias.dtype, "device": self.bias.device}
        self.left = nn.Parameter(init_scale * torch.randn(num_classes, rank, **kw))
        self.right = nn.Parameter(init_scale * torch.randn(num_features, rank, **kw))

    def point(self) -> Point:
        theta1 = self.left @ self.right.T
        return Point(theta1, self.theta2, self.bias, self.alpha_a, self.alpha_p)

    def nuclear_bound(self) -> torch.Tensor:
        """½(‖U‖²_F + ‖V‖²_F) >= ‖UVᵀ‖_nuc."""
        return 0.5 * (self.left.square().sum() + self.right.square().sum())
