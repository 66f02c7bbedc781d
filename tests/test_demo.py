"""`python -m constrained_pairs demo` runs end to end on bundled data."""

from __future__ import annotations

import subprocess
import sys


def test_demo_prints_table_and_saves_plot(tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "constrained_pairs", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    exact = next(line for line in lines if line.startswith("exact "))
    assert "optimal" in exact
    assert "mean pair distance" in run.stdout and "bounded" in run.stdout
    assert (out / "demo.png").stat().st_size > 10_000
