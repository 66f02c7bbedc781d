"""Certified Lipschitz backbones for the deep data join (SPEC §2, "Deep backbones").

The dual of the data-join objective is valid when the loss is α-Lipschitz in x: with
g = θ₁ φ(x) + θ₂ a + b this holds when Lip(CE∘θ₁) · Lip(φ) ≤ α_A + α_P. This package provides
backbones φ whose Lipschitz constant is certified (:class:`LipschitzMLP`,
:class:`LipschitzConvNet`, built from parametrized layers), the free baseline :class:`FreeConvNet`,
and :func:`lipschitz_bound`, a certified bound L_φ for these and for any ``nn.Sequential`` of
supported layers.
"""

from __future__ import annotations

from constrained_pairs.backbones.bounds import (
    conv_bound,
    conv_fourier_bound,
    conv_unfolded_bound,
    lipschitz_bound,
)
from constrained_pairs.backbones.layers import GroupSort, LipschitzConv2d, orthogonal_linear
from constrained_pairs.backbones.networks import (
    FreeConvNet,
    LipschitzConvNet,
    LipschitzMLP,
    num_parameters,
)

__all__ = [
    "FreeConvNet",
    "GroupSort",
    "LipschitzConv2d",
    "LipschitzConvNet",
    "LipschitzMLP",
    "conv_bound",
    "conv_fourier_bound",
    "conv_unfolded_bound",
    "lipschitz_bound",
    "num_parameters",
    "orthogonal_linear",
]
