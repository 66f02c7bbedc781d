"""The paper's experiments (Awasthi, Jung, Morgenstern, FORC 2023) on data bundled with
scikit-learn: digits 1 vs 8 and breast cancer, the reference code's splits, radii, κ's and
1-nearest-neighbour matchings in both directions (``constrained_pairs.data.paper_join``).

For each of 10 random splits: test accuracy of logistic regression on P alone (shared features
x only), on the overlap (the rows of A that are also in P, every feature), on the whole labelled
training set (the oracle), and of the data join — the exact optimum under the reference code's
formulation (label-free binary hinge, ℓ2 norms of the score weights) and under the package's
default margin hinge, and each first-order method (regime auto, the reference formulation).
Mean ± std over the splits the join accepts; a split whose mean pair distance D̄ exceeds
r_A + r_P has no minimum and is refused (``UnboundedProblemError``), counted in "refused".
Logistic regressions are scikit-learn's (L2, C = 1); a training set holding one class (a small
overlap can) predicts that class.

``--quick`` (digits only, exact join) finishes in well under a minute and prints last
``paper (digits 1v8): join 0.xxx vs P-only 0.xxx``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import parse_args, write_results  # noqa: E402
from constrained_pairs import solve  # noqa: E402
from constrained_pairs.data import paper_join  # noqa: E402
from constrained_pairs.errors import UnboundedProblemError  # noqa: E402

FIRST_ORDER = ("projection", "lagrangian", "augmented_lagrangian", "parametrization", "penalty")
LABELS = {"digits_1v8": "digits 1v8", "breast_cancer": "breast cancer"}


def _logistic(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor):
    from sklearn.linear_model import LogisticRegression

    if int(y.unique().numel()) < 2:  # one class seen (a small overlap): predict it
        return float((y_test == y[0]).double().mean())
    model = LogisticRegression(C=1.0, max_iter=5000).fit(x.numpy(), y.numpy())
    return float(model.score(x_test.numpy(), y_test.numpy()))


def run_split(name: str, split: int, methods: tuple[str, ...]) -> dict[str, Any]:
    data = paper_join(name, split)
    full_test = torch.cat([data.x_test, data.aux_test], dim=1)
    train_x = torch.cat([data.x_a, data.aux_a], dim=1)
    row = {
        "split": split,
        "P-only": _logistic(data.x_p, data.y_p, data.x_test, data.y_test),
        "overlap": _logistic(data.x_overlap, data.y_overlap, full_test, data.y_test),
    }
    # The oracle: every labelled training row with every feature (A's hidden labels included).
    row["oracle"] = _logistic(train_x, data.y_a, full_test, data.y_test)
    problem = data.paper_problem()
    row["D"] = problem.mean_distance
    try:
        start = time.perf_counter()
        exact = solve(problem, "exact", regime="auto")
        row["join"] = exact.accuracy(data.x_test, data.y_test, data.aux_test)
        row["join_time"] = time.perf_counter() - start
        row["join_objective"] = exact.objective
        margin = solve(problem.replace(hinge="margin"), "exact", regime="auto")
        row["join (margin)"] = margin.accuracy(data.x_test, data.y_test, data.aux_test)
        for method in methods:
            found = solve(problem, method, regime="auto", reference=exact, seed=split)
            row[method] = found.accuracy(data.x_test, data.y_test, data.aux_test)
            row[f"{method}_gap"] = found.gap
            row[f"{method}_status"] = str(found.status)
    except UnboundedProblemError:
        row["refused"] = True
    return row


def _summary(rows: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in rows if key in r]
    if not values:
        return "-"
    spread = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def report(
    results: dict[str, list[dict[str, Any]]], splits: int, methods: tuple[str, ...], elapsed: float
) -> str:
    """The markdown table of ``results`` (so far)."""
    columns = ["P-only", "overlap", "oracle", "join", "join (margin)", *methods]
    header = "| data set | " + " | ".join(columns) + " | refused |"
    lines = [
        "# The paper's experiments",
        "",
        f"{splits} random splits per data set, test accuracy mean ± std over the accepted "
        "splits (population std). `join`: the exact optimum, reference formulation; `join "
        "(margin)`: the default hinge; first-order methods: regime auto, reference formulation, "
        "default budgets. Logistic regression: scikit-learn, L2, C = 1.",
        "",
        header,
        "|" + "---|" * (len(columns) + 2),
    ]
    for name, rows in results.items():
        refused = sum(bool(r.get("refused")) for r in rows)
        cells = [_summary(rows, c) for c in columns]
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + f" | {refused}/{len(rows)} |")
    if methods:
        lines += ["", "Mean relative gap to the exact optimum, and statuses (accepted splits):", ""]
        for name, rows in results.items():
            parts = []
            for m in methods:
                gaps = [r[f"{m}_gap"] for r in rows if f"{m}_gap" in r]
                statuses = [r[f"{m}_status"] for r in rows if f"{m}_status" in r]
                if gaps:
                    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
                    parts.append(f"{m} {np.mean(gaps):.1e} {counts}")
            lines.append(f"- {LABELS[name]}: " + "; ".join(parts))
    done = {name: len(rows) for name, rows in results.items()}
    lines += ["", f"splits done: {done}; total {elapsed:.1f}s"]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        lambda p: p.add_argument("--splits", type=int, default=10, help="random splits"),
    )
    torch.set_num_threads(1)
    names = ("digits_1v8",) if args.quick else ("digits_1v8", "breast_cancer")
    methods = () if args.quick else FIRST_ORDER
    name_out = "paper_quick" if args.quick else "paper"
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    start = time.perf_counter()
    for split in range(args.splits):  # data sets interleaved: a partial run covers both
        for name in names:
            results[name].append(run_split(name, split, methods))
            if methods:  # the full run is long: keep what is done on disk
                markdown = report(results, args.splits, methods, time.perf_counter() - start)
                write_results(name_out, markdown, {"results": results})
    markdown = report(results, args.splits, methods, time.perf_counter() - start)
    write_results(name_out, markdown, {"results": results})
    print(markdown)
    digits = results["digits_1v8"]
    join = statistics.mean([r["join"] for r in digits if "join" in r])
    p_only = statistics.mean([r["P-only"] for r in digits if "join" in r])
    print(f"paper (digits 1v8): join {join:.3f} vs P-only {p_only:.3f}")


if __name__ == "__main__":
    main()
