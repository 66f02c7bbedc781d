"""`python -m constrained_pairs demo` runs end to end and says what the data join buys."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_demo(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    out = tmp_path / "demo"
    return subprocess.run(
        [sys.executable, "-m", "constrained_pairs", "demo", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _check_common(run, tmp_path) -> list[str]:
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    exact = next(line for line in lines if line.startswith("exact "))
    assert "optimal" in exact
    assert "mean pair distance" in run.stdout and "bounded" in run.stdout
    # the baselines beside the join
    for name in ("P alone (x only)", "oracle (A whole, labelled)", "data join (exact)"):
        assert name in run.stdout
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 10_000
    return lines


def test_demo_prints_baselines_and_saves_plot(tmp_path):
    run = run_demo(tmp_path, "--methods", "exact", "projection", "--splits", "2")
    lines = _check_common(run, tmp_path)
    projection = next(line for line in lines if line.startswith("projection "))
    assert projection.rstrip().endswith("converged")


@pytest.mark.slow
def test_full_demo_every_method_converges(tmp_path):
    run = run_demo(tmp_path)
    lines = _check_common(run, tmp_path)
    for method in ("penalty", "projection", "parametrization", "lagrangian"):
        row = next(line for line in lines if line.startswith(method + " "))
        assert row.rstrip().endswith("converged"), row
    row = next(line for line in lines if line.startswith("augmented_lagrangian "))
    assert row.rstrip().endswith("converged"), row
