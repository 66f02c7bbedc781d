"""The data-join problem of SPEC §2: the two sets, the pairs, the radii and every option."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from constrained_pairs._validation import (
    as_tensor,
    check_choice,
    check_labels,
    check_nonnegative,
    check_positive_int,
)
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.join.distances import distance_median, distance_sum
from constrained_pairs.join.pairs import PairSet, explicit_pairs, knn_pairs

NORMS = ("nuclear", "frobenius", "spectral", "lipschitz")
HINGES = ("seed", "margin")
DISTANCES = ("input", "feature", "logit")
NORMALIZATIONS = ("seed", "pairs")


class PairProblem:
    """A Distributionally Robust Data Join problem (SPEC §2).

    Set A holds ``x_a`` (and optional auxiliary features ``aux_a``) without labels; set P holds
    ``x_p`` with labels ``y_p``. Everything is validated here, once.

    Args:
        x_a: shared features of set A, (n_A, d) (or (n_A, ...) for a backbone).
        x_p: shared features of set P, same trailing shape as ``x_a``.
        y_p: labels of set P in 0..C-1, (n_P,).
        aux_a: auxiliary features of set A, (n_A, m), or None.
        r_a: Wasserstein radius around A (>= 0).
        r_p: Wasserstein radius around P (>= 0).
        kappa_a: κ_A in ‖θ₂‖ <= κ_A α_A.
        kappa_p: κ_P in the hinge threshold α_P κ_P.
        num_classes: C; defaults to max(y_p) + 1.
        pairs: ``"all"``, ``"knn"`` or explicit pairs (an (|M|, 2) index array or (i, j)).
        knn: k for ``pairs="knn"``: each i is paired with its k nearest j.
        norm: ‖θ₁‖_* — ``"nuclear"``, ``"frobenius"``, ``"spectral"`` or ``"lipschitz"``.
        hinge: ``"seed"``: max(z_y − α_P κ_P, 0), or ``"margin"``:
            max(max_k(z_y − z_k) − α_P κ_P, 0).
        distance: ``"input"``, ``"feature"``, ``"logit"`` or a callable on aligned rows.
        scale: None, ``"median"`` (divide distances by their median over M) or a float > 0.
        normalize: ``"seed"`` (1/(n_A n_P)) or ``"pairs"`` (1/|M|).

    Raises:
        InvalidArgumentError: (a ``ValueError``) naming the argument and what was expected.
    """

    def __init__(
        self,
        x_a: Any,
        x_p: Any,
        y_p: Any,
        aux_a: Any = None,
        *,
        r_a: float,
        r_p: float,
        kappa_a: float = 1.0,
        kappa_p: float = 1.0,
        num_classes: int | None = None,
        pairs: str | Any = "all",
        knn: int = 5,
        norm: str = "nuclear",
        hinge: str = "seed",
        distance: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "input",
        scale: str | float | None = None,
        normalize: str = "seed",
    ) -> None:
        x_a = as_tensor("x_a", x_a)
        dtype = x_a.dtype if x_a.is_floating_point() else torch.get_default_dtype()
        self.x_a = x_a.to(dtype)
        self.x_p = as_tensor("x_p", x_p, dtype=dtype, device=self.x_a.device)
        if self.x_a.dim() < 2 or self.x_p.dim() < 2:
            raise InvalidArgumentError(
                f"x_a and x_p must have shape (n, d) or (n, ...); got {tuple(self.x_a.shape)} "
                f"and {tuple(self.x_p.shape)}"
            )
        if self.x_a.shape[1:] != self.x_p.shape[1:]:
            raise InvalidArgumentError(
                f"x_a and x_p must share the feature dimension; got {tuple(self.x_a.shape[1:])} "
                f"and {tuple(self.x_p.shape[1:])}"
            )
        if self.x_a.shape[0] == 0 or self.x_p.shape[0] == 0:
            raise InvalidArgumentError("x_a and x_p must each hold at least one row")
        y = as_tensor("y_p", y_p, device=self.x_a.device, ndim=1)
        if y.shape[0] != self.x_p.shape[0]:
            raise InvalidArgumentError(
                f"y_p must have one label per row of x_p ({self.x_p.shape[0]}), got {y.shape[0]}"
            )
        if num_classes is None:
            num_classes = (
                int(y.max()) + 1 if not y.is_floating_point() else int(y.max().round()) + 1
            )
            num_classes = max(num_classes, 2)
        self.num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        self.y_p = check_labels("y_p", y, self.num_classes)
        self.aux_a = None
        if aux_a is not None:
            self.aux_a = as_tensor("aux_a", aux_a, dtype=dtype, device=self.x_a.device, ndim=2)
            if self.aux_a.shape[0] != self.x_a.shape[0]:
                raise InvalidArgumentError(
                    f"aux_a must have n_A = {self.x_a.shape[0]} rows, got {self.aux_a.shape[0]}"
                )
        self.r_a = check_nonnegative("r_a", r_a)
        self.r_p = check_nonnegative("r_p", r_p)
        self.kappa_a = check_nonnegative("kappa_a", kappa_a)
        self.kappa_p = check_nonnegative("kappa_p", kappa_p)
        self.norm = check_choice("norm", norm, NORMS)
        self.hinge = check_choice("hinge", hinge, HINGES)
        if not callable(distance):
            check_choice("distance", distance, DISTANCES)
        self.distance = distance
        if not (scale is None or scale == "median"):
            if isinstance(scale, str):
                raise InvalidArgumentError(
                    f"scale must be None, 'median' or a float > 0, got {scale!r}"
                )
            if check_nonnegative("scale", scale) == 0:
                raise InvalidArgumentError("scale must be > 0")
            scale = float(scale)
        self.scale = scale
        self.normalize = check_choice("normalize", normalize, NORMALIZATIONS)
        self.knn = check_positive_int("knn", knn)
        self.pairs_option = pairs
        self.pairs = self._build_pairs(pairs)
        self._cache: dict[str, Any] = {}

    def _build_pairs(self, pairs: Any) -> PairSet:
        if isinstance(pairs, str):
            check_choice("pairs", pairs, ("all", "knn"))
            if pairs == "all":
                return PairSet(self.n_a, self.n_p)
            return knn_pairs(self.x_a, self.x_p, self.knn)
        if isinstance(pairs, PairSet):
            return pairs
        try:
            return explicit_pairs(pairs, self.n_a, self.n_p, self.x_a.device)
        except (TypeError, RuntimeError) as exc:
            raise InvalidTypeError(
                "pairs must be 'all', 'knn' or an (|M|, 2) integer index array"
            ) from exc

    # -- sizes -----------------------------------------------------------------------------------
    @property
    def n_a(self) -> int:
        return self.x_a.shape[0]

    @property
    def n_p(self) -> int:
        return self.x_p.shape[0]

    @property
    def has_aux(self) -> bool:
        return self.aux_a is not None

    @property
    def dtype(self) -> torch.dtype:
        return self.x_a.dtype

    @property
    def device(self) -> torch.device:
        return self.x_a.device

    @property
    def normalizer(self) -> float:
        """The pair-sum normaliser: n_A n_P (``normalize="seed"``) or |M| (``"pairs"``)."""
        return float(self.n_a * self.n_p if self.normalize == "seed" else self.pairs.size)

    # -- distances -------------------------------------------------------------------------------
    @property
    def distance_fn(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """The callable distance, or None for the Euclidean one."""
        return self.distance if callable(self.distance) else None

    def distance_is_constant(self, model: torch.nn.Module | None = None) -> bool:
        """Whether d_ij does not depend on trainable parameters (raw inputs or a callable)."""
        if callable(self.distance) or self.distance == "input":
            return True
        return self.distance == "feature" and model is None

    def distance_scale(self, fa: torch.Tensor | None = None, fp: torch.Tensor | None = None):
        """The divisor of every distance: 1, the given float, or the median over M.

        For distances that depend on parameters the median is taken on the given features,
        detached (it normalises, it is not optimised).
        """
        if self.scale is None:
            return 1.0
        if self.scale != "median":
            return self.scale
        if fa is None:
            if "median" not in self._cache:
                self._cache["median"] = distance_median(
                    self.pairs, self.x_a, self.x_p, self.distance_fn
                )
            return self._cache["median"]
        return distance_median(self.pairs, fa.detach(), fp.detach(), self.distance_fn)

    @property
    def distance_total(self) -> torch.Tensor:
        """Σ_M d_ij (scaled) for a constant distance, computed once and cached."""
        if not self.distance_is_constant():
            raise InvalidArgumentError(
                f"distance={self.distance!r} depends on the parameters; it has no constant total"
            )
        if "distance_total" not in self._cache:
            with torch.no_grad():
                self._cache["distance_total"] = distance_sum(
                    self.pairs, self.x_a, self.x_p, self.distance_fn, scale=self.distance_scale()
                )
        return self._cache["distance_total"]

    @property
    def mean_distance(self) -> float:
        """D̄ = Σ_M d_ij / normaliser (SPEC §2, pathology 1), for constant distances."""
        return float(self.distance_total) / self.normalizer

    # -- copies ----------------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this problem."""
        return {
            "r_a": self.r_a,
            "r_p": self.r_p,
            "kappa_a": self.kappa_a,
            "kappa_p": self.kappa_p,
            "num_classes": self.num_classes,
            "pairs": self.pairs,
            "knn": self.knn,
            "norm": self.norm,
            "hinge": self.hinge,
            "distance": self.distance,
            "scale": self.scale,
            "normalize": self.normalize,
        }

    def replace(self, **changes: Any) -> PairProblem:
        """A copy with some options changed (radii, norm, ...), re-validated.

        Cached distance totals are reused when the pairs and distance options are unchanged.
        """
        options = {**self.options(), **changes}
        if "pairs" in changes or "knn" in changes:
            options["pairs"] = changes.get("pairs", self.pairs_option)
        data = {k: changes.pop(k, getattr(self, k)) for k in ("x_a", "x_p", "y_p", "aux_a")}
        for key in ("x_a", "x_p", "y_p", "aux_a"):
            options.pop(key, None)
        new = PairProblem(data["x_a"], data["x_p"], data["y_p"], data["aux_a"], **options)
        if not set(changes) & {"pairs", "knn", "distance", "scale"}:
            new._cache.update(self._cache)
        return new

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> PairProblem:
        """This problem on another device and/or floating dtype (itself when nothing changes,
        keeping its cached distance totals)."""
        same_device = device is None or torch.device(device) == self.device
        if same_device and (dtype is None or dtype == self.dtype):
            return self

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        options = self.options()
        options["pairs"] = self.pairs.to(device)
        return PairProblem(
            move(self.x_a), move(self.x_p), move(self.y_p), move(self.aux_a), **options
        )

    def __repr__(self) -> str:
        aux = f", aux_dim={self.aux_a.shape[1]}" if self.has_aux else ""
        return (
            f"PairProblem(n_a={self.n_a}, n_p={self.n_p}, dim={tuple(self.x_a.shape[1:])}{aux}, "
            f"C={self.num_classes}, |M|={self.pairs.size}, r_a={self.r_a}, r_p={self.r_p}, "
            f"norm={self.norm!r}, hinge={self.hinge!r}, distance={self.distance!r})"
        )
