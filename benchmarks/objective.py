"""Pairs per second of the streamed data-join objective against a naive chunked evaluation.

Both evaluate Ω^A on all n_A × n_P pairs with auxiliary features in chunks of rows of A with
checkpointed backward (bounded memory). The naive one builds every pair's logits u_j + v_i and
takes logsumexp; ours uses the structure of SPEC §2 (one matrix product per chunk for the
logsumexp, a sort per class for the seed hinge, D̄ computed once). Also reported: the O(n)
paths (regime A without auxiliary features, regime P).

    python benchmarks/objective.py [--quick]
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import markdown_table, parse_args, time_call, write_results  # noqa: E402
from constrained_pairs import PairProblem, objective  # noqa: E402
from constrained_pairs.join.streaming import stream_sum  # noqa: E402


def naive_objective(problem, theta1, theta2, bias, alpha_a, alpha_p):
    """Ω^A pair by pair: logits of every pair in a (rows, n_P, C) block per chunk."""
    u = problem.x_p @ theta1.T + bias
    v = problem.aux_a @ theta2.T
    y = problem.y_p
    threshold = alpha_p * problem.kappa_p

    def chunk(rows, u, v, threshold, alpha_a):
        z = v[rows, None, :] + u[None]
        z_true = z.gather(2, y[None, :, None].expand(z.shape[0], -1, 1)).squeeze(2)
        dist = torch.cdist(problem.x_a[rows], problem.x_p)
        return (torch.logsumexp(z, 2) - z_true + F.relu(z_true - threshold) - alpha_a * dist).sum()

    total = stream_sum(chunk, problem.pairs.row_chunks(u.shape[1]), u, v, threshold, alpha_a)
    return alpha_a * problem.r_a + alpha_p * problem.r_p + total / problem.normalizer


def make_problem(n_a, n_p, dtype, device, aux=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_a = torch.rand(n_a, 32, generator=g, dtype=dtype)
    x_p = torch.rand(n_p, 32, generator=g, dtype=dtype)
    y_p = torch.randint(0, 10, (n_p,), generator=g)
    aux_a = torch.rand(n_a, 32, generator=g, dtype=dtype) if aux else None
    # Zero radii: Ω is then the pair sum alone, so the reported difference measures it.
    problem = PairProblem(x_a, x_p, y_p, aux_a, r_a=0.0, r_p=0.0, num_classes=10)
    return problem.to(device)


def params(problem, requires_grad):
    g = torch.Generator().manual_seed(1)
    kw = {"dtype": problem.dtype}
    tensors = [
        torch.randn(10, 32, generator=g, **kw),
        torch.randn(10, 32, generator=g, **kw),
        torch.randn(10, generator=g, **kw),
        torch.tensor(0.7, **kw),
        torch.tensor(0.9, **kw),
    ]
    return [t.to(problem.device).requires_grad_(requires_grad) for t in tensors]


def timed(fn, problem, backward, device, repeat):
    def run():
        t1, t2, b, aa, ap = params(problem, backward)
        value = fn(problem, t1, t2, b, aa, ap)
        if backward:
            value.backward()

    return time_call(run, repeat=repeat, warmup=1, device=device)


def ours(problem, t1, t2, b, aa, ap, regime="A"):
    theta2 = t2 if problem.has_aux else None
    return objective(
        problem, theta1=t1, theta2=theta2, bias=b, alpha_a=aa, alpha_p=ap, regime=regime
    )


def main():
    args = parse_args(__doc__)
    sizes = [(400, 400), (1200, 1200)] if args.quick else [(1000, 1000), (3000, 3000), (6000, 6000)]
    repeat = 2 if args.quick else 5
    rows, records = [], []
    for dtype in (torch.float32, torch.float64):
        for n_a, n_p in sizes:
            problem = make_problem(n_a, n_p, dtype, args.device, seed=args.seed)
            _ = problem.mean_distance  # D̄ is computed once per problem, outside the timing
            t1, t2, b, aa, ap = params(problem, False)
            with torch.no_grad():
                reference = float(naive_objective(problem, t1, t2, b, aa, ap))
                gap = abs(float(ours(problem, t1, t2, b, aa, ap)) - reference) / abs(reference)
            for backward in (False, True):
                fast = timed(ours, problem, backward, args.device, repeat)
                slow = timed(naive_objective, problem, backward, args.device, repeat)
                pairs = n_a * n_p
                record = {
                    "dtype": str(dtype).replace("torch.", ""),
                    "n_a": n_a,
                    "n_p": n_p,
                    "pass": "fwd+bwd" if backward else "fwd",
                    "ours_pairs_per_s": pairs / fast,
                    "naive_pairs_per_s": pairs / slow,
                    "speedup": slow / fast,
                    "relative_difference": gap,
                }
                records.append(record)
                rows.append(
                    [
                        record["dtype"],
                        n_a,
                        n_p,
                        record["pass"],
                        f"{pairs / fast:.3g}",
                        f"{pairs / slow:.3g}",
                        f"{slow / fast:.1f}x",
                        f"{gap:.1e}",
                    ]
                )
    linear = []
    n_linear = 3000 if args.quick else 20000
    for aux, regime in ((False, "A"), (True, "P")):
        problem = make_problem(n_linear, n_linear, torch.float32, args.device, aux=aux)
        _ = problem.mean_distance
        seconds = timed(partial(ours, regime=regime), problem, True, args.device, repeat)
        linear.append([regime, "yes" if aux else "no", f"{problem.pairs.size / seconds:.3g}"])
    markdown = (
        "# Streamed data-join objective\n\nAll pairs, C = 10, d = m = 32, "
        f"device {args.device}. Pairs per second (higher is better).\n\n"
        + markdown_table(
            [
                "dtype",
                "n_A",
                "n_P",
                "pass",
                "ours",
                "naive chunked",
                "speedup",
                "relative difference",
            ],
            rows,
        )
        + f"\n## O(n) paths: {n_linear} × {n_linear} pairs, fwd+bwd, float32\n\n"
        + markdown_table(["regime", "aux", "pairs/s"], linear)
    )
    write_results(
        "objective_quick" if args.quick else "objective",
        markdown,
        {"grid": records, "linear_paths": linear},
    )
    print(markdown)
    head = [r for r in records if r["dtype"] == "float32" and r["pass"] == "fwd+bwd"][-1]
    print(
        f"streamed vs naive speedup (float32, fwd+bwd, {head['n_a']}x{head['n_p']} pairs): "
        f"{head['speedup']:.1f}x"
    )


if __name__ == "__main__":
    main()
