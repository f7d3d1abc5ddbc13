"""Benchmark: cost per run of each task family's architectures, on the sweep's batched engine.

Usage::

    python benchmarks/bench_families.py sequence --threads 1

One section per family (a :class:`Family` in :data:`FAMILIES`); each times
``train_runs`` end to end (training and every measurement, as a sweep runs
them) on a group of runs of one shape with varied optimizer, learning rate and
dropout, and prints a markdown table: seconds per run (K replicas), parameters
and mean test accuracy. On a shared machine the load average before and after
is printed with the table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import cpu_model, load  # noqa: E402

from runs_generator._toydata import toy_config  # noqa: E402
from runs_generator.engine import resolve_device, train_runs  # noqa: E402


def _time_group(cfgs, data, device) -> tuple[float, list]:
    t = time.perf_counter()
    metrics = train_runs(cfgs, data, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, metrics


@dataclass(frozen=True)
class Family:
    """What a family's section times: its data builder, default shapes, seeds and chance accuracy."""

    task: str
    data: str  # 'module:function' of the data builder
    shapes: tuple[tuple[str, int, int], ...]  # (arch, width, depth)
    warm: tuple[str, int, int]  # a tiny shape trained once first (imports, first-call costs)
    seed0: int
    chance: float

    def make_data(self):
        module, _, name = self.data.partition(":")
        return getattr(importlib.import_module(module), name)


FAMILIES = {
    "sequence": Family("sequence", "runs_generator.sequence:sequence_data",
                       (("mlp", 64, 2), ("mlp", 256, 3), ("transformer", 16, 2), ("transformer", 32, 3),
                        ("transformer", 64, 2)), ("transformer", 8, 1), 300, 0.25),
    "graph": Family("graph", "runs_generator.graphs:graph_data",
                    (("mlp", 32, 3), ("mlp", 128, 3), ("gnn", 16, 3), ("gnn", 32, 3), ("gnn", 64, 3)),
                    ("gnn", 8, 2), 400, 1 / 3),
}


def bench_family(fam: Family, args) -> None:
    """One family's architectures per shape: seconds per run, per (replica x step), mean test accuracy."""
    make_data = fam.make_data()
    device = resolve_device(args.device)
    shapes = fam.shapes
    if args.shapes:
        shapes = tuple((a, int(w), int(d)) for a, w, d in (s.split(":") for s in args.shapes.split(",")))
    steps = max(args.min_steps, int(args.epochs * args.n_train / args.batch))
    arch, width, depth = fam.warm
    warm = toy_config(task=fam.task, arch=arch, width=width, depth=depth, steps=5, n_train=64)
    train_runs([warm], [make_data(warm, sweep_seed=0)], device=device)
    load_before = load()
    rows = []
    for arch, width, depth in shapes:
        cfgs = [toy_config(run_index=i, seed=fam.seed0 + i, task=fam.task, arch=arch, width=width, depth=depth,
                           normalization=("layer", "batch", "none")[i % 3], residual=bool((i + 1) % 4),
                           optimizer=("adam", "momentum")[i % 2], lr=(3e-3, 3e-2)[i % 2], dropout=(0.0, 0.1)[i % 2],
                           batch_size=args.batch, n_train=args.n_train, steps=steps, replicas=args.replicas)
                for i in range(args.runs)]
        data = [make_data(c, sweep_seed=0) for c in cfgs]  # not timed: the sweep builds data in its workers
        total, metrics = _time_group(cfgs, data, device)  # train_runs groups them by shape, as a sweep does
        acc = [m.generalization for m in metrics if m.generalization is not None]
        per_run = total / len(cfgs)
        rows.append((arch, width, depth, metrics[0].n_params, per_run, 1e3 * per_run / (steps * args.replicas),
                     sum(acc) / max(len(acc), 1)))
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs{gpu}, device {device}, torch {torch.__version__}, "
          f"{args.threads} thread(s); load average (1/5/15 min) before {load_before}, after {load()}")
    print(f"{fam.task}: {args.runs} runs per shape x {args.replicas} replicas, n_train {args.n_train}, batch "
          f"{args.batch}, {steps} steps ({args.epochs} epochs); levers cycled: norm layer/batch/none, residual, "
          f"adam 3e-3 / momentum 3e-2, dropout 0 / 0.1\n")
    print(f"| arch | width | depth | params | s / run | ms / (replica x step) | mean test accuracy "
          f"(chance {fam.chance:.3g}) |")
    print("|---|---|---|---|---|---|---|")
    for arch, width, depth, n_params, s, ms, acc in rows:
        print(f"| {arch} | {width} | {depth} | {n_params:,} | {s:.2f} | {ms:.2f} | {acc:.3f} |")





def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("--runs", type=int, default=6, help="runs per shape")
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--n-train", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=float, default=25.0)
    ap.add_argument("--min-steps", type=int, default=400)
    ap.add_argument("--shapes", default="", help="arch:width:depth,... (default: the family's suggested shapes)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bench_family(FAMILIES[args.family], args)


if __name__ == "__main__":
    main()
