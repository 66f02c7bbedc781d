"""One history record type for every training loop (SPEC §7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Record:
    """What a loop logged after one iteration.

    Attributes:
        iteration: index of the update that was just taken (0-based).
        epoch: index of the epoch it belongs to (0-based).
        time: training seconds since the run started (resumed runs included).
        lr: the base learning rate at that iteration, or None.
        values: the loop's named values (``"objective"``, ``"loss"``, ``"max_violation"``, ...).
    """

    iteration: int
    epoch: int
    time: float
    lr: float | None = None
    values: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key in ("iteration", "epoch", "time", "lr"):
            return getattr(self, key)
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def as_dict(self) -> dict[str, Any]:
        """The record as one flat dict (what a checkpoint and ``json`` store)."""
        return {
            "iteration": self.iteration,
            "epoch": self.epoch,
            "time": self.time,
            "lr": self.lr,
            **self.values,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        known = ("iteration", "epoch", "time", "lr")
        values = {k: v for k, v in data.items() if k not in known}
        return cls(
            int(data["iteration"]), int(data["epoch"]), float(data["time"]), data["lr"], values
        )


class History(list):
    """The list of a run's :class:`Record` s; ``history.column("loss")`` (or ``history.loss``)
    gives one value per record."""

    def column(self, key: str) -> list[Any]:
        return [record[key] for record in self]

    def __getattr__(self, key: str) -> list[Any]:
        if key.startswith("_"):
            raise AttributeError(key)
        if self and not all(
            key in r.values or key in ("iteration", "epoch", "time", "lr") for r in self
        ):
            raise AttributeError(f"History has no column {key!r}")
        return self.column(key)

    def state_dict(self) -> list[dict[str, Any]]:
        return [record.as_dict() for record in self]

    def load_state_dict(self, state: list[dict[str, Any]]) -> None:
        self[:] = [Record.from_dict(item) for item in state]
