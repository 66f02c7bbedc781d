"""The one checkpoint writer (SPEC §7): atomic, fingerprinted, ``weights_only``-loadable.

A file holds ``{"format", "digest", "payload"}``: the payload is the ``torch.save`` bytes of the
run's state as a uint8 tensor and the digest its SHA-256, so a truncated or bit-flipped file is
refused instead of loaded. The state carries a fingerprint (package version, what runs, a
checksum of the data, the options that shape the result); resuming a file whose fingerprint
differs raises :class:`~constrained_pairs.errors.CheckpointError` naming what differs.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from constrained_pairs._validation import check_positive_int, check_real
from constrained_pairs.distributed.collectives import broadcast_object, is_main
from constrained_pairs.errors import CheckpointError, InvalidArgumentError, InvalidTypeError

FORMAT = "constrained_pairs.checkpoint/1"
#: The state key holding the fingerprint (a run's own state cannot use it).
RESERVED = "fingerprint"
#: Plain types of the libraries we build on that optimizer states hold (enums); a module adds
#: its own with :func:`allow_in_checkpoints`. Nothing else is unpickled.
SAFE_GLOBALS: list[type] = []


def allow_in_checkpoints(*types: type) -> None:
    """Let ``types`` (plain enums and the like) appear in a checkpoint's state."""
    SAFE_GLOBALS.extend(t for t in types if t not in SAFE_GLOBALS)


def data_checksum(tensors: Iterable[torch.Tensor | None]) -> str:
    """SHA-256 of the tensors' shapes, dtypes and bytes (once per run, not in a hot path)."""
    digest = hashlib.sha256()
    for t in tensors:
        if t is None:
            digest.update(b"none")
            continue
        t = t.detach().contiguous()
        digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


def describe(value: Any) -> Any:
    """A ``weights_only``-safe, comparable description of an option value."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, torch.dtype | torch.device | Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, torch.nn.Module):
        state = list(value.state_dict().values())
        return f"{type(value).__name__}:{data_checksum(state)[:16]}"
    if isinstance(value, torch.Tensor):
        return f"tensor:{data_checksum([value])[:16]}"
    return f"{type(value).__module__}.{type(value).__qualname__}"


def fingerprint(
    kind: str,
    data: Iterable[torch.Tensor | None],
    options: dict[str, Any],
    *,
    method: str | None = None,
    regime: str | None = None,
) -> dict:
    """What identifies a run: package version, ``kind`` (e.g. ``"solve/projection/A"``), the
    method and regime, the data checksum and the described options.

    Args:
        kind: what runs; a ``"solve/<method>/<regime>"`` kind also sets ``method`` and
            ``regime`` when they are not given.
        data: the tensors the run reads (checksummed).
        options: the options that shape the result.
        method: the solution method, when the run has one.
        regime: the regime (``"A"`` or ``"P"``), when the run has one.
    """
    from constrained_pairs import __version__

    if not isinstance(kind, str):
        raise InvalidTypeError(f"kind must be a str, got {type(kind).__name__}")
    if not isinstance(options, dict):
        raise InvalidTypeError(f"options must be a dict, got {type(options).__name__}")
    parts = kind.split("/")
    if len(parts) == 3 and parts[0] == "solve":
        method = parts[1] if method is None else method
        regime = parts[2] if regime is None else regime
    found = {"version": __version__, "kind": kind, "data": data_checksum(data)}
    if method is not None:
        found["method"] = method
    if regime is not None:
        found["regime"] = regime
    found["options"] = {k: describe(v) for k, v in sorted(options.items())}
    return found


def _differences(saved: dict, expected: dict) -> list[str]:
    def pairs(old: dict, new: dict, keys: Iterable[str]) -> list[str]:
        return [
            f"{key} (checkpoint {old.get(key)!r}, now {new.get(key)!r})"
            for key in keys
            if old.get(key) != new.get(key)
        ]

    # method / regime are compared when both files carry them (older files have only kind),
    # and named first: they say what a differing kind means.
    named = [k for k in ("method", "regime") if k in saved and k in expected]
    found = pairs(saved, expected, [*named, "version", "kind", "data"])
    old = saved.get("options", {})
    old = old if isinstance(old, dict) else {}
    new = expected.get("options", {})
    return found + pairs(old, new, sorted(set(old) | set(new), key=str))


class Checkpointer:
    """Reads and writes one run's checkpoint file.

    Args:
        path: the checkpoint file. Its folder must exist and be writable (checked here, before
            any training time is spent).
        fingerprint: what identifies the run (:func:`fingerprint`).
        every: write every this many epochs; None: at epoch ends at most once per
            ``min_interval`` seconds. The run's end is always written.
        min_interval: see ``every``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fingerprint: dict[str, Any],
        every: int | None = None,
        min_interval: float = 60.0,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise InvalidTypeError(f"checkpoint must be a path, got {type(path).__name__}")
        self.path = Path(path)
        folder = self.path.parent
        if self.path.is_dir():
            raise InvalidArgumentError(f"checkpoint must be a file path, {self.path} is a folder")
        if not folder.is_dir():
            raise InvalidArgumentError(f"checkpoint folder {folder} does not exist")
        try:  # really writable: os.access says yes for root on read-only file systems
            with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{self.path.name}."):
                pass
        except OSError as exc:
            raise InvalidArgumentError(
                f"checkpoint folder {folder} is not writable: {exc}"
            ) from exc
        if not isinstance(fingerprint, dict):
            raise InvalidTypeError(f"fingerprint must be a dict, got {type(fingerprint).__name__}")
        self.fingerprint = fingerprint
        self.every = None if every is None else check_positive_int("checkpoint_every", every)
        self.min_interval = check_real("min_interval", min_interval, minimum=0.0)
        self._last_save = time.monotonic()

    def due(self, epochs_done: int) -> bool:
        """Whether to write after ``epochs_done`` complete epochs."""
        if self.every is not None:
            return epochs_done % self.every == 0
        # A time-based decision must be rank 0's on every rank, or the ranks' saves diverge.
        return bool(broadcast_object(time.monotonic() - self._last_save >= self.min_interval))

    def save(self, state: dict[str, Any]) -> None:
        """Atomically write ``state`` with the fingerprint (rank 0 only).

        Raises:
            InvalidTypeError: ``state`` is not a dict.
            InvalidArgumentError: ``state`` has a ``"fingerprint"`` key (reserved for the run's
                own fingerprint, which a state key would otherwise override).
            CheckpointError: the state cannot be stored, or could not be loaded back with
                ``weights_only=True``.
        """
        if not isinstance(state, dict):
            raise InvalidTypeError(f"state must be a dict, got {type(state).__name__}")
        if RESERVED in state:
            raise InvalidArgumentError(
                f"state key {RESERVED!r} is reserved for the run's fingerprint; "
                "store it under another key"
            )
        if not is_main():
            return
        buffer = io.BytesIO()
        try:
            torch.save({RESERVED: self.fingerprint, **state}, buffer)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"checkpoint {self.path}: the state cannot be stored: {exc}"
            ) from exc
        raw = buffer.getvalue()
        try:  # what cannot be loaded back is refused now, not when the run is resumed
            with torch.serialization.safe_globals(SAFE_GLOBALS):
                torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint {self.path}: the state holds objects a weights_only load refuses "
                f"(store tensors, numbers, strings and lists/tuples/dicts of them): {exc}"
            ) from exc
        payload = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        outer = {"format": FORMAT, "digest": hashlib.sha256(raw).hexdigest(), "payload": payload}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        torch.save(outer, tmp)
        os.replace(tmp, self.path)
        self._last_save = time.monotonic()

    def load(self) -> dict[str, Any] | None:
        """The saved state (as given to :meth:`save`), or None when the file does not exist.

        Raises:
            CheckpointError: for a corrupted, truncated or foreign file, or one whose fingerprint
                differs from this run's (the message names what differs).
        """
        if not self.path.exists():
            return None
        try:
            outer = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # any unreadable file is the user's file, not a crash
            raise CheckpointError(f"checkpoint {self.path} is not readable: {exc}") from exc
        if not isinstance(outer, dict) or outer.get("format") != FORMAT:
            raise CheckpointError(f"checkpoint {self.path} is not a constrained_pairs checkpoint")
        payload = outer.get("payload")
        if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
            raise CheckpointError(f"checkpoint {self.path} has no payload")
        raw = payload.numpy().tobytes()
        if hashlib.sha256(raw).hexdigest() != outer.get("digest"):
            raise CheckpointError(f"checkpoint {self.path} is corrupted (checksum mismatch)")
        try:
            with torch.serialization.safe_globals(SAFE_GLOBALS):
                state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"checkpoint {self.path} is not readable: {exc}") from exc
        if not isinstance(state, dict) or not isinstance(state.get(RESERVED), dict):
            raise CheckpointError(f"checkpoint {self.path} has no run fingerprint")
        differs = _differences(state.pop(RESERVED), self.fingerprint)
        if differs:
            raise CheckpointError(
                f"checkpoint {self.path} belongs to another run; it differs in: "
                + "; ".join(differs)
                + ". Resume with the options it was written with, or start a new run (another "
                "file, or resume=False)"
            )
        return state
