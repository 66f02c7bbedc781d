"""Deep data join on MNIST-5k halves (issue 11, SPEC §2 "Deep backbones").

x = left half (28×14) of each image, aux = right half (only in A), labels only in P. Rows:

* ``ERM (CNN)``: cross-entropy on P, x only, the free
  :class:`~constrained_pairs.backbones.FreeConvNet`.
* ``ERM (Lipschitz CNN)``: the same with :class:`~constrained_pairs.backbones.LipschitzConvNet`
  and a free linear head.
* ``join <method>``: ``cp.solve`` with each first-order method, ``regime="auto"``, the Lipschitz
  backbone, x and aux (input distances, all pairs; defaults in :data:`JOIN`). With all pairs
  the aux of a row of A is independent of the label of a row of P, so θ₂ stays near 0: the
  join's gain here is robustness, not the aux features (k-NN pairs carry aux information, but
  their blocks of samples hold few pairs and the estimate is noisy: 0.77-0.79 clean accuracy in
  our runs against 0.85-0.87 with all pairs).
* ``oracle (whole images)``: the free CNN trained with labels on whole images of A ∪ P.

Columns: clean test accuracy; accuracy under ℓ2 PGD (20 steps, step 2.5ε/20, pixels clipped to
[0, 1]) at ε ∈ {0.5, 1.0, 1.5}, the ball taken on the whole test input the model reads (x for
the ERM rows; x and aux jointly, one budget, for the join and the oracle); accuracy under a
covariate shift (random rotations in ±15° plus Gaussian pixel noise σ = 0.1); the final D̄ and
r_A + r_P; certified accuracy at ε ∈ {0.25, 0.5} (margins over certified Lipschitz constants); the
collapsed flag; seconds per epoch relative to ERM with the same backbone (a join epoch is one
pass over the samples of A and P, per regime; ``regime="auto"`` trains two).
Mean ± std over seeds.

Why the join is robust: with a 1-Lipschitz backbone the logits' Lipschitz constant is at most
‖θ₁‖_lip ≤ α_A + α_P, and along α_A = α_P the objective pays (r_A + r_P − D̄) per unit of it. The
radii are set to r_A + r_P = D̄ + δ: δ prices the logit scale, so cross-entropy can only be
lowered by widening the feature-space margins (the certified radius of a prediction is its
logit margin / (α_A + α_P)); κ_P is large (labels are trusted), so the label-flip hinge does not
cap the margins.

Run: ``python benchmarks/deep.py [--quick] [--seeds 3]``. Writes deep.{md,json,png}.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import constrained_pairs as cp  # noqa: E402
from benchmarks._common import RESULTS, markdown_table, parse_args, write_results  # noqa: E402
from constrained_pairs.backbones import FreeConvNet, LipschitzConvNet, lipschitz_bound  # noqa: E402
from constrained_pairs.data import ImageDataJoin, mnist_join  # noqa: E402
from constrained_pairs.join.diagnostics import COLLAPSE_SHARE  # noqa: E402

EPSILONS = (0.5, 1.0, 1.5)
CERTIFIED = (0.25, 0.5)
METHODS = ("penalty", "projection", "parametrization", "lagrangian", "augmented_lagrangian")
X_SHAPE = (1, 28, 14)
#: Documented defaults of the join rows (see the module docstring for δ and κ_P).
JOIN = {
    "pairs": "all",
    "knn": 5,
    "norm": "lipschitz",
    "hinge": "margin",
    "distance": "input",
    "kappa_a": 0.3,
    "kappa_p": 10.0,
    "delta": 0.05,
    "features": 32,
    "backbone_lr": 1e-2,
}
#: Head learning rates per method (from a short sweep on seed 0; the others keep their default).
METHOD_OPTIONS: dict[str, dict[str, Any]] = {"projection": {"lr": 1.0}, "lagrangian": {"lr": 0.3}}
#: The backbone family of every row (kernel 5 trains the Lipschitz network best here).
BACKBONE = {"channels": (16, 32), "kernel_size": 5}
#: Adam learning rates of the cross-entropy rows (free CNN, Lipschitz CNN): each its best here.
ERM_LR = {False: 3e-3, True: 1e-2}
FULL = {"n_a": 1000, "n_p": 1000, "n_test": 1000, "epochs": 40, "batch": 64, "seeds": 3}
QUICK = {"n_a": 800, "n_p": 800, "n_test": 300, "epochs": 16, "batch": 32, "seeds": 1}

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def train_erm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: dict, seed: int, lr: float
) -> float:
    """Adam on cross-entropy, ``cfg["epochs"]`` passes; returns seconds per epoch."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    for _ in range(cfg["epochs"]):
        order = torch.randperm(len(y), generator=generator, device=x.device)
        for batch in order.split(cfg["batch"]):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return (time.perf_counter() - start) / cfg["epochs"]


def pgd_accuracy(predict: Predict, inputs: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    """Accuracy under ℓ2 PGD on ``inputs`` (n, 1, 28, 28 whole images, split by ``predict``):
    20 ascent steps of size 2.5ε/20 on cross-entropy, projected on the ε-ball and on [0, 1]."""
    steps, step = 20, 2.5 * eps / 20
    delta = torch.zeros_like(inputs, requires_grad=True)
    for _ in range(steps):
        loss = F.cross_entropy(predict_images(predict, inputs + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        with torch.no_grad():
            delta += step * grad / norms
            radius = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            delta *= (eps / radius).clamp(max=1.0)
            delta.copy_((inputs + delta).clamp(0, 1) - inputs)
    with torch.no_grad():
        return accuracy(predict, inputs + delta, y)


def predict_images(predict: Predict, images: torch.Tensor) -> torch.Tensor:
    """Logits of whole images: x = left 14 columns, aux = right 14 (flat)."""
    return predict(images[..., :14].flatten(1), images[..., 14:].flatten(1))


def accuracy(predict: Predict, images: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((predict_images(predict, images).argmax(1) == y).double().mean())


def shifted(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Random rotations in ±15° and Gaussian noise σ = 0.1, clipped to [0, 1]."""
    generator = torch.Generator().manual_seed(10_000 + seed)
    angle = (torch.rand(len(images), generator=generator) * 30 - 15) * math.pi / 180
    cos, sin = angle.cos(), angle.sin()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    theta = theta.to(images)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
    noise = 0.1 * torch.randn(out.shape, generator=generator).to(images)
    return (out + noise).clamp(0, 1)


def pair_lipschitz(weights: list[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """(C, C) Lipschitz constants of z_c − z_k in the whole input: for logits Σ_b W_b ψ_b(input_b)
    with Lip(ψ_b) ≤ L_b on disjoint parts, |Δ(z_c − z_k)| ≤ Σ_b L_b ‖W_b[c] − W_b[k]‖ ‖Δ_b‖ ≤
    ‖(L_b ‖W_b[c] − W_b[k]‖)_b‖ ‖Δ‖ (Cauchy–Schwarz)."""
    total = 0.0
    for lipschitz, w in weights:
        total = total + (lipschitz * torch.cdist(w.detach(), w.detach())) ** 2
    return total.sqrt()


def certified_accuracy(
    predict: Predict, images: torch.Tensor, y: torch.Tensor, pairs: torch.Tensor, eps: float
) -> float:
    """Share of test points whose prediction is right and provably constant on the ε-ball:
    min_k (z_y − z_k) / Lip(z_y − z_k) ≥ ε."""
    with torch.no_grad():
        z = predict_images(predict, images)
        margin = z.gather(1, y[:, None]) - z
        lip = pairs[y].clamp_min(1e-12)
        margin = margin / lip
        margin.scatter_(1, y[:, None], math.inf)
        return float((margin.min(dim=1).values >= eps).double().mean())


def collapsed(predict: Predict, images: torch.Tensor) -> bool:
    with torch.no_grad():
        labels = predict_images(predict, images).argmax(1)
    return float(torch.bincount(labels, minlength=10).max()) / len(labels) >= COLLAPSE_SHARE


def erm_row(split: ImageDataJoin, cfg: dict, seed: int, lipschitz: bool) -> dict[str, Any]:
    torch.manual_seed(seed)
    if lipschitz:
        model = nn.Sequential(
            LipschitzConvNet(X_SHAPE, JOIN["features"], **BACKBONE),
            nn.Linear(JOIN["features"], 10),
        )
    else:
        model = FreeConvNet(X_SHAPE, 10, **BACKBONE)
    epoch = train_erm(model, split.x_p, split.y_p, cfg, seed, ERM_LR[lipschitz])
    model.eval()
    if lipschitz:
        pairs = pair_lipschitz([(lipschitz_bound(model[0]), model[1].weight)])
    else:  # ‖z(x) − z(x')‖ ≤ L‖x − x'‖ gives |Δ(z_c − z_k)| ≤ √2 L‖Δx‖
        pairs = torch.full((10, 10), math.sqrt(2) * lipschitz_bound(model))
    return {"predict": lambda x, aux: model(x), "epoch_time": epoch, "pairs": pairs}


def oracle_row(split: ImageDataJoin, cfg: dict, seed: int) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = FreeConvNet((1, 28, 28), 10, **BACKBONE)
    images = torch.cat([split.whole_images("a"), split.whole_images("p")])
    labels = torch.cat([split.y_a, split.y_p])
    epoch = train_erm(model, images, labels, cfg, seed, ERM_LR[False])
    model.eval()

    def predict(x: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        return model(torch.cat([x.reshape(n, *X_SHAPE), aux.reshape(n, *X_SHAPE)], dim=-1))

    pairs = torch.full((10, 10), math.sqrt(2) * lipschitz_bound(model))
    return {"predict": predict, "epoch_time": epoch, "pairs": pairs}


def join_problem(split: ImageDataJoin) -> cp.PairProblem:
    """The data-join problem with r_A = r_P = (D̄ + δ)/2 (D̄ on the inputs, over the pairs)."""
    options = {k: JOIN[k] for k in ("pairs", "knn", "norm", "hinge", "distance")}
    options.update(kappa_a=JOIN["kappa_a"], kappa_p=JOIN["kappa_p"])
    d_bar = split.problem(r_a=1.0, r_p=1.0, **options).mean_distance
    radius = (d_bar + JOIN["delta"]) / 2
    return split.problem(r_a=radius, r_p=radius, **options)


def join_row(split: ImageDataJoin, cfg: dict, seed: int, method: str) -> dict[str, Any]:
    torch.manual_seed(seed)
    problem = join_problem(split)
    backbone = LipschitzConvNet(X_SHAPE, JOIN["features"], **BACKBONE)
    result = cp.solve(
        problem,
        method,
        regime="auto",
        model=backbone,
        epochs=cfg["epochs"],
        batch_size=(cfg["batch"], cfg["batch"]),
        backbone_lr=JOIN["backbone_lr"],
        seed=seed,
        **METHOD_OPTIONS.get(method, {}),
        progress=False,
    )
    model, theta1, bias = result.model, result.theta1, result.bias
    theta2 = result.theta2
    model.eval()

    def predict(x: torch.Tensor, aux: torch.Tensor) -> torch.Tensor:
        out = model(x).flatten(1) @ theta1.T + bias
        return out + aux @ theta2.T if theta2 is not None else out

    diagnostics = result.diagnostics
    weights = [(lipschitz_bound(model), theta1)] + ([(1.0, theta2)] if theta2 is not None else [])
    return {
        "predict": predict,
        "pairs": pair_lipschitz(weights),
        "epoch_time": result.wall_time / (2 * cfg["epochs"]),
        "d_bar": float(diagnostics.mean_distance),
        "radius_sum": float(diagnostics.radius_sum),
        "status": str(result.status),
        "regime": result.regime,
        "objective": result.objective,
    }


def evaluate(row: dict[str, Any], split: ImageDataJoin, seed: int) -> dict[str, Any]:
    images, y = split.whole_images("test"), split.y_test
    predict = row.pop("predict")
    row["clean"] = accuracy(predict, images, y)
    for eps in EPSILONS:
        row[f"pgd_{eps}"] = pgd_accuracy(predict, images, y, eps)
    pairs = row.pop("pairs")
    for eps in CERTIFIED:
        row[f"certified_{eps}"] = certified_accuracy(predict, images, y, pairs, eps)
    row["shift"] = accuracy(predict, shifted(images, seed), y)
    row["collapsed"] = collapsed(predict, images)
    return row


def run_rows(
    cfg: dict,
    methods: tuple[str, ...],
    seed0: int,
    full: bool = True,
    after_seed: Callable[[dict[str, list[dict[str, Any]]]], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every row for each seed (``full=False``: only ERM (CNN) and the joins); ``after_seed``
    sees the runs so far after each seed (the full grid writes its results as it goes)."""
    names = [
        "ERM (CNN)",
        *(["ERM (Lipschitz CNN)"] if full else []),
        *(f"join {m}" for m in methods),
    ]
    if full:
        names.append("oracle (whole images)")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for seed in range(seed0, seed0 + cfg["seeds"]):
        split = mnist_join(cfg["n_a"], cfg["n_p"], cfg["n_test"], seed=seed)
        for name in names:
            if name.startswith("join "):
                row = join_row(split, cfg, seed, name.removeprefix("join "))
            elif name.startswith("oracle"):
                row = oracle_row(split, cfg, seed)
            else:
                row = erm_row(split, cfg, seed, lipschitz="Lipschitz" in name)
            runs[name].append(evaluate(row, split, seed))
            print(f"seed {seed} {name}: {runs[name][-1]}", file=sys.stderr, flush=True)
        if after_seed is not None:
            after_seed(runs)
    return runs


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: dict[str, list[dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    plain = statistics.fmean(r["epoch_time"] for r in runs["ERM (CNN)"])
    lipschitz = runs.get("ERM (Lipschitz CNN)")
    # --quick has no Lipschitz ERM row: the joins are then timed against the free CNN's ERM
    reference = statistics.fmean(r["epoch_time"] for r in lipschitz) if lipschitz else plain
    header = ["row", "clean", *(f"PGD ε={e}" for e in EPSILONS)]
    header += [*(f"certified ε={e}" for e in CERTIFIED), "shift"]
    header.append("D̄ vs r_A+r_P")
    header += ["collapsed", "status", "epoch time / ERM"]
    rows, data = [], {}
    for name, records in runs.items():
        stats = {}
        keys = ("clean", *(f"pgd_{e}" for e in EPSILONS), *(f"certified_{e}" for e in CERTIFIED))
        keys = (*keys, "shift")
        for key in (*keys, "epoch_time"):
            stats[key] = mean_std([r[key] for r in records])
        cells = [name]
        for key in keys:
            mean, std = stats[key]
            cells.append(f"{mean:.3f} ± {std:.3f}")
        if "d_bar" in records[0]:
            d_bar = statistics.fmean(r["d_bar"] for r in records)
            radius = statistics.fmean(r["radius_sum"] for r in records)
            cells.append(f"{d_bar:.3f} vs {radius:.3f}")
            cells.append(str(any(r["collapsed"] for r in records)))
            cells.append(",".join(sorted({r["status"] for r in records})))
        else:
            cells += ["—", str(any(r["collapsed"] for r in records)), "—"]
        base = plain if name in ("ERM (CNN)", "oracle (whole images)") else reference
        cells.append(f"{stats['epoch_time'][0] / base:.2f}×")
        rows.append(cells)
        data[name] = {"runs": records, "summary": {k: list(v) for k, v in stats.items()}}
    note = (
        "\nPGD: ℓ2, 20 steps; ERM rows are attacked on x (their only input), the join and the "
        "oracle on x and aux jointly (one ε budget). Epoch time: relative to the ERM row with the "
        "same backbone (the free CNN for ERM (CNN) and the oracle); a join epoch is one pass over "
        "the samples of A and P, per regime (regime='auto' trains two). Certified ε: share of "
        "test points classified right with min_k (z_y − z_k) / Lip(z_y − z_k) ≥ ε, the pair "
        "constants from lipschitz_bound and the head's rows (√2·L for the free CNNs).\n"
    )
    return markdown_table(header, rows) + note, data


def plot(data: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, entry in data.items():
        summary = entry["summary"]
        keys = ["clean", *(f"pgd_{e}" for e in EPSILONS)]
        ax.errorbar(
            [0.0, *EPSILONS],
            [summary[k][0] for k in keys],
            yerr=[summary[k][1] for k in keys],
            marker="o",
            capsize=3,
            label=name,
        )
    ax.set_xlabel("ℓ2 PGD radius ε (pixels in [0, 1])")
    ax.set_ylabel("test accuracy")
    ax.set_title("MNIST-5k halves: accuracy under ℓ2 PGD")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args(
        "deep data join on MNIST-5k halves",
        lambda p: p.add_argument("--seeds", type=int, default=None, help="number of seeds"),
    )
    torch.set_num_threads(1 if args.quick else max(1, torch.get_num_threads()))
    cfg = dict(QUICK if args.quick else FULL)
    if args.seeds is not None:
        cfg["seeds"] = args.seeds
    methods = ("projection",) if args.quick else METHODS
    start = time.perf_counter()
    name = "deep_quick" if args.quick else "deep"
    found: dict[str, Any] = {}

    def save(runs: dict[str, list[dict[str, Any]]]) -> None:
        markdown, data = summarise(runs)
        seeds = len(next(iter(runs.values())))
        intro = f"# Deep data join, MNIST-5k halves\n\nconfig {cfg} ({seeds} seeds run), "
        intro += f"join {JOIN}, method options {METHOD_OPTIONS}\n\n"
        summary = {"config": cfg, "join": JOIN, "method_options": METHOD_OPTIONS, "rows": data}
        found.update(path=write_results(name, intro + markdown, summary), text=intro + markdown)
        found["data"] = data
        plot(data, RESULTS / f"{name}.png")

    run_rows(cfg, methods, args.seed, full=not args.quick, after_seed=save)
    path, data = found["path"], found["data"]
    print(found["text"])
    print(f"wrote {path} in {time.perf_counter() - start:.0f}s")
    join = data["join projection"]["summary"]
    erm = data["ERM (CNN)"]["summary"]
    print(
        f"deep (mnist, eps=1.0): join {join['pgd_1.0'][0]:.3f} vs ERM {erm['pgd_1.0'][0]:.3f} | "
        f"clean {join['clean'][0]:.3f} vs {erm['clean'][0]:.3f}"
    )


if __name__ == "__main__":
    main()
