"""Margin softmax heads on the digits: test accuracy of each head with the same backbone.

Every head of :class:`constrained_pairs.losses.MarginSoftmax` (its default s and m; L-Softmax
and SphereFace also with lambda annealing) trains the same MLP (64 -> 128 -> d features) with
Adam on a stratified 70/30 split of scikit-learn's digits; predictions are the argmax of the
plain logits. ``--quick``: one seed, d = 32, 30 epochs (``results/losses_quick.*``). Full run:
5 seeds, d in {32, 2}, 60 epochs (``results/losses.*``). Accuracies are mean ± std over seeds.
Last line: ``best head: NAME ACC`` (d = 32, mean over seeds).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import markdown_table, parse_args, write_results  # noqa: E402
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
    stem = "losses_quick" if args.quick else "losses"
    write_results(stem, title + table, {"epochs": epochs, "seeds": seeds, "results": results})
    print(table)
    best = max(HEADS, key=lambda head: statistics.fmean(results["d=32"][head]))
    print(f"best head: {best} {statistics.fmean(results['d=32'][best]):.3f}")


if __name__ == "__main__":
    main()
