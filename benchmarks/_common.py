"""Shared benchmark plumbing: the ``--quick`` flag, timing and writing results.

Every benchmark writes ``<name>.md`` and ``<name>.json`` (and plots) and prints its headline figure
as the last line of its output. A user's run writes to ``benchmarks/out/`` (git-ignored); only
``--record`` writes the committed figures in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RECORDED = Path(__file__).resolve().parent / "results"
#: Where this run writes: the committed ``results/`` only with ``--record`` (decided from the
#: command line at import, so scripts can name files before parsing their own arguments).
RESULTS = RECORDED if "--record" in sys.argv[1:] else Path(__file__).resolve().parent / "out"


def parse_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None):
    """Arguments common to every benchmark: ``--quick``, ``--device``, ``--seed``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small grid, finishes under 60 s")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--record", action="store_true", help="write the committed figures in benchmarks/results/"
    )
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_call(
    fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1, device: str = "cpu"
) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> dict[str, Any]:
    """Where a figure was measured, stored beside it."""
    return {
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def write_results(name: str, markdown: str, data: dict[str, Any]) -> Path:
    """Write ``<name>.md`` and ``<name>.json`` under :data:`RESULTS`; return the markdown path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": machine(), **data}, indent=2))
    path = RESULTS / f"{name}.md"
    path.write_text(markdown)
    return path


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub markdown table; floats are written with 4 significant digits."""

    def fmt(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
