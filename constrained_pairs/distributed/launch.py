"""Run a function on N local processes joined in one process group (SPEC §6).

:func:`launch` is for tests, notebooks and quick experiments on one machine; ``torchrun`` is the
launcher for scripts and clusters (see :func:`~constrained_pairs.distributed.init_from_env`).
Each child gets the torchrun environment (``RANK``, ``WORLD_SIZE``, ``MASTER_PORT`` ...), so code
inside ``fn`` cannot tell the two launchers apart.
"""

from __future__ import annotations

import atexit
import multiprocessing.connection
import os
import pickle
import signal
import socket
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from constrained_pairs._validation import check_choice, check_positive_int
from constrained_pairs.distributed.env import (
    DEFAULT_TIMEOUT,
    as_timeout,
    init_process_group,
    resolve_backend,
)
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError

#: Seconds the other ranks get, once one has failed, to finish or report their own error.
_GRACE = 2.0
_PORT_TAKEN = ("address already in use", "eaddrinuse")


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a child process (shown as the cause)."""

    def __str__(self) -> str:
        return "\n" + self.args[0]


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dump(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(value if isinstance(value, bytes) else pickle.dumps(value))
    os.replace(tmp, path)  # the parent never reads half a file


def _child(
    rank: int,
    fn: Callable[..., Any],
    args: tuple,
    nprocs: int,
    backend: str,
    port: int,
    timeout: timedelta,
    threads: int | None,
    folder: str,
    forked: bool,
) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(nprocs),
        LOCAL_WORLD_SIZE=str(nprocs),
    )
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        init_process_group(
            backend, rank, nprocs, local_rank=rank, local_world_size=nprocs, timeout=timeout
        )
        value = pickle.dumps(fn(rank, *args), protocol=pickle.HIGHEST_PROTOCOL)
        dist.barrier()  # rank 0 hosts the store: nobody leaves while another still needs it
        dist.destroy_process_group()
        _dump(Path(folder) / f"{rank}.result", value)  # written last: "this rank is done"
    except KeyboardInterrupt:  # terminated by the parent
        _leave(1, forked)
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        try:
            blob = pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an unpicklable exception travels as text
            blob = None
        report = {
            "time": time.time(),
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": traceback.format_exc(),
            "exception": blob,
        }
        _dump(Path(folder) / f"{rank}.error", report)
        _leave(1, forked)
    _leave(0, forked)


def _leave(code: int, forked: bool) -> None:
    """End a child: Python's exit handlers (not in a forked child: they are the parent's, like
    the clean-up of the results folder), then no C++ static destructors. Those of the
    communication libraries can abort ("terminate called without an active exception") once
    the work is done and saved, which would turn a finished rank into a crashed one."""
    if not forked:
        atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _check_picklable(fn: Callable[..., Any], start_method: str) -> None:
    main = sys.modules.get("__main__")
    interactive = main is not None and not hasattr(main, "__file__")
    if start_method != "fork" and getattr(fn, "__module__", None) == "__main__" and interactive:
        raise InvalidArgumentError(
            f"fn={getattr(fn, '__qualname__', fn)!r} is defined in a notebook or an interactive "
            "session, which spawned processes cannot import: define it in a .py module and "
            "import it, or pass start_method='fork' (CPU only)"
        )
    try:
        pickle.dumps(fn)
    except Exception as exc:  # noqa: BLE001 - pickling raises several types
        raise InvalidArgumentError(
            f"fn must be picklable (a function defined at the top level of a module, not a "
            f"lambda or a nested function), got {fn!r}: {exc}"
        ) from exc


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _wait(processes: list, folder: Path) -> int | None:
    """Wait for every process; return the rank of the first that failed (None: all done).

    A rank that wrote its result has finished: a crash while its interpreter shuts down is not
    a failure of the run (it is warned about).
    """
    pending = {p.sentinel: r for r, p in enumerate(processes)}
    while pending:
        for sentinel in multiprocessing.connection.wait(list(pending)):
            r = pending.pop(sentinel)
            processes[r].join()
            if processes[r].exitcode != 0 and not (folder / f"{r}.result").exists():
                return r
    return None


def _stop(processes: list) -> set[int]:
    """Give the others :data:`_GRACE` seconds to finish or report, then terminate them; return
    the ranks this had to terminate."""
    alive = [p.sentinel for p in processes if p.is_alive()]
    deadline = time.monotonic() + _GRACE
    while alive and time.monotonic() < deadline:
        done = multiprocessing.connection.wait(alive, timeout=deadline - time.monotonic())
        alive = [s for s in alive if s not in done]
    stopped = {r for r, p in enumerate(processes) if p.is_alive()}
    for r in stopped:
        processes[r].terminate()
    for process in processes:
        process.join(10.0)
        if process.is_alive():  # stuck in native code, deaf to SIGTERM
            process.kill()
            process.join()
    return stopped


def _failure(folder: Path, processes: list, stopped: set[int], timeout: timedelta) -> BaseException:
    nprocs = len(processes)
    reports = {}
    for r in range(nprocs):
        path = folder / f"{r}.error"
        if path.exists():
            with open(path, "rb") as fh:
                reports[r] = pickle.load(fh)
    # A rank that died by itself without a report (a signal, the OOM killer) is the root cause:
    # the others' errors ("connection reset by peer") follow from it.
    silent = [
        r
        for r, p in enumerate(processes)
        if p.exitcode != 0
        and r not in reports
        and r not in stopped
        and not (folder / f"{r}.result").exists()
    ]
    if silent or not reports:
        r = silent[0] if silent else min(stopped, default=0)
        message = (
            f"rank {r} of {nprocs} ended with {_exit_reason(processes[r].exitcode)} before "
            "returning, without a Python error: killed by the operating system (out of "
            "memory?) or a crash in native code"
        )
        if reports:
            first = min(reports, key=lambda k: reports[k]["time"])
            message += f"; then rank {first} failed: {reports[first]['message']}"
            error = RuntimeError(message)
            error.__cause__ = RemoteTraceback(reports[first]["traceback"])
            return error
        return RuntimeError(message)
    first = min(reports, key=lambda r: reports[r]["time"])  # the root cause fails first
    report = reports[first]
    others = sorted(set(reports) - {first})
    also = f" (ranks {others} failed too)" if others else ""
    message = f"rank {first} of {nprocs}{also}: {report['message']}"
    if "timed out" in message.lower():
        message += (
            f" (a collective waited longer than timeout={timeout.total_seconds():g} s: another "
            "rank failed, stalled or took another code path; raise timeout= for long steps)"
        )
    error: BaseException | None = None
    if report["exception"] is not None:
        try:
            original = pickle.loads(report["exception"])
            try:
                error = type(original)(message)
            except Exception:  # noqa: BLE001 - a constructor with other arguments
                error = original
        except Exception:  # noqa: BLE001 - the class is not importable here
            error = None
    if error is None:
        error = RuntimeError(f"{report['type']}: {message}")
    error.__cause__ = RemoteTraceback(report["traceback"])
    return error


def _port_taken(error: BaseException) -> bool:
    text = str(error).lower()
    return any(marker in text for marker in _PORT_TAKEN)


def launch(
    fn: Callable[..., Any],
    nprocs: int,
    *args: Any,
    backend: str | None = None,
    timeout: float | timedelta = DEFAULT_TIMEOUT,
    threads: int | None = None,
    start_method: str = "spawn",
) -> list[Any]:
    """Run ``fn(rank, *args)`` on ``nprocs`` local processes in one process group.

    Each child joins the default process group through a free port on the loopback interface,
    runs ``fn``, and leaves the group. Return values travel back pickled through files in a
    temporary folder, so they should be small and picklable (CPU tensors, numbers, dicts).

    Args:
        fn: a function defined at the top level of an importable module (``spawn`` pickles it
            by name: in a notebook, put it in a ``.py`` file next to the notebook).
        nprocs: number of processes (ranks).
        *args: passed to ``fn`` after the rank; pickled once per process.
        backend: ``None`` (``nccl`` when there is one CUDA device per rank, else ``gloo``) or a
            name; an unavailable one raises before any process starts.
        timeout: seconds (or a timedelta) a collective waits for the other ranks before raising;
            a rank that fails or disagrees ends the run instead of hanging it.
        threads: intra-op threads per process; ``None`` splits this machine's cores between the
            ranks (unless ``OMP_NUM_THREADS`` is set), so N processes do not oversubscribe it.
        start_method: ``"spawn"`` (default, CUDA-safe), ``"forkserver"`` or ``"fork"``.

    Returns:
        The ranks' return values, in rank order.

    Raises:
        Exception: the first failing rank's exception, of its type, prefixed with
            ``rank r of n:`` and chained to the child's traceback (a ``RuntimeError`` for a
            rank killed without a Python error, naming the signal). When one rank fails, the
            others get a couple of seconds to finish or report and are then terminated. A rank
            that crashes while shutting down, after its value was saved, only warns
            (``RuntimeWarning``).
        InvalidArgumentError, InvalidTypeError, UnsupportedOptionError: bad arguments or an
            unavailable backend, before any process starts.
    """
    if not callable(fn):
        raise InvalidTypeError(f"fn must be callable, got {type(fn).__name__}")
    nprocs = check_positive_int("nprocs", nprocs)
    check_choice("start_method", start_method, ("spawn", "forkserver", "fork"))
    if threads is not None:
        threads = check_positive_int("threads", threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, len(os.sched_getaffinity(0)) // nprocs)
    name = resolve_backend(backend, nprocs)
    seconds = as_timeout(timeout)
    _check_picklable(fn, start_method)
    for attempt in range(3):  # another program may take the free port before rank 0 binds it
        with tempfile.TemporaryDirectory(prefix="constrained-pairs-launch-") as tmp:
            folder = Path(tmp)
            forked = start_method == "fork"
            child_args = (fn, args, nprocs, name, free_port(), seconds, threads, tmp, forked)
            try:
                context = mp.start_processes(
                    _child, child_args, nprocs, join=False, start_method=start_method
                )
            except (pickle.PicklingError, AttributeError, TypeError) as exc:
                raise InvalidArgumentError(f"args of launch() must be picklable: {exc}") from exc
            processes = context.processes
            failed = None
            try:
                failed = _wait(processes, folder)
            finally:
                stopped = _stop(processes)  # at once when all are done, else after a grace
            if failed is not None:
                error = _failure(folder, processes, stopped, seconds)
                if attempt < 2 and _port_taken(error):
                    continue
                raise error from error.__cause__
            for r, process in enumerate(processes):
                if process.exitcode != 0:
                    warnings.warn(
                        f"rank {r} of {nprocs} returned its value, then ended with "
                        f"{_exit_reason(process.exitcode)} while shutting down",
                        RuntimeWarning,
                        stacklevel=2,
                    )
            results = []
            for r in range(nprocs):
                with open(folder / f"{r}.result", "rb") as fh:
                    results.append(pickle.load(fh))
            return results
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["RemoteTraceback", "free_port", "launch"]
