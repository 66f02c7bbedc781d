"""The residual novel-class-discovery model (SPEC §5, seed 004).

Architecture (every arrow a module of :class:`ResidualNCD`)::

    x ─ backbone ─ b(x) ─┬─ head ───────────────────────── logits over the n_known classes
                         └─ residual_branch ─ r(x) ─(+ b)─ c(x) ─ reduction ─ c̃(x) ∈ R^n_novel

* ``b(x) = backbone(x)``, the *basic feature* (size ``feat_dim``); the labelled ``head`` is a
  linear layer on it (stage 1 trains both with cross-entropy).
* ``r(x) = W2 relu(W1 b(x))``, a small MLP branch that sits beside the head on the shared
  backbone (the seed's r(x) = Net(x; Θ_net, Θ_π) shares the backbone Θ_net and adds Θ_π). Its
  last layer starts at zero, so stage 2 starts from c = b and the branch only adds what the
  novel classes need.
* ``c(x) = b(x) + r(x)``; ``c̃(x) = reduction(c(x))``, a linear map to ``n_novel`` dimensions,
  initialised with Fisher's discriminant axes of a k-means partition of c on the unlabelled
  data (``reduction_init="pca"``: its principal axes, which may mix the clusters).
* Centres mu (a parameter, (n_novel, n_novel)) start from scikit-learn k-means on c̃.

Stage 2 trains backbone, head, branch, reduction and centres on
L = L_cluster + beta L_distill + L_pair (see :mod:`constrained_pairs.ncd.losses`): the
teacher for L_distill and the feature space of the top-k graph of L_pair are a frozen copy of
the stage-1 backbone and head, taken when stage 2 starts. During stage 2 the backbone runs in
eval mode (its batch-norm statistics stay those of stage 1, dropout is off), so the targets,
the teacher and the trained model see the same normalisation of the unlabelled data.

The training loops are in :mod:`constrained_pairs.ncd.training` and the start of stage 2 in
:mod:`constrained_pairs.ncd.initialization`.

Practical notes (measured in ``benchmarks/ncd.py``): cross-entropy on the known classes alone
erases what the backbone knew about the other classes (k-means on b of digits 5-9 falls to
~0.6), so pretrain the backbone without labels (``pretrain.pretrain_contrastive`` with
slant/width distortions works best on digits; ``pretrain.pretrain_autoencoder`` is simpler) and
barely move it in stage 1 (``backbone_lr``). With a sparse top-k graph the plain BCE
mean of L_pair is dominated by non-neighbour pairs and pulls q towards uniform;
``pair_pos_weight="balanced"`` weighs the two kinds of pairs equally.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from constrained_pairs._validation import as_real_tensor, check_positive_int
from constrained_pairs.engine import History, check_bool, check_device, check_float
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.ncd import training as _training
from constrained_pairs.ncd.losses import student_t_assignment
from constrained_pairs.status import Status
from constrained_pairs.vision.batched import apply_batched, module_device, module_dtype

Augment = Callable[[torch.Tensor], torch.Tensor]


#: Layers that keep the shape of their input (skipped when reading a backbone's output size).
_SHAPE_KEEPING = (nn.Identity, nn.Dropout, nn.BatchNorm1d, nn.LayerNorm)


def _output_size(backbone: nn.Module) -> int | None:
    """The feature size a backbone surely outputs, when its structure tells (a Linear-like
    layer, or a Sequential ending in one followed only by activations, dropout or
    normalisation); None when only a forward pass could tell."""
    module = backbone
    while isinstance(module, nn.Sequential) and len(module):
        layers = list(module)
        while layers and (
            isinstance(layers[-1], _SHAPE_KEEPING)
            or (
                type(layers[-1]).__module__ == nn.ReLU.__module__  # torch.nn activations
                and not isinstance(layers[-1], nn.MultiheadAttention | nn.GLU)
            )
        ):
            layers.pop()
        if not layers:
            return None
        module = layers[-1]
    size = getattr(module, "out_features", None)
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _novel_column(key: str, doc: str) -> property:
    """A read-only list of the stage-2 records' ``key`` values (records without it skipped)."""

    def column(history: NCDHistory) -> list[float]:
        return [r.values[key] for r in history.novel if key in r.values]

    return property(column, doc=doc)


@dataclass
class NCDHistory:
    """The records of the last run of each stage (one :class:`~constrained_pairs.engine.Record`
    per epoch, values averaged over the epoch's mini-batches).

    Attributes:
        known: stage-1 records; value ``"loss"`` is the cross-entropy.
        novel: stage-2 records; values ``"loss"`` (the total L_cluster + beta L_distill +
            L_pair), ``"cluster"``, ``"distill"``, ``"pair"`` (0.0 for a switched-off term) and,
            when ``fit_novel`` was given ``y_u``, ``"novel_acc"`` (clustering accuracy on
            ``x_u`` after the epoch, for monitoring only).
        known_status, novel_status: how each stage's last run ended (None: not run).
    """

    known: History = field(default_factory=History)
    novel: History = field(default_factory=History)
    known_status: Status | None = None
    novel_status: Status | None = None

    @property
    def ce(self) -> list[float]:
        """Stage-1 cross-entropy per epoch."""
        return self.known.column("loss")

    @property
    def total(self) -> list[float]:
        """Stage-2 total loss per epoch."""
        return self.novel.column("loss")

    cluster = _novel_column("cluster", "Stage-2 L_cluster per epoch.")
    distill = _novel_column("distill", "Stage-2 L_distill per epoch.")
    pair = _novel_column("pair", "Stage-2 L_pair per epoch.")
    novel_acc = _novel_column(
        "novel_acc",
        "Clustering accuracy on ``x_u`` after each stage-2 epoch (empty without ``y_u``).",
    )


class ResidualNCD(nn.Module):
    """Two-stage novel class discovery with a residual feature branch (SPEC §5).

    Example::

        model = ResidualNCD(backbone, feat_dim=128, n_known=5, n_novel=5)
        model.fit_known(x_labelled, y_labelled, epochs=30)
        model.fit_novel(x_unlabelled, epochs=60)
        clusters = model.predict_novel(x_unlabelled)

    Args:
        backbone: any module mapping a batch of inputs to features of shape (B, feat_dim).
        feat_dim: size of the backbone's features b(x).
        n_known: number of labelled classes c^l (labels 0..n_known-1).
        n_novel: number of novel classes c^u to discover (>= 2: one cluster is trivial).
        alpha: Student-t degrees of freedom of the soft assignment (finite, > 0).
        sigma: Student-t scale (finite, > 0).
        beta: weight of L_distill (finite, >= 0).
        topk: k of the top-k neighbour graph of L_pair.
        target_every: refresh the target distribution every this many stage-2 epochs.
        device: where the model lives; default the backbone's device.
        residual: include the residual branch (False: c = b, an ablation).
        residual_hidden: hidden width of the residual branch (>= 1, default ``feat_dim``).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feat_dim: int,
        n_known: int,
        n_novel: int,
        *,
        alpha: float = 1.0,
        sigma: float = 1.0,
        beta: float = 1.0,
        topk: int = 5,
        target_every: int = 1,
        device: torch.device | str | None = None,
        residual: bool = True,
        residual_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise InvalidTypeError(f"backbone must be a torch.nn.Module, got {type(backbone)}")
        self.feat_dim = check_positive_int("feat_dim", feat_dim)
        self.n_known = check_positive_int("n_known", n_known)
        self.n_novel = check_positive_int("n_novel", n_novel)
        if self.n_novel < 2:
            raise InvalidArgumentError(
                f"n_novel must be >= 2 (one novel cluster holds every point), got {n_novel}"
            )
        self.alpha = check_float("alpha", alpha, positive=True, optional=False)
        self.sigma = check_float("sigma", sigma, positive=True, optional=False)
        self.beta = check_float("beta", beta, optional=False)
        self.topk = check_positive_int("topk", topk)
        self.target_every = check_positive_int("target_every", target_every)
        check_bool("residual", residual)
        hidden = feat_dim if residual_hidden is None else residual_hidden
        hidden = check_positive_int("residual_hidden", hidden)
        device = check_device(device)
        out = _output_size(backbone)
        if out is not None and out != feat_dim:
            raise InvalidArgumentError(
                f"backbone ends in a layer of {out} output features, but feat_dim={feat_dim}: "
                "the features b(x) must have feat_dim entries"
            )

        dtype = module_dtype(backbone, torch.get_default_dtype())
        if device is None:
            device = module_device(backbone, torch.device("cpu"))
        self.backbone = backbone
        self.head = nn.Linear(feat_dim, n_known)
        self.residual_branch: nn.Module | None = None
        if residual:
            self.residual_branch = nn.Sequential(
                nn.Linear(feat_dim, hidden), nn.ReLU(), nn.Linear(hidden, feat_dim)
            )
            nn.init.zeros_(self.residual_branch[2].weight)
            nn.init.zeros_(self.residual_branch[2].bias)
        self.reduction = nn.Linear(feat_dim, n_novel)
        self.centers = nn.Parameter(torch.zeros(n_novel, n_novel))
        # Frozen stage-1 copy (teacher of L_distill, feature space of the top-k graph).
        self.teacher = nn.ModuleDict(
            {"backbone": copy.deepcopy(backbone), "head": copy.deepcopy(self.head)}
        )
        self.teacher.requires_grad_(False)
        self.to(device=device, dtype=dtype)
        self.history = NCDHistory()

    # ----------------------------------------------------------------------------- forward
    @property
    def device(self) -> torch.device:
        return self.centers.device

    @property
    def dtype(self) -> torch.dtype:
        return self.centers.dtype

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's settings (what a checkpoint's fingerprint records)."""
        return {
            "backbone": type(self.backbone).__name__,
            "feat_dim": self.feat_dim,
            "n_known": self.n_known,
            "n_novel": self.n_novel,
            "alpha": self.alpha,
            "sigma": self.sigma,
            "beta": self.beta,
            "topk": self.topk,
            "target_every": self.target_every,
            "residual": self.residual_branch is not None,
            "dtype": self.dtype,
        }

    def combine(self, basic: torch.Tensor) -> torch.Tensor:
        """c = b + r(b), or c = b without the residual branch."""
        return basic if self.residual_branch is None else basic + self.residual_branch(basic)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Known-class logits (B, n_known) and novel soft assignments q (B, n_novel)."""
        basic = self.backbone(x)
        reduced = self.reduction(self.combine(basic))
        return self.head(basic), student_t_assignment(reduced, self.centers, self.alpha, self.sigma)

    def check_input(self, name: str, x: Any) -> torch.Tensor:
        """``x`` as a tensor on the model's device and dtype, checked against the backbone."""
        # integers (e.g. uint8 images) convert exactly to the model's floating dtype
        x = as_real_tensor(name, x, dtype=self.dtype, device=self.device)
        if x.dim() < 2 or x.shape[0] == 0:
            raise InvalidArgumentError(
                f"{name} must be a non-empty batch of shape (N, ...), got {tuple(x.shape)}"
            )
        try:
            probe = apply_batched(self, x[:2], self.backbone)
        except RuntimeError as exc:
            raise InvalidArgumentError(
                f"{name} of shape {tuple(x.shape)} does not fit the backbone: {exc}"
            ) from exc
        if probe.dim() != 2 or probe.shape[1] != self.feat_dim:
            raise InvalidArgumentError(
                f"backbone must map {name} to features of shape (B, feat_dim={self.feat_dim}), "
                f"got {tuple(probe.shape)}"
            )
        return x

    def soft_assign(self, x: Any, *, batch_size: int = 1024) -> torch.Tensor:
        """Novel-cluster soft assignments q (N, n_novel)."""
        x = self.check_input("x", x)
        return apply_batched(self, x, lambda xb: self(xb)[1], batch_size=batch_size)

    def predict_novel(self, x: Any, *, batch_size: int = 1024) -> torch.Tensor:
        """Novel cluster index in 0..n_novel-1 of every row of ``x`` (argmax of q)."""
        return self.soft_assign(x, batch_size=batch_size).argmax(dim=1)

    def predict_known(self, x: Any, *, batch_size: int = 1024) -> torch.Tensor:
        """Known class in 0..n_known-1 of every row of ``x`` (argmax of the labelled head)."""
        x = self.check_input("x", x)
        logits = apply_batched(
            self, x, lambda xb: self.head(self.backbone(xb)), batch_size=batch_size
        )
        return logits.argmax(dim=1)

    # ----------------------------------------------------------------------------- training
    fit_known = _training.fit_known
    fit_novel = _training.fit_novel
