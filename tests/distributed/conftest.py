"""One healthy 2-process run shared by the distributed tests (each launch costs about a second)."""

from __future__ import annotations

import pytest

import constrained_pairs.distributed as cpd
from tests.helpers import dist_workers as workers


@pytest.fixture(scope="session")
def battery():
    return cpd.launch(workers.battery, 2, "token", backend="gloo", timeout=30)
