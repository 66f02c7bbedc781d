"""Benchmark the five first-order methods of SPEC §2 against the exact optimum.

(a) digits_join, linear head, regime A (no auxiliary features, so the exact CVXPY solve is fast):
objective gap, max violation, time to a 1e-3 gap (with violation <= 1e-5), iterations, test
accuracy. (b) the same data through an MLP backbone (Linear → Tanh): objective, violation,
accuracy. (c) a large instance (>= 10^6 pairs, regime A with auxiliary features, where CVXPY is
out of reach): seconds per epoch (a pass over the samples) in blocks of 256 × 256 samples.

Run: ``python benchmarks/methods.py [--quick]``. Writes results/methods.{md,json,png}.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import RESULTS, markdown_table, parse_args, write_results  # noqa: E402
from constrained_pairs.data import digits_join, load_digits  # noqa: E402
from constrained_pairs.join.problem import PairProblem  # noqa: E402
from constrained_pairs.methods import solve  # noqa: E402

METHODS = ("penalty", "projection", "parametrization", "lagrangian", "augmented_lagrangian")


def _own_violation(result) -> float:
    """The method's final violation before the α restoration (or after, when none ran)."""
    return result.extra.get("violation_before_restore", result.max_violation)


def _time_to_gap(result, reference: float, target: float = 1e-3) -> float | None:
    for record in result.history:
        gap = (record["objective"] - reference) / max(1.0, abs(reference))
        if abs(gap) <= target and record["max_violation"] <= 1e-5:
            return record["time"]
    return None


def main() -> None:
    args = parse_args("first-order methods vs the exact optimum")
    torch.set_num_threads(1)  # tiny tensors; the machine is shared
    n_a, n_p = (30, 60) if args.quick else (50, 100)
    split = digits_join(n_a=n_a, n_p=n_p, seed=args.seed, device=args.device)
    d_bar = PairProblem(split.x_a, split.x_p, split.y_p, r_a=1.0, r_p=1.0).mean_distance
    problem = PairProblem(split.x_a, split.x_p, split.y_p, r_a=0.52 * d_bar, r_p=0.52 * d_bar)
    start = time.perf_counter()
    exact = solve(problem, "exact", regime="A")
    exact_time = time.perf_counter() - start
    rows, data = [], {"instance": repr(problem), "exact": {}, "linear": {}, "mlp": {}, "large": {}}
    data["exact"] = {"objective": exact.objective, "time": exact_time}
    rows.append(
        [
            "exact (CVXPY)",
            0.0,
            exact.max_violation,
            exact.max_violation,
            exact_time,
            1,
            exact.accuracy(split.x_test, split.y_test),
        ]
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method in METHODS:
        result = solve(problem, method, regime="A", reference=exact, device=args.device)
        reach = _time_to_gap(result, exact.objective)
        accuracy = result.accuracy(split.x_test, split.y_test)
        rows.append(
            [
                method,
                result.gap,
                result.max_violation,
                _own_violation(result),
                reach if reach is not None else "not reached",
                result.extra["iterations"],
                accuracy,
            ]
        )
        data["linear"][method] = {
            "gap": result.gap,
            "max_violation": result.max_violation,
            "violation_before_restore": _own_violation(result),
            "time_to_1e-3": reach,
            "iterations": result.extra["iterations"],
            "test_accuracy": accuracy,
            "wall_time": result.wall_time,
            "status": result.status,
        }
        times = [h["time"] for h in result.history]
        gaps = [
            max(abs(h["objective"] - exact.objective) / max(1, abs(exact.objective)), 1e-12)
            for h in result.history
        ]
        axes[0].semilogy(times, gaps, label=method)
        axes[1].semilogy(
            times, [max(h["max_violation"], 1e-16) for h in result.history], label=method
        )
    axes[0].set(xlabel="time (s)", ylabel="|relative objective gap|", title="gap")
    axes[1].set(xlabel="time (s)", ylabel="max violation", title="violation")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / ("methods_quick.png" if args.quick else "methods.png"), dpi=100)

    mlp_rows = []
    for method in METHODS:
        torch.manual_seed(args.seed)
        model = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.Tanh()).double()
        result = solve(
            problem,
            method,
            regime="A",
            model=model,
            device=args.device,
            max_iter=500 if args.quick else 2000,
        )
        accuracy = result.accuracy(split.x_test, split.y_test)
        mlp_rows.append(
            [
                method,
                result.objective,
                result.max_violation,
                _own_violation(result),
                result.wall_time,
                accuracy,
            ]
        )
        data["mlp"][method] = {
            "objective": result.objective,
            "max_violation": result.max_violation,
            "violation_before_restore": _own_violation(result),
            "wall_time": result.wall_time,
            "test_accuracy": accuracy,
        }

    x, y = load_digits(as_images=True, dtype=torch.float64, device=args.device)
    left, right = x[:, 0, :, :4].flatten(1), x[:, 0, :, 4:].flatten(1)
    n_p_large = 600
    large = PairProblem(left, left[:n_p_large], y[:n_p_large], right, r_a=5.0, r_p=5.0)
    large_rows = []
    block = (256, 256)  # 65,536 pairs a step; an epoch is a pass over the samples
    steps = math.ceil(max(large.n_a / block[0], large.n_p / block[1]))
    for method in METHODS:
        iterations = 2 if args.quick else steps
        result = solve(
            large,
            method,
            regime="A",
            batch_size=block,
            max_iter=iterations,
            log_every=iterations,
            device=args.device,
        )
        per_epoch = result.wall_time / iterations * steps
        large_rows.append([method, per_epoch])
        data["large"][method] = {"seconds_per_epoch": per_epoch, "pairs": large.pairs.size}

    markdown = (
        "\n\n".join(
            [
                f"# First-order methods (SPEC §2)\n\n(a) linear head, {problem!r}, exact optimum "
                f"{exact.objective:.6f}. Default options for every method; each first-order run "
                "ends by raising α to feasibility (θ unchanged), and the violation before that "
                "step is the method's own.",
                markdown_table(
                    [
                        "method",
                        "objective gap",
                        "max violation",
                        "violation before α restore",
                        "time to 1e-3 gap (s)",
                        "iterations",
                        "test accuracy",
                    ],
                    rows,
                ),
                "(b) MLP backbone Linear(32, 32) → Tanh (no exact reference: non-convex).",
                markdown_table(
                    [
                        "method",
                        "objective",
                        "max violation",
                        "violation before α restore",
                        "time (s)",
                        "test accuracy",
                    ],
                    mlp_rows,
                ),
                f"(c) large instance, {large.pairs.size} pairs (regime A with auxiliary features), "
                "blocks of 256 × 256 samples (65,536 pairs a step; an epoch is a pass over "
                "the samples).",
                markdown_table(["method", "seconds per epoch"], large_rows),
            ]
        )
        + "\n"
    )
    write_results("methods_quick" if args.quick else "methods", markdown, data)
    print(markdown)
    headline = ", ".join(
        f"{m} gap {data['linear'][m]['gap']:.1e} "
        f"viol {data['linear'][m]['violation_before_restore']:.0e}"
        for m in METHODS
    )
    print(f"methods (digits_join, linear head): {headline}")


if __name__ == "__main__":
    main()
