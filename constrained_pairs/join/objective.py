"""The data-join objective Ω^A / Ω^P of SPEC §2, streamed over the pairs.

Regime A evaluates g on (x_j^P, a_i^A), so the logits of pair (i, j) split as
z_ij = u_j + v_i with u = θ₁φ(x^P) + b and v = θ₂a^A. That structure gives:

* without auxiliary features the sum over i collapses: O(n_P·C);
* with them, Σ_ij logsumexp(u_j + v_i) = Σ_ij [log (e^{v_i−m_i} · e^{u_j−m_j}) + m_i + m_j], one
  matrix product per chunk of rows i (entries that would underflow are recomputed directly);
  the true-class term is linear, and the seed and reference hinges (``join/hinges.py``) are a
  sort-and-prefix-sum per class, O((n_A + n_P)·C·log n_A).

Regime P evaluates g on (x_i^A, a_i^A): logits depend on i only and the pair sum becomes
per-(i, class) counts, O(n_A·C). Constant distances enter through D̄, computed once.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from constrained_pairs._validation import check_choice
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.join.blocks import Block
from constrained_pairs.join.distances import distance_sum
from constrained_pairs.join.hinges import all_pairs_hinge_sum, hinge_at, hinge_matrix
from constrained_pairs.join.pairs import PairSet
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.streaming import stream_sum
from constrained_pairs.join.validation import (
    alpha_scalar,
    check_instance,
    check_point_values,
    head_tensor,
)

REGIMES = ("A", "P")


def features(model: torch.nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    """φ(x): the backbone's output, or the flattened inputs for the linear model."""
    return model(x).flatten(1) if model is not None else x.flatten(1)


def _labelled_rows_loss(
    z: torch.Tensor, label: torch.Tensor, weight: torch.Tensor, threshold: torch.Tensor, kind: str
) -> torch.Tensor:
    """Σ_r weight_r [CE(z_r, label_r) + hinge(z_r, label_r)]."""
    ce = torch.logsumexp(z, dim=1) - z.gather(1, label[:, None]).squeeze(1)
    return (weight * (ce + hinge_at(z, label, threshold, kind))).sum()


def _counted_rows_loss(
    z: torch.Tensor, counts: torch.Tensor, threshold: torch.Tensor, kind: str
) -> torch.Tensor:
    """Σ_r Σ_c counts_rc [CE(z_r, c) + hinge(z_r, c)]."""
    lse = torch.logsumexp(z, dim=1)
    return (
        (counts.sum(1) * lse).sum()
        - (counts * z).sum()
        + (counts * hinge_matrix(z, threshold, kind)).sum()
    )


def _all_pairs_logsumexp(
    rows: slice, exp_u: torch.Tensor, max_u: torch.Tensor, u: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Σ_{i∈rows, j} logsumexp(u_j + v_i) through one matrix product (module docstring)."""
    v_rows = v[rows]
    max_v = v_rows.max(dim=1, keepdim=True).values
    sums = torch.exp(v_rows - max_v) @ exp_u.T
    # Products of two shifted exponentials can underflow when the two maxima sit on different
    # classes; such entries (rare) are recomputed exactly below.
    underflow = sums < torch.finfo(sums.dtype).tiny ** 0.75
    lse = torch.log(torch.where(underflow, torch.ones_like(sums), sums)) + max_v + max_u.T
    total = torch.where(underflow, torch.zeros_like(lse), lse).sum()
    if bool(underflow.any()):
        i, j = underflow.nonzero(as_tuple=True)
        total = total + torch.logsumexp(v_rows[i] + u[j], dim=1).sum()
    return total


def _all_pairs_margin_hinge(
    rows: slice, u: torch.Tensor, v: torch.Tensor, y: torch.Tensor, threshold: torch.Tensor
) -> torch.Tensor:
    z = v[rows, None, :] + u[None, :, :]  # (rows, n_P, C)
    z_true = z.gather(2, y[None, :, None].expand(z.shape[0], -1, 1)).squeeze(2)
    return F.relu(z_true - z.min(dim=2).values - threshold).sum()


def _explicit_pairs_loss(
    part: tuple[torch.Tensor, torch.Tensor],
    u: torch.Tensor,
    v: torch.Tensor,
    y: torch.Tensor,
    threshold: torch.Tensor,
    kind: str,
) -> torch.Tensor:
    index_a, index_p = part
    z = u[index_p] + v[index_a]
    return _labelled_rows_loss(z, y[index_p], torch.ones_like(z[:, 0]), threshold, kind)


def regime_a_pair_loss(
    pairs: PairSet,
    u: torch.Tensor,
    v: torch.Tensor | None,
    y: torch.Tensor,
    threshold: torch.Tensor,
    kind: str,
) -> torch.Tensor:
    """Σ_{(i,j)∈M} [CE(u_j + v_i, y_j) + hinge] of regime A (v None: no auxiliary features)."""
    if v is None:
        weight = pairs.p_multiplicity(u.device, u.dtype)
        return _labelled_rows_loss(u, y, weight, threshold, kind)
    if not pairs.is_all:
        chunks = pairs.explicit_chunks(u.shape[1])
        return stream_sum(_explicit_pairs_loss, chunks, u, v, y, threshold, kind)
    max_u = u.max(dim=1, keepdim=True).values
    exp_u = torch.exp(u - max_u)
    lse = stream_sum(_all_pairs_logsumexp, pairs.row_chunks(1), exp_u, max_u, u, v)
    class_sizes = torch.bincount(y, minlength=u.shape[1]).to(u.dtype)
    u_true = u.gather(1, y[:, None]).squeeze(1)
    true_logits = pairs.n_a * u_true.sum() + (v * class_sizes).sum()
    hinge = all_pairs_hinge_sum(u, v, y, threshold, kind)
    if hinge is None:
        hinge = stream_sum(
            _all_pairs_margin_hinge, pairs.row_chunks(u.shape[1]), u, v, y, threshold
        )
    return lse - true_logits + hinge


def _check_arguments(problem: Any, theta1, theta2, bias, model, pairs, block, feature_map):
    """O(1) checks of types, dtypes and devices (validation.py; values are not looked at);
    returns (θ₁, θ₂, b) in the problem's dtype."""
    if not isinstance(problem, PairProblem):
        raise InvalidTypeError(f"problem must be a PairProblem, got {type(problem).__name__}")
    check_instance("model", model, torch.nn.Module, "a torch.nn.Module")
    check_instance("feature_map", feature_map, torch.nn.Module, "a torch.nn.Module")
    check_instance("pairs", pairs, PairSet, "a PairSet (see sample_pairs)")
    check_instance("block", block, Block, "a Block (see sample_block)")
    return (
        head_tensor("theta1", theta1, problem, optional=False),
        head_tensor("theta2", theta2, problem, optional=True),
        head_tensor("bias", bias, problem, optional=True),
    )


def _check_head(problem: PairProblem, theta1, theta2, bias, num_features: int) -> None:
    expected = (problem.num_classes, num_features)
    if theta1.dim() != 2 or tuple(theta1.shape) != expected:
        raise InvalidArgumentError(f"theta1 must have shape {expected}, got {tuple(theta1.shape)}")
    if theta2 is not None:
        if not problem.has_aux:
            raise InvalidArgumentError("theta2 was given but the problem has no aux_a features")
        expected2 = (problem.num_classes, problem.aux_a.shape[1])
        if tuple(theta2.shape) != expected2:
            raise InvalidArgumentError(
                f"theta2 must have shape {expected2}, got {tuple(theta2.shape)}"
            )
    if bias is not None and tuple(bias.shape) != (problem.num_classes,):
        raise InvalidArgumentError(
            f"bias must have shape ({problem.num_classes},), got {tuple(bias.shape)}"
        )


def _local_pairs(pairs: PairSet, device: torch.device):
    """Re-index a pair sample onto the rows it touches, so φ runs on those rows only."""
    rows_a, index_a = torch.unique(pairs.index_a.to(device), return_inverse=True)
    rows_p, index_p = torch.unique(pairs.index_p.to(device), return_inverse=True)
    return rows_a, rows_p, PairSet(len(rows_a), len(rows_p), index_a, index_p)


def _evaluated_rows(problem: PairProblem, pairs: PairSet | None, block: Any):
    """(pair set, x_a, x_p, y, aux, weight) of the rows the objective evaluates."""
    if pairs is not None and block is not None:
        raise InvalidArgumentError("give either pairs= or block=, not both")
    if block is not None:
        rows_a, rows_p = block.rows_a.to(problem.device), block.rows_p.to(problem.device)
        pair_set, weight = block.pairs.to(problem.device), float(block.weight)
    elif pairs is not None:
        rows_a, rows_p, pair_set = _local_pairs(pairs, problem.device)
        weight = problem.pairs.size / pairs.size
    else:
        aux = problem.aux_a
        return problem.pairs, problem.x_a, problem.x_p, problem.y_p, aux, 1.0
    aux = problem.aux_a[rows_a] if problem.has_aux else None
    x_a, x_p, y = problem.x_a[rows_a], problem.x_p[rows_p], problem.y_p[rows_p]
    return pair_set, x_a, x_p, y, aux, weight


def omega(
    problem: PairProblem,
    *,
    theta1: torch.Tensor,
    theta2: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    alpha_a: torch.Tensor | float,
    alpha_p: torch.Tensor | float,
    regime: str = "A",
    model: torch.nn.Module | None = None,
    pairs: PairSet | None = None,
    block: Any = None,
    feature_map: torch.nn.Module | None = None,
    distance_squash: str | None = None,
) -> torch.Tensor:
    """Ω^A or Ω^P of SPEC §2 at any point: the evaluator the methods call every step.

    Ω is defined for any α and θ, feasible or not (the first-order methods evaluate it at
    infeasible and diverging points on purpose): only types, dtypes, devices and shapes are
    checked, in O(1); NaN or infinite inputs give a non-finite value, not an error, and α < 0
    is evaluated as written. θ₁, θ₂, b are used in the problem's dtype (float32 ones on a
    float64 problem are converted exactly, integer ones converted). :func:`objective` is the
    user-facing evaluator, which also checks the values.

    Args:
        problem: the data-join problem.
        theta1: classifier layer θ₁, (C, d) with d the (backbone) feature size.
        theta2: auxiliary-feature weights θ₂, (C, m), or None (no θ₂ term).
        bias: unconstrained bias b, (C,), or None (zero).
        alpha_a: α_A (tensor or float).
        alpha_p: α_P (tensor or float).
        regime: ``"A"`` (g on x^P, distance weighted by α_A) or ``"P"`` (g on x^A, by α_P).
        model: optional backbone φ; None means φ = identity (linear model).
        pairs: optional sample of M (see :func:`~constrained_pairs.join.pairs.sample_pairs`);
            the pair sum is then rescaled by |M| / |sample|, an unbiased estimate.
        block: optional :class:`~constrained_pairs.join.blocks.Block` of b_A rows of A and b_P
            rows of P: φ runs on those rows only and the pair sum over the block's pairs is
            weighted by ``block.weight`` = n_A n_P / (b_A b_P), an unbiased estimate of Σ_M
            (cost O(b_A b_P C) through z_ij = u_j + v_i).
        feature_map: with ``distance="feature"``, a frozen map whose features give the
            distances (evaluated without gradient) in place of ``model``'s: the distance term is
            then a constant (SPEC §2, "Deep backbones").
        distance_squash: None, or ``"sigmoid"``: the notes' variant −Σ sigmoid(α d_ij) in place of
            −α Σ d_ij. It changes the problem (it is bounded for any radii).

    Returns:
        A 0-dim tensor.

    Raises:
        InvalidTypeError: ``problem`` not a ``PairProblem``; ``theta1``/``theta2``/``bias`` not
            real tensors of the problem's dtype, float32 on a float64 problem, or integers;
            ``model``/``feature_map`` not modules; ``pairs`` not a ``PairSet``; ``block`` not a
            ``Block``; α not a real number.
        InvalidArgumentError: wrong shapes, tensors on another device, unknown ``regime``.
    """
    theta1, theta2, bias = _check_arguments(
        problem, theta1, theta2, bias, model, pairs, block, feature_map
    )
    check_choice("regime", regime, REGIMES)
    check_choice("distance_squash", distance_squash, (None, "sigmoid"))
    alpha_a = alpha_scalar("alpha_a", alpha_a, theta1)
    alpha_p = alpha_scalar("alpha_p", alpha_p, theta1)
    pair_set, x_a, x_p, y, aux, weight = _evaluated_rows(problem, pairs, block)
    threshold = alpha_p * problem.kappa_p
    fp = features(model, x_p)
    _check_head(problem, theta1, theta2, bias, fp.shape[1])
    if bias is None:
        bias = torch.zeros(problem.num_classes, dtype=theta1.dtype, device=theta1.device)
    fa = None
    if pair_set.size == 0:  # a block that holds none of M's pairs
        loss = (theta1.sum() + bias.sum()) * 0.0
    elif regime == "A":
        v = aux @ theta2.T if theta2 is not None else None
        loss = regime_a_pair_loss(pair_set, fp @ theta1.T + bias, v, y, threshold, problem.hinge)
    else:
        fa = features(model, x_a)
        w = fa @ theta1.T + bias
        if theta2 is not None:
            w = w + aux @ theta2.T
        counts = pair_set.class_counts(y, problem.num_classes, w.dtype)
        loss = _counted_rows_loss(w, counts, threshold, problem.hinge)

    alpha_d = alpha_a if regime == "A" else alpha_p
    frozen = feature_map is not None and problem.distance == "feature"
    if (problem.distance_is_constant(model) or frozen) and distance_squash is None:
        if frozen:
            total = problem.distance_total_with(feature_map)
        else:
            total = problem.distance_total
        distance_term = alpha_d * total
    elif pair_set.size == 0:
        distance_term = alpha_d * 0.0
    else:
        if frozen:
            with torch.no_grad():
                da, dp = features(feature_map, x_a), features(feature_map, x_p)
            scale = problem.distance_scale_with(feature_map)
        else:
            if fa is None:
                fa = features(model, x_a)
            da, dp = fa, fp
            if problem.distance == "input":
                da, dp = x_a, x_p
            elif problem.distance == "logit":
                da, dp = fa @ theta1.T, fp @ theta1.T
            scale = (
                problem.distance_scale()
                if problem.distance_is_constant(model)
                else problem.distance_scale(da, dp)
            )
        squash = alpha_d if distance_squash else None
        total = distance_sum(
            pair_set, da, dp, problem.distance_fn, scale=scale, squash_alpha=squash
        )
        distance_term = weight * (total if squash is not None else alpha_d * total)
    return (
        alpha_a * problem.r_a
        + alpha_p * problem.r_p
        + (weight * loss - distance_term) / problem.normalizer
    )


def objective(
    problem: PairProblem,
    *,
    theta1: torch.Tensor,
    theta2: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    alpha_a: torch.Tensor | float,
    alpha_p: torch.Tensor | float,
    regime: str = "A",
    model: torch.nn.Module | None = None,
    pairs: PairSet | None = None,
    block: Any = None,
    feature_map: torch.nn.Module | None = None,
    distance_squash: str | None = None,
) -> torch.Tensor:
    """Ω^A or Ω^P of SPEC §2 at a point of the problem's domain, differentiable in every
    argument.

    The user-facing evaluator: besides the O(1) checks of :func:`omega` (types, dtypes,
    devices, shapes), θ₁, θ₂, b must be finite and α_A, α_P finite and >= 0 (one reduction per
    argument). Integer θ₁, θ₂, b are converted to the problem's dtype; float32 ones on a
    float64 problem too (exactly).

    Args:
        problem, theta1, theta2, bias, alpha_a, alpha_p, regime, model, pairs, block,
            feature_map, distance_squash: as in :func:`omega`.

    Returns:
        A 0-dim tensor.

    Raises:
        InvalidTypeError: as in :func:`omega`.
        InvalidArgumentError: as in :func:`omega`; non-finite θ₁, θ₂ or b; α_A or α_P negative
            or not finite.
    """
    check_point_values(theta1=theta1, theta2=theta2, bias=bias, alpha_a=alpha_a, alpha_p=alpha_p)
    return omega(
        problem,
        theta1=theta1,
        theta2=theta2,
        bias=bias,
        alpha_a=alpha_a,
        alpha_p=alpha_p,
        regime=regime,
        model=model,
        pairs=pairs,
        block=block,
        feature_map=feature_map,
        distance_squash=distance_squash,
    )
