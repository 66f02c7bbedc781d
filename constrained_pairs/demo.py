"""``python -m constrained_pairs demo``: what the data join buys, and every solution method on it.

The paper's digits experiment (1 vs 8, ``data.paper_join``): set P has 30 labelled images of which
only the top half (x) is known; set A has 229 unlabelled images with both halves (x and aux).
The demo prints logistic regression on P alone (x only), on the 10 images that are in both sets
(whole images), and the oracle (every training image whole, with the labels hidden from the
join), beside the data join solved exactly and by each first-order method, each with a budget and
tolerance under which it reaches ``converged``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from constrained_pairs.data import paper_join
from constrained_pairs.errors import ConstrainedPairsError
from constrained_pairs.join.result import Result
from constrained_pairs.join.wasserstein import wasserstein_radius
from constrained_pairs.methods import METHOD_NAMES, solve

#: First-order budgets: a tolerance on the relative objective change and the max violation
#: (over the last ``patience`` iterations) under which each method stops with ``converged``.
BUDGETS = {
    "penalty": {"max_iter": 2000, "tol": 1e-5},
    "projection": {"max_iter": 6000, "tol": 1e-6},
    "parametrization": {"max_iter": 6000, "tol": 1e-6},
    "lagrangian": {"max_iter": 6000, "tol": 1e-6},
    "augmented_lagrangian": {"max_iter": 6000, "tol": 1e-6},
}
#: Splits of the accuracy summary (the exact join only: about a second each).
SUMMARY_SPLITS = 10


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
        steps = [h for h in result.history if h.get("objective") is not None]
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


def _logistic(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test) -> float:
    from sklearn.linear_model import LogisticRegression

    if int(y.unique().numel()) < 2:  # one class seen (a small overlap): predict it
        return float((y_test == y[0]).double().mean())
    model = LogisticRegression(C=1.0, max_iter=5000).fit(x.numpy(), y.numpy())
    return float(model.score(x_test.numpy(), y_test.numpy()))


def baselines(data) -> dict[str, float]:
    """Test accuracy of logistic regression (scikit-learn, L2, C = 1) on what each learner sees."""
    whole_test = torch.cat([data.x_test, data.aux_test], dim=1)
    return {
        "P alone (x only)": _logistic(data.x_p, data.y_p, data.x_test, data.y_test),
        "overlap (whole images)": _logistic(
            data.x_overlap, data.y_overlap, whole_test, data.y_test
        ),
        "oracle (A whole, labelled)": _logistic(
            torch.cat([data.x_a, data.aux_a], dim=1), data.y_a, whole_test, data.y_test
        ),
    }


def summary(splits: int) -> dict[str, list[float]]:
    """Test accuracy of the baselines and of the exact data join over ``splits`` splits."""
    found: dict[str, list[float]] = {}
    for split in range(splits):
        data = paper_join("digits_1v8", split=split)
        exact = solve(data.paper_problem(), method="exact", regime="auto")
        scores = {**baselines(data), "data join (exact)": 0.0}
        scores["data join (exact)"] = exact.accuracy(data.x_test, data.y_test, data.aux_test)
        for name, value in scores.items():
            found.setdefault(name, []).append(value)
    return found


def run_demo(
    out: Path,
    *,
    seed: int = 0,
    methods: tuple[str, ...] = METHOD_NAMES,
    splits: int = SUMMARY_SPLITS,
) -> list[Result]:
    """Solve the paper's digits data join with every available method and print a table."""
    torch.manual_seed(seed)
    data = paper_join("digits_1v8", split=seed)
    problem = data.paper_problem()
    d_bar = problem.mean_distance
    print(f"digits 1 vs 8 data join (the paper's experiment): {problem}")
    print(
        f"D = {d_bar:.4f}; W1(A, P) = {wasserstein_radius(data.x_a, data.x_p):.4f}; "
        f"r_a + r_p = {problem.r_a + problem.r_p:.4f}\n"
    )
    print(f"test accuracy over {splits} random splits (mean ± std), logistic regression vs join:")
    for name, values in summary(splits).items():
        spread = statistics.pstdev(values) if len(values) > 1 else 0.0
        print(f"  {name:<28} {statistics.mean(values):.3f} ± {spread:.3f}")
    print(f"\nsplit {seed}, logistic regression:")
    for name, accuracy in baselines(data).items():
        print(f"  {name:<28} {accuracy:.3f}")
    print()
    exact = solve(problem, method="exact", regime="auto")
    results = [exact]
    for method in methods:
        if method == "exact":
            continue
        try:
            results.append(
                solve(
                    problem,
                    method=method,
                    regime=exact.regime,
                    reference=exact,
                    progress=False,
                    seed=seed,
                    threads=1,  # small problems: one thread avoids oversubscription
                    **BUDGETS.get(method, {}),
                )
            )
        except NotImplementedError as exc:
            print(f"({method}: {exc})")
        except ConstrainedPairsError as exc:
            print(f"({method} failed: {exc})")
    header = (
        f"{'data join':<21} {'regime':^6} {'objective':>10} {'gap':>9} {'max viol':>9} "
        f"{'test acc':>8} {'time':>8}  status"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        print(_row(result, result.accuracy(data.x_test, data.y_test, data.aux_test)))
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
    demo = commands.add_parser("demo", help="the paper's digits data join, every method")
    demo.add_argument("--out", type=Path, default=Path("demo_output"), help="where the plot goes")
    demo.add_argument("--seed", type=int, default=0, help="the split of the method table")
    demo.add_argument(
        "--methods", nargs="+", default=list(METHOD_NAMES), choices=METHOD_NAMES, help="methods"
    )
    demo.add_argument("--splits", type=int, default=SUMMARY_SPLITS, help="splits of the summary")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    run_demo(args.out, seed=args.seed, methods=tuple(args.methods), splits=args.splits)
    print(f"demo finished in {time.perf_counter() - start:.1f}s")
    return 0
