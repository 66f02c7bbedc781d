"""Independent references for the data-join objective: explicit loops over pairs (SPEC §2)."""

from __future__ import annotations

import itertools

import numpy as np
import torch


def pair_list(problem) -> list[tuple[int, int]]:
    if problem.pairs.is_all:
        return list(itertools.product(range(problem.n_a), range(problem.n_p)))
    return list(zip(problem.pairs.index_a.tolist(), problem.pairs.index_p.tolist()))


def brute_objective(
    problem, theta1, theta2, bias, alpha_a, alpha_p, regime, model=None, squash=False
):
    """Ω^A / Ω^P summed pair by pair, exactly as written in SPEC §2."""
    phi = (lambda x: model(x[None]).flatten()) if model is not None else (lambda x: x.flatten())
    pairs = pair_list(problem)

    def g(x, a):
        out = theta1 @ phi(x) + (bias if bias is not None else 0)
        return out + theta2 @ a if theta2 is not None else out

    def distance(i, j):
        xa, xp = problem.x_a[i], problem.x_p[j]
        if callable(problem.distance):
            return problem.distance(xa[None], xp[None])[0]
        if problem.distance == "input":
            return (xa - xp).norm()
        if problem.distance == "feature":
            return (phi(xa) - phi(xp)).norm()
        return (theta1 @ phi(xa) - theta1 @ phi(xp)).norm()  # logit

    dists = [distance(i, j) for i, j in pairs]
    if problem.scale == "median":
        scale = torch.quantile(torch.stack(dists), 0.5)
    else:
        scale = problem.scale or 1.0
    total = 0.0
    for (i, j), d in zip(pairs, dists):
        aux = problem.aux_a[i] if theta2 is not None else None
        z = g(problem.x_p[j], aux) if regime == "A" else g(problem.x_a[i], aux)
        y = problem.y_p[j]
        ce = torch.logsumexp(z, 0) - z[y]
        if problem.hinge == "seed":
            margin = z[y]
        elif problem.hinge == "margin":
            margin = (z[y] - z).max()
        else:  # "reference": the binary score, no label factor
            margin = z[1] - z[0]
        hinge = torch.relu(margin - alpha_p * problem.kappa_p)
        weight = alpha_a if regime == "A" else alpha_p
        dist_term = torch.sigmoid(weight * d / scale) if squash else weight * d / scale
        total = total + ce + hinge - dist_term
    norm = problem.n_a * problem.n_p if problem.normalize == "seed" else len(pairs)
    return alpha_a * problem.r_a + alpha_p * problem.r_p + total / norm


def cvxpy_reference(problem, regime):
    """Ω* by an independent CVXPY formulation (one expression per pair, no lifting) or None
    when CVXPY reports the problem unbounded. Returns (status, value)."""
    import cvxpy as cp

    x_a, x_p = problem.x_a.double().numpy(), problem.x_p.double().numpy()
    y = problem.y_p.numpy()
    C, d = problem.num_classes, x_p.shape[1]
    theta1 = cp.Variable((C, d))
    bias = cp.Variable(C)
    aa, ap = cp.Variable(nonneg=True), cp.Variable(nonneg=True)
    theta2 = cp.Variable((C, problem.aux_a.shape[1])) if problem.has_aux else None
    terms, dist = [], 0.0
    for i, j in pair_list(problem):
        x = x_p[j] if regime == "A" else x_a[i]
        z = theta1 @ x + bias
        if theta2 is not None:
            z = z + theta2 @ problem.aux_a[i].double().numpy()
        zy = z[y[j]]
        margin = {"seed": zy, "margin": zy - cp.min(z), "reference": z[1] - z[0]}[problem.hinge]
        terms.append(cp.log_sum_exp(z) - zy + cp.pos(margin - problem.kappa_p * ap))
        dist += float(np.linalg.norm(x_a[i] - x_p[j]))
    norm = problem.n_a * problem.n_p if problem.normalize == "seed" else len(terms)
    weight = aa if regime == "A" else ap
    cost = problem.r_a * aa + problem.r_p * ap + (cp.sum(cp.hstack(terms)) - weight * dist) / norm
    norms = {
        "nuclear": cp.normNuc(theta1),
        "frobenius": cp.norm(theta1, "fro"),
        "spectral": cp.sigma_max(theta1),
        "lipschitz": cp.max(
            cp.hstack([cp.norm(theta1[k] - theta1[m]) for k in range(C) for m in range(k + 1, C)])
        ),
    }
    cons = [norms[problem.norm] <= aa + ap, aa <= ap if regime == "A" else ap <= aa]
    if theta2 is not None:
        if problem.aux_norm == "frobenius":
            aux_norm = cp.norm(theta2, "fro")
        else:
            aux_norm = cp.max(
                cp.hstack(
                    [cp.norm(theta2[k] - theta2[m]) for k in range(C) for m in range(k + 1, C)]
                )
            )
        cons.append(aux_norm <= problem.kappa_a * aa)
    program = cp.Problem(cp.Minimize(cost), cons)
    program.solve(solver="CLARABEL")
    return program.status, program.value
