"""check_same_data / check_world_size: the same clear error on every rank, never a hang."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

import constrained_pairs.distributed as cpd
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from tests.helpers import dist_workers as workers


def _reference_checksum(items) -> str:
    # Independent of the implementation's helpers: sha256 over the entries' own sha256s.
    parts = []
    for value in items:
        h = hashlib.sha256()
        if isinstance(value, torch.Tensor):
            h.update(f"tensor {value.dtype} {tuple(value.shape)}|".encode())
            h.update(value.numpy().tobytes())
        else:
            h.update(f"{type(value).__name__} {value!r}".encode())
        parts.append(h.digest())
    return hashlib.sha256(b"".join(parts)).hexdigest()


def test_equal_data_passes_with_the_same_checksum_on_every_rank(battery):
    expected = _reference_checksum(workers.SHARED)
    assert [out["same"] for out in battery] == [expected, expected]
    assert cpd.check_same_data("problem", workers.SHARED) == expected  # one process: local


def test_mismatched_data_raises_the_same_clear_error_on_both_ranks(battery):
    first, second = (out["mismatch"] for out in battery)
    assert first is not None and first == second
    assert "problem differs across ranks" in first
    assert "rank(s) [1] of 2" in first and "problem[1]" in first and "problem[0]" not in first
    counts = [out["mismatch_count"] for out in battery]
    assert counts[0] == counts[1] and "number of entries differs ([2, 3] by rank)" in counts[0]


def test_world_size_larger_than_the_data_raises_on_every_rank(battery):
    messages = [out["world_too_large"] for out in battery]
    assert messages[0] == messages[1]
    assert "world size 2 is larger than the 1 pairs" in messages[0]


def test_checksum_sees_dtype_shape_and_bytes():
    x = torch.arange(6.0)
    base = cpd.data_checksum("x", x)
    assert cpd.data_checksum("x", x.clone()) == base
    assert cpd.data_checksum("x", x.numpy()) == base  # arrays hash like tensors
    assert cpd.data_checksum("x", x.reshape(2, 3)) != base
    assert cpd.data_checksum("x", x.double()) != base
    y = x.clone()
    y[3] = torch.nextafter(y[3], torch.tensor(10.0))  # one ulp
    assert cpd.data_checksum("x", y) != base
    assert cpd.data_checksum("x", x.reshape(3, 2).t()) == cpd.data_checksum(
        "x", x.reshape(3, 2).t().contiguous()
    )
    assert cpd.data_checksum("d", {"a": x}) != cpd.data_checksum("d", {"a": x + 1})
    with pytest.raises(InvalidTypeError, match=r"problem\[1\] must hold tensors"):
        cpd.check_same_data("problem", [x, object()])
    assert cpd.data_checksum("n", np.float64(0.5)) != cpd.data_checksum("n", 0.25)


def test_check_world_size_locally():
    assert cpd.check_world_size(5, "samples", world=4) == 5
    with pytest.raises(InvalidArgumentError, match=r"world size 4 .* 3 samples.*at most 3"):
        cpd.check_world_size(3, "samples", world=4)
    with pytest.raises(InvalidArgumentError, match=r"at least 8, so use at most 2"):
        cpd.check_world_size(20, "pairs", per_rank=8, world=3)
    with pytest.raises(InvalidArgumentError, match="n_samples"):
        cpd.check_world_size(-1)
