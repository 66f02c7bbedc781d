"""Every ```python block of README.md runs, and what the text around it claims holds.

Blocks run in order in one namespace, as a reader pasting them would. A block that cannot run
here (a torchrun script, an import of the reader's own module) is marked by the line
``<!-- readme-test: compile-only -->`` right above its fence: it is then only compiled.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"(?:^(?P<marker><!-- readme-test: compile-only[^>]*-->)\n)?^```python\n(?P<code>.*?)^```",
    re.DOTALL | re.MULTILINE,
)


def python_blocks() -> list[tuple[str, bool]]:
    """(code, runs) for every ```python block, in order."""
    return [(m["code"], m["marker"] is None) for m in BLOCK.finditer(README.read_text())]


def quick_start_block() -> str:
    section = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)[1]


NAMESPACE: dict = {"__name__": "readme"}


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_readme_has_python_blocks():
    assert python_blocks(), "README.md has no ```python block"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_block_runs(index, one_thread):
    """Each block compiles and (unless marked compile-only) runs after the ones above it."""
    block, runs = python_blocks()[index]
    code = compile(block, f"README.md python block {index}", "exec")
    if runs:
        exec(code, NAMESPACE)  # noqa: S102


@pytest.fixture(scope="module")
def namespace():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    found: dict = {"__name__": "readme"}
    try:
        exec(compile(quick_start_block(), "README.md quick start", "exec"), found)  # noqa: S102
    finally:
        torch.set_num_threads(before)
    return found


def test_quick_start_claims(namespace):
    text = README.read_text()
    assert "10% above the threshold" in text and "above\n0.85" in text and "within 1e-3" in text
    problem, d_bar = namespace["problem"], namespace["d_bar"]
    exact, fast = namespace["exact"], namespace["fast"]
    # the radii sit 10% above r_A + r_P = D̄, computed on the pairs the problem uses
    assert problem.r_a + problem.r_p == pytest.approx(1.1 * d_bar)
    assert problem.mean_distance == pytest.approx(d_bar)
    # a non-collapsed classifier: both classes predicted, accuracy above 0.85
    assert exact.status == "optimal" and not exact.diagnostics.collapsed
    assert all(count > 0 for count in exact.diagnostics.class_histogram)
    assert namespace["accuracy"] > 0.85
    # projected gradient within 1e-3 of the exact objective
    assert fast.gap is not None and abs(fast.gap) < 1e-3
    assert fast.max_violation <= 1e-6
