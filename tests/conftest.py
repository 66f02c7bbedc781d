"""Shared fixtures: seeded RNG, a CUDA marker that skips cleanly without a GPU, and the one
device fixture that runs a test on the CPU and, when present, on CUDA."""

from __future__ import annotations

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request) -> torch.device:
    """Each device a test should run on: the CPU, and CUDA when there is one (skipped cleanly
    otherwise). Tests compare what they compute there with the CPU result."""
    return torch.device(request.param)
