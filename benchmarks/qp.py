"""Differentiable QP layer: forward + backward time and accuracy of every backend (SPEC §3).

Problems: batches of B reduced SVM duals of SPEC §3 with n variables each (n + 1 unit-norm
points in R^16, RBF kernel with σ = 5, ρ = 0.1), ``0 ≤ z ≤ C = 1``, float64. Each method computes
``z`` and backpropagates ``Σ w·z`` (w random) to Q and p. Reported: median time of forward
+ backward (CPU time of this single-threaded process by default, ``--clock wall`` for wall
time), the largest error against CVXPY/Clarabel (on the first ``--check`` problems of each
batch: solution and objective), and the largest gradient difference from the native backend
(relative to its size). proxsuite's QPLayer (``proxsuite.torch.qplayer.QPFunction``) is the
strongest external peer.
The "clamp" line is the cheapest approximation of the MMCL reference code: one batched linear
solve ``Q z = −p`` clamped to the box. A backend is skipped where its predicted time exceeds
``--budget`` seconds. Methods take turns (interleaved); each turn starts with an untimed call
(:func:`turn`), methods too slow to repeat are timed on their first call.
``--quick``: B ∈ {16, 64}, n ∈ {15, 63}. The headline re-times native,
clamp, proxsuite and qpth at B = 64, n = 63 interleaved (5 rounds) and prints last
``native vs qpth speedup at B=64,n=63: N.Nx (vs proxsuite N.Nx, native/clamp N.NNx)``.
"""

from __future__ import annotations

import ctypes
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    RESULTS,
    markdown_table,
    parse_args,
    synchronize,
    write_results,
)
from constrained_pairs.qp import solve_qp  # noqa: E402

METHODS = ("native", "clamp", "qpth", "proxsuite", "cvxpylayers")
EXTERNAL = ("qpth", "proxsuite", "cvxpylayers")  # skipped where predicted over the budget
UPPER = 1.0


def svm_duals(B: int, n: int, generator: torch.Generator, device: str):
    """``B`` reduced SVM duals (SPEC §3) of ``n`` variables: ``Q (B, n, n)``, ``p (B, n)``."""
    x = torch.randn(B, n + 1, 16, dtype=torch.float64, generator=generator)
    x = torch.nn.functional.normalize(x, dim=-1)
    K = torch.exp(-(torch.cdist(x, x) ** 2) / 5.0)
    Kn, kt = K[:, 1:, 1:], K[:, 0, 1:]  # anchor = point 0, the others are the negatives
    Q = 1 + 0.1 * torch.eye(n, dtype=torch.float64) + Kn - kt[:, :, None] - kt[:, None, :]
    p = torch.full((B, n), -2.0, dtype=torch.float64)
    return Q.to(device), p.to(device)


def clamp_solve(Q, p, lower, upper):
    """The reference code's approximation: the unconstrained minimiser clamped to the box."""
    return torch.linalg.solve(Q, -p.unsqueeze(-1)).squeeze(-1).clamp(lower, upper)


def proxsuite_solve(Q, p, lower, upper):
    """proxsuite's QPLayer (``proxsuite.torch.qplayer.QPFunction``, default tolerances) with the
    box as the inequality rows ``lower ≤ I z ≤ upper``."""
    from proxsuite.torch.qplayer import QPFunction

    B, n = p.shape
    G = torch.eye(n, dtype=Q.dtype, device=Q.device).expand(B, n, n)
    lo = torch.full((B, n), lower, dtype=Q.dtype, device=Q.device)
    up = torch.full((B, n), upper, dtype=Q.dtype, device=Q.device)
    empty = torch.empty(0, dtype=Q.dtype, device=Q.device)
    return QPFunction()(Q, p, empty, empty, G, lo, up)[0]


def forward_backward(method: str, Q, p, weights):
    Qg, pg = Q.detach().clone().requires_grad_(), p.detach().clone().requires_grad_()
    if method == "clamp":
        z = clamp_solve(Qg, pg, 0.0, UPPER)
    elif method == "proxsuite":
        z = proxsuite_solve(Qg, pg, 0.0, UPPER)
    else:
        z = solve_qp(Qg, pg, 0.0, UPPER, backend=method)
    (z * weights).sum().backward()
    return z.detach(), Qg.grad, pg.grad


def cvxpy_solutions(Q, p, count: int) -> np.ndarray:
    import cvxpy as cp

    Qn, pn = Q[:count].cpu().numpy(), p[:count].cpu().numpy()
    out = []
    for Qi, pi in zip(Qn, pn):
        z = cp.Variable(len(pi))
        objective = 0.5 * cp.quad_form(z, cp.psd_wrap(Qi)) + pi @ z
        problem = cp.Problem(cp.Minimize(objective), [z >= 0, z <= UPPER])
        problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
        out.append(z.value)
    return np.stack(out)


def objective(Q, p, z) -> np.ndarray:
    """``½zᵀQz + pᵀz`` per problem (numpy, float64)."""
    return 0.5 * np.einsum("bi,bij,bj->b", z, Q, z) + (p * z).sum(-1)


#: the clock of every timing: this process's CPU time by default (every method runs on one
#: thread, and the CPU time does not count the waits for a CPU that other programs cause on a
#: shared machine); wall time with ``--clock wall`` and always on a GPU
CLOCK = time.process_time


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory instead of returning it to the system.

    The methods take turns, and their differently sized temporaries would otherwise make malloc
    unmap and re-map memory between calls, so that a call's time would include the page faults
    of touching it again (a steady-state loop over one method does not pay them). Applies to
    every method alike; a no-op where glibc is not the C library.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters (malloc.h)
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(
            libc.mallopt(m_trim_threshold, (1 << 31) - 1)
        )
    except (OSError, AttributeError):
        return False


def timed(fn, device: str) -> float:
    synchronize(device)
    start = CLOCK()
    fn()
    synchronize(device)
    return CLOCK() - start


def turn(fn, device: str, calls: int = 1) -> float:
    """One method's turn: an untimed call, then the median of ``calls`` timed ones.

    The first call after another library's runs about 30% slower in every kernel, even tiny
    element-wise ones (measured: native 64×63 4.1 ms right after a proxsuite call, 2.9 ms on the
    next; the same for the clamp), which weighs on fast methods and hardly on slow ones; every
    method gets the same untimed call.
    """
    fn()
    return statistics.median(timed(fn, device) for _ in range(calls))


def interleaved_times(fns: dict, rounds: int, device: str) -> dict:
    """Median time of each callable, called in turn round after round (so load hits all)."""
    times = {name: [] for name in fns}
    for r in range(rounds):
        names = list(fns)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(turn(fns[name], device))
    return {name: statistics.median(t) for name, t in times.items()}


def predicted_time(timings: dict, method: str, B: int, n: int) -> float | None:
    """Extrapolate from the smaller measured cases (linear in B, cubic in n; pessimistic)."""
    best = None
    for (m, b, k), t in timings.items():
        if m == method and b <= B and k <= n and t is not None:
            guess = t * (B / b) * (n / k) ** 3
            best = guess if best is None else min(best, guess)
    return best


def run_case(B, n, args, timings, rows, records):
    gen = torch.Generator().manual_seed(args.seed + 1000 * B + n)
    Q, p = svm_duals(B, n, gen, args.device)
    weights = torch.randn(B, n, dtype=torch.float64, generator=gen).to(args.device)
    check = min(args.check, B)
    reference = cvxpy_solutions(Q, p, check)
    Qc, pc = Q[:check].cpu().numpy(), p[:check].cpu().numpy()
    f_ref = objective(Qc, pc, reference)
    native = forward_backward("native", Q, p, weights)
    repeated, once = {}, {}
    for method in METHODS:
        guess = predicted_time(timings, method, B, n)
        if method in EXTERNAL and guess is not None and guess > args.budget:
            timings[(method, B, n)] = None
            rows.append(
                [B, n, method, f"skipped (predicted {guess:.0f} s > budget)", "", "", "", ""]
            )
            records.append(
                {"B": B, "n": n, "method": method, "skipped": True, "predicted_s": guess}
            )
            continue
        start = CLOCK()
        z, gQ, gp = forward_backward(method, Q, p, weights)  # warm-up and accuracy
        first = CLOCK() - start
        zc = z[:check].cpu().numpy()
        accuracy = {
            "max_error_vs_cvxpy": float(np.abs(zc - reference).max()),
            "objective_rel_gap_vs_cvxpy": float(
                (np.abs(objective(Qc, pc, zc) - f_ref) / (1 + np.abs(f_ref))).max()
            ),
            "grad_Q_rel_diff_vs_native": float(
                (gQ - native[1]).abs().max() / native[1].abs().max()
            ),
            "grad_p_rel_diff_vs_native": float(
                (gp - native[2]).abs().max() / native[2].abs().max()
            ),
        }
        if method in EXTERNAL and first > args.budget / 3:
            once[method] = (first, accuracy)  # too slow to repeat: the first call is the time
        else:
            repeated[method] = accuracy
    rounds = (
        args.repeat if all(m in ("native", "clamp") for m in repeated) else max(3, args.repeat // 2)
    )
    measured = interleaved_times(
        {m: (lambda m=m: forward_backward(m, Q, p, weights)) for m in repeated}, rounds, args.device
    )
    for method in METHODS:
        if method in repeated:
            seconds, accuracy = measured[method], repeated[method]
        elif method in once:
            seconds, accuracy = once[method]
        else:
            continue
        timings[(method, B, n)] = seconds
        rows.append(
            [
                B,
                n,
                method,
                seconds * 1e3,
                accuracy["max_error_vs_cvxpy"],
                accuracy["objective_rel_gap_vs_cvxpy"],
                accuracy["grad_Q_rel_diff_vs_native"],
                accuracy["grad_p_rel_diff_vs_native"],
            ]
        )
        records.append({"B": B, "n": n, "method": method, "seconds": seconds, **accuracy})
        print(
            f"B={B:4d} n={n:4d} {method:12s} {seconds * 1e3:10.2f} ms  "
            f"err {accuracy['max_error_vs_cvxpy']:.1e}  "
            f"dQ {accuracy['grad_Q_rel_diff_vs_native']:.1e}",
            flush=True,
        )


def headline(args, rounds: int = 5) -> dict:
    """Native vs clamp, proxsuite and qpth at B = 64, n = 63, interleaved in one run."""
    gen = torch.Generator().manual_seed(args.seed + 1000 * 64 + 63)
    Q, p = svm_duals(64, 63, gen, args.device)
    weights = torch.randn(64, 63, dtype=torch.float64, generator=gen).to(args.device)

    def call(method):
        return lambda: forward_backward(method, Q, p, weights)

    # native and clamp are fast: a median of a few calls per turn
    calls = {"native": 3, "clamp": 3, "proxsuite": 1, "qpth": 1}
    samples = {name: [] for name in calls}
    for _ in range(rounds):
        for name, count in calls.items():
            samples[name].append(turn(call(name), args.device, count))
    t = {name: statistics.median(v) for name, v in samples.items()}
    return {
        "native_s": t["native"],
        "clamp_s": t["clamp"],
        "proxsuite_s": t["proxsuite"],
        "qpth_s": t["qpth"],
        "speedup": t["qpth"] / t["native"],
        "proxsuite_speedup": t["proxsuite"] / t["native"],
        "native_over_clamp": t["native"] / t["clamp"],
        "rounds": rounds,
    }


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    batches = sorted({r["B"] for r in records})
    fig, axes = plt.subplots(1, len(batches), figsize=(4.2 * len(batches), 3.6), squeeze=False)
    for ax, B in zip(axes[0], batches):
        for method in METHODS:
            pts = [
                (r["n"], r["seconds"])
                for r in records
                if r["B"] == B and r["method"] == method and "seconds" in r
            ]
            if pts:
                ns, ts = zip(*sorted(pts))
                ax.loglog(ns, ts, "o-", label=method)
        ax.set_xticks(sorted({r["n"] for r in records}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"B = {B}")
        ax.set_xlabel("n (variables per problem)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("forward + backward time (s)")
    axes[0][-1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    def extra(parser):
        parser.add_argument(
            "--budget",
            type=float,
            default=30.0,
            help="skip qpth/cvxpylayers where the predicted time exceeds this (s)",
        )
        parser.add_argument("--repeat", type=int, default=7)
        parser.add_argument(
            "--check", type=int, default=16, help="problems per batch checked against CVXPY"
        )
        parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
        parser.add_argument(
            "--clock",
            choices=("cpu", "wall"),
            default="cpu",
            help="time with this process's CPU time (default; robust to other programs' load "
            "with one thread) or wall time (always on a GPU)",
        )

    args = parse_args("differentiable QP layer: native vs qpth, proxsuite and cvxpylayers", extra)
    torch.set_num_threads(args.threads)
    kept = keep_freed_memory()
    global CLOCK
    if args.clock == "wall" or args.threads > 1 or torch.device(args.device).type != "cpu":
        args.clock, CLOCK = "wall", time.perf_counter
    if args.quick:
        grid, args.repeat, args.budget = [(16, 15), (64, 15), (16, 63), (64, 63)], 5, 10.0
    else:
        grid = [(B, n) for B in (16, 64, 256) for n in (15, 63, 255)]
    timings, rows, records = {}, [], []
    for B, n in grid:
        run_case(B, n, args, timings, rows, records)

    header = [
        "B",
        "n",
        "method",
        "fwd+bwd (ms)",
        "max err vs CVXPY",
        "obj. rel. gap",
        "dQ rel. diff",
        "dp rel. diff",
    ]
    ratio_rows = []
    for B, n in grid:
        t = {m: timings.get((m, B, n)) for m in METHODS}
        ratio_rows.append(
            [
                B,
                n,
                *(f"{t[m] / t['native']:.1f}x" if t[m] else "skipped" for m in EXTERNAL),
                f"{t['native'] / t['clamp']:.2f}x",
            ]
        )
    markdown = (
        "# Differentiable QP layer (benchmarks/qp.py)\n\n"
        f"Reduced SVM duals (SPEC §3), 0 <= z <= {UPPER}, float64, device {args.device}, "
        f"{args.threads} thread(s){', quick grid' if args.quick else ''}. Time: median "
        f"{'CPU time of this process' if args.clock == 'cpu' else 'wall time'} of forward + "
        "backward, the methods of a case called in turn (interleaved), each turn after one "
        "untimed call (the first call after another library's runs ~30% slower in every kernel)"
        f"{'; freed memory kept by malloc (no page faults from re-mapping)' if kept else ''}. "
        "Accuracy on the first "
        f"{args.check} problems against CVXPY/Clarabel: max |z - z_CVXPY| and the largest "
        "relative objective gap |f(z) - f*| / (1 + |f*|). Gradient columns: "
        "max |g - g_native| / max |g_native|. proxsuite: `proxsuite.torch.qplayer.QPFunction` "
        "(default tolerances, the box as inequality rows).\n\n"
        + markdown_table(header, rows)
        + "\n## Ratios (side by side, same run)\n\n"
        + markdown_table(
            [
                "B",
                "n",
                "qpth / native",
                "proxsuite / native",
                "cvxpylayers / native",
                "native / clamp",
            ],
            ratio_rows,
        )
    )
    head = headline(args)
    markdown += (
        "\n## Headline (B = 64, n = 63, native, clamp, proxsuite and qpth interleaved, "
        f"{head['rounds']} rounds)\n\n"
        f"native {head['native_s'] * 1e3:.1f} ms, clamp {head['clamp_s'] * 1e3:.1f} ms, "
        f"proxsuite {head['proxsuite_s'] * 1e3:.0f} ms, qpth {head['qpth_s'] * 1e3:.0f} ms: "
        f"native is {head['proxsuite_speedup']:.1f}x faster than proxsuite, "
        f"{head['speedup']:.1f}x faster than qpth, and {head['native_over_clamp']:.2f}x the "
        "clamp approximation.\n"
    )
    name = "qp_quick" if args.quick else "qp"  # --quick never overwrites the full results
    write_results(
        name,
        markdown,
        {
            "quick": args.quick,
            "device": args.device,
            "threads": args.threads,
            "clock": args.clock,
            "malloc_keeps_freed_memory": kept,
            "records": records,
            "headline": head,
        },
    )
    plot(records, RESULTS / f"{name}.png")
    print(markdown)
    print(
        f"native vs qpth speedup at B=64,n=63: {head['speedup']:.1f}x "
        f"(vs proxsuite {head['proxsuite_speedup']:.1f}x, "
        f"native/clamp {head['native_over_clamp']:.2f}x)"
    )


if __name__ == "__main__":
    main()
