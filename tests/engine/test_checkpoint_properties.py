"""Property-based checks of the checkpointer (issue 12's contract; SPEC §7): any state of tensors
(every dtype, empty, 0-d, non-contiguous, NaN/inf) comes back bitwise; a state that cannot be
stored is refused when saved, never when resumed; a fingerprint that differs names what differs;
a foreign file (random bytes, another ``torch.save`` object, a forged digest) raises
``CheckpointError`` naming the file; bad arguments raise package errors naming them."""

from __future__ import annotations

import hashlib
import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from constrained_pairs.engine import Checkpointer, describe, fingerprint
from constrained_pairs.errors import CheckpointError, ConstrainedPairsError

FAST = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
DTYPES = [
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.int8,
    torch.uint8,
    torch.int64,
    torch.bool,
]


@st.composite
def tensors(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    t = (torch.randn(shape, generator=gen, dtype=torch.float64) * 100).to(
        torch.float64 if dtype == torch.complex64 else dtype
    )
    if dtype == torch.complex64:
        t = torch.complex(t.float(), -t.float())
    if t.is_floating_point() and t.numel() and draw(st.booleans()):
        t.view(-1)[0] = draw(st.sampled_from([math.nan, math.inf, -math.inf, -0.0]))
    if t.dim() >= 2 and draw(st.booleans()):
        t = t.mT  # a non-contiguous view
    return t


STATES = st.recursive(
    st.one_of(
        tensors(),
        st.none(),
        st.booleans(),
        st.integers(-(2**62), 2**62),
        st.floats(allow_nan=False),
        st.text(max_size=5),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(min_size=1, max_size=4), children, max_size=3),
    ),
    max_leaves=8,
)


def _same(a, b) -> bool:
    """Bitwise equality of nested states (NaN == NaN, -0.0 != 0.0, dtype and shape too)."""
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor) or (a.dtype, a.shape) != (b.dtype, b.shape):
            return False
        bytes_a = a.contiguous().reshape(-1).view(torch.uint8)
        return torch.equal(bytes_a, b.contiguous().reshape(-1).view(torch.uint8))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


@FAST
@given(state=st.dictionaries(st.text(min_size=1, max_size=6), STATES, max_size=4))
def test_any_state_of_tensors_comes_back_bitwise(tmp_path_factory, state):
    state.pop("fingerprint", None)
    path = tmp_path_factory.mktemp("ckpt") / "run.ckpt"
    run = fingerprint("test", [torch.ones(2)], {"lr": 0.1})
    Checkpointer(path, run).save(state)
    loaded = Checkpointer(path, run).load()
    assert _same(state, loaded), (state, loaded)
    # the file is what torch.load(weights_only=True) accepts, written atomically (no leftovers)
    torch.load(path, weights_only=True)
    assert sorted(os.listdir(path.parent)) == ["run.ckpt"]


class _Custom:
    pass


# (a numpy array, a torch.Generator, a range, a custom object: refused at save, see
# the test below)
UNSTORABLE = [lambda: lambda: 1, lambda: (1, (2.0, "x")), lambda: [{"f": lambda: 2}]]


@settings(FAST, max_examples=10)
@given(make=st.sampled_from(UNSTORABLE))
def test_a_state_is_refused_at_save_or_comes_back_never_fails_at_resume(tmp_path_factory, make):
    path = tmp_path_factory.mktemp("ckpt") / "run.ckpt"
    run = fingerprint("test", [], {})
    state = {"value": make(), "w": torch.ones(2)}
    try:
        Checkpointer(path, run).save(state)
    except CheckpointError as exc:
        assert "run.ckpt" in str(exc)
        return
    loaded = Checkpointer(path, run).load()  # what was saved must resume
    assert torch.equal(loaded["w"], state["w"])


@pytest.mark.parametrize(
    "value",
    [np.arange(3), torch.Generator(), range(3), _Custom()],
    ids=["numpy", "generator", "range", "object"],
)
def test_a_state_that_cannot_be_resumed_is_refused_when_saved(tmp_path, value):
    path = tmp_path / "run.ckpt"
    run = fingerprint("test", [], {})
    with pytest.raises(CheckpointError, match="run.ckpt"):
        Checkpointer(path, run).save({"value": value})


# -- fingerprints ----------------------------------------------------------------------------------
OPTION_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.sampled_from([torch.float32, torch.float64, torch.device("cpu"), Path("a")]),
    st.lists(st.integers(0, 3), max_size=3),
)


@FAST
@given(
    options=st.dictionaries(st.sampled_from(["lr", "tol", "seed", "norm"]), OPTION_VALUES),
    key=st.sampled_from(["lr", "tol", "seed", "norm", "new_option"]),
    value=OPTION_VALUES,
)
def test_a_differing_option_is_named_and_an_equal_one_resumes(
    tmp_path_factory, options, key, value
):
    path = tmp_path_factory.mktemp("ckpt") / "run.ckpt"
    data = [torch.arange(3.0)]
    Checkpointer(path, fingerprint("solve/projection/A", data, options)).save({"step": 1})
    changed = {**options, key: value}
    resumed = Checkpointer(path, fingerprint("solve/projection/A", data, changed))
    if describe(options.get(key)) == describe(value) and (key in options or value is None):
        assert resumed.load() == {"step": 1}
    else:
        with pytest.raises(CheckpointError) as caught:
            resumed.load()
        assert "run.ckpt" in str(caught.value) and key in str(caught.value)


@FAST
@given(
    what=st.sampled_from(["data", "kind", "method", "regime"]),
    seed=st.integers(0, 100),
)
def test_other_data_kinds_methods_and_regimes_are_named(tmp_path_factory, what, seed):
    path = tmp_path_factory.mktemp("ckpt") / "run.ckpt"
    data = [torch.randn(4, generator=torch.Generator().manual_seed(seed))]
    Checkpointer(path, fingerprint("solve/lagrangian/A", data, {})).save({})
    other = {
        "data": lambda: fingerprint("solve/lagrangian/A", [data[0] + 2.0**-20], {}),
        "kind": lambda: fingerprint("ncd/known", data, {}),
        "method": lambda: fingerprint("solve/augmented_lagrangian/A", data, {}),
        "regime": lambda: fingerprint("solve/lagrangian/P", data, {}),
    }[what]()
    with pytest.raises(CheckpointError, match=what):
        Checkpointer(path, other).load()


# -- foreign and forged files ----------------------------------------------------------------------
def _outer(raw: bytes, digest: str | None = None, fmt: str = "constrained_pairs.checkpoint/1"):
    payload = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.zeros(0)
    return {"format": fmt, "digest": digest or hashlib.sha256(raw).hexdigest(), "payload": payload}


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


FOREIGN = [
    ("random bytes", lambda data: data),
    ("empty file", lambda data: b""),
    ("a tensor", lambda data: _saved(torch.frombuffer(bytearray(data or b"0"), dtype=torch.uint8))),
    ("a list", lambda data: _saved([1, 2, 3])),
    ("no format", lambda data: _saved({"payload": torch.zeros(2)})),
    ("another format", lambda data: _saved(_outer(_saved({}), fmt="other/1"))),
    ("forged digest", lambda data: _saved(_outer(_saved({"fingerprint": {}}), digest="0" * 64))),
    ("payload not bytes", lambda data: _saved({**_outer(b"x"), "payload": torch.zeros(2)})),
    ("payload not a state", lambda data: _saved(_outer(data or b"0"))),
    ("state without fingerprint", lambda data: _saved(_outer(_saved({"w": torch.ones(1)})))),
    ("state not a dict", lambda data: _saved(_outer(_saved([1, 2])))),
]


@FAST
@given(foreign=st.sampled_from(FOREIGN), data=st.binary(max_size=64))
def test_a_foreign_or_forged_file_is_refused_naming_it(tmp_path_factory, foreign, data):
    _, make = foreign
    path = tmp_path_factory.mktemp("ckpt") / "foreign.ckpt"
    path.write_bytes(make(data))
    with pytest.raises(CheckpointError, match="foreign.ckpt"):
        Checkpointer(path, fingerprint("test", [], {})).load()


# -- arguments -------------------------------------------------------------------------------------
ARGUMENT_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.sampled_from([0.0, 2.5, -1.0, math.nan, math.inf]),
    st.text(max_size=3),
    st.just([1]),
)


def _valid(name: str, value) -> bool:
    if name == "every":
        return value is None or (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1
        )
    if name == "min_interval":
        real = isinstance(value, int | float) and not isinstance(value, bool)
        return real and math.isfinite(value) and value >= 0
    raise AssertionError(name)


@FAST
@given(name=st.sampled_from(["every", "min_interval"]), value=ARGUMENT_VALUES)
def test_checkpointer_options_are_accepted_or_refused_by_name(tmp_path_factory, name, value):
    path = tmp_path_factory.mktemp("ckpt") / "run.ckpt"
    label = {"every": "checkpoint_every"}.get(name, name)
    try:
        Checkpointer(path, fingerprint("test", [], {}), **{name: value})
    except ConstrainedPairsError as exc:
        assert label in str(exc), str(exc)
        assert not _valid(name, value), (name, value)
        return
    assert _valid(name, value), (name, value)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda tmp: (3, fingerprint("t", [], {})), "checkpoint"),
        (lambda tmp: (None, fingerprint("t", [], {})), "checkpoint"),
        (lambda tmp: (tmp / "missing" / "run.ckpt", fingerprint("t", [], {})), "missing"),
        (lambda tmp: (tmp, fingerprint("t", [], {})), "folder"),
        (lambda tmp: (tmp / "run.ckpt", ["not", "a", "dict"]), "fingerprint"),
    ],
)
def test_checkpointer_paths_and_fingerprints_are_checked_before_any_work(tmp_path, make, match):
    path, run = make(tmp_path)
    with pytest.raises(ConstrainedPairsError, match=match):
        Checkpointer(path, run)


@FAST
@given(state=st.one_of(st.lists(st.integers()), st.text(), st.none(), st.integers()))
def test_a_state_that_is_not_a_dict_is_refused(tmp_path_factory, state):
    path = tmp_path_factory.mktemp("ckpt") / "run.ckpt"
    with pytest.raises(ConstrainedPairsError, match="state"):
        Checkpointer(path, fingerprint("test", [], {})).save(state)
    assert not path.exists()


@FAST
@given(kind=st.one_of(st.integers(), st.none(), st.just(b"x")), options=st.just({}))
def test_fingerprint_arguments_are_named(kind, options):
    with pytest.raises(ConstrainedPairsError, match="kind"):
        fingerprint(kind, [], options)
    with pytest.raises(ConstrainedPairsError, match="options"):
        fingerprint("test", [], [("lr", 1)])
