"""One healthy 2-process run shared by the distributed tests (each launch costs about a second)."""

from __future__ import annotations

import dist_workers as workers
import pytest

import constrained_pairs.distributed as cpd


@pytest.fixture(scope="session")
def battery():
    return cpd.launch(workers.battery, 2, "token", backend="gloo", timeout=30)
