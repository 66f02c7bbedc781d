"""The data-join problem of SPEC §2: the two sets, the pairs, the radii and every option."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch

from constrained_pairs._validation import (
    as_feature_tensor,
    check_choice,
    check_float_dtype,
    check_labels,
    check_positive_int,
    check_real,
)
from constrained_pairs.engine.options import check_device, check_unknown
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.join.distances import (
    check_distance_values,
    check_finite_total,
    distance_median,
    distance_sum,
    distance_unit,
    frozen_distances,
)
from constrained_pairs.join.hinges import HINGES
from constrained_pairs.join.pairs import KNN_DIRECTIONS, build_pairs
from constrained_pairs.join.validation import (
    check_median,
    check_scale_option,
    float_input,
    infer_num_classes,
    label_tensor,
)

NORMS = ("nuclear", "frobenius", "spectral", "lipschitz")
AUX_NORMS = ("frobenius", "lipschitz")
DISTANCES = ("input", "feature", "logit")
NORMALIZATIONS = ("pairs", "seed")
DATA_KEYS = ("x_a", "x_p", "y_p", "aux_a")


class PairProblem:
    """A Distributionally Robust Data Join problem (SPEC §2).

    Set A holds ``x_a`` (and optional auxiliary features ``aux_a``) without labels; set P holds
    ``x_p`` with labels ``y_p``. Everything is validated here, once.

    Features are float32 or float64 (the precision of ``x_a``/``x_p``/``aux_a``, promoted);
    integer arrays such as uint8 images are converted exactly to the default floating dtype;
    bool, complex and half-precision features are refused. Lists, arrays and tensors give the
    same problem.

    Args:
        x_a: shared features of set A, (n_A, d) (or (n_A, ...) for a backbone).
        x_p: shared features of set P, same trailing shape as ``x_a``.
        y_p: integer labels of set P in 0..C-1, (n_P,) (integral floats accepted; bool refused).
        aux_a: auxiliary features of set A, (n_A, m), or None.
        r_a: Wasserstein radius around A (a finite real number >= 0; not a string or bool).
        r_p: Wasserstein radius around P (likewise).
        kappa_a: κ_A in ‖θ₂‖ <= κ_A α_A (finite, >= 0).
        kappa_p: κ_P in the hinge threshold α_P κ_P (finite, >= 0).
        num_classes: C; defaults to max(y_p) + 1, which must not exceed max(n_P, 2) (labels are
            class indices; pass ``num_classes`` explicitly for classes absent from P).
        pairs: ``"all"``, ``"knn"`` or explicit pairs: an (|M|, 2) integer table of rows
            (i, j) — i in A, j in P — as a nested list, numpy array or tensor, or a tuple of two
            1-D index tensors or arrays ``(index_a, index_p)``.
        knn: k for ``pairs="knn"``.
        knn_direction: ``"both"`` (the union of A → P and P → A matchings, each pair once, as the
            reference code), ``"a_to_p"`` (each i with its k nearest j) or ``"p_to_a"``.
        norm: ‖θ₁‖_* — ``"nuclear"``, ``"frobenius"``, ``"spectral"`` or ``"lipschitz"``
            (max_{k<l} ‖θ₁[k] − θ₁[l]‖₂; for C = 2 the reference code's ‖w‖₂).
        aux_norm: ‖θ₂‖ — ``"frobenius"`` or ``"lipschitz"`` (same seminorm as for θ₁).
        hinge: ``"margin"``: max(max_k(z_y − z_k) − α_P κ_P, 0) (the label-flip dual, default),
            ``"seed"``: max(z_y − α_P κ_P, 0) (the notes; inactive at the optimum, see
            ``join/hinges.py``), or ``"reference"``: max(z_1 − z_0 − α_P κ_P, 0) (C = 2 only).
        distance: ``"input"``, ``"feature"``, ``"logit"`` or a callable on aligned rows
            ``(k, ...) , (k, ...) -> (k,)`` returning finite distances >= 0 (checked).
        scale: None, ``"median"`` (divide distances by their median over M) or a float > 0.
        normalize: ``"pairs"`` (1/|M|, default) or ``"seed"`` (1/(n_A n_P)); they coincide for
            ``pairs="all"``.

    Raises:
        InvalidArgumentError: (a ``ValueError``) naming the argument and what was expected.
        InvalidTypeError: (a ``TypeError``) for non-numeric, bool or complex data.
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
        knn_direction: str = "both",
        norm: str = "nuclear",
        aux_norm: str = "frobenius",
        hinge: str = "margin",
        distance: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "input",
        scale: str | float | None = None,
        normalize: str = "pairs",
    ) -> None:
        x_a = as_feature_tensor("x_a", x_a)
        x_p = as_feature_tensor("x_p", x_p, device=x_a.device)
        aux = as_feature_tensor("aux_a", aux_a, device=x_a.device) if aux_a is not None else None
        dtype = torch.promote_types(x_a.dtype, x_p.dtype)
        if aux is not None and aux.dtype != dtype and float_input(aux_a):
            dtype = torch.promote_types(dtype, aux.dtype)
        self.x_a, self.x_p = x_a.to(dtype), x_p.to(dtype)
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
        y = label_tensor("y_p", y_p, self.x_p.shape[0], self.x_a.device)
        if num_classes is None:
            num_classes = infer_num_classes(y)
        self.num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        self.y_p = check_labels("y_p", y, self.num_classes)
        self.aux_a = None
        if aux is not None:
            if aux.dim() != 2:
                raise InvalidArgumentError(
                    f"aux_a must have shape (n_A, m), got shape {tuple(aux.shape)}"
                )
            self.aux_a = aux.to(dtype)
            if self.aux_a.shape[0] != self.x_a.shape[0]:
                raise InvalidArgumentError(
                    f"aux_a must have n_A = {self.x_a.shape[0]} rows, got {self.aux_a.shape[0]}"
                )
        self.r_a = check_real("r_a", r_a, minimum=0.0)
        self.r_p = check_real("r_p", r_p, minimum=0.0)
        self.kappa_a = check_real("kappa_a", kappa_a, minimum=0.0)
        self.kappa_p = check_real("kappa_p", kappa_p, minimum=0.0)
        self.norm = check_choice("norm", norm, NORMS)
        self.aux_norm = check_choice("aux_norm", aux_norm, AUX_NORMS)
        self.hinge = check_choice("hinge", hinge, HINGES)
        if self.hinge == "reference" and self.num_classes != 2:
            raise InvalidArgumentError(
                f"hinge='reference' is the reference code's binary form max(z_1 - z_0 - "
                f"alpha_P kappa_P, 0) and needs num_classes=2, got {self.num_classes}; "
                "use hinge='margin' (its multi-class generalisation)"
            )
        if callable(distance):  # type and shape now, on two rows; values with the totals
            check_distance_values(distance(self.x_a[[0, 0]], self.x_p[[0, 0]]), 2, values_too=False)
        else:
            check_choice("distance", distance, DISTANCES)
        self.distance = distance
        self.scale = check_scale_option(scale)
        self.normalize = check_choice("normalize", normalize, NORMALIZATIONS)
        self.knn = check_positive_int("knn", knn)
        self.knn_direction = check_choice("knn_direction", knn_direction, KNN_DIRECTIONS)
        self.pairs_option = pairs
        self.pairs = build_pairs(pairs, self.x_a, self.x_p, self.knn, self.knn_direction)
        self._cache: dict[str, Any] = {}
        self._frozen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

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

        Raises:
            InvalidArgumentError: when the median is zero or not finite (e.g. duplicated points).
        """
        if self.scale is None:
            return 1.0
        if self.scale != "median":
            return self.scale
        if fa is None:
            if "median" not in self._cache:
                median = distance_median(
                    self.pairs, self.x_a, self.x_p, self.distance_fn, unit=self._unit, check=True
                )
                check_median(median)
                self._cache["median"] = median
            return self._cache["median"]
        median = distance_median(self.pairs, fa.detach(), fp.detach(), self.distance_fn)
        check_median(median)
        return median

    @property
    def _unit(self) -> float:
        """The exact power-of-two unit of the Euclidean distances (``join/distances.py``)."""
        if callable(self.distance):
            return 1.0
        if "unit" not in self._cache:
            self._cache["unit"] = distance_unit(self.x_a, self.x_p)
        return self._cache["unit"]

    @property
    def distance_total(self) -> torch.Tensor:
        """Σ_M d_ij (scaled) for a constant distance, computed once and cached; data far from
        unit scale (1e±200) are summed in an exact power-of-two unit, without overflow.

        Raises:
            InvalidArgumentError: when a distance is NaN or infinite, or a callable ``distance``
                returns other than finite values >= 0 of shape (k,).
        """
        if not self.distance_is_constant():
            raise InvalidArgumentError(
                f"distance={self.distance!r} depends on the parameters; it has no constant total"
            )
        if "distance_total" not in self._cache:
            scale = self.distance_scale()
            with torch.no_grad():
                total = distance_sum(
                    self.pairs,
                    self.x_a,
                    self.x_p,
                    self.distance_fn,
                    scale=scale,
                    unit=self._unit,
                    check=True,
                )
            check_finite_total("the sum of pair distances", total, "check the distance and data")
            self._cache["distance_total"] = total
        return self._cache["distance_total"]

    @property
    def mean_distance(self) -> float:
        """D̄ = Σ_M d_ij / normaliser (SPEC §2, pathology 1), for constant distances."""
        return float(self.distance_total) / self.normalizer

    def _frozen_entry(self, feature_map: torch.nn.Module) -> dict[str, Any]:
        """Cached divisor and Σ_M d_ij under a frozen feature map (one entry per map object)."""
        if not isinstance(feature_map, torch.nn.Module):
            raise InvalidTypeError(
                f"feature_map must be a torch.nn.Module, got {type(feature_map).__name__}"
            )
        if feature_map not in self._frozen:
            self._frozen[feature_map] = frozen_distances(self, feature_map)
        return self._frozen[feature_map]

    def distance_total_with(self, feature_map: torch.nn.Module) -> torch.Tensor:
        """Σ_M d_ij under a frozen feature map (no gradient), computed once per map object."""
        return self._frozen_entry(feature_map)["total"]

    def distance_scale_with(self, feature_map: torch.nn.Module):
        """The distance divisor under a frozen feature map (the median on its features)."""
        return self._frozen_entry(feature_map)["scale"]

    def mean_distance_with(self, feature_map: torch.nn.Module) -> float:
        """D̄ under a frozen feature map: with it the distance term is a constant, so Ω is
        bounded below iff r_A + r_P >= this value (SPEC §2, "Deep backbones")."""
        return float(self.distance_total_with(feature_map)) / self.normalizer

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
            "knn_direction": self.knn_direction,
            "norm": self.norm,
            "aux_norm": self.aux_norm,
            "hinge": self.hinge,
            "distance": self.distance,
            "scale": self.scale,
            "normalize": self.normalize,
        }

    def replace(self, **changes: Any) -> PairProblem:
        """A copy with some options changed (radii, norm, ...), re-validated.

        Cached distance totals are reused when the data, pairs and distance options are
        unchanged; new ``x_a``/``x_p`` rebuild M from the ``pairs`` option (e.g. ``"knn"``).

        Raises:
            InvalidArgumentError: for a key that is neither an option nor ``x_a``, ``x_p``,
                ``y_p``, ``aux_a`` (listing the valid ones).
        """
        check_unknown("PairProblem.replace", changes, [*self.options(), *DATA_KEYS])
        options = {**self.options(), **changes}
        if {"pairs", "knn", "knn_direction", "x_a", "x_p"} & set(changes):  # M is rebuilt
            options["pairs"] = changes.get("pairs", self.pairs_option)
        data = {k: options.pop(k, getattr(self, k)) for k in DATA_KEYS}
        new = PairProblem(data["x_a"], data["x_p"], data["y_p"], data["aux_a"], **options)
        distance_keys = {"pairs", "knn", "knn_direction", "distance", "scale", "normalize"}
        if not set(changes) & (distance_keys | {"x_a", "x_p"}):
            new._cache.update(self._cache)
        return new

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> PairProblem:
        """This problem on another device and/or floating dtype (itself when nothing changes,
        keeping its cached distance totals).

        Raises:
            InvalidArgumentError: for a dtype other than float32/float64 (integer dtypes would
                truncate the data; half precision is not supported), or a device that is not
                ``"cpu"``/``"cuda[:i]"`` or not available here.
        """
        if dtype is not None:
            check_float_dtype("dtype", dtype)
        device = check_device(device)
        same_device = device is None or device == self.device
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

    # -- scale (join/scaling.py) -----------------------------------------------------------------
    def rescaled(self, s: float) -> PairProblem:
        """The same problem in units of ``s`` (:func:`~constrained_pairs.join.scaling.rescale`):
        x' = x/s, aux' = aux/s, r' = r/s, κ_P' = κ_P/s; its optimum maps back as θ = θ'/s,
        α = α'/s, b unchanged."""
        from constrained_pairs.join.scaling import rescale

        return rescale(self, s)

    def __repr__(self) -> str:
        aux = f", aux_dim={self.aux_a.shape[1]}" if self.has_aux else ""
        return (
            f"PairProblem(n_a={self.n_a}, n_p={self.n_p}, dim={tuple(self.x_a.shape[1:])}{aux}, "
            f"C={self.num_classes}, |M|={self.pairs.size}, r_a={self.r_a}, r_p={self.r_p}, "
            f"norm={self.norm!r}, hinge={self.hinge!r}, distance={self.distance!r}, "
            f"normalize={self.normalize!r})"
        )
