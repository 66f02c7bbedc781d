"""The one training engine: the loop, scoped seeding, history records, the checkpointer and the
shared option vocabulary. ``solve()``'s first-order methods, the NCD fits and the pretraining
loops all run on it (SPEC §7)."""

from constrained_pairs.engine.checkpoint import (
    Checkpointer,
    allow_in_checkpoints,
    data_checksum,
    describe,
    fingerprint,
)
from constrained_pairs.engine.history import History, Record
from constrained_pairs.engine.loop import LoopSettings, RunOutcome, Task, lr_factor, run
from constrained_pairs.engine.options import (
    check_bool,
    check_callback,
    check_device,
    check_dtype,
    check_float,
    check_int,
    check_seed,
    check_unknown,
    resolve_progress,
)
from constrained_pairs.engine.seeding import (
    GeneratorState,
    global_rng_state,
    make_generator,
    scoped_seed,
    set_global_rng_state,
)

__all__ = [
    "Checkpointer",
    "allow_in_checkpoints",
    "GeneratorState",
    "History",
    "LoopSettings",
    "Record",
    "RunOutcome",
    "Task",
    "check_bool",
    "check_callback",
    "check_device",
    "check_dtype",
    "check_float",
    "check_int",
    "check_seed",
    "check_unknown",
    "data_checksum",
    "describe",
    "fingerprint",
    "global_rng_state",
    "lr_factor",
    "make_generator",
    "resolve_progress",
    "run",
    "scoped_seed",
    "set_global_rng_state",
]
