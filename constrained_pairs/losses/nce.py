"""InfoNCE / NT-Xent, the SimCLR contrastive loss (SPEC §3 baseline, §4), and the all-gather of
two views that contrastive losses share under data parallelism (SPEC §6)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from constrained_pairs._validation import check_flag, check_real, check_tensor
from constrained_pairs.errors import InvalidArgumentError
from constrained_pairs.losses._reduce import check_reduction, reduce


def all_gather_views(
    z1: torch.Tensor, z2: torch.Tensor, gather: bool | None
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Both views' embeddings of the global batch, gathered with gradients (SPEC §6).

    Args:
        z1, z2: this rank's ``(B, d)`` embeddings (every rank must pass the same B and d).
        gather: None: gather when a ``torch.distributed`` process group with more than one rank
            is initialised; True / False force it (True needs a process group).

    Returns:
        ``(z1_all, z2_all, offset, world_size)``: the ``(world_size·B, d)`` global batch in rank
        order (one ``torch.distributed.nn.functional.all_gather``, whose backward returns to
        each rank the gradient of its own rows) and the position of this rank's rows in it;
        ``(z1, z2, 0, 1)`` without gathering.
    """
    initialised = dist.is_available() and dist.is_initialized()
    if gather is None:
        gather = initialised and dist.get_world_size() > 1
    elif check_flag("gather", gather) and not initialised:
        raise InvalidArgumentError(
            "gather=True needs an initialised torch.distributed process group "
            "(torch.distributed.init_process_group or constrained_pairs.distributed.launch)"
        )
    if not gather or dist.get_world_size() == 1:
        return z1, z2, 0, 1
    from torch.distributed.nn.functional import all_gather

    world, rank = dist.get_world_size(), dist.get_rank()
    sizes = [torch.zeros(2, dtype=torch.long, device=z1.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor(z1.shape, device=z1.device))
    if any(s.tolist() != list(z1.shape) for s in sizes):
        raise InvalidArgumentError(
            "every rank must pass embeddings of the same shape (B, d) to be gathered, got "
            f"{[tuple(s.tolist()) for s in sizes]}"
        )
    both = torch.cat([z1, z2], 1)  # one collective for both views
    gathered = torch.cat(all_gather(both), 0)
    d = z1.shape[1]
    return gathered[:, :d], gathered[:, d:], rank * z1.shape[0], world


def global_sum(partial: torch.Tensor) -> torch.Tensor:
    """The sum of ``partial`` over ranks as the value, with the gradient of this rank's term.

    With embeddings gathered by :func:`all_gather_views`, backpropagating every rank's term
    returns to each rank the gradient of the global sum for its own embeddings.
    """
    total = partial.detach().clone()
    dist.all_reduce(total)
    return partial + (total - partial.detach())


def info_nce(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.1,
    reduction: str = "mean",
    *,
    gather: bool | None = None,
) -> torch.Tensor:
    """NT-Xent loss of SimCLR over two views, symmetric, with 2B - 2 negatives per anchor.

    Embeddings are L2-normalised; the anchor ``z1[t]``'s positive is ``z2[t]`` and its
    negatives are every other embedding of both views (and symmetrically for ``z2[t]``).

    Args:
        z1: first view's embeddings, (B, d).
        z2: second view's embeddings, (B, d).
        temperature: softmax temperature tau > 0 (finite).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (per-anchor losses, shape (2B,)).
        gather: data parallelism (SPEC §6). None: gather the embeddings of every rank (with
            gradients) whenever a ``torch.distributed`` process group is initialised; True /
            False force it. When gathering, this rank's anchors see the negatives of the global
            batch, ``"mean"`` / ``"sum"`` return the global value (with the gradient of the
            global loss for this rank's embeddings) and ``"none"`` the losses of this rank's
            anchors (its view-1 rows, then its view-2 rows).
    """
    check_reduction(reduction)
    check_tensor("z1", z1, floating=True)
    check_tensor("z2", z2, floating=True)
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise InvalidArgumentError(
            f"z1 and z2 must both have shape (B, d), got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    temperature = check_real("temperature", temperature, minimum=0.0, open_minimum=True)
    x1, x2, offset, world = all_gather_views(z1, z2, gather)
    if x1.shape[0] < 2:
        raise InvalidArgumentError(f"info_nce needs a batch of at least 2, got {z1.shape[0]}")
    batch = x1.shape[0]
    z = F.normalize(torch.cat([x1, x2]), dim=1)
    positives = torch.arange(2 * batch, device=z.device).roll(batch)
    if world == 1:
        sim = (z @ z.T) / temperature
        eye = torch.eye(2 * batch, dtype=torch.bool, device=z.device)
        return reduce(
            F.cross_entropy(sim.masked_fill(eye, float("-inf")), positives, reduction="none"),
            reduction,
        )
    own = torch.arange(offset, offset + z1.shape[0], device=z.device)
    own = torch.cat([own, own + batch])  # this rank's view-1 and view-2 anchors
    sim = (z[own] @ z.T) / temperature
    sim = sim.scatter(1, own.unsqueeze(1), float("-inf"))
    losses = F.cross_entropy(sim, positives[own], reduction="none")
    if reduction == "none":
        return losses
    total = losses.sum() if reduction == "sum" else losses.sum() / (2 * batch)
    return global_sum(total)
