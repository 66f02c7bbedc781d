"""W₁(A, P) between the uniform empirical measures of two point sets (SPEC §2, pathology 1).

The least r_A + r_P for which the two Wasserstein balls meet. Computed exactly by POT's network
simplex (``ot.emd2``) with uniform weights 1/n_A and 1/n_P, for any sizes. Beyond ``max_pairs``
cost entries the value is estimated from ``num_samples`` pairs of random subsets of ``subsample``
points each (without replacement), with the standard error of their mean. The subsampled W₁ is
biased upwards (a subsample is farther from the other set than the full set is), so the estimate
is a conservative radius; the exact value is computed whenever it fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from constrained_pairs._validation import as_feature_tensor, check_flag, check_positive_int
from constrained_pairs.errors import InvalidArgumentError, UnsupportedOptionError

#: Largest n_A · n_P solved exactly by default (a 32 MiB float64 cost matrix).
MAX_PAIRS = 2**22
#: Network simplex iterations allowed (POT's default of 1e5 is too few beyond ~1000 points).
MAX_ITER = 10**8


@dataclass
class WassersteinEstimate:
    """W₁ with how it was obtained.

    Attributes:
        value: W₁ (exact) or the mean of the subsampled values.
        stderr: standard error of that mean (0 for the exact value).
        exact: whether ``value`` is the exact W₁.
        plan: the optimal transport plan (n_A, n_P) when exact and requested, else None.
        num_samples: subsample pairs used (0 when exact).
    """

    value: float
    stderr: float
    exact: bool
    plan: np.ndarray | None = None
    num_samples: int = 0


def _points(name: str, value: Any) -> np.ndarray:
    tensor = as_feature_tensor(name, value.detach() if isinstance(value, torch.Tensor) else value)
    if tensor.dim() < 2:
        raise InvalidArgumentError(
            f"{name} must have shape (n, d) (one point per row), got shape {tuple(tensor.shape)}"
        )
    if tensor.shape[0] == 0:
        raise InvalidArgumentError(f"{name} must hold at least one point, got 0 rows")
    return tensor.to("cpu", torch.float64).flatten(1).numpy()


def _emd(a: np.ndarray, p: np.ndarray, plan: bool) -> tuple[float, np.ndarray | None]:
    import ot

    # in units of the largest coordinate: POT's simplex works with absolute tolerances, and
    # squared differences of huge coordinates overflow (W₁ is homogeneous of degree 1)
    unit = max(float(np.abs(a).max()), float(np.abs(p).max()))
    unit = 1.0 if unit == 0 else unit
    a, p = a / unit, p / unit
    cost = np.sqrt(np.maximum(((a[:, None, :] - p[None, :, :]) ** 2).sum(-1), 0.0))
    weights_a = np.full(len(a), 1.0 / len(a))
    weights_p = np.full(len(p), 1.0 / len(p))
    matrix, log = ot.emd(weights_a, weights_p, cost, numItermax=MAX_ITER, log=True)
    if log.get("warning"):
        raise UnsupportedOptionError(f"ot.emd did not reach the optimum: {log['warning']}")
    return float((matrix * cost).sum()) * unit, (matrix if plan else None)


def wasserstein_estimate(
    x_a: Any,
    x_p: Any,
    *,
    max_pairs: int = MAX_PAIRS,
    subsample: int = 1024,
    num_samples: int = 16,
    seed: int = 0,
    return_plan: bool = False,
) -> WassersteinEstimate:
    """W₁(A, P) under the ℓ2 cost on flattened rows, exact or subsampled (module docstring).

    Args:
        x_a: points of A, (n_A, d) or (n_A, ...); tensors may require grad (they are detached).
        x_p: points of P, same trailing size.
        max_pairs: exact when n_A · n_P <= this (an int >= 1).
        subsample: points per side in each subsample (beyond ``max_pairs``; an int >= 1).
        num_samples: subsample pairs averaged (beyond ``max_pairs``; an int >= 2, the standard
            error needs two).
        seed: seed of the subsampling (an int >= 0).
        return_plan: keep the optimal plan (exact case only; True or False).

    Raises:
        InvalidArgumentError: for empty, 1-D or mismatched point sets and out-of-range options.
        InvalidTypeError: for non-numeric points and options of the wrong type.
    """
    max_pairs = check_positive_int("max_pairs", max_pairs)
    subsample = check_positive_int("subsample", subsample)
    num_samples = check_positive_int("num_samples", num_samples, minimum=2)
    seed = check_positive_int("seed", seed, minimum=0)
    return_plan = check_flag("return_plan", return_plan)
    a, p = _points("x_a", x_a), _points("x_p", x_p)
    if a.shape[1] != p.shape[1]:
        raise InvalidArgumentError(
            f"x_a and x_p must share the feature dimension, got {a.shape[1]} and {p.shape[1]}"
        )
    if len(a) * len(p) <= max_pairs:
        value, plan = _emd(a, p, return_plan)
        return WassersteinEstimate(value, 0.0, True, plan)
    if return_plan:
        raise InvalidArgumentError(
            f"return_plan=True needs the exact solve: n_A * n_P = {len(a) * len(p)} exceeds "
            f"max_pairs={max_pairs}; raise max_pairs"
        )
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_samples):
        rows_a = rng.choice(len(a), size=min(subsample, len(a)), replace=False)
        rows_p = rng.choice(len(p), size=min(subsample, len(p)), replace=False)
        values.append(_emd(a[rows_a], p[rows_p], False)[0])
    stderr = float(np.std(values, ddof=1) / math.sqrt(num_samples))
    return WassersteinEstimate(float(np.mean(values)), stderr, False, None, num_samples)


def wasserstein_radius(
    x_a: Any,
    x_p: Any,
    *,
    return_plan: bool = False,
    max_pairs: int = MAX_PAIRS,
    subsample: int = 1024,
    num_samples: int = 16,
    seed: int = 0,
) -> float | tuple[float, np.ndarray]:
    """W₁(A, P), the least r_A + r_P for which the two Wasserstein balls meet (SPEC §2).

    Exact (POT's network simplex on uniform weights) for n_A · n_P <= 2^22, for any sizes;
    beyond, a subsampled estimate (see :func:`wasserstein_estimate` for its standard error and
    the options ``max_pairs``, ``subsample``, ``num_samples``, ``seed``, all validated there
    before any work; ``return_plan`` must be True or False).

    Returns:
        W₁ as a float, or ``(W₁, plan)`` with ``return_plan=True`` (plan: (n_A, n_P) array whose
        entries sum to 1, rows to 1/n_A and columns to 1/n_P).
    """
    found = wasserstein_estimate(
        x_a,
        x_p,
        max_pairs=max_pairs,
        subsample=subsample,
        num_samples=num_samples,
        seed=seed,
        return_plan=return_plan,
    )
    return (found.value, found.plan) if return_plan else found.value
