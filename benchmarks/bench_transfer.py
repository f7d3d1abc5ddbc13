"""Benchmark: cost per transfer run on CPU, scratch vs pretrained with the source cache cold and warm.

Usage::

    python benchmarks/bench_transfer.py --runs 32 --threads 1

Draws ``--runs`` runs of the transfer family from ``TRANSFER_SPACE`` (task fixed
to ``transfer``; every other lever drawn, so widths, depths, normalizations and
budgets vary as in a sweep) three times with ``pretrained`` fixed: 0 (scratch),
1 with an empty source cache (every distinct source model is trained inside
the timed call) and 1 again with the cache warm (the same process). Each is
one ``train_runs`` call (batched engine, float32) after the task data is
built, so the times are the engine's, end to end. Prints a markdown table and
the machine's load average before and after (on a shared machine, compare
only within one invocation).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from runs_generator.engine import train_runs
from runs_generator.levers import TRANSFER_SPACE
from runs_generator.tasks import make_task_data
from runs_generator.transfer import CACHE


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    rows = []
    for label, pretrained, clear in (("scratch", False, True), ("pretrained, cache cold", True, True),
                                     ("pretrained, cache warm", True, False)):
        ov = TRANSFER_SPACE.overrides(fix={"task": "transfer", "pretrained": pretrained})
        cfgs = TRANSFER_SPACE.draw_all(args.seed, args.runs, ov)
        data = [make_task_data(c, sweep_seed=args.seed) for c in cfgs]
        if clear:
            CACHE.clear()
        trained0 = CACHE.trained
        t0 = time.perf_counter()
        train_runs(cfgs, data, device="cpu")
        wall = time.perf_counter() - t0
        rows.append((label, wall, wall / len(cfgs), CACHE.trained - trained0,
                     sum(c.steps for c in cfgs) / len(cfgs)))
    load1 = os.getloadavg()[0]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} thread(s), {args.runs} runs, load average {load0:.2f} -> {load1:.2f}")
    print("| runs | wall (s) | s / run | source models trained | mean steps / run |")
    print("|---|---:|---:|---:|---:|")
    for label, wall, per, trained, steps in rows:
        print(f"| {label} | {wall:.2f} | {per:.3f} | {trained} | {steps:.0f} |")


if __name__ == "__main__":
    main()
