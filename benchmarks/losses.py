"""Margin softmax heads on the digits: test accuracy of each head with the same backbone.

Every head of :class:`constrained_pairs.losses.MarginSoftmax` (its default s and m; L-Softmax
and SphereFace also with lambda annealing) trains the same MLP (64 -> 128 -> d features) with
Adam on a stratified 70/30 split of scikit-learn's digits; predictions are the argmax of the
plain logits. ``--quick``: one seed, d = 32, 30 epochs (``results/losses_quick.*``). Full run:
5 seeds, d in {32, 2}, 60 epochs (``results/losses.*``). Accuracies are mean ± std over seeds.

Side by side in the same run (forward + backward, B = 512, d = 64, C = 100, median of
interleaved repeats): each head against pytorch-metric-learning's loss of the same kind (when
installed; the loss values must agree) and the checked functional losses against
``torch.nn.functional``'s, so the cost of the argument checks is visible.
Last line: ``best head: NAME ACC`` (d = 32, mean over seeds).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch.nn.functional as F  # noqa: E402

from benchmarks._common import markdown_table, parse_args, time_call, write_results  # noqa: E402
from constrained_pairs import losses  # noqa: E402
from constrained_pairs.data import load_digits  # noqa: E402
from constrained_pairs.losses import KINDS, LambdaSchedule, MarginSoftmax  # noqa: E402

# Every kind at its defaults, plus L-Softmax and SphereFace with SphereFace's lambda annealing
# (base 1000, minimum 5; gamma raised from 0.12 to 1 for runs of a few hundred steps).
ANNEALING = LambdaSchedule(gamma=1.0)
HEADS = {kind: (kind, None) for kind in KINDS} | {
    "lsoftmax+anneal": ("lsoftmax", ANNEALING),
    "sphereface+anneal": ("sphereface", ANNEALING),
}


def split(seed: int, device: str) -> tuple[torch.Tensor, ...]:
    from sklearn.model_selection import train_test_split

    x, y = load_digits(device=device)
    index = torch.arange(len(y))
    train, test = train_test_split(index, test_size=0.3, stratify=y.cpu(), random_state=seed)
    return x[train], y[train], x[test], y[test]


def train_head(
    name: str, data: tuple[torch.Tensor, ...], features: int, epochs: int, seed: int, device: str
) -> float:
    """Test accuracy of the backbone + head after ``epochs`` of Adam with batches of 128."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, features)).to(device)
    kind, schedule = HEADS[name]
    head = MarginSoftmax(features, 10, kind, lambda_schedule=schedule, device=device)
    parameters = [*body.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=3e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    for _ in range(epochs):
        for batch in torch.randperm(len(y_train), device=device).split(128):
            optimizer.zero_grad()
            head(body(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
        scheduler.step()
    body.eval()
    head.eval()
    with torch.no_grad():
        return (head.predict(body(x_test)) == y_test).float().mean().item()


def _pml_peers(features: int, classes: int) -> dict[str, tuple[nn.Module, Any]]:
    """Our head and pytorch-metric-learning's loss of the same kind, sharing one weight."""
    try:
        from pytorch_metric_learning import losses as pml
    except ImportError:
        return {}
    pairs = {
        "normface": (
            losses.NormFace(features, classes, s=20.0),
            pml.NormalizedSoftmaxLoss(classes, features, temperature=1 / 20.0),
        ),
        "lsoftmax": (
            losses.LSoftmax(features, classes, m=4),
            pml.LargeMarginSoftmaxLoss(classes, features, margin=4),
        ),
        "sphereface": (
            losses.SphereFace(features, classes, m=4),
            pml.SphereFaceLoss(classes, features, margin=4),
        ),
        "cosface": (
            losses.CosFace(features, classes),
            pml.CosFaceLoss(classes, features, margin=0.35, scale=64),
        ),
        "arcface": (
            losses.ArcFace(features, classes),
            pml.ArcFaceLoss(classes, features, margin=math.degrees(0.5), scale=64),
        ),
    }
    for ours, theirs in pairs.values():
        theirs.W.data = ours.weight.detach().T.clone()
    return pairs


def side_by_side(device: str, repeat: int) -> tuple[str, dict[str, Any]]:
    """Per-call times (ms, forward + backward) of our losses and their peers, interleaved."""
    generator = torch.Generator().manual_seed(0)
    batch, features, classes = 512, 64, 100
    x = torch.randn(batch, features, generator=generator).to(device).requires_grad_(True)
    y = torch.randint(0, classes, (batch,), generator=generator).to(device)
    t = torch.rand(batch, features, generator=generator).to(device)
    calls: dict[str, tuple[Any, Any]] = {
        "bce": (lambda: losses.bce(x, t), lambda: F.binary_cross_entropy_with_logits(x, t)),
        "mse": (lambda: losses.mse(x, t), lambda: F.mse_loss(x, t)),
        "huber": (lambda: losses.huber(x, t, 0.5), lambda: F.huber_loss(x, t, delta=0.5)),
        "cross_entropy": (
            lambda: losses.cross_entropy(x, y % features),
            lambda: F.cross_entropy(x, y % features),
        ),
    }
    for kind, (ours, theirs) in _pml_peers(features, classes).items():
        ours.to(device)
        theirs.to(device)
        calls[f"{kind} head vs pml"] = (lambda o=ours: o(x, y), lambda p=theirs: p(x, y))
    rows, data = [], {}
    for name, (ours, theirs) in calls.items():
        gap = abs(float(ours()) - float(theirs()))

        def step(fn: Any) -> None:
            fn().backward()
            x.grad = None

        times = [0.0, 0.0]
        for _ in range(repeat):  # interleaved, so both see the same machine load
            times[0] += time_call(lambda o=ours: step(o), repeat=3, device=device)
            times[1] += time_call(lambda p=theirs: step(p), repeat=3, device=device)
        ours_ms, theirs_ms = (1e3 * v / repeat for v in times)
        rows.append([name, ours_ms, theirs_ms, ours_ms / theirs_ms, f"{gap:.1e}"])
        data[name] = {"ours_ms": ours_ms, "peer_ms": theirs_ms, "abs_diff": gap}
    header = ["loss", "ours (ms)", "peer (ms)", "ratio", "|value difference|"]
    title = f"\n## Side by side (B = {batch}, d = {features}, C = {classes}, fwd + bwd)\n\n"
    return title + markdown_table(header, rows), data


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    if torch.device(args.device).type == "cpu":
        torch.set_num_threads(1)  # tiny matrices: extra threads only add synchronisation
    seeds = [args.seed] if args.quick else [args.seed + k for k in range(5)]
    dims = [32] if args.quick else [32, 2]
    epochs = 30 if args.quick else 60
    results: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}
    for seed in seeds:
        data = split(seed, args.device)
        for features in dims:
            for name in HEADS:
                start = time.perf_counter()
                accuracy = train_head(name, data, features, epochs, seed, args.device)
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
                results.setdefault(f"d={features}", {}).setdefault(name, []).append(accuracy)
    header = ["head", *(f"test accuracy, d={d}" for d in dims), "train s (all runs)"]
    rows = []
    for name in HEADS:
        cells = []
        for d in dims:
            accs = results[f"d={d}"][name]
            cells.append(f"{statistics.fmean(accs):.4f} ± {statistics.pstdev(accs):.4f}")
        rows.append([name, *cells, seconds[name]])
    title = f"# Margin softmax heads on digits ({len(seeds)} seed(s), {epochs} epochs)\n\n"
    table = markdown_table(header, rows)
    peers, timings = side_by_side(args.device, repeat=3 if args.quick else 10)
    stem = "losses_quick" if args.quick else "losses"
    data = {"epochs": epochs, "seeds": seeds, "results": results, "side_by_side": timings}
    write_results(stem, title + table + peers, data)
    print(table + peers)
    best = max(HEADS, key=lambda head: statistics.fmean(results["d=32"][head]))
    print(f"best head: {best} {statistics.fmean(results['d=32'][best]):.3f}")


if __name__ == "__main__":
    main()
