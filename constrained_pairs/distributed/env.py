"""Process-group set-up: the backend choice and the environment ``torchrun`` writes (SPEC §6).

``torchrun --nproc_per_node=N script.py`` starts N copies of a script with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set;
:func:`init_from_env` turns them into the default process group (a no-op under plain
``python script.py``), so one script runs on one process or many. :func:`launch` sets the same
variables in the processes it starts.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta

import torch
import torch.distributed as dist

from constrained_pairs._validation import check_choice
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError, UnsupportedOptionError

#: Seconds a collective (and the rendezvous) may wait for the other ranks before raising.
DEFAULT_TIMEOUT = 60.0
#: Backends ``torch.distributed`` knows by name.
BACKENDS = ("gloo", "nccl", "mpi", "ucc", "xccl")
_REQUIRED = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def resolve_backend(backend: str | None, local_world_size: int = 1) -> str:
    """The backend to use: ``backend`` checked, or ``nccl``/``gloo`` chosen automatically.

    ``None`` picks ``nccl`` when NCCL is built in and this machine has one CUDA device per local
    rank, else ``gloo``. The choice is made per machine: on a cluster whose nodes differ, pass
    ``backend=`` explicitly.

    Raises:
        InvalidArgumentError: an unknown backend name.
        UnsupportedOptionError: a backend this PyTorch build or machine cannot run (for
            ``nccl``: fewer CUDA devices than local ranks).
    """
    if backend is None:
        devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        nccl = dist.is_available() and dist.is_nccl_available()
        return "nccl" if nccl and devices >= local_world_size else "gloo"
    if not isinstance(backend, str):
        raise InvalidTypeError(f"backend must be a string or None, got {type(backend).__name__}")
    name = check_choice("backend", backend.lower(), BACKENDS)
    if not dist.is_available():
        raise UnsupportedOptionError(
            f"backend={backend!r}: this PyTorch build ({torch.__version__}) has no "
            "torch.distributed"
        )
    if not dist.is_backend_available(name):
        usable = [b for b in BACKENDS if dist.is_backend_available(b)]
        raise UnsupportedOptionError(
            f"backend={backend!r} is not available in this PyTorch build ({torch.__version__}); "
            f"available here: {usable}"
        )
    if name == "nccl":
        devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if devices < local_world_size:
            raise UnsupportedOptionError(
                f"backend='nccl' needs one CUDA device per local rank: {local_world_size} ranks "
                f"on this machine, {devices} CUDA devices visible; use backend='gloo' or fewer "
                "processes"
            )
    return name


def as_timeout(timeout: float | timedelta) -> timedelta:
    """``timeout`` (seconds or a timedelta) as a positive :class:`~datetime.timedelta`."""
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, int | float) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise InvalidTypeError(
            f"timeout must be seconds (a number) or a timedelta, got {type(timeout).__name__}"
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgumentError(f"timeout must be a finite number of seconds > 0, got {timeout}")
    return timedelta(seconds=seconds)


def init_process_group(
    backend: str | None,
    rank: int,
    world_size: int,
    *,
    local_rank: int = 0,
    local_world_size: int = 1,
    timeout: float | timedelta = DEFAULT_TIMEOUT,
) -> str:
    """Initialise the default process group from ``MASTER_ADDR``/``MASTER_PORT``; return the
    backend used. With ``nccl`` the rank's CUDA device is ``local_rank`` (made current)."""
    name = resolve_backend(backend, local_world_size)
    options: dict = {}
    if name == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        options["device_id"] = device
    dist.init_process_group(
        name,
        init_method="env://",
        rank=rank,
        world_size=world_size,
        timeout=as_timeout(timeout),
        **options,
    )
    return name


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        if default is None:  # pragma: no cover - callers check the required variables first
            raise InvalidArgumentError(f"environment variable {name} is not set")
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidArgumentError(
            f"environment variable {name} must be an integer, got {raw!r}"
        ) from exc


def init_from_env(
    backend: str | None = None, *, timeout: float | timedelta = DEFAULT_TIMEOUT
) -> bool:
    """Join the process group that ``torchrun`` (or :func:`launch`) describes in the environment.

    Call it once at the top of a script; the toolkit's entry points then shard and synchronise
    by themselves. Under plain ``python script.py`` (no ``RANK``/``WORLD_SIZE`` variables) it
    does nothing, so the same script runs on one process.

    Args:
        backend: ``None`` (``nccl`` with one GPU per local rank, else ``gloo``) or a name.
        timeout: seconds (or a timedelta) a collective waits for the other ranks before raising,
            so a rank that fails or disagrees ends the run instead of hanging it.

    Returns:
        True when a default process group is initialised (now or before), False when the
        environment describes no distributed run.

    Raises:
        InvalidArgumentError: only some of the torchrun variables are set, or one is malformed.
        UnsupportedOptionError: the backend is unavailable (raised on every rank, before any
            collective).
    """
    if dist.is_available() and dist.is_initialized():
        return True
    present = [name for name in _REQUIRED if name in os.environ]
    if not present:
        return False
    missing = [name for name in _REQUIRED if name not in os.environ]
    if missing:
        raise InvalidArgumentError(
            f"the environment describes a distributed run only in part: {present} are set but "
            f"{missing} are not; start the script with torchrun or set all of {list(_REQUIRED)}"
        )
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    if world < 1 or not 0 <= rank < world:
        raise InvalidArgumentError(f"RANK must be in [0, WORLD_SIZE), got {rank} and {world}")
    init_process_group(
        backend,
        rank,
        world,
        local_rank=_env_int("LOCAL_RANK", rank),
        local_world_size=_env_int("LOCAL_WORLD_SIZE", world),
        timeout=timeout,
    )
    return True


def shutdown() -> None:
    """Destroy the default process group if there is one (the end of a torchrun script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "BACKENDS",
    "DEFAULT_TIMEOUT",
    "as_timeout",
    "init_from_env",
    "init_process_group",
    "resolve_backend",
    "shutdown",
]
