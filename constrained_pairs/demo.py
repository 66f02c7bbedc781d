"""``python -m constrained_pairs demo``: every solution method on bundled digits, side by side."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from constrained_pairs.data import digits_join
from constrained_pairs.errors import ConstrainedPairsError
from constrained_pairs.join.diagnostics import wasserstein_radius
from constrained_pairs.join.result import Result
from constrained_pairs.methods import METHOD_NAMES, solve


def _row(result: Result, accuracy: float) -> str:
    gap = f"{result.gap:.1e}" if result.gap is not None else "-"
    return (
        f"{result.method:<21} {result.regime:^6} {result.objective:>10.6f} {gap:>9} "
        f"{result.max_violation:>9.1e} {accuracy:>8.3f} {result.wall_time:>7.2f}s  {result.status}"
    )


def _plot(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    reference = results[0].objective
    for result in results[1:]:
        steps = [h for h in result.history if "objective" in h]
        if steps:
            iterations = [h.get("iteration", k) for k, h in enumerate(steps)]
            gaps = [
                max(abs(h["objective"] - reference) / max(1, abs(reference)), 1e-12) for h in steps
            ]
            left.semilogy(iterations, gaps, label=result.method)
            violations = [max(h.get("max_violation", 0.0), 1e-12) for h in steps]
            right.semilogy(iterations, violations, label=result.method)
    left.set(title="relative gap to the exact optimum", xlabel="iteration")
    right.set(title="max constraint violation (0 drawn at 1e-12)", xlabel="iteration")
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_demo(out: Path, *, seed: int = 0, methods: tuple[str, ...] = METHOD_NAMES) -> list[Result]:
    """Solve the digits data-join problem with every available method and print a table."""
    torch.manual_seed(seed)
    data = digits_join(n_a=40, n_p=80, n_test=500, seed=seed)
    base = data.problem(r_a=0.0, r_p=0.0, pairs="knn", knn=5, normalize="pairs")
    d_bar = base.mean_distance
    # Radii 2% above the unboundedness threshold r_A + r_P = D̄ (SPEC §2, pathology 1).
    problem = base.replace(r_a=0.51 * d_bar, r_p=0.51 * d_bar)
    print(f"digits data join: {problem}")
    print(
        f"D = {d_bar:.4f}; W1(A, P) = {wasserstein_radius(data.x_a, data.x_p):.4f}; "
        f"r_a + r_p = {problem.r_a + problem.r_p:.4f}\n"
    )
    exact = solve(problem, method="exact", regime="auto")
    results = [exact]
    for method in methods:
        if method == "exact":
            continue
        try:
            # Small problems: one thread avoids oversubscription and is as fast.
            results.append(
                solve(
                    problem,
                    method=method,
                    regime=exact.regime,
                    reference=exact,
                    progress=False,
                    seed=seed,
                    threads=1,
                )
            )
        except NotImplementedError as exc:
            print(f"({method}: {exc})")
        except ConstrainedPairsError as exc:
            print(f"({method} failed: {exc})")
    header = (
        f"{'method':<21} {'regime':^6} {'objective':>10} {'gap':>9} {'max viol':>9} "
        f"{'test acc':>8} {'time':>8}  status"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        aux = data.aux_test if result.regime == "A" or result.theta2 is not None else None
        print(_row(result, result.accuracy(data.x_test, data.y_test, aux)))
    other = exact.extra["other"]
    print(
        f"\nexact regime {other.regime} (not kept): objective {other.objective:.6f}"
        f"{' — collapsed to one class' if other.diagnostics.collapsed else ''}"
    )
    print("\ndiagnostics of the exact solution:\n" + exact.diagnostics.explain())
    out.mkdir(parents=True, exist_ok=True)
    _plot(results, out / "demo.png")
    print(f"\nplot saved to {out / 'demo.png'}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m constrained_pairs")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="every method on the bundled digits data join")
    demo.add_argument("--out", type=Path, default=Path("demo_output"), help="where the plot goes")
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run_demo(args.out, seed=args.seed)
    print(f"demo finished in {time.perf_counter() - start:.1f}s")
    return 0
