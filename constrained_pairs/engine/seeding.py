"""Scoped seeding: a training call never changes the caller's global RNG (SPEC §7)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []


@contextmanager
def scoped_seed(seed: int) -> Iterator[None]:
    """Run the block with the global CPU (and initialised CUDA) RNGs seeded by ``seed``; the
    caller's RNG states are restored afterwards (``torch.random.fork_rng``)."""
    with torch.random.fork_rng(devices=_cuda_devices()):
        torch.manual_seed(seed)
        yield


def global_rng_state() -> dict[str, Any]:
    """The global CPU and CUDA RNG states, for a checkpoint (dropout draws resume bitwise)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`global_rng_state` returned."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_initialized():
        torch.cuda.set_rng_state_all(state["cuda"])


class GeneratorState:
    """A ``torch.Generator`` seen as an object with ``state_dict``/``load_state_dict``, so a
    sampling generator is checkpointed like a module.

    Args:
        generator: the generator to wrap.
    """

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["state"])


def make_generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """A generator on ``device`` (CPU by default) seeded with ``seed``."""
    return torch.Generator(device=device if device is not None else "cpu").manual_seed(seed)
