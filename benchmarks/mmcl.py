"""MMCL benchmark (issue 5): training-step time against InfoNCE, the exact inner solve against the
reference code's projected gradient, and linear-probe quality on sklearn digits and MNIST-5k.

    python benchmarks/mmcl.py            # everything (about 10 minutes on 2 CPU cores)
    python benchmarks/mmcl.py --quick    # step times and inner solver only (< 60 s)

Writes benchmarks/results/mmcl.md, mmcl.json and mmcl.png; the last line printed is
``MMCL/InfoNCE step time ratio: N.NN``.
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import RESULTS, markdown_table, parse_args, write_results  # noqa: E402
from constrained_pairs.data import load_digits, load_mnist5k  # noqa: E402
from constrained_pairs.losses import info_nce  # noqa: E402
from constrained_pairs.mmcl import (  # noqa: E402
    DigitAugment,
    MMCLLoss,
    explicit_q,
    kernel_matrix,
    linear_probe,
    pretrain,
    small_cnn,
)
from constrained_pairs.qp import solve_qp, svm_duals  # noqa: E402
from constrained_pairs.qp.svm import kkt_residual  # noqa: E402
from constrained_pairs.qp.svm_structure import negatives_index  # noqa: E402

LOSSES = {
    "InfoNCE": lambda: info_nce,
    "MMCL detach": lambda: MMCLLoss(),
    "MMCL implicit": lambda: MMCLLoss(grad="implicit"),
}


def step_times(images, repeats, device, seed):
    """Median time of one Adam step (2 augmentations, 2 forwards, loss, backward) per loss.

    The losses take turns, step by step, on copies of one encoder, so that machine load hits all
    of them alike.
    """
    torch.manual_seed(seed)
    base = small_cnn(side=28, dim=64, width=32).to(device)
    augment = DigitAugment()
    runs = {}
    for name, make in LOSSES.items():
        encoder = copy.deepcopy(base)
        runs[name] = (encoder, make(), torch.optim.Adam(encoder.parameters(), lr=1e-3), [])
    gen = torch.Generator().manual_seed(seed)
    for repeat in range(repeats + 1):
        batch = images[torch.randperm(len(images), generator=gen)[:256]].to(device)
        for _name, (encoder, loss, optimizer, times) in runs.items():
            start = time.perf_counter()
            value = loss(encoder(augment(batch)), encoder(augment(batch)))
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            if device != "cpu":
                torch.cuda.synchronize()
            if repeat:  # the first round warms up
                times.append(time.perf_counter() - start)
    infos = {name: run[1].last_info for name, run in runs.items() if name != "InfoNCE"}
    return {name: statistics.median(run[3]) for name, run in runs.items()}, infos, base


def reference_pgd(kernel, rho, iterations=1000, step=1e-3):
    """The reference code's inner solver: Nesterov projected gradient on the written-out Q_t."""
    q = explicit_q(kernel, rho)
    beta = torch.zeros(q.shape[:2], dtype=kernel.dtype, device=kernel.device)
    previous = beta
    for k in range(iterations):
        y = beta + (k / (k + 3)) * (beta - previous)
        previous = beta
        beta = (y - step * ((q @ y.unsqueeze(-1)).squeeze(-1) - 2)).clamp(min=0)
    size = kernel.shape[0]
    return torch.zeros_like(kernel).scatter(1, negatives_index(size, kernel.device), beta)


def inner_solver(encoder, images, batch, device, dtype):
    """Our exact structured solve against the reference PGD on one batch of real embeddings."""
    with torch.no_grad():
        z = F.normalize(encoder(images[:batch].to(device)).to(dtype), dim=1)
    kernel = kernel_matrix(z, z)
    rows = []
    for name, solve in (
        ("exact (ours)", lambda: svm_duals(kernel, rho=0.1)),
        ("reference PGD, 1000 it, step 1e-3", lambda: reference_pgd(kernel, 0.1)),
    ):
        solve()  # warm-up
        start = time.perf_counter()
        beta = solve()
        seconds = time.perf_counter() - start
        residual = float(kkt_residual(kernel.double(), beta.double(), 0.1, None).max())
        rows.append(
            {
                "solver": name,
                "B": batch,
                "dtype": str(dtype).replace("torch.", ""),
                "seconds": seconds,
                "kkt_residual": residual,
                "support_per_anchor": float((beta > 0).sum(1).double().mean()),
            }
        )
    return rows


def _structured(x, weights, implicit):
    """svm_duals on the kernel of x; with ``implicit``, backpropagate Σ w·β to x."""
    xg = x.clone().requires_grad_(implicit)
    beta = svm_duals(kernel_matrix(xg, xg), rho=0.1, grad="implicit" if implicit else "detach")
    if implicit:
        (beta * weights).sum().backward()
    return torch.gather(beta.detach(), 1, negatives_index(len(x), x.device)), xg.grad


def _native(x, weights, implicit):
    """solve_qp(backend="native") on the explicit Q_t of the same problems."""
    index = negatives_index(len(x), x.device)
    xg = x.clone().requires_grad_(implicit)
    kernel = kernel_matrix(xg, xg)
    p = torch.full(index.shape, -2.0, dtype=x.dtype, device=x.device)
    z = solve_qp(explicit_q(kernel if implicit else kernel.detach(), 0.1), p, 0.0)
    if implicit:
        (z * torch.gather(weights, 1, index)).sum().backward()
    return z.detach(), xg.grad


def structured_vs_native(encoder, images, batches, device, repeats):
    """svm_duals vs solve_qp(backend="native") on the explicit Q_t: solve and implicit fwd+bwd.

    Both solve the same B problems of B - 1 variables (real embeddings, RBF σ = 5, ρ = 0.1,
    C = ∞, float64); the two calls of a batch size take turns, ``repeats`` times.
    """
    rows = []
    for batch in batches:
        with torch.no_grad():
            x = F.normalize(encoder(images[:batch].to(device)).double(), dim=1)
        weights = torch.randn(
            batch, batch, dtype=torch.float64, generator=torch.Generator().manual_seed(batch)
        ).to(device)
        for implicit in (False, True):
            calls = {
                "structured": lambda i=implicit, x=x, w=weights: _structured(x, w, i),
                "native": lambda i=implicit, x=x, w=weights: _native(x, w, i),
            }
            outputs = {name: fn() for name, fn in calls.items()}  # warm-up and agreement
            times = {name: [] for name in calls}
            for _ in range(repeats):
                for name, fn in calls.items():
                    start = time.perf_counter()
                    fn()
                    if device != "cpu":
                        torch.cuda.synchronize()
                    times[name].append(time.perf_counter() - start)
            t = {name: statistics.median(v) for name, v in times.items()}
            diff = float((outputs["structured"][0] - outputs["native"][0]).abs().max())
            grad_diff = (
                float(
                    (outputs["structured"][1] - outputs["native"][1]).abs().max()
                    / outputs["native"][1].abs().max()
                )
                if implicit
                else float("nan")
            )
            rows.append(
                {
                    "B": batch,
                    "mode": "implicit fwd+bwd" if implicit else "solve",
                    "structured_s": t["structured"],
                    "native_s": t["native"],
                    "speedup": t["native"] / t["structured"],
                    "max_beta_diff": diff,
                    "grad_rel_diff": grad_diff,
                }
            )
            print(
                f"  B={batch} {rows[-1]['mode']}: structured {1e3 * t['structured']:.1f} ms, "
                f"native {1e3 * t['native']:.1f} ms ({rows[-1]['speedup']:.1f}x)",
                flush=True,
            )
    return rows


def quality(dataset, epochs, seeds, device, quick):
    """Linear-probe accuracy after each epoch, per loss and seed, with equal epochs."""
    if dataset == "digits":
        x, y = load_digits(as_images=True)
        side, width, dim, n_train = 8, 16, 32, 1297
    else:
        x, y = load_mnist5k(as_images=True)
        side, width, dim, n_train = 28, 16, 64, 4000
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    train, test = (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])
    curves = {name: [] for name in LOSSES}
    for seed in seeds:
        for name, make in LOSSES.items():
            torch.manual_seed(seed)
            encoder = small_cnn(side=side, dim=dim, width=width)
            curve = []
            pretrain(  # one run, probed at the end of every epoch (the callback)
                encoder,
                train[0],
                make(),
                epochs=epochs,
                batch_size=256,
                lr=3e-3,
                augment=DigitAugment(),
                device=device,
                seed=seed,
                progress=False,
                callback=lambda record, curve=curve, encoder=encoder: curve.append(
                    linear_probe(encoder, train, test)
                ),
            )
            curves[name].append(curve)
            print(
                f"  {dataset} seed {seed} {name}: " + " ".join(f"{a:.3f}" for a in curve),
                flush=True,
            )
    return curves


def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        lambda parser: parser.add_argument(
            "--threads",
            type=int,
            default=1,
            help="torch intra-op threads (1 keeps timings stable on a shared, oversubscribed CPU)",
        ),
    )
    torch.set_num_threads(args.threads)
    device = args.device
    images, _ = load_mnist5k(as_images=True)
    repeats = 4 if args.quick else 10
    print(
        f"step time, small CNN on 28x28, batch 256, {device}, {repeats} steps per loss", flush=True
    )
    times, infos, encoder = step_times(images, repeats, device, args.seed)
    ratio = times["MMCL detach"] / times["InfoNCE"]
    implicit_ratio = times["MMCL implicit"] / times["InfoNCE"]
    step_rows = [[name, 1e3 * t, t / times["InfoNCE"]] for name, t in times.items()]
    markdown = [
        "# MMCL benchmark\n",
        f"Device {device}, torch threads {torch.get_num_threads()}. "
        f"{'Quick run. ' if args.quick else ''}Command: `python benchmarks/mmcl.py"
        f"{' --quick' if args.quick else ''}`\n",
        "## Training step (small CNN, 28x28 MNIST, batch 256, both views, Adam)\n",
        f"Median of {repeats} steps, losses interleaved step by step.\n",
        markdown_table(["loss", "step ms", "ratio to InfoNCE"], step_rows),
    ]
    for name, info in infos.items():
        markdown.append(
            f"\n{name}: last solve max KKT residual "
            f"{float(info.kkt_residual.max()):.2e}, all converged "
            f"{info.all_converged}.\n"
        )

    batch = 128 if args.quick else 256
    solver_rows = []
    for dtype in (torch.float32, torch.float64):
        solver_rows += inner_solver(encoder, images, batch, device, dtype)
    markdown += [
        "\n## Inner solve: exact structured solver vs the reference code's PGD\n",
        "Embeddings of a real batch (untrained encoder), RBF sigma=5, rho=0.1, C=inf. "
        "KKT residual: relative, as `constrained_pairs.qp.natural_residual` "
        "(`constrained_pairs.qp.svm.kkt_residual`).\n",
        markdown_table(
            ["solver", "B", "dtype", "ms", "max KKT residual", "support / anchor"],
            [
                [
                    r["solver"],
                    r["B"],
                    r["dtype"],
                    1e3 * r["seconds"],
                    r["kkt_residual"],
                    r["support_per_anchor"],
                ]
                for r in solver_rows
            ],
        ),
    ]
    print("structured solver vs solve_qp(backend='native') on the explicit Q_t", flush=True)
    versus = structured_vs_native(encoder, images, (64, 128, 256), device, 1 if args.quick else 5)
    markdown += [
        "\n## Structured solver vs the generic native QP layer on the explicit Q_t\n",
        "`constrained_pairs.qp.svm_duals` (all B duals through the shared kernel "
        "matrix) against `solve_qp(explicit_q(K, rho), -2, lower=0, "
        'backend="native")` on the same B problems of B - 1 variables: real '
        "embeddings (untrained encoder), RBF sigma=5, rho=0.1, C=inf, float64, the two "
        "taking turns. Implicit: the gradient of a weighted sum of beta back to the "
        "embeddings.\n",
        markdown_table(
            [
                "B",
                "mode",
                "structured ms",
                "native ms",
                "native / structured",
                "max |beta diff|",
                "grad rel. diff",
            ],
            [
                [
                    r["B"],
                    r["mode"],
                    1e3 * r["structured_s"],
                    1e3 * r["native_s"],
                    f"{r['speedup']:.1f}x",
                    r["max_beta_diff"],
                    "" if r["grad_rel_diff"] != r["grad_rel_diff"] else r["grad_rel_diff"],
                ]
                for r in versus
            ],
        ),
    ]
    data = {
        "quick": args.quick,
        "step_seconds": times,
        "mmcl_infonce_ratio": ratio,
        "implicit_infonce_ratio": implicit_ratio,
        "inner_solver": solver_rows,
        "structured_vs_native": versus,
    }

    if not args.quick:
        settings = {"digits": 10, "mnist5k": 4}
        seeds = [0, 1, 2]
        curves = {}
        for dataset, epochs in settings.items():
            print(f"quality on {dataset}: {epochs} epochs, seeds {seeds}", flush=True)
            curves[dataset] = quality(dataset, epochs, seeds, device, args.quick)
        data["probe_accuracy"] = curves
        markdown += [
            "\n## Linear-probe accuracy (mean ± std over seeds 0, 1, 2)\n",
            "Pretraining on the training split without labels (DigitAugment, Adam "
            "lr 3e-3, batch 256), then a logistic regression on the frozen embeddings. "
            "digits: small CNN width 16, dim 32, 1297 train / 500 test, 10 epochs. "
            "MNIST-5k: small CNN width 16, dim 64, 4000 train / 1000 test, 4 epochs.\n",
        ]
        rows = []
        for name in LOSSES:
            row = [name]
            for dataset in settings:
                m, s = mean_std([c[-1] for c in curves[dataset][name]])
                row.append(f"{m:.3f} ± {s:.3f}")
            rows.append(row)
        markdown.append(markdown_table(["loss", "digits", "MNIST-5k"], rows))
    name = "mmcl_quick" if args.quick else "mmcl"  # --quick never overwrites the full results
    _plot(curves if not args.quick else {}, times, name)
    if not args.quick:
        markdown.append(f"\n![probe accuracy and step times]({name}.png)\n")
    markdown.append(
        f"\nMMCL/InfoNCE step time ratio: {ratio:.2f} (implicit: {implicit_ratio:.2f})\n"
    )
    write_results(name, "\n".join(markdown), data)
    print("\n".join(markdown))
    print(f"MMCL/InfoNCE step time ratio: {ratio:.2f}")


def _plot(curves, times, name):
    RESULTS.mkdir(parents=True, exist_ok=True)
    panels = len(curves) + 1
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.6))
    axes = [axes] if panels == 1 else list(axes)
    for ax, (dataset, by_loss) in zip(axes, curves.items()):
        for loss_name, runs in by_loss.items():
            acc = torch.tensor(runs)
            mean, std = acc.mean(0), acc.std(0) if len(runs) > 1 else torch.zeros(acc.shape[1])
            epochs = range(1, acc.shape[1] + 1)
            ax.plot(epochs, mean, marker="o", label=loss_name)
            ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
        ax.set(title=f"{dataset}: linear probe", xlabel="epoch", ylabel="test accuracy")
        ax.legend()
    ax = axes[-1]
    ax.bar(list(times), [1e3 * t for t in times.values()], color=["C0", "C1", "C2"])
    ax.set(title="training step, batch 256", ylabel="ms")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
