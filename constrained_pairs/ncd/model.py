"""Residual training for novel class discovery (SPEC §5, seed 004).

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

Practical notes (measured in ``benchmarks/ncd.py``): cross-entropy on the known classes alone
erases what the backbone knew about the other classes (k-means on b of digits 5-9 falls to
~0.6), so pretrain the backbone without labels (``pretrain.pretrain_contrastive`` with
slant/width distortions works best on digits; ``vision.pretrain_autoencoder`` is simpler) and
barely move it in stage 1 (``backbone_lr``). With a sparse top-k graph the plain BCE
mean of L_pair is dominated by non-neighbour pairs and pulls q towards uniform;
``pair_pos_weight="balanced"`` weighs the two kinds of pairs equally.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from constrained_pairs._validation import (
    as_tensor,
    check_labels,
    check_nonnegative,
    check_positive_int,
)
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.ncd.losses import (
    cluster_loss,
    distill_loss,
    pair_targets,
    pairwise_topk_loss,
    student_t_assignment,
    target_distribution,
    topk_neighbors,
)

Augment = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class NCDHistory:
    """Per-epoch records of both stages (means over the epoch's mini-batches).

    Attributes:
        ce: stage-1 cross-entropy.
        cluster, distill, pair: the stage-2 loss terms (0.0 for a switched-off term).
        total: L_cluster + beta L_distill + L_pair.
        novel_acc: clustering accuracy on ``x_u`` after each stage-2 epoch, only when
            ``fit_novel`` was given ``y_u`` (used for monitoring, never for training).
    """

    ce: list[float] = field(default_factory=list)
    cluster: list[float] = field(default_factory=list)
    distill: list[float] = field(default_factory=list)
    pair: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    novel_acc: list[float] = field(default_factory=list)


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
        n_novel: number of novel classes c^u to discover (>= 1).
        alpha: Student-t degrees of freedom of the soft assignment.
        sigma: Student-t scale.
        beta: weight of L_distill.
        topk: k of the top-k neighbour graph of L_pair.
        target_every: refresh the target distribution every this many stage-2 epochs.
        device: where the model lives; default the backbone's device.
        residual: include the residual branch (False: c = b, an ablation).
        residual_hidden: hidden width of the residual branch (default ``feat_dim``).
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
        for name, value in (("alpha", alpha), ("sigma", sigma)):
            if check_nonnegative(name, value) == 0:
                raise InvalidArgumentError(f"{name} must be > 0, got {value}")
        self.alpha, self.sigma = float(alpha), float(sigma)
        self.beta = check_nonnegative("beta", beta)
        self.topk = check_positive_int("topk", topk)
        self.target_every = check_positive_int("target_every", target_every)
        hidden = check_positive_int("residual_hidden", residual_hidden or feat_dim)

        first = next(backbone.parameters(), None)
        dtype = first.dtype if first is not None and first.is_floating_point() else None
        dtype = dtype or torch.get_default_dtype()
        if device is None:
            device = first.device if first is not None else torch.device("cpu")
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

    def _combine(self, basic: torch.Tensor) -> torch.Tensor:
        """c = b + r(b), or c = b without the residual branch."""
        return basic if self.residual_branch is None else basic + self.residual_branch(basic)

    def _outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        basic = self.backbone(x)
        return self.head(basic), self.reduction(self._combine(basic))

    def _assign(self, x: torch.Tensor) -> torch.Tensor:
        return self._map(lambda xb: self(xb)[1], x, 1024)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Known-class logits (B, n_known) and novel soft assignments q (B, n_novel)."""
        logits, reduced = self._outputs(x)
        return logits, student_t_assignment(reduced, self.centers, self.alpha, self.sigma)

    @torch.no_grad()
    def _map(self, fn: Callable[[torch.Tensor], Any], x: torch.Tensor, batch_size: int) -> Any:
        """Apply ``fn`` in eval mode by batches and concatenate (tuples element-wise)."""
        was_training = self.training
        self.eval()
        try:
            outs = [fn(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
        finally:
            self.train(was_training)
        if isinstance(outs[0], tuple):
            return tuple(torch.cat(parts) for parts in zip(*outs))
        return torch.cat(outs)

    def _input(self, name: str, x: Any) -> torch.Tensor:
        x = as_tensor(name, x, dtype=self.dtype, device=self.device)
        if x.dim() < 2 or x.shape[0] == 0:
            raise InvalidArgumentError(
                f"{name} must be a non-empty batch of shape (N, ...), got {tuple(x.shape)}"
            )
        try:
            probe = self._map(self.backbone, x[:2], 2)
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
        x = self._input("x", x)
        return self._map(lambda xb: self(xb)[1], x, batch_size)

    def predict_novel(self, x: Any, *, batch_size: int = 1024) -> torch.Tensor:
        """Novel cluster index in 0..n_novel-1 of every row of ``x`` (argmax of q)."""
        return self.soft_assign(x, batch_size=batch_size).argmax(dim=1)

    def predict_known(self, x: Any, *, batch_size: int = 1024) -> torch.Tensor:
        """Known class in 0..n_known-1 of every row of ``x`` (argmax of the labelled head)."""
        x = self._input("x", x)
        return self._map(lambda xb: self.head(self.backbone(xb)), x, batch_size).argmax(dim=1)

    # ----------------------------------------------------------------------------- stage 1
    def fit_known(
        self,
        x: Any,
        y: Any,
        epochs: int,
        *,
        lr: float = 1e-3,
        backbone_lr: float | None = None,
        batch_size: int = 128,
        weight_decay: float = 0.0,
        augment: Augment | None = None,
        seed: int = 0,
        progress: bool = True,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
    ) -> ResidualNCD:
        """Stage 1: train backbone and head with cross-entropy on the labelled data.

        Args:
            x: labelled inputs (N, ...), tensor or array.
            y: labels in 0..n_known-1, (N,).
            epochs: total number of epochs (a resumed run continues up to this number).
            lr, weight_decay: Adam settings.
            backbone_lr: learning rate of the backbone (default ``lr``); a small value
                fine-tunes a pretrained backbone without erasing what it knows.
            batch_size: mini-batch size.
            augment: optional function applied to every training batch of inputs.
            seed: seed of the batch order.
            progress: show a tqdm progress bar.
            checkpoint: file to save the training state to every ``checkpoint_every`` epochs;
                when it exists, training resumes from it.
            checkpoint_every: epochs between checkpoints.

        Returns:
            self, with ``history.ce`` extended by one entry per epoch.
        """
        epochs = check_positive_int("epochs", epochs)
        batch_size = check_positive_int("batch_size", batch_size)
        x = self._input("x", x)
        y = check_labels("y", as_tensor("y", y, device=self.device, ndim=1), self.n_known)
        if y.shape[0] != x.shape[0]:
            raise InvalidArgumentError(
                f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}"
            )
        backbone_lr = lr if backbone_lr is None else check_nonnegative("backbone_lr", backbone_lr)
        optimizer = torch.optim.Adam(
            [
                {"params": list(self.head.parameters()), "lr": lr},
                {"params": list(self.backbone.parameters()), "lr": backbone_lr},
            ],
            weight_decay=weight_decay,
        )
        generator = torch.Generator().manual_seed(seed)
        start = self._resume(checkpoint, "known", optimizer, generator)
        bar = tqdm(
            range(start, epochs),
            desc="stage 1 (known)",
            disable=not progress,
            initial=start,
            total=epochs,
        )
        for epoch in bar:
            self.train()
            total = torch.zeros((), dtype=self.dtype, device=self.device)
            for idx in torch.randperm(x.shape[0], generator=generator).split(batch_size):
                idx = idx.to(self.device)
                xb = x[idx] if augment is None else augment(x[idx])
                loss = F.cross_entropy(self.head(self.backbone(xb)), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * idx.numel()
            self.history.ce.append(float(total / x.shape[0]))
            bar.set_postfix(ce=f"{self.history.ce[-1]:.4f}")
            self._save(
                checkpoint, checkpoint_every, epoch + 1, epochs, "known", optimizer, generator
            )
        return self

    # ----------------------------------------------------------------------------- stage 2
    def fit_novel(
        self,
        x_u: Any,
        epochs: int,
        *,
        lr: float = 3e-3,
        backbone_lr: float | None = None,
        batch_size: int | None = 128,
        weight_decay: float = 0.0,
        augment: Augment | None = None,
        use_distill: bool = True,
        use_pair: bool = True,
        pair_pos_weight: float | str = 1.0,
        y_u: Any = None,
        kmeans_restarts: int = 10,
        reduction_init: str = "discriminant",
        seed: int = 0,
        progress: bool = True,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
    ) -> ResidualNCD:
        """Stage 2: find ``n_novel`` clusters in ``x_u``; L = L_cluster + β L_distill + L_pair.

        On a fresh start it freezes a copy of the stage-1 backbone and head (the teacher),
        builds the top-k neighbour graph of ``x_u`` in the teacher's feature space, initialises
        the reduction with the principal axes of c(x_u) and the centres with k-means on c̃.

        Args:
            x_u: unlabelled inputs (N_u, ...), N_u > max(n_novel, topk).
            epochs: total number of epochs (a resumed run continues up to this number).
            lr: Adam learning rate of the residual branch, reduction and centres.
            backbone_lr: learning rate of the backbone and head (default ``lr / 10``; 0
                freezes them).
            batch_size: mini-batch size (None: the full set). L_pair averages over the pairs
                inside the batch; the target distribution is computed on the full set.
            weight_decay: Adam weight decay.
            augment: optional function applied to every training batch (the teacher sees the
                same augmented batch; targets and the graph use clean inputs).
            use_distill: include L_distill (False: ablation).
            use_pair: include L_pair (False: ablation).
            pair_pos_weight: weight of the positive pairs in L_pair; 1.0 is the plain BCE of
                SPEC §5, ``"balanced"`` uses (N_u - 1 - topk) / topk, the ratio of non-neighbour
                to neighbour pairs.
            y_u: true labels of ``x_u``, used only to record ``history.novel_acc``.
            kmeans_restarts: ``n_init`` of the scikit-learn k-means initialisations.
            reduction_init: initial axes of the reduction c -> c̃. ``"discriminant"``: k-means
                on c(x_u), then the n_novel directions of largest total-to-within-cluster
                variance ratio (Fisher's discriminants of the k-means partition, so c̃ keeps
                what separates the clusters); ``"pca"``: the n_novel principal axes of c.
            seed: seed of k-means and the batch order.
            progress: show a tqdm progress bar.
            checkpoint: file to save the training state to every ``checkpoint_every`` epochs;
                when it exists, training resumes from it.
            checkpoint_every: epochs between checkpoints.

        Returns:
            self, with the loss terms of every epoch appended to ``history``.
        """
        from constrained_pairs.metrics import cluster_acc

        epochs = check_positive_int("epochs", epochs)
        if batch_size is not None:
            batch_size = check_positive_int("batch_size", batch_size, minimum=2)
        if reduction_init not in ("discriminant", "pca"):
            raise InvalidArgumentError(
                f"reduction_init must be 'discriminant' or 'pca', got {reduction_init!r}"
            )
        x_u = self._input("x_u", x_u)
        n = x_u.shape[0]
        if n <= max(self.n_novel, self.topk):
            raise InvalidArgumentError(
                f"x_u must hold more than max(n_novel, topk) = {max(self.n_novel, self.topk)} "
                f"points, got {n}"
            )
        labels = None
        if y_u is not None:
            labels = as_tensor("y_u", y_u, ndim=1)
            if labels.shape[0] != n:
                raise InvalidArgumentError(f"y_u must have {n} labels, got {labels.shape[0]}")
        backbone_lr = (
            lr / 10 if backbone_lr is None else check_nonnegative("backbone_lr", backbone_lr)
        )
        new = [*self.reduction.parameters(), self.centers]
        if self.residual_branch is not None:
            new += list(self.residual_branch.parameters())
        old = [*self.backbone.parameters(), *self.head.parameters()]
        optimizer = torch.optim.Adam(
            [{"params": new, "lr": lr}, {"params": old, "lr": backbone_lr}],
            weight_decay=weight_decay,
        )
        generator = torch.Generator().manual_seed(seed)
        extra: dict[str, Any] = {}
        start = self._resume(checkpoint, "novel", optimizer, generator, extra)
        if start == 0:
            extra["neighbors"] = self._start_novel(x_u, kmeans_restarts, seed, reduction_init)
        neighbors = extra["neighbors"].to(self.device)
        batch = n if batch_size is None else min(batch_size, n)
        pos_weight = (
            (n - 1 - self.topk) / self.topk
            if pair_pos_weight == "balanced"
            else (check_nonnegative("pair_pos_weight", pair_pos_weight))
        )

        q_all = self._assign(x_u)
        target = extra.get("target", target_distribution(q_all))
        bar = tqdm(
            range(start, epochs),
            desc="stage 2 (novel)",
            disable=not progress,
            initial=start,
            total=epochs,
        )
        for epoch in bar:
            if epoch % self.target_every == 0:
                target = target_distribution(q_all)
            self.train()
            self.backbone.eval()  # keep stage-1 normalisation statistics (see class docstring)
            self.teacher.eval()
            sums = torch.zeros(3, dtype=self.dtype, device=self.device)
            for idx in torch.randperm(n, generator=generator).split(batch):
                if idx.numel() < 2:
                    continue
                idx = idx.to(self.device)
                xb = x_u[idx] if augment is None else augment(x_u[idx])
                logits, q = self(xb)
                terms = [cluster_loss(q, target[idx]), q.new_zeros(()), q.new_zeros(())]
                if use_distill:
                    with torch.no_grad():
                        teacher = self.teacher["head"](self.teacher["backbone"](xb))
                    terms[1] = distill_loss(logits, teacher.softmax(dim=1))
                if use_pair:
                    terms[2] = pairwise_topk_loss(
                        q, pair_targets(neighbors, idx), pos_weight=pos_weight
                    )
                loss = terms[0] + self.beta * terms[1] + terms[2]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                sums += torch.stack([t.detach() for t in terms]) * idx.numel()
            q_all = self._assign(x_u)
            cluster, distill, pair = (sums / n).tolist()
            self._record(cluster, distill, pair)
            if labels is not None:
                self.history.novel_acc.append(cluster_acc(labels, q_all.argmax(dim=1)))
            bar.set_postfix(loss=f"{self.history.total[-1]:.4f}")
            extra["target"] = target
            self._save(
                checkpoint,
                checkpoint_every,
                epoch + 1,
                epochs,
                "novel",
                optimizer,
                generator,
                extra,
            )
        return self

    def _record(self, cluster: float, distill: float, pair: float) -> None:
        self.history.cluster.append(cluster)
        self.history.distill.append(distill)
        self.history.pair.append(pair)
        self.history.total.append(cluster + self.beta * distill + pair)

    @torch.no_grad()
    def _start_novel(
        self, x_u: torch.Tensor, restarts: int, seed: int, reduction_init: str
    ) -> torch.Tensor:
        """Freeze the teacher, build the top-k graph, initialise reduction and centres."""
        from sklearn.cluster import KMeans

        self.teacher["backbone"].load_state_dict(self.backbone.state_dict())
        self.teacher["head"].load_state_dict(self.head.state_dict())
        basic = self._map(self.teacher["backbone"], x_u, 1024)
        neighbors = topk_neighbors(basic, self.topk)

        combined = self._map(lambda xb: self._combine(self.backbone(xb)), x_u, 1024)
        mean = combined.mean(dim=0)
        if reduction_init == "pca":
            axes = _principal_axes(combined - mean, self.n_novel)
        else:
            labels = KMeans(self.n_novel, n_init=restarts, random_state=seed).fit_predict(
                (combined - mean).double().cpu().numpy()
            )
            labels = torch.as_tensor(labels, dtype=torch.long, device=self.device)
            axes = _discriminant_axes(combined - mean, labels, self.n_novel)
        if axes.shape[0] < self.n_novel:  # fewer samples or features than n_novel
            pad = torch.randn(
                self.n_novel - axes.shape[0], self.feat_dim, dtype=self.dtype, device=self.device
            )
            axes = torch.cat([axes, F.normalize(pad, dim=1)])
        reduced = (combined - mean) @ axes.T
        # Scale to unit variance per dimension on average, whatever the scale of b: sigma is
        # then the kernel width relative to the spread of the data (smaller = sharper q).
        scale = 1.0 / reduced.pow(2).mean().sqrt().clamp_min(torch.finfo(self.dtype).eps)
        self.reduction.weight.copy_(axes * scale)
        self.reduction.bias.copy_(-(mean @ axes.T) * scale)
        kmeans = KMeans(self.n_novel, n_init=restarts, random_state=seed)
        kmeans.fit((reduced * scale).double().cpu().numpy())
        self.centers.copy_(torch.as_tensor(kmeans.cluster_centers_, dtype=self.dtype))
        return neighbors

    # ----------------------------------------------------------------------------- checkpoints
    def _save(
        self,
        path: str | os.PathLike | None,
        every: int,
        epoch: int,
        epochs: int,
        stage: str,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if path is None or (epoch % every and epoch != epochs):
            return
        state = {
            "stage": stage,
            "epoch": epoch,
            "model": self.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "history": asdict(self.history),
            "extra": extra or {},
        }
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint

    def _resume(
        self,
        path: str | os.PathLike | None,
        stage: str,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        extra: dict[str, Any] | None = None,
    ) -> int:
        if path is None or not Path(path).exists():
            return 0
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state.get("stage") != stage:
            raise InvalidArgumentError(
                f"checkpoint {str(path)!r} holds a {state.get('stage')!r} stage, expected {stage!r}"
            )
        self.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        self.history = NCDHistory(**state["history"])
        if extra is not None:
            extra.update(state["extra"])
        return int(state["epoch"])


def _principal_axes(centred: torch.Tensor, k: int) -> torch.Tensor:
    """The (up to) k principal axes of centred rows, (k, D) orthonormal."""
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return v[:k]


def _discriminant_axes(
    centred: torch.Tensor, labels: torch.Tensor, k: int, shrinkage: float = 0.1
) -> torch.Tensor:
    """The (up to) k directions v maximising v^T S_t v / v^T S_w v, (k, D), v^T S_w v = 1.

    S_t is the covariance of the centred rows and S_w the within-cluster covariance of the
    partition ``labels``, shrunk towards its mean variance so that near-constant feature
    directions are not amplified. The first (clusters - 1) directions are Fisher's linear
    discriminants; the others keep the largest remaining total spread.
    """
    x = centred.double()
    onehot = F.one_hot(labels, int(labels.max()) + 1).double()
    means = (onehot.T @ x) / onehot.sum(0).clamp_min(1).unsqueeze(1)
    within = x - means[labels]
    s_w = within.T @ within / len(x)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    s_w = (1 - shrinkage) * s_w + shrinkage * s_w.diagonal().mean().clamp_min(1e-12) * eye
    # Whiten with the Cholesky factor of S_w: the generalised problem becomes symmetric.
    inv_chol = torch.linalg.inv(torch.linalg.cholesky(s_w))
    _, vectors = torch.linalg.eigh(inv_chol @ (x.T @ x / len(x)) @ inv_chol.T)
    # Each axis has unit (shrunk) within-cluster variance: clusters look round to the kernel.
    return (inv_chol.T @ vectors[:, -k:].flip(1)).T.to(centred.dtype)
