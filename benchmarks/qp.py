"""Differentiable QP layer: forward + backward time and accuracy of every backend (SPEC §3).

Problems: batches of B reduced SVM duals of SPEC §3 with n variables each (n + 1 unit-norm
points in R^16, RBF kernel with σ = 5, ρ = 0.1), ``0 ≤ z ≤ C = 1``, float64. Each method computes
``z`` and backpropagates ``Σ w·z`` (w random) to Q and p. Reported: median wall time of forward
+ backward, the largest error against CVXPY/Clarabel (on the first ``--check`` problems of each
batch), and the largest gradient difference from the native backend (relative to its size).
The "clamp" line is the cheapest approximation of the MMCL reference code: one batched linear
solve ``Q z = −p`` clamped to the box. A backend is skipped where its predicted time exceeds
``--budget`` seconds. ``--quick``: B ∈ {16, 64}, n ∈ {15, 63}. The headline re-times native and
qpth at B = 64, n = 63 interleaved (3 rounds) and prints last
``native vs qpth speedup at B=64,n=63: N.Nx``.
"""

from __future__ import annotations

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

METHODS = ("native", "clamp", "qpth", "cvxpylayers")
UPPER = 1.0


def svm_duals(B: int, n: int, generator: torch.Generator, device: str):
    """``B`` reduced SVM duals (SPEC §3) of ``n`` variables: ``Q (B, n, n)``, ``p (B, n)``."""
    x = torch.randn(B, n + 1, 16, dtype=torch.float64, generator=generator)
    x = torch.nn.functional.normalize(x, dim=-1)
    K = torch.exp(-torch.cdist(x, x) ** 2 / 5.0)
    Kn, kt = K[:, 1:, 1:], K[:, 0, 1:]  # anchor = point 0, the others are the negatives
    Q = 1 + 0.1 * torch.eye(n, dtype=torch.float64) + Kn - kt[:, :, None] - kt[:, None, :]
    p = torch.full((B, n), -2.0, dtype=torch.float64)
    return Q.to(device), p.to(device)


def clamp_solve(Q, p, lower, upper):
    """The reference code's approximation: the unconstrained minimiser clamped to the box."""
    return torch.linalg.solve(Q, -p.unsqueeze(-1)).squeeze(-1).clamp(lower, upper)


def forward_backward(method: str, Q, p, weights):
    Qg, pg = Q.detach().clone().requires_grad_(), p.detach().clone().requires_grad_()
    if method == "clamp":
        z = clamp_solve(Qg, pg, 0.0, UPPER)
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


def median_time(fn, repeat: int, device: str) -> float:
    times = []
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    native = forward_backward("native", Q, p, weights)
    for method in METHODS:
        guess = predicted_time(timings, method, B, n)
        if method in ("qpth", "cvxpylayers") and guess is not None and guess > args.budget:
            timings[(method, B, n)] = None
            rows.append([B, n, method, f"skipped (predicted {guess:.0f} s > budget)", "", "", ""])
            records.append(
                {"B": B, "n": n, "method": method, "skipped": True, "predicted_s": guess}
            )
            continue
        start = time.perf_counter()
        z, gQ, gp = forward_backward(method, Q, p, weights)  # warm-up and accuracy
        first = time.perf_counter() - start
        if method in ("qpth", "cvxpylayers") and first > args.budget / 3:
            seconds = first  # too slow to repeat: the first call is the measurement
        else:
            repeat = args.repeat if method in ("native", "clamp") else max(1, args.repeat // 3)
            seconds = median_time(
                lambda m=method: forward_backward(m, Q, p, weights), repeat, args.device
            )
        timings[(method, B, n)] = seconds
        error = float(np.abs(z[:check].cpu().numpy() - reference).max())
        grad_q = float((gQ - native[1]).abs().max() / native[1].abs().max())
        grad_p = float((gp - native[2]).abs().max() / native[2].abs().max())
        rows.append([B, n, method, seconds * 1e3, error, grad_q, grad_p])
        records.append({
            "B": B, "n": n, "method": method, "seconds": seconds, "max_error_vs_cvxpy": error,
            "grad_Q_rel_diff_vs_native": grad_q, "grad_p_rel_diff_vs_native": grad_p,
        })
        print(f"B={B:4d} n={n:4d} {method:12s} {seconds * 1e3:10.2f} ms  err {error:.1e}  "
              f"dQ {grad_q:.1e}  dp {grad_p:.1e}", flush=True)


def headline(args, rounds: int = 3) -> dict:
    """Native vs qpth at B = 64, n = 63, interleaved (native, qpth, native, ...) in one run."""
    gen = torch.Generator().manual_seed(args.seed + 1000 * 64 + 63)
    Q, p = svm_duals(64, 63, gen, args.device)
    weights = torch.randn(64, 63, dtype=torch.float64, generator=gen).to(args.device)
    times = {"native": [], "qpth": []}
    for _ in range(rounds):
        times["native"].append(median_time(
            lambda: forward_backward("native", Q, p, weights), args.repeat, args.device))
        times["qpth"].append(median_time(
            lambda: forward_backward("qpth", Q, p, weights), 1, args.device))
    native, qpth = statistics.median(times["native"]), statistics.median(times["qpth"])
    return {"native_s": native, "qpth_s": qpth, "speedup": qpth / native, "rounds": rounds}


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    batches = sorted({r["B"] for r in records})
    fig, axes = plt.subplots(1, len(batches), figsize=(4.2 * len(batches), 3.6), squeeze=False)
    for ax, B in zip(axes[0], batches):
        for method in METHODS:
            pts = [(r["n"], r["seconds"]) for r in records
                   if r["B"] == B and r["method"] == method and "seconds" in r]
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
        parser.add_argument("--budget", type=float, default=30.0,
                            help="skip qpth/cvxpylayers where the predicted time exceeds this (s)")
        parser.add_argument("--repeat", type=int, default=7)
        parser.add_argument("--check", type=int, default=16,
                            help="problems per batch checked against CVXPY")
        parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")

    args = parse_args("differentiable QP layer: native vs qpth vs cvxpylayers", extra)
    torch.set_num_threads(args.threads)
    if args.quick:
        grid, args.repeat, args.budget = [(16, 15), (64, 15), (16, 63), (64, 63)], 5, 10.0
    else:
        grid = [(B, n) for B in (16, 64, 256) for n in (15, 63, 255)]
    timings, rows, records = {}, [], []
    for B, n in grid:
        run_case(B, n, args, timings, rows, records)

    header = ["B", "n", "method", "fwd+bwd (ms)", "max err vs CVXPY", "dQ rel. diff",
              "dp rel. diff"]
    ratio_rows = []
    for B, n in grid:
        t = {m: timings.get((m, B, n)) for m in METHODS}
        ratio_rows.append([
            B, n,
            *(f"{t[m] / t['native']:.1f}x" if t[m] else "skipped" for m in ("qpth", "cvxpylayers")),
            f"{t['native'] / t['clamp']:.2f}x",
        ])
    markdown = (
        "# Differentiable QP layer (benchmarks/qp.py)\n\n"
        f"Reduced SVM duals (SPEC §3), 0 <= z <= {UPPER}, float64, device {args.device}, "
        f"{args.threads} thread(s){', quick grid' if args.quick else ''}. Time: median forward + "
        "backward. Error: max |z - z_CVXPY| over the first "
        f"{args.check} problems. Gradient columns: max |g - g_native| / max |g_native|.\n\n"
        + markdown_table(header, rows)
        + "\n## Ratios (side by side, same run)\n\n"
        + markdown_table(["B", "n", "qpth / native", "cvxpylayers / native", "native / clamp"],
                         ratio_rows)
    )
    head = headline(args)
    markdown += (
        "\n## Headline (B = 64, n = 63, native and qpth interleaved, "
        f"{head['rounds']} rounds)\n\n"
        f"native {head['native_s'] * 1e3:.1f} ms, qpth {head['qpth_s'] * 1e3:.0f} ms: "
        f"native is {head['speedup']:.1f}x faster.\n"
    )
    name = "qp_quick" if args.quick else "qp"  # --quick never overwrites the full results
    write_results(name, markdown, {"quick": args.quick, "device": args.device,
                                   "threads": args.threads, "records": records,
                                   "headline": head})
    plot(records, RESULTS / f"{name}.png")
    print(markdown)
    print(f"native vs qpth speedup at B=64,n=63: {head['speedup']:.1f}x")


if __name__ == "__main__":
    main()
