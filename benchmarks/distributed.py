"""Data parallelism on torch.distributed (issue 15): samples per second and epoch time on 1 and 2
processes, for the deep data join and for MMCL pretraining, with the scaling efficiency.

    python benchmarks/distributed.py            # larger runs (a few minutes on 2 CPU cores)
    python benchmarks/distributed.py --procs 1,2,4,8   # on a machine with the cores
    python benchmarks/distributed.py --quick    # < 60 s

Every row runs under ``constrained_pairs.distributed.launch`` (CPU: gloo, one intra-op thread per
rank, so that a rank stands for one device; ``--device cuda``: nccl, one GPU per rank, rows up to
the number of GPUs). Ranks start together after a barrier; a row's time is the slowest rank's.

* Deep data join: ``solve(problem, "projection", model=LipschitzMLP, batch_size=(b, b),
  epochs=E)`` on ``data.mnist_join``. Each rank draws its own (b_A, b_P) block per step, so W
  ranks process W·(b_A + b_P) samples (W·b_A·b_P pairs) per step; samples/s counts them all.
  Epoch time is the training loop's time divided by E.
* MMCL: ``mmcl.pretrain(small_cnn, digits, MMCLLoss(), ...)`` at a fixed global batch G (G/W
  per rank, the embeddings all-gathered); samples/s counts the inputs the encoders embedded in
  training mode (two views of each, counted once).

Writes ``distributed.md`` / ``.json``; the last line printed is
``distributed (2 procs): data-join speedup N.NNx, MMCL speedup N.NNx``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import markdown_table, parse_args, write_results  # noqa: E402
from constrained_pairs.distributed import launch  # noqa: E402

QUICK = {
    "join": {"n": 600, "block": 96, "epochs": 4, "hidden": 128, "features": 32},
    "mmcl": {"n": 768, "global_batch": 128, "epochs": 3, "width": 16, "dim": 32},
}
FULL = {
    "join": {"n": 2000, "block": 128, "epochs": 4, "hidden": 256, "features": 64},
    "mmcl": {"n": 1792, "global_batch": 256, "epochs": 4, "width": 32, "dim": 64},
}


def _steady(history) -> tuple[float, int]:
    """Seconds and updates between the first and the last record: the first logged interval
    (allocations, first calls) is left out, so no separate warm-up run is needed."""
    first, last = history[0], history[-1]
    return last.time - first.time, last.iteration - first.iteration


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def _device(rank: int, device: str) -> torch.device:
    return torch.device("cuda", rank) if device == "cuda" else torch.device(device)


def join_worker(rank: int, world: int, config: dict, device: str, seed: int) -> dict:
    """One rank of the deep data join; returns its loop time and iterations."""
    import constrained_pairs as cp
    from constrained_pairs.backbones import LipschitzMLP

    n = config["n"]
    data = cp.data.mnist_join(n_a=n, n_p=n, n_test=100, seed=seed)
    problem = data.problem(r_a=0.0, r_p=0.0)
    d_bar = problem.mean_distance
    problem = problem.replace(r_a=0.51 * d_bar, r_p=0.51 * d_bar)
    torch.manual_seed(seed)
    model = LipschitzMLP(data.x_a.shape[1], config["features"], hidden=(config["hidden"],))
    options = {
        "regime": "A",
        "model": model,
        "batch_size": (config["block"], config["block"]),
        "seed": seed,
        "device": _device(rank, device),
    }
    _barrier()
    result = cp.solve(problem, "projection", epochs=config["epochs"], **options)
    seconds, steps = _steady(result.history)
    b_a, b_p = result.extra["batch_size"]
    found = {
        "seconds": seconds,
        "steps": steps,
        "samples_per_step": b_a + b_p,  # this rank's block
        "iterations": result.extra["iterations"],
        "objective": result.objective,
    }
    if world > 1:  # the same work with every rank alone: what the machine gives W processes
        _barrier()
        alone = cp.solve(
            problem, "projection", epochs=config["epochs"], distributed=False, **options
        )
        found["alone"] = _steady(alone.history)
    return found


class _Counter:
    """Counts the inputs an encoder embeds in training mode (a forward hook)."""

    def __init__(self) -> None:
        self.rows = 0

    def __call__(self, module, inputs, output) -> None:
        if module.training:
            self.rows += inputs[0].shape[0]


def mmcl_worker(rank: int, world: int, config: dict, device: str, seed: int) -> dict:
    """One rank of MMCL pretraining at a fixed global batch; returns its time and inputs."""
    from constrained_pairs.data import load_digits
    from constrained_pairs.mmcl import DigitAugment, MMCLLoss, pretrain, small_cnn

    images, _ = load_digits(as_images=True)
    images = images[: config["n"]]
    torch.manual_seed(seed)
    encoder = small_cnn(side=8, dim=config["dim"], width=config["width"])
    options = {
        "batch_size": config["global_batch"],  # global: each rank embeds batch_size / W
        "lr": 1e-3,
        "augment": DigitAugment(),
        "device": _device(rank, device),
        "seed": seed,
        "progress": False,
    }
    counter = _Counter()
    encoder.register_forward_hook(counter)
    _barrier()
    outcome = pretrain(encoder, images, MMCLLoss(), epochs=config["epochs"], **options)
    seconds, steps = _steady(outcome.history)
    return {
        "seconds": seconds,
        "steps": steps,
        "samples_per_step": counter.rows / 2 / outcome.iterations,  # this rank's share
        "iterations": outcome.iterations,
        "loss": outcome.history[-1].values["loss"],
    }


def _all_reduce_seconds(numel: int, device: torch.device, repeat: int = 50) -> float | None:
    """Median seconds of one all-reduce of ``numel`` floats (the per-step gradient exchange)."""
    import statistics

    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return None
    buffer = torch.zeros(numel, device=device)
    times = []
    for _ in range(repeat + 5):
        start = time.perf_counter()
        dist.all_reduce(buffer)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[5:])


def worker(rank: int, world: int, config: dict, device: str, seed: int) -> dict:
    """Both workloads on one rank (one launch per process count: starting ranks is slow)."""
    from constrained_pairs.backbones import LipschitzMLP

    join = config["join"]
    model = LipschitzMLP(14 * 28, join["features"], hidden=(join["hidden"],))
    numel = sum(p.numel() for p in model.parameters()) + 10 * (join["features"] + 14 * 28 + 3)
    return {
        "join": join_worker(rank, world, join, device, seed),
        "mmcl": mmcl_worker(rank, world, config["mmcl"], device, seed),
        "all_reduce": _all_reduce_seconds(numel, _device(rank, device)),
        "numel": numel,
    }


def _pace(ranks: list[dict]) -> float:
    """Seconds per update of a run: the slowest rank sets the pace."""
    return max(r["seconds"] / r["steps"] for r in ranks)


def _rows(name: str, runs: dict[int, list[dict]], config: dict) -> tuple[list, dict]:
    rows, data = [], {}
    base = None
    for world, ranks in sorted(runs.items()):
        step = _pace(ranks)
        rate = sum(r["samples_per_step"] for r in ranks) / step
        epoch = step * ranks[0]["iterations"] / config["epochs"]
        per_rank = config["block"] ** 2 if name == "join" else config["global_batch"] // world
        base = rate if base is None else base
        speedup = rate / base
        alone = (
            "" if "alone" not in ranks[0] else max(s / n for s, n in (r["alone"] for r in ranks))
        )
        versus = alone / step if alone else ""
        rows.append([name, world, per_rank, epoch, rate, speedup, speedup / world, versus])
        data[world] = {
            "epoch_seconds": epoch,
            "samples_per_second": rate,
            "speedup": speedup,
            "efficiency": speedup / world,
            "speed_vs_ranks_alone": versus or None,
            "ranks": ranks,
        }
    return rows, data


def _extra_args(parser) -> None:
    parser.add_argument("--procs", default="1,2", help="process counts, e.g. 1,2,4")
    parser.add_argument("--rounds", type=int, default=None, help="default: 1 quick, 3 full")


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        _extra_args,
    )
    config = QUICK if args.quick else FULL
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    procs = [int(p) for p in args.procs.split(",")]
    if args.device == "cuda":
        procs = [p for p in procs if p <= torch.cuda.device_count()]
    backend = "nccl" if args.device == "cuda" else "gloo"
    runs: dict[str, dict[int, list[dict]]] = {"join": {}, "mmcl": {}}
    load = os.getloadavg()[0]
    latency: dict[int, list[float]] = {}
    numel = 0
    for round_ in range(args.rounds):  # interleaved, so that a burst of load hits every row
        for world in procs:
            began = time.perf_counter()
            outputs = launch(
                worker,
                world,
                world,
                config,
                args.device,
                args.seed + round_,
                backend=backend,
                threads=1 if args.device == "cpu" else None,
                timeout=300,
            )
            if outputs[0]["all_reduce"] is not None:
                latency.setdefault(world, []).append(outputs[0]["all_reduce"])
                numel = outputs[0]["numel"]
            for name in runs:  # keep each row's fastest round
                found = [out[name] for out in outputs]
                best = runs[name].get(world)
                if best is None or _pace(found) < _pace(best):
                    runs[name][world] = found
            print(f"round {round_ + 1}, {world} process(es): {time.perf_counter() - began:.1f} s")
    header = [
        "workload",
        "processes",
        "per rank (pairs/block or batch)",
        "epoch s",
        "samples/s",
        "speedup",
        "efficiency",
        "vs ranks alone",
    ]
    table = []
    data = {"config": config, "device": args.device, "backend": backend, "load_average": load}
    for name in runs:
        rows, data[name] = _rows(name, runs[name], config[name])
        table += rows
    markdown = (
        "# Distributed data parallelism (1 thread per rank on CPU)\n\n"
        f"{os.cpu_count()} cores, load average {load:.1f} at the start; the fastest of "
        f"{args.rounds} round(s) per row.\n\n"
        + markdown_table(header, table)
        + "\nData join: each rank draws its own (b_A, b_P) block; samples/s counts every rank's."
        "\nMMCL: fixed global batch, split across the ranks and all-gathered.\n"
        "\n*vs ranks alone*: the step time of the same W processes each training alone "
        "(`distributed=False`) over the data-parallel step time: the cost of synchronising, net "
        "of what W processes get from the machine (on a loaded 2-core machine W processes "
        "slow each other down well before any collective).\n"
        + "".join(
            f"\nOne all-reduce of the join's {numel} gradient entries on {w} processes: "
            f"{1e6 * min(v):.0f} µs (a step of the join makes two, MMCL two all-gathers and two "
            "all-reduces).\n"
            for w, v in sorted(latency.items())
        )
    )
    data["all_reduce_seconds"] = {w: min(v) for w, v in latency.items()}
    path = write_results("distributed_quick" if args.quick else "distributed", markdown, data)
    print(markdown)
    print(f"written to {path}")
    top = max(procs)
    join = data["join"].get(top, {}).get("speedup", float("nan"))
    mmcl = data["mmcl"].get(top, {}).get("speedup", float("nan"))
    print(f"distributed ({top} procs): data-join speedup {join:.2f}x, MMCL speedup {mmcl:.2f}x")


if __name__ == "__main__":
    main()
