"""Detecting and explaining the pathologies of SPEC §2: unboundedness, meaningless distances,
collapse to one class; and the optimal-transport radius W₁(A, P)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from constrained_pairs._validation import as_tensor
from constrained_pairs.errors import InvalidArgumentError, UnboundedProblemError
from constrained_pairs.join.objective import features
from constrained_pairs.join.pairs import PairSet
from constrained_pairs.join.problem import PairProblem

#: A prediction is "collapsed" when one class takes at least this share of the predictions.
COLLAPSE_SHARE = 0.95


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
    """

    mean_distance: float
    radius_sum: float
    bounded: bool
    class_histogram: list[int]
    prediction_entropy: float
    collapsed: bool

    def explain(self) -> str:
        """A plain-words reading of the diagnostics."""
        lines = [
            f"mean pair distance D = {self.mean_distance:.4g}, r_A + r_P = {self.radius_sum:.4g}: "
            + ("bounded" if self.bounded else "UNBOUNDED below (alpha grows without limit)"),
            f"predicted classes {self.class_histogram}, entropy {self.prediction_entropy:.3f} nats",
        ]
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
) -> float:
    """D̄ of SPEC §2 for the problem's pairs and normalisation (at θ₁ for ``"logit"``)."""
    if problem.distance_is_constant(model):
        return problem.mean_distance
    from constrained_pairs.join.distances import distance_sum

    with torch.no_grad():
        fa, fp = features(model, problem.x_a), features(model, problem.x_p)
        if problem.distance == "logit":
            if theta1 is None:
                raise InvalidArgumentError("theta1 is needed for the logit distance")
            fa, fp = fa @ theta1.T, fp @ theta1.T
        scale = problem.distance_scale(fa, fp)
        total = distance_sum(problem.pairs, fa, fp, problem.distance_fn, scale=scale)
    return float(total) / problem.normalizer


def check_bounded(
    problem: PairProblem,
    *,
    model: torch.nn.Module | None = None,
    distance_squash: str | None = None,
) -> float:
    """Raise :class:`UnboundedProblemError` when Ω is unbounded below; return D̄ otherwise.

    θ = 0 is feasible and along α_A = α_P = t the objective is log C·|M|/N + t(r_A + r_P − D̄)
    in both regimes, while for r_A + r_P >= D̄ the α terms are >= 0; so Ω is unbounded below iff
    r_A + r_P < D̄ (SPEC §2, pathology 1). With the ``"logit"`` distance the term α‖θ₁Δ‖ grows
    like α² for any radii. A sigmoid squash bounds the term (and changes the problem).
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
    d_bar = mean_distance(problem, model=model)
    radius_sum = problem.r_a + problem.r_p
    if radius_sum < d_bar:
        where = "at the initial backbone" if model is not None else "for the data"
        raise UnboundedProblemError(
            f"the objective is unbounded below: the mean pair distance D = {d_bar:.6g} "
            f"({where}) exceeds r_a + r_p = {radius_sum:.6g}, so alpha_A = alpha_P = t drives "
            f"the objective to -inf at rate {radius_sum - d_bar:.4g} per unit of t. "
            f"Remedies: radii with r_a + r_p >= {d_bar:.6g} (the optimal-transport view asks "
            "r_a + r_p >= W1(A, P), see constrained_pairs.wasserstein_radius), or distances on "
            "a comparable scale: scale='median', or distance='feature' with a backbone."
        )
    return d_bar


def _prediction_histogram(
    problem: PairProblem, theta1, theta2, bias, regime: str, model
) -> torch.Tensor:
    """Predicted-class counts at every pair the objective evaluates (streamed)."""
    C = problem.num_classes
    pairs: PairSet = problem.pairs
    with torch.no_grad():
        b = bias if bias is not None else torch.zeros(C, dtype=theta1.dtype, device=theta1.device)
        if regime == "P":
            w = features(model, problem.x_a) @ theta1.T + b
            if theta2 is not None:
                w = w + problem.aux_a @ theta2.T
            weight = pairs.a_multiplicity(w.device, w.dtype)
            return torch.zeros(C, dtype=w.dtype, device=w.device).index_add_(0, w.argmax(1), weight)
        u = features(model, problem.x_p) @ theta1.T + b
        if theta2 is None:
            weight = pairs.p_multiplicity(u.device, u.dtype)
            return torch.zeros(C, dtype=u.dtype, device=u.device).index_add_(0, u.argmax(1), weight)
        v = problem.aux_a @ theta2.T
        counts = torch.zeros(C, dtype=torch.long, device=u.device)
        if pairs.is_all:
            for rows in pairs.row_chunks(C):
                counts += torch.bincount((v[rows, None] + u[None]).argmax(2).flatten(), minlength=C)
        else:
            for index_a, index_p in pairs.explicit_chunks(C):
                counts += torch.bincount((u[index_p] + v[index_a]).argmax(1), minlength=C)
        return counts


def diagnose(
    problem: PairProblem,
    *,
    theta1: torch.Tensor,
    theta2: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    regime: str = "A",
    model: torch.nn.Module | None = None,
) -> Diagnostics:
    """The :class:`Diagnostics` of a solution."""
    d_bar = mean_distance(problem, model=model, theta1=theta1)
    histogram = _prediction_histogram(problem, theta1, theta2, bias, regime, model).double()
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
    )


def wasserstein_radius(x_a: Any, x_p: Any, *, max_size: int = 4000) -> float:
    """W₁ between the uniform empirical measures on the rows of ``x_a`` and ``x_p`` (ℓ2 cost).

    This is the least r_A + r_P for which the two Wasserstein balls intersect (SPEC §2). Equal
    sizes are an assignment problem (``scipy.optimize.linear_sum_assignment``); for n_A != n_P
    each point is repeated so both sides have lcm(n_A, n_P) atoms of equal mass, which keeps the
    transport problem an exact assignment (refused beyond ``max_size`` atoms).
    """
    a = as_tensor("x_a", x_a).double().flatten(1).cpu().numpy()
    p = as_tensor("x_p", x_p).double().flatten(1).cpu().numpy()
    if a.shape[1] != p.shape[1]:
        raise InvalidArgumentError(
            f"x_a and x_p must share the feature dimension, got {a.shape[1]} and {p.shape[1]}"
        )
    atoms = math.lcm(len(a), len(p))
    if atoms > max_size:
        raise InvalidArgumentError(
            f"lcm(n_A, n_P) = {atoms} atoms exceeds max_size={max_size}: subsample to sizes "
            "with a small lcm (e.g. equal sizes) or raise max_size"
        )
    a_rep = np.repeat(a, atoms // len(a), axis=0)
    p_rep = np.repeat(p, atoms // len(p), axis=0)
    cost = np.sqrt(((a_rep[:, None, :] - p_rep[None, :, :]) ** 2).sum(-1))
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())
