"""The checkpoint file contract (SPEC §7): a fingerprint names what differs — method and regime
on their own — and cannot be overridden by the run's state; the checkpointer's own arguments
are checked with errors naming them."""

from __future__ import annotations

import math

import pytest
import torch

import constrained_pairs as cp
from constrained_pairs.engine import Checkpointer, fingerprint
from constrained_pairs.errors import CheckpointError, InvalidArgumentError, InvalidTypeError

F64 = torch.float64
FIRST_ORDER = ("penalty", "projection", "parametrization", "lagrangian", "augmented_lagrangian")


def _problem() -> cp.PairProblem:
    g = torch.Generator().manual_seed(3)
    x_a = torch.rand(4, 3, generator=g, dtype=F64)
    x_p = torch.rand(6, 3, generator=g, dtype=F64)
    aux = torch.rand(4, 2, generator=g, dtype=F64)
    base = cp.PairProblem(x_a, x_p, torch.tensor([0, 1, 2, 0, 1, 2]), aux, r_a=0.0, r_p=0.0)
    radius = 0.6 * base.mean_distance
    return base.replace(r_a=radius, r_p=radius)


@pytest.mark.parametrize("method", FIRST_ORDER)
def test_resuming_another_regime_names_the_regime(tmp_path, method):
    problem, path = _problem(), tmp_path / "run.pt"
    cp.solve(problem, method, regime="A", max_iter=5, checkpoint=path)
    with pytest.raises(CheckpointError, match=r"differs in: regime \(checkpoint 'A', now 'P'\)"):
        cp.solve(problem, method, regime="P", max_iter=5, checkpoint=path, resume=True)


def test_a_solve_fingerprint_carries_method_and_regime():
    found = fingerprint("solve/lagrangian/P", [torch.ones(2)], {"lr": 0.1})
    assert (found["method"], found["regime"], found["kind"]) == ("lagrangian", "P", found["kind"])
    explicit = fingerprint("ncd/known", [torch.ones(2)], {}, method="residual", regime="A")
    assert (explicit["method"], explicit["regime"]) == ("residual", "A")
    assert "method" not in fingerprint("ncd/known", [torch.ones(2)], {})


def test_another_method_is_named_as_the_method(tmp_path):
    path, data = tmp_path / "run.pt", [torch.ones(3)]
    Checkpointer(path, fingerprint("solve/lagrangian/A", data, {})).save({"x": 1})
    other = Checkpointer(path, fingerprint("solve/augmented_lagrangian/A", data, {}))
    with pytest.raises(CheckpointError, match="method .checkpoint 'lagrangian', now 'aug"):
        other.load()


def test_a_file_without_method_and_regime_fields_still_resumes_its_own_run(tmp_path):
    path, data = tmp_path / "run.pt", [torch.ones(3)]
    old = fingerprint("solve/penalty/A", data, {"lr": 0.1})
    del old["method"], old["regime"]  # as written before the fields existed
    Checkpointer(path, old).save({"x": torch.arange(3.0)})
    state = Checkpointer(path, fingerprint("solve/penalty/A", data, {"lr": 0.1})).load()
    assert torch.equal(state["x"], torch.arange(3.0))
    with pytest.raises(CheckpointError, match="kind .checkpoint 'solve/penalty/A'"):
        Checkpointer(path, fingerprint("solve/penalty/P", data, {"lr": 0.1})).load()


def test_the_state_cannot_override_the_fingerprint(tmp_path):
    path = tmp_path / "run.pt"
    checkpointer = Checkpointer(path, fingerprint("test/x", [torch.ones(3)], {"lr": 0.1}))
    with pytest.raises(InvalidArgumentError, match="'fingerprint' is reserved"):
        checkpointer.save({"x": torch.ones(2), "fingerprint": {"kind": "evil"}})
    assert not path.exists()
    with pytest.raises(InvalidTypeError, match="state must be a dict"):
        checkpointer.save([torch.ones(2)])
    checkpointer.save({"x": torch.ones(2), "nested": {"fingerprint": 1}})
    state = checkpointer.load()  # exactly what was saved: the fingerprint is not part of it
    assert set(state) == {"x", "nested"} and state["nested"] == {"fingerprint": 1}


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"every": 0}, InvalidArgumentError, "every"),
        ({"every": -2}, InvalidArgumentError, "every"),
        ({"every": 1.5}, InvalidTypeError, "every"),
        ({"every": True}, InvalidTypeError, "every"),
        ({"every": "2"}, InvalidTypeError, "every"),
        ({"min_interval": math.nan}, InvalidArgumentError, "min_interval"),
        ({"min_interval": -1.0}, InvalidArgumentError, "min_interval"),
        ({"fingerprint": "run"}, InvalidTypeError, "fingerprint"),
        ({"path": 3}, InvalidTypeError, "checkpoint"),
    ],
)
def test_checkpointer_arguments_are_checked(tmp_path, options, error, match):
    arguments = {"path": tmp_path / "run.pt", "fingerprint": fingerprint("t", [], {}), **options}
    with pytest.raises(error, match=match):
        Checkpointer(**arguments)


def test_fingerprint_arguments_are_checked():
    with pytest.raises(InvalidTypeError, match="kind"):
        fingerprint(3, [], {})
    with pytest.raises(InvalidTypeError, match="options"):
        fingerprint("t", [], [("lr", 0.1)])
