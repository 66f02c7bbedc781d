"""The engine tasks of the two NCD stages: one Adam step on one mini-batch (SPEC §5, §6).

Each task records one value per step (the batch loss, for the divergence check) and, at the last
step of an epoch, the epoch's means. In a distributed run each rank computes its share of the
global batch's loss (its rows' sum divided by the global batch size), so the gradients summed
over the ranks are those of one process on the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from constrained_pairs.distributed.collectives import all_gather_cat, is_distributed, world_size
from constrained_pairs.engine import Task
from constrained_pairs.ncd.initialization import start_novel
from constrained_pairs.ncd.losses import (
    cluster_loss,
    distill_loss,
    pair_bce,
    pair_targets,
    pairwise_topk_loss,
    target_distribution,
)
from constrained_pairs.vision.training import (
    TensorState,
    broadcast_state_,
    gather_apply,
    global_sum,
    local_positions,
    sync_buffers_,
    sync_gradients,
)

if TYPE_CHECKING:
    from constrained_pairs.ncd.model import Augment, ResidualNCD
    from constrained_pairs.vision.call import TrainingCall

__all__ = ["KnownTask", "NovelTask", "pair_share"]


class _StageTask(Task):
    """What both stages share: the model, its optimizer, the call's batch order."""

    def __init__(
        self, model: ResidualNCD, optimizer: torch.optim.Optimizer, call: TrainingCall
    ) -> None:
        self.model, self.optimizer = model, optimizer
        self.generator, self.batches = call.generator_state(), call.epoch_batches
        self.distributed = is_distributed()
        self.sums: torch.Tensor | None = None

    def stateful(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer, "generator": self.generator}

    def lr(self) -> float | None:
        return float(self.optimizer.param_groups[0]["lr"])

    def _indices(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The global batch, this rank's rows of it and the global batch size."""
        batch = self.batches.batch(iteration).to(self.model.device)
        if not self.distributed:
            return batch, batch, batch.numel()
        positions = local_positions(batch.numel()).to(batch.device)
        return batch, batch[positions], batch.numel()

    def _update(self, objective: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if self.distributed:
            sync_gradients([p for group in self.optimizer.param_groups for p in group["params"]])
        self.optimizer.step()


class KnownTask(_StageTask):
    """Stage 1: cross-entropy of the labelled head on backbone features."""

    def __init__(
        self,
        model: ResidualNCD,
        optimizer: torch.optim.Optimizer,
        call: TrainingCall,
        x: torch.Tensor,
        y: torch.Tensor,
        augment: Augment | None,
    ) -> None:
        super().__init__(model, optimizer, call)
        self.x, self.y, self.augment = x, y, augment

    def step(self, iteration: int, epoch: int, log: bool) -> dict[str, Any]:
        model = self.model
        if iteration % self.batches.per_epoch == 0:
            model.train()
            self.sums = torch.zeros((), dtype=model.dtype, device=model.device)
        _, idx, count = self._indices(iteration)
        xb = self.x[idx] if self.augment is None else self.augment(self.x[idx])
        logits = model.head(model.backbone(xb))
        if self.distributed:
            share = F.cross_entropy(logits, self.y[idx], reduction="sum") / count
        else:
            share = F.cross_entropy(logits, self.y[idx])
        self._update(share)
        if self.distributed:
            sync_buffers_(model.backbone)
        self.sums += share.detach() * count
        if log:
            return {"loss": global_sum(self.sums) / self.x.shape[0]}
        return {"loss": share.detach()}


class NovelTask(_StageTask):
    """Stage 2: L = L_cluster + beta L_distill + L_pair on the unlabelled data (SPEC §5)."""

    def __init__(
        self,
        model: ResidualNCD,
        optimizer: torch.optim.Optimizer,
        call: TrainingCall,
        x_u: torch.Tensor,
        *,
        augment: Augment | None,
        use_distill: bool,
        use_pair: bool,
        pos_weight: float,
        score: Callable[[torch.Tensor], float] | None,
    ) -> None:
        super().__init__(model, optimizer, call)
        self.x_u, self.augment, self.score = x_u, augment, score
        self.use_distill, self.use_pair, self.pos_weight = use_distill, use_pair, pos_weight
        self.state = TensorState(model.device, target=None, neighbors=None)
        self.q_all: torch.Tensor | None = None

    def stateful(self) -> dict[str, Any]:
        return {**super().stateful(), "state": self.state}

    def start(self, restarts: int, seed: int, reduction_init: str) -> None:
        """A fresh stage 2: teacher, top-k graph, reduction and centres (rank 0's in all)."""
        neighbors = start_novel(self.model, self.x_u, restarts, seed, reduction_init)
        if self.distributed:
            import torch.distributed as dist

            broadcast_state_(self.model)
            dist.broadcast(neighbors, src=0)
        self.state["neighbors"] = neighbors
        self.q_all = self.assign()
        self.state["target"] = target_distribution(self.q_all)

    def assign(self) -> torch.Tensor:
        """Soft assignments q of every unlabelled point (gathered across ranks)."""
        return gather_apply(self.model, self.x_u, lambda xb: self.model(xb)[1])

    def step(self, iteration: int, epoch: int, log: bool) -> dict[str, Any]:
        model = self.model
        if iteration % self.batches.per_epoch == 0:
            if self.q_all is None:  # resumed: the checkpointed model's assignments
                self.q_all = self.assign()
            if epoch % model.target_every == 0:
                self.state["target"] = target_distribution(self.q_all)
            self.sums = torch.zeros(3, dtype=model.dtype, device=model.device)
            model.train()
            model.backbone.eval()  # keep stage-1 normalisation statistics (see model docs)
            model.teacher.eval()
        batch, idx, count = self._indices(iteration)
        target, neighbors = self.state["target"], self.state["neighbors"]
        xb = self.x_u[idx] if self.augment is None else self.augment(self.x_u[idx])
        logits, q = model(xb)
        zero = q.new_zeros(())
        if idx.numel() == 0:  # a rank without rows in a short last batch: no share, same graph
            terms = [q.sum() * 0, logits.sum() * 0, zero]
        else:
            terms = [cluster_loss(q, target[idx]), zero, zero]
            if self.use_distill:
                with torch.no_grad():
                    teacher = model.teacher["head"](model.teacher["backbone"](xb))
                terms[1] = distill_loss(logits, teacher.softmax(dim=1))
        if self.distributed:  # this rank's share of the global batch means
            terms[:2] = [t * (idx.numel() / count) for t in terms[:2]]
        pair_grad = terms[2]
        if self.use_pair and self.distributed:
            terms[2], pair_grad = pair_share(q, batch, neighbors, self.pos_weight)
        elif self.use_pair:
            terms[2] = pair_grad = pairwise_topk_loss(
                q, pair_targets(neighbors, idx), pos_weight=self.pos_weight
            )
        self._update(terms[0] + model.beta * terms[1] + pair_grad)
        self.sums += torch.stack([t.detach() for t in terms]) * count
        if not log:
            return {"loss": (terms[0] + model.beta * terms[1] + terms[2]).detach()}
        self.q_all = self.assign()
        cluster, distill, pair = (global_sum(self.sums) / self.x_u.shape[0]).tolist()
        values = {
            "loss": cluster + model.beta * distill + pair,
            "cluster": cluster,
            "distill": distill,
            "pair": pair,
        }
        if self.score is not None:
            values["novel_acc"] = self.score(self.q_all.argmax(dim=1))
        return values


def pair_share(
    q_local: torch.Tensor, batch: torch.Tensor, neighbors: torch.Tensor, pos_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's share of L_pair over a global batch, and a surrogate with its gradient.

    L_pair = 1/(B(B-1)) sum_{i != j} f_ij(q_i^T q_j) over the global batch; this rank holds the
    rows ``q_local`` of its positions r, r + W, ... The q of the whole batch are all-gathered
    without gradient (q̄). The share is the rank's rows of the sum. The surrogate
    sum_{i local} sum_{j != i} [f_ij(q_i^T q̄_j) + f_ji(q̄_j^T q_i)] / (B(B-1)) has, for every local
    q_i, the gradient of L_pair with respect to q_i, so the ranks' gradients sum to L_pair's.

    Returns:
        ``(share, surrogate)``, scalars.
    """
    size, world = batch.numel(), world_size()
    positions = local_positions(size).to(batch.device)
    width = math.ceil(size / world)
    padded = q_local.new_zeros(width, q_local.shape[1])
    padded[: positions.numel()] = q_local.detach()
    blocks = all_gather_cat(padded).view(world, width, -1)
    q_bar = q_local.new_empty(size, q_local.shape[1])
    for r in range(world):
        rows = torch.arange(r, size, world, device=batch.device)
        q_bar[rows] = blocks[r, : rows.numel()]
    adjacency = pair_targets(neighbors, batch)
    sim = q_local @ q_bar.T
    diagonal = torch.arange(size, device=batch.device).unsqueeze(0) == positions.unsqueeze(1)
    rows_bce = pair_bce(sim, adjacency[positions], pos_weight).masked_fill(diagonal, 0.0)
    cols_bce = pair_bce(sim, adjacency[:, positions].T, pos_weight).masked_fill(diagonal, 0.0)
    norm = size * (size - 1)
    share = rows_bce.sum() / norm
    return share, share + cols_bce.sum() / norm
