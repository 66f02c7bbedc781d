"""Detecting and explaining the pathologies of SPEC §2: unboundedness, meaningless distances,
collapse to one class; and the optimal-transport radius W₁(A, P)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from constrained_pairs.errors import InvalidArgumentError, UnboundedProblemError
from constrained_pairs.join.hinges import hinge_at
from constrained_pairs.join.objective import features
from constrained_pairs.join.pairs import PairSet
from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.wasserstein import (  # noqa: F401 - re-exported
    WassersteinEstimate,
    wasserstein_estimate,
    wasserstein_radius,
)

#: A prediction is "collapsed" when one class takes at least this share of the predictions.
COLLAPSE_SHARE = 0.95
#: The hinge counts as inactive when it is positive on at most this share of the pairs.
INACTIVE_SHARE = 1e-3


@dataclass
class Diagnostics:
    """What every result reports about the problem and its solution (SPEC §2).

    Attributes:
        mean_distance: D̄ = Σ_M d_ij / normaliser (at the solution when d depends on θ).
        radius_sum: r_A + r_P.
        bounded: whether r_A + r_P >= D̄, i.e. the objective is bounded below.
        class_histogram: predicted-class counts over the pairs the objective evaluates
            (each point weighted by how many pairs it is in).
        prediction_entropy: entropy (nats) of that histogram; log C is uniform, 0 is one class.
        collapsed: one class takes >= 95% of the predictions (SPEC §2, pathology 3).
        hinge: the problem's hinge.
        hinge_active: share of the pairs (with multiplicity) whose hinge term is positive at the
            solution (None when α_P was not given to :func:`diagnose`).
    """

    mean_distance: float
    radius_sum: float
    bounded: bool
    class_histogram: list[int]
    prediction_entropy: float
    collapsed: bool
    hinge: str | None = None
    hinge_active: float | None = None

    def explain(self) -> str:
        """A plain-words reading of the diagnostics."""
        lines = [
            f"mean pair distance D = {self.mean_distance:.4g}, r_A + r_P = {self.radius_sum:.4g}: "
            + ("bounded" if self.bounded else "UNBOUNDED below (alpha grows without limit)"),
            f"predicted classes {self.class_histogram}, entropy {self.prediction_entropy:.3f} nats",
        ]
        if self.hinge_active is not None:
            lines.append(f"hinge {self.hinge!r} active on {100 * self.hinge_active:.1f}% of pairs")
        if self.hinge == "seed" and self.hinge_active is not None:
            if self.hinge_active <= INACTIVE_SHARE:
                lines.append(
                    "the seed hinge max(z_y - alpha_P kappa_P, 0) is inactive, so kappa_P has no "
                    "effect: cross-entropy does not change when every logit shifts by the same "
                    "amount and the bias is free, so the optimum shifts the bias down until the "
                    "hinge vanishes. Use hinge='margin' (the label-flip dual, the default) or "
                    "hinge='reference' (two classes) for a hinge that binds."
                )
        if self.collapsed:
            lines.append(
                "collapsed: one class is predicted almost everywhere. The radii are large relative "
                "to the data spread, so the robust optimum shrinks theta1 towards 0 (a prior-only "
                "predictor). Use smaller radii (close to D), or scaled/feature distances."
            )
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_distance(
    problem: PairProblem,
    *,
    model: torch.nn.Module | None = None,
    theta1: torch.Tensor | None = None,
    feature_map: torch.nn.Module | None = None,
) -> float:
    """D̄ of SPEC §2 for the problem's pairs and normalisation (at θ₁ for ``"logit"``; under a
    frozen ``feature_map`` for ``"feature"`` when one is given).

    Raises:
        InvalidArgumentError: when D̄ is NaN or infinite.
    """
    if feature_map is not None and problem.distance == "feature":
        return problem.mean_distance_with(feature_map)
    if problem.distance_is_constant(model):
        return problem.mean_distance
    from constrained_pairs.join.distances import check_finite_total, distance_sum

    with torch.no_grad():
        fa, fp = features(model, problem.x_a), features(model, problem.x_p)
        if problem.distance == "logit":
            if theta1 is None:
                raise InvalidArgumentError("theta1 is needed for the logit distance")
            fa, fp = fa @ theta1.T, fp @ theta1.T
        scale = problem.distance_scale(fa, fp)
        total = distance_sum(problem.pairs, fa, fp, problem.distance_fn, scale=scale)
    check_finite_total("the sum of pair distances", total, "check the model's features")
    return float(total) / problem.normalizer


def check_bounded(
    problem: PairProblem,
    *,
    model: torch.nn.Module | None = None,
    feature_map: torch.nn.Module | None = None,
    distance_squash: str | None = None,
) -> float:
    """Raise :class:`UnboundedProblemError` when Ω is unbounded below; return D̄ otherwise.

    θ = 0 is feasible and along α_A = α_P = t the objective is log C·|M|/N + t(r_A + r_P − D̄)
    in both regimes, while for r_A + r_P >= D̄ the α terms are >= 0; so Ω is unbounded below iff
    r_A + r_P < D̄ (SPEC §2, pathology 1). With a frozen ``feature_map`` and
    ``distance="feature"`` the distance term is a constant and D̄ is taken under that map. With
    the ``"logit"`` distance the term α‖θ₁Δ‖ grows like α² for any radii. A sigmoid squash
    bounds the term (and changes the problem).

    Raises:
        UnboundedProblemError: as above.
        InvalidArgumentError: when D̄ is not finite (NaN or infinite pair distances).
    """
    if distance_squash is not None:
        return float("nan")
    if problem.distance == "logit":
        raise UnboundedProblemError(
            "distance='logit' makes the objective unbounded below for any radii: "
            "alpha * ||theta1 (x_i - x_j)|| grows like alpha^2 while the radii grow like alpha. "
            "Use distance='feature' or 'input' (optionally scale='median'), or the notes' "
            "distance_squash='sigmoid' variant (which changes the problem)."
        )
    d_bar = mean_distance(problem, model=model, feature_map=feature_map)
    radius_sum = problem.r_a + problem.r_p
    if radius_sum < d_bar:
        where = " at the initial backbone" if model is not None and feature_map is None else ""
        raise UnboundedProblemError(
            f"the objective has no minimum: the radii add up to r_a + r_p = {radius_sum:.6g}, "
            f"less than the mean distance between paired points, D = {d_bar:.6g}{where}. "
            "Raising alpha_A and alpha_P together earns more from the distance term than the "
            "radii charge, so the objective falls without limit. Fix: choose radii with "
            f"r_a + r_p >= {d_bar:.6g} (the optimal-transport view asks r_a + r_p >= W1(A, P), "
            "see constrained_pairs.wasserstein_radius), or put the distances on a comparable "
            "scale: scale='median', or distance='feature' with a backbone."
        )
    return d_bar


def _pair_statistics(
    problem: PairProblem, theta1, theta2, bias, regime: str, model, threshold
) -> tuple[torch.Tensor, float | None]:
    """(predicted-class counts, share of active hinges) over the pairs the objective evaluates
    (streamed; the share is None without a threshold)."""
    C, kind = problem.num_classes, problem.hinge
    pairs: PairSet = problem.pairs
    y = problem.y_p
    with torch.no_grad():
        b = bias if bias is not None else torch.zeros(C, dtype=theta1.dtype, device=theta1.device)
        if regime == "P":
            w = features(model, problem.x_a) @ theta1.T + b
            if theta2 is not None:
                w = w + problem.aux_a @ theta2.T
            weight = pairs.a_multiplicity(w.device, w.dtype)
            hist = torch.zeros(C, dtype=w.dtype, device=w.device).index_add_(0, w.argmax(1), weight)
            if threshold is None:
                return hist, None
            from constrained_pairs.join.hinges import hinge_matrix

            counts = pairs.class_counts(y, C, w.dtype)
            active = (counts * (hinge_matrix(w, threshold, kind) > 0)).sum()
            return hist, float(active) / pairs.size
        u = features(model, problem.x_p) @ theta1.T + b
        if theta2 is None:
            weight = pairs.p_multiplicity(u.device, u.dtype)
            hist = torch.zeros(C, dtype=u.dtype, device=u.device).index_add_(0, u.argmax(1), weight)
            if threshold is None:
                return hist, None
            active = (weight * (hinge_at(u, y, threshold, kind) > 0)).sum()
            return hist, float(active) / pairs.size
        v = problem.aux_a @ theta2.T
        counts = torch.zeros(C, dtype=torch.long, device=u.device)
        active = 0
        parts = pairs.row_chunks(C) if pairs.is_all else pairs.explicit_chunks(C)
        for part in parts:
            if pairs.is_all:
                z = (v[part, None] + u[None]).reshape(-1, C)
                labels = y.repeat(v[part].shape[0])
            else:
                index_a, index_p = part
                z, labels = u[index_p] + v[index_a], y[index_p]
            counts += torch.bincount(z.argmax(1), minlength=C)
            if threshold is not None:
                active += int((hinge_at(z, labels, threshold, kind) > 0).sum())
        return counts, (active / pairs.size if threshold is not None else None)


def diagnose(
    problem: PairProblem,
    *,
    theta1: torch.Tensor,
    theta2: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    regime: str = "A",
    model: torch.nn.Module | None = None,
    alpha_p: torch.Tensor | float | None = None,
    feature_map: torch.nn.Module | None = None,
) -> Diagnostics:
    """The :class:`Diagnostics` of a solution (``hinge_active`` needs ``alpha_p``)."""
    d_bar = mean_distance(problem, model=model, theta1=theta1, feature_map=feature_map)
    threshold = None
    if alpha_p is not None:
        threshold = float(alpha_p) * problem.kappa_p
    histogram, active = _pair_statistics(problem, theta1, theta2, bias, regime, model, threshold)
    histogram = histogram.double()
    share = histogram / histogram.sum()
    entropy = float(-(share[share > 0] * share[share > 0].log()).sum())
    labels_share = torch.bincount(problem.y_p, minlength=problem.num_classes).double()
    labels_share = labels_share / labels_share.sum()
    top = float(share.max())
    collapsed = top >= COLLAPSE_SHARE and float(labels_share.max()) < COLLAPSE_SHARE
    radius_sum = problem.r_a + problem.r_p
    return Diagnostics(
        mean_distance=d_bar,
        radius_sum=radius_sum,
        bounded=bool(radius_sum >= d_bar) and problem.distance != "logit",
        class_histogram=[int(round(float(c))) for c in histogram],
        prediction_entropy=entropy,
        collapsed=collapsed,
        hinge=problem.hinge,
        hinge_active=active,
    )
