"""Novel class discovery by residual training (SPEC §5) on bundled digits.

Protocol: classes 0-4 labelled (80 % to train, 20 % held out for known-class accuracy), classes
5-9 unlabelled; ACC/NMI/ARI are measured on every novel image. The baseline is k-means on the
raw pixels of the novel images, in the same run.

Recipe (same for every variant): an MLP backbone is first pretrained without labels on all
training images (labelled 0-4 and unlabelled 5-9, as NCD methods pretrain on both sets) by
contrastive learning: two random distortions of an image (rotation, scale, shift, shear, aspect
ratio, pixel noise; handwriting varies in slant and width) must map to agreeing features.
Stage 1 fits the head with cross-entropy while the backbone barely moves (lr 1e-2 head, 1e-5
backbone; cross-entropy on 0-4 alone erases what the features know of 5-9); stage 2 is
``ResidualNCD.fit_novel`` with milder random affine augmentation, the discriminant
initialisation of the reduction and the class-balanced pair loss
(``pair_pos_weight="balanced"``; the plain BCE of SPEC §5 is reported as a variant). Ablations
start from the same stage-1 model.

Writes ``results/ncd.md``, ``ncd.json``, ``ncd_curves.png`` and ``ncd_confusion.png``
(``ncd_quick.*`` with ``--quick``).

    python benchmarks/ncd.py --quick      # sklearn digits, one seed, full model only
    python benchmarks/ncd.py              # 3 seeds, digits and MNIST-5k, ablations
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import RESULTS, markdown_table, parse_args, write_results  # noqa: E402
from constrained_pairs.data import load_digits, load_mnist5k  # noqa: E402
from constrained_pairs.metrics import ari, cluster_acc, match_clusters, nmi  # noqa: E402
from constrained_pairs.ncd import ResidualNCD  # noqa: E402
from constrained_pairs.ncd.pretrain import pretrain_contrastive  # noqa: E402
from constrained_pairs.vision import RandomAffine, mlp_backbone  # noqa: E402

CONFIG: dict[str, dict[str, Any]] = {
    "digits": dict(
        loader=load_digits,
        shift=1 / 8,
        novel_epochs=60,
        variants=[
            "full",
            "full, plain BCE (pos_weight 1)",
            "no L_distill",
            "no L_pair",
            "no residual branch",
        ],
    ),
    # Ablations on digits only, to keep the full run near 12 minutes on 2 shared cores.
    "mnist5k": dict(loader=load_mnist5k, shift=2 / 28, novel_epochs=100, variants=["full"]),
}
# Contrastive pretraining; its distortions are also used in stage 1 (shift: x 1.6 of stage 2).
PRETRAIN = dict(epochs=200, temperature=0.2, batch_size=256)
DISTORT = dict(degrees=20.0, scale=0.2, shear=0.6, aspect=0.4, noise=0.1)
STAGE1 = dict(epochs=30, lr=1e-2, backbone_lr=1e-5)  # the backbone barely moves
STAGE2 = dict(lr=3e-3, backbone_lr=3e-4, batch_size=128, pair_pos_weight="balanced")
VARIANTS = {
    "full": {},
    "full, plain BCE (pos_weight 1)": {"pair_pos_weight": 1.0},
    "no L_distill": {"use_distill": False},
    "no L_pair": {"use_pair": False},
    "no residual branch": {"residual": False},
}
FEAT_DIM = 64
HISTORY = ("cluster", "distill", "pair", "total", "novel_acc")  # per stage-2 epoch


def split(name: str, seed: int, device: str):
    x, y = CONFIG[name]["loader"](as_images=True, device=device)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).to(y.device)
    x, y = x[order], y[order]
    known = y < 5
    xk, yk = x[known], y[known]
    n_train = int(0.8 * len(yk))
    return xk[:n_train], yk[:n_train], xk[n_train:], yk[n_train:], x[~known], y[~known] - 5


def stage2_model(stage1: ResidualNCD, residual: bool) -> ResidualNCD:
    """A fresh stage-2 model carrying the stage-1 backbone and head."""
    model = ResidualNCD(copy.deepcopy(stage1.backbone), FEAT_DIM, 5, 5, residual=residual)
    model.head.load_state_dict(stage1.head.state_dict())
    model.history = copy.deepcopy(stage1.history)
    return model


def run(name: str, seed: int, variants: list[str], device: str) -> dict[str, Any]:
    cfg = CONFIG[name]
    x_tr, y_tr, x_te, y_te, x_u, y_u = split(name, seed, device)
    kmeans = KMeans(5, n_init=10, random_state=seed).fit(x_u.flatten(1).cpu().numpy())
    out: dict[str, Any] = {"kmeans_raw": cluster_acc(y_u, kmeans.labels_), "variants": {}}
    augment = RandomAffine(shift=cfg["shift"], degrees=10.0, scale=0.1)
    distort = RandomAffine(shift=1.6 * cfg["shift"], **DISTORT)

    start = time.perf_counter()
    torch.manual_seed(seed)
    backbone = mlp_backbone(x_u[0].numel(), FEAT_DIM).to(device)
    pretrain_contrastive(
        backbone, torch.cat([x_tr, x_u]), FEAT_DIM, distort, seed=seed, progress=False, **PRETRAIN
    )
    stage1 = ResidualNCD(backbone, FEAT_DIM, 5, 5)
    stage1.fit_known(
        x_tr,
        y_tr,
        epochs=STAGE1["epochs"],
        lr=STAGE1["lr"],
        backbone_lr=STAGE1["backbone_lr"],
        augment=augment,
        seed=seed,
        progress=False,
    )
    out["stage1_s"] = time.perf_counter() - start
    out["known_acc_before"] = float((stage1.predict_known(x_te) == y_te).float().mean())
    for variant in variants:
        options = {**STAGE2, **VARIANTS[variant]}
        model = stage2_model(stage1, options.pop("residual", True))
        start = time.perf_counter()
        model.fit_novel(
            x_u,
            epochs=cfg["novel_epochs"],
            augment=augment,
            y_u=y_u,
            seed=seed,
            progress=False,
            **options,
        )
        pred = model.predict_novel(x_u)
        out["variants"][variant] = {
            "acc": cluster_acc(y_u, pred),
            "nmi": nmi(y_u, pred),
            "ari": ari(y_u, pred),
            "known_acc_after": float((model.predict_known(x_te) == y_te).float().mean()),
            "stage2_s": time.perf_counter() - start,
            "history": {k: getattr(model.history, k) for k in HISTORY},
            "confusion": matched_confusion(y_u, pred).tolist(),
        }
    return out


def matched_confusion(y_true: torch.Tensor, y_pred: torch.Tensor) -> np.ndarray:
    """Confusion matrix (true class x matched cluster) after the Hungarian matching."""
    mapping = match_clusters(y_true, y_pred)
    pred = np.array([mapping.get(int(p), -1) for p in y_pred.tolist()])
    return confusion_matrix(y_true.cpu().numpy(), pred, labels=list(range(5)))


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def plot(runs: dict[str, list[dict[str, Any]]], name: str) -> None:
    datasets = list(runs)
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 3.6 * len(datasets)), squeeze=False)
    for row, data in enumerate(datasets):
        history = runs[data][0]["variants"]["full"]["history"]
        epochs = range(1, len(history["total"]) + 1)
        for term in ("cluster", "distill", "pair", "total"):
            axes[row, 0].plot(epochs, history[term], label=f"L_{term}")
        axes[row, 0].set(title=f"{data}: stage-2 losses (first seed)", xlabel="epoch")
        axes[row, 0].legend()
        for variant, result in runs[data][0]["variants"].items():
            axes[row, 1].plot(epochs, result["history"]["novel_acc"], label=variant)
        axes[row, 1].axhline(runs[data][0]["kmeans_raw"], color="k", ls=":", label="k-means raw")
        axes[row, 1].set(title=f"{data}: novel ACC per epoch", xlabel="epoch", ylim=(0, 1))
        axes[row, 1].legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}_curves.png", dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 4), squeeze=False)
    for col, data in enumerate(datasets):
        matrix = np.array(runs[data][0]["variants"]["full"]["confusion"])
        ax = axes[0, col]
        ax.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
        ax.set(
            title=f"{data}: novel clusters after matching",
            xlabel="matched cluster (digit)",
            ylabel="true digit",
            xticks=range(5),
            yticks=range(5),
            xticklabels=range(5, 10),
            yticklabels=range(5, 10),
        )
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}_confusion.png", dpi=90)
    plt.close(fig)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    torch.set_num_threads(1)  # small models on a shared 2-core machine: one thread is fastest
    datasets = ["digits"] if args.quick else ["digits", "mnist5k"]
    seeds = [args.seed] if args.quick else [args.seed + i for i in range(3)]
    runs: dict[str, list[dict[str, Any]]] = {}
    for name in datasets:
        runs[name] = []
        for seed in seeds:
            variants = ["full"] if args.quick else CONFIG[name]["variants"]
            result = run(name, seed, variants, args.device)
            runs[name].append(result)
            print(
                f"{name} seed {seed}: k-means raw {result['kmeans_raw']:.3f}, "
                + ", ".join(f"{v} {r['acc']:.3f}" for v, r in result["variants"].items()),
                flush=True,
            )

    rows = []
    for name, results in runs.items():
        rows.append(
            [
                name,
                "k-means on raw pixels",
                mean_std([r["kmeans_raw"] for r in results]),
                "",
                "",
                "",
                "",
                "",
            ]
        )
        for variant in results[0]["variants"]:
            per = [r["variants"][variant] for r in results]
            rows.append(
                [
                    name,
                    variant,
                    mean_std([p["acc"] for p in per]),
                    mean_std([p["nmi"] for p in per]),
                    mean_std([p["ari"] for p in per]),
                    mean_std([r["known_acc_before"] for r in results]),
                    mean_std([p["known_acc_after"] for p in per]),
                    f"{statistics.mean(p['stage2_s'] for p in per):.1f}",
                ]
            )
    header = [
        "data",
        "method",
        "novel ACC",
        "NMI",
        "ARI",
        "known acc (stage 1)",
        "known acc (after stage 2)",
        "stage-2 s",
    ]
    markdown = (
        "# Novel class discovery (SPEC §5)\n\n"
        f"Known 0-4 labelled, novel 5-9 unlabelled; seeds {seeds}; mean ± std over seeds. "
        "Known accuracy is on a held-out 20 % of the known-class images.\n\n"
        + markdown_table(header, rows)
        + "\n![curves](ncd_curves.png)\n\n![confusion](ncd_confusion.png)\n"
    )
    name = "ncd_quick" if args.quick else "ncd"  # a quick run keeps the full results
    markdown = markdown.replace("](ncd_", f"]({name}_")
    write_results(name, markdown, {"seeds": seeds, "runs": runs})
    plot(runs, name)
    print(markdown)
    acc = statistics.mean(r["variants"]["full"]["acc"] for r in runs["digits"])
    baseline = statistics.mean(r["kmeans_raw"] for r in runs["digits"])
    print(f"novel ACC (digits 5-9): {acc:.3f} | k-means: {baseline:.3f}")


if __name__ == "__main__":
    main()
