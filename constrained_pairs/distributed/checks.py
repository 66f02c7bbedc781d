"""Agreement checks across ranks, run before any work so a bad run fails fast (SPEC §6, §7).

Every rank must call them with the same arguments in the same order, like any collective. Each
check raises the same :class:`~constrained_pairs.errors.InvalidArgumentError` on every rank,
because the decision is taken on gathered values that every rank holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from constrained_pairs._validation import check_positive_int
from constrained_pairs.distributed.collectives import all_gather_cat, is_distributed, world_size
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError

_DIGEST = 32  # bytes of a sha256


def _items(name: str, data: Any) -> list[tuple[str, Any]]:
    if isinstance(data, Mapping):
        return [(f"{name}[{key!r}]", value) for key, value in data.items()]
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return [(f"{name}[{i}]", value) for i, value in enumerate(data)]
    return [(name, data)]


def _digest(name: str, value: Any) -> bytes:
    h = hashlib.sha256()
    if isinstance(value, torch.Tensor | np.ndarray):
        array = value.detach() if isinstance(value, torch.Tensor) else torch.from_numpy(value)
        array = array.to("cpu").contiguous()  # a one-off check before training, not a hot path
        h.update(f"tensor {array.dtype} {tuple(array.shape)}|".encode())
        h.update(array.reshape(-1).view(torch.uint8).numpy().data)
    elif value is None or isinstance(value, bool | int | float | str):
        h.update(f"{type(value).__name__} {value!r}".encode())
    else:
        raise InvalidTypeError(
            f"{name} must hold tensors, arrays, numbers, strings or None, "
            f"got {type(value).__name__}"
        )
    return h.digest()


def data_checksum(name: str, data: Any) -> str:
    """The sha256 (hex) of ``data``: a tensor, an array, or a sequence/mapping of them (dtypes,
    shapes and bytes; numbers, strings and ``None`` by value). Purely local."""
    digests = [_digest(label, value) for label, value in _items(name, data)]
    return hashlib.sha256(b"".join(digests)).hexdigest()


def _device() -> torch.device:
    # NCCL moves CUDA tensors only; every other backend takes CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _gather_rows(values: list[int]) -> list[list[int]]:
    local = torch.tensor([values], dtype=torch.int64, device=_device())
    return all_gather_cat(local).tolist()


def check_same_data(name: str, data: Any) -> str:
    """Check that every rank holds the same ``data`` (by checksum); return its sha256 hex.

    One ``all_gather`` of a 33-integer fingerprint; a second one, only on a mismatch, finds
    which entries differ. Without a process group it only computes the checksum.

    Args:
        name: the argument's name, used in the error (e.g. ``"problem"``).
        data: a tensor, an array, or a sequence/mapping of tensors, arrays, numbers, strings.

    Raises:
        InvalidArgumentError: on every rank, naming ``name``, the ranks whose data differ from
            rank 0's and, when the entries line up, which entries differ.
    """
    items = _items(name, data)
    digests = [_digest(label, value) for label, value in items]
    total = hashlib.sha256(b"".join(digests)).digest()
    if not is_distributed():
        return total.hex()
    rows = _gather_rows([len(items), *total])
    differ = [r for r, row in enumerate(rows) if row != rows[0]]
    if not differ:
        return total.hex()
    where = ""
    if all(row[0] == len(items) for row in rows) and len(items) > 1:
        # Same number of entries everywhere: a second gather names the ones that differ.
        per_item = _gather_rows([byte for d in digests for byte in d])
        width = _DIGEST
        bad = [
            label
            for i, (label, _) in enumerate(items)
            if any(
                row[i * width : (i + 1) * width] != per_item[0][i * width : (i + 1) * width]
                for row in per_item
            )
        ]
        where = f"; the entries that differ: {', '.join(bad)}"
    elif any(row[0] != rows[0][0] for row in rows):
        where = f"; the number of entries differs ({[row[0] for row in rows]} by rank)"
    raise InvalidArgumentError(
        f"{name} differs across ranks: rank(s) {differ} of {len(rows)} hold other data than "
        f"rank 0 (sha256 {bytes(rows[0][1:]).hex()[:12]} on rank 0, "
        f"{bytes(rows[differ[0]][1:]).hex()[:12]} on rank {differ[0]}){where}. Every rank must "
        f"pass the same {name}: the toolkit shards the work itself"
    )


def check_world_size(
    n_samples: int, name: str = "samples", *, per_rank: int = 1, world: int | None = None
) -> int:
    """Check that ``n_samples`` leaves every rank at least ``per_rank`` of them; return it.

    Args:
        n_samples: the number of samples (or pairs, blocks ...) to share between the ranks.
        name: what they are, for the message.
        per_rank: how many each rank needs at least (e.g. a batch).
        world: the number of ranks; ``None`` reads the default process group (1 without one).

    Raises:
        InvalidArgumentError: on every rank (the check is local, on equal values) when the
            world size is larger than the data allows.
    """
    n_samples = check_positive_int("n_samples", n_samples, minimum=0)
    per_rank = check_positive_int("per_rank", per_rank)
    world = world_size() if world is None else check_positive_int("world", world)
    if n_samples < per_rank * world:
        most = n_samples // per_rank
        raise InvalidArgumentError(
            f"the world size {world} is larger than the {n_samples} {name} allow: each rank "
            f"needs at least {per_rank}, so use at most {most} process(es) or more {name}"
        )
    return n_samples


__all__ = ["check_same_data", "check_world_size", "data_checksum"]
