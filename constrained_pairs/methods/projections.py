"""Euclidean projection onto the feasible set C^A / C^P of SPEC §2.

The set {(θ₁, θ₂, α_A, α_P) : L‖θ₁‖_* <= α_A + α_P, ‖θ₂‖ <= κ_A α_A, α ordering, α >= 0} (L the
certified Lipschitz constant of a backbone, 1 for the linear model) is projected onto exactly, by
reduction to one scalar s = α_A + α_P:

1. For a fixed radius ρ = c·s (c = 1/L), the nearest θ₁ in {‖θ₁‖_* <= ρ} is an SVD
   θ₁⁰ = U diag(σ) Vᵀ followed by a projection of σ (unitarily invariant norms): nuclear — onto
   {σ >= 0, Σσ <= ρ}, the soft-threshold σ − τ(ρ) with τ(ρ) = max(0, max_m (c_m − ρ)/m), c_m
   the sum of the m largest σ; Frobenius — the same with the single value ‖θ₁⁰‖_F; spectral —
   clipping at ρ, with τ(ρ) = Σ(σ_i − ρ)₊. In each case φ₁(s) = ½ dist²(θ₁⁰, ball(cs)) is convex
   with φ₁'(s) = −c·τ(cs).
2. For a fixed s, α_A = a and α_P = s − a with a in [0, s/2] (regime A) or [s/2, s] (P); θ₂ is
   scaled into its ball, φ₂(a) = ½(n₂ − κa)₊², n₂ = ‖θ₂⁰‖_F. The best a is the root of
   2a − (a⁰ − p⁰) − s − κ(n₂ − κa)₊ = 0 (closed form on either side of κa = n₂) clipped to
   the interval.
3. F(s) = φ₁(s) + min_a [...] is convex in s with a piecewise-linear derivative F'(s) = −cτ(cs)
   + c'·g_a + (1 − c')·g_p (g_a = a − a⁰ − κ(n₂ − κa)₊, g_p = p − p⁰, c' the clipped side's
   share of s in a). All breakpoints are known in closed form, so the root of F' is found
   exactly: evaluate F' at the sorted breakpoints and interpolate linearly on the bracketing
   segment.

The Lipschitz seminorm max_{k<l}‖θ[k] − θ[l]‖₂ ignores the mean row m (θ = 1mᵀ + R, R the
centred rows) and satisfies max_{k<l}‖R[k] − R[l]‖ <= √2‖R‖₂ <= √2‖R‖_F, with equality for C = 2
(R = [−w/2; w/2], all three equal ‖w‖). So ``norm="lipschitz"`` projects R onto the spectral
ball √2 L‖R‖₂ <= s (step 1 with c = 1/(√2 L)) and ``aux_norm="lipschitz"`` projects R₂ onto the
Frobenius ball √2‖R₂‖_F <= κ_A α_A (step 2 with n₂ = ‖R₂⁰‖_F and κ/√2), leaving the mean rows
unchanged: the exact projection for C = 2, and for C > 2 the exact projection onto a subset of
the feasible set (certified: its points satisfy the true constraint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from constrained_pairs._validation import check_choice
from constrained_pairs.errors import InvalidArgumentError, UnsupportedOptionError

PROJECTABLE_NORMS = ("nuclear", "frobenius", "spectral", "lipschitz")
PROJECTABLE_AUX_NORMS = ("frobenius", "lipschitz")


@dataclass
class Projected:
    """The projection of (θ₁, θ₂, α_A, α_P).

    Attributes:
        theta1: projected θ₁.
        theta2: projected θ₂ (None when none was given).
        alpha_a: projected α_A (0-dim).
        alpha_p: projected α_P (0-dim).
    """

    theta1: torch.Tensor
    theta2: torch.Tensor | None
    alpha_a: torch.Tensor
    alpha_p: torch.Tensor


def _spectrum(theta1: torch.Tensor, norm: str):
    """(σ to project, U, Vh): singular values (descending) or the Frobenius norm alone."""
    if norm == "frobenius":
        return theta1.norm().reshape(1), None, None
    u, sigma, vh = torch.linalg.svd(theta1, full_matrices=False)
    return sigma, u, vh


def _tau(s: torch.Tensor, sigma: torch.Tensor, norm: str) -> torch.Tensor:
    """τ(s) = −φ₁'(s) for a batch of radii s (module docstring, step 1)."""
    if norm == "spectral":
        return (sigma[None, :] - s[:, None]).clamp_min(0).sum(1)
    cumulative = sigma.cumsum(0)
    counts = torch.arange(1, sigma.numel() + 1, dtype=sigma.dtype, device=sigma.device)
    return ((cumulative[None, :] - s[:, None]) / counts).max(1).values.clamp_min(0)


def _tau_breakpoints(sigma: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "spectral":
        return sigma
    following = torch.cat([sigma[1:], sigma.new_zeros(1)])
    counts = torch.arange(1, sigma.numel() + 1, dtype=sigma.dtype, device=sigma.device)
    return sigma.cumsum(0) - counts * following


def _split(s, a0, p0, n2, kappa, regime):
    """Best α_A = a for each radius s, its α_P and F'(s) without the −τ term (step 2, 3)."""
    u = a0 - p0
    first = (u + s) / 2
    second = (u + s + kappa * n2) / (2 + kappa**2)
    kink = n2 / kappa if kappa > 0 else torch.full_like(n2, float("inf"))
    root = torch.where(first >= kink, first, second)
    if regime == "A":
        low, high, c_low, c_high = torch.zeros_like(s), s / 2, 0.0, 0.5
    else:
        low, high, c_low, c_high = s / 2, s, 0.5, 1.0
    at_low, at_high = root <= low, root >= high
    a = torch.where(at_low, low, torch.where(at_high, high, root))
    c = torch.where(at_low, c_low, torch.where(at_high, c_high, 0.0)).to(s.dtype)
    p = s - a
    g_a = a - a0 - kappa * (n2 - kappa * a).clamp_min(0)
    g_p = p - p0
    return a, p, c * g_a + (1 - c) * g_p


def _split_breakpoints(a0, p0, n2, kappa) -> torch.Tensor:
    u = a0 - p0
    points = (
        [-u, u]
        if kappa == 0
        else [
            2 * n2 / kappa - u,
            -u,
            -u - kappa * n2,
            2 * (u + kappa * n2) / kappa**2,
            u,
            (u + kappa * n2) / (1 + kappa**2),
            2 * n2 / kappa,
            n2 / kappa,
        ]
    )
    return torch.stack([torch.as_tensor(p, dtype=a0.dtype, device=a0.device) for p in points])


def _centred(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean row (1, n), centred rows) of θ."""
    mean = theta.mean(dim=0, keepdim=True)
    return mean, theta - mean


def project(
    theta1: torch.Tensor,
    theta2: torch.Tensor | None,
    alpha_a: torch.Tensor,
    alpha_p: torch.Tensor,
    *,
    kappa_a: float,
    regime: str,
    norm: str = "nuclear",
    aux_norm: str = "frobenius",
    lipschitz: float = 1.0,
) -> Projected:
    """Euclidean projection onto C^A (``regime="A"``) or C^P (module docstring).

    Args:
        theta1: θ₁⁰, (C, d).
        theta2: θ₂⁰, (C, m), or None (no θ₂ constraint).
        alpha_a: α_A⁰ (0-dim tensor).
        alpha_p: α_P⁰ (0-dim tensor).
        kappa_a: κ_A.
        regime: ``"A"`` (α_A <= α_P) or ``"P"`` (α_P <= α_A).
        norm: ``"nuclear"``, ``"frobenius"``, ``"spectral"`` or ``"lipschitz"``.
        aux_norm: ``"frobenius"`` or ``"lipschitz"``.
        lipschitz: L in L‖θ₁‖_* <= α_A + α_P (> 0).
    """
    check_choice("regime", regime, ("A", "P"))
    if norm not in PROJECTABLE_NORMS:
        raise UnsupportedOptionError(
            f"method='projection' has no projection for norm={norm!r}; "
            f"use norm in {PROJECTABLE_NORMS} or another method"
        )
    check_choice("aux_norm", aux_norm, PROJECTABLE_AUX_NORMS)
    lipschitz = float(lipschitz)
    if not (lipschitz > 0 and math.isfinite(lipschitz)):
        raise InvalidArgumentError(f"lipschitz must be a finite number > 0, got {lipschitz}")
    a0, p0 = alpha_a.detach().reshape(()), alpha_p.detach().reshape(())
    kappa = float(kappa_a)
    theta1 = theta1.detach()
    mean1 = None
    kind, c = norm, 1.0 / lipschitz
    if norm == "lipschitz":
        mean1, theta1 = _centred(theta1)
        kind, c = "spectral", c / math.sqrt(2.0)
    mean2, rest2 = None, theta2.detach() if theta2 is not None else None
    if theta2 is not None and aux_norm == "lipschitz":
        mean2, rest2 = _centred(rest2)
        kappa = kappa / math.sqrt(2.0)
    n2 = rest2.norm() if rest2 is not None else torch.zeros_like(a0)
    sigma, u_mat, vh = _spectrum(theta1, kind)
    points = torch.cat([_tau_breakpoints(sigma, kind) / c, _split_breakpoints(a0, p0, n2, kappa)])
    points = points[torch.isfinite(points)].clamp_min(0)
    points = torch.cat([points.new_zeros(1), points]).sort().values
    points = torch.cat([points, points[-1:] + 1])

    def derivative(s: torch.Tensor) -> torch.Tensor:
        return _split(s, a0, p0, n2, kappa, regime)[2] - c * _tau(c * s, sigma, kind)

    values = derivative(points)
    below = (values < 0).sum()
    index = below.clamp(1, points.numel() - 1)
    s0, s1 = points[index - 1], points[index]
    f0, f1 = values[index - 1], values[index]
    slope = f1 - f0
    root = torch.where(slope > 0, s0 - f0 * (s1 - s0) / torch.where(slope > 0, slope, 1.0), s1)
    s = torch.where(below == 0, torch.zeros_like(root), root).clamp_min(0).reshape(1)
    a, p, _ = _split(s, a0, p0, n2, kappa, regime)
    radius1 = c * s
    tau = _tau(radius1, sigma, kind)
    if kind == "frobenius":
        scale = (sigma - tau).clamp_min(0) / sigma.clamp_min(torch.finfo(sigma.dtype).tiny)
        new_theta1 = theta1 * scale
    else:
        shrunk = (sigma - tau).clamp_min(0) if kind == "nuclear" else sigma.clamp(max=radius1)
        new_theta1 = (u_mat * shrunk) @ vh
    if mean1 is not None:
        new_theta1 = new_theta1 + mean1
    new_theta2 = None
    if rest2 is not None:
        radius = kappa * a
        new_theta2 = rest2 * torch.where(
            n2 > radius, radius / n2.clamp_min(torch.finfo(n2.dtype).tiny), torch.ones_like(n2)
        )
        if mean2 is not None:
            new_theta2 = new_theta2 + mean2
    return Projected(new_theta1, new_theta2, a.reshape(()), p.reshape(()))
