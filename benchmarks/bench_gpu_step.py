"""Benchmark: the time of one training step of one chunk, eager or replayed from a CUDA graph, alone or
with other chunks interleaved on their own streams.

Usage (CUDA; on a CPU only the eager rows are made)::

    python benchmarks/bench_gpu_step.py --models 8,64,512 --widths 32,256 --batch 128

For each chunk shape (MLP, depth 3, layer norm, Adam, ``--batch``; R models = R/4 runs of 4 replicas) it
trains the chunk for ``--short`` and ``--long`` steps and reports (time(long) - time(short)) /
(long - short): the cost of a step with set-up and measurements taken out. ``graph`` replays the
captured step (``runs_generator._trainer.CUDA_GRAPHS``), ``eager`` launches its kernels one by one,
``--graph-steps`` sets how many steps one replayed graph holds (``_trainer.GRAPH_STEPS``), and ``K streams``
trains K such chunks interleaved (``train_runs(concurrent=K)``) and reports the time per chunk-step (so
K-fold concurrency that costs nothing shows as 1/K of the graph row). With the GFLOP/s of the chunk's
training matmuls at that step time, these are the launch cost and the throughput that
``benchmarks/plan_cost.py``'s counts turn into a sweep's time.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from runs_generator import _trainer
from runs_generator._toydata import toy_config, toy_data
from runs_generator.engine import resolve_device, train_runs


def _time(cfgs, data, device, concurrent: int) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    train_runs(cfgs, data, device=device, chunk_size=sum(c.replicas for c in cfgs) // concurrent,
               concurrent=concurrent)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def step_ms(models: int, width: int, batch: int, device, graphs: bool, concurrent: int, short: int, long: int,
            graph_steps: int = 1, repeats: int = 3):
    runs = max(1, models // 4) * concurrent
    base = [toy_config(run_index=i, seed=50 + i, width=width, depth=3, normalization="layer", optimizer="adam",
                       lr=1e-3, batch_size=batch, n_train=max(4 * batch, 256), replicas=4) for i in range(runs)]
    data = [toy_data(c, n_in=20, n_outputs=10) for c in base]
    _trainer.CUDA_GRAPHS, _trainer.GRAPH_STEPS = graphs, graph_steps
    _time([replace(c, steps=short) for c in base[:concurrent]], data[:concurrent], device, 1)  # warm-up
    # the least of a few timings each: with several chunks the set-up and measurements vary by more than
    # the steps cost (the first GPU session's 16-stream rows came out negative from single timings)
    t_short = min(_time([replace(c, steps=short) for c in base], data, device, concurrent) for _ in range(repeats))
    t_long = min(_time([replace(c, steps=long) for c in base], data, device, concurrent) for _ in range(repeats))
    per_step = (t_long - t_short) / (long - short) / concurrent
    macs = batch * (20 * width + 2 * width * width + width * 10) * 4 * max(1, models // 4)
    return per_step * 1e3, 6 * macs / per_step / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="8,64,512", help="models per chunk (comma-separated)")
    p.add_argument("--widths", default="32,256")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--streams", default="8", help="K for the interleaved rows (comma-separated)")
    p.add_argument("--short", type=int, default=50)
    p.add_argument("--long", type=int, default=450)
    p.add_argument("--repeats", type=int, default=3, help="timings of each length; the least is used")
    p.add_argument("--graph-steps", default="1,8",
                   help="steps per replayed graph for the graph rows (comma-separated; _trainer.GRAPH_STEPS)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}; MLP depth 3, layer norm, Adam, batch {args.batch}; "
          f"step time = (t({args.long}) - t({args.short})) / {args.long - args.short}")
    print("| models | width | variant | ms / chunk-step | GFLOP/s (training matmuls) |")
    print("|---|---|---|---|---|")
    for models in [int(v) for v in args.models.split(",")]:
        for width in [int(v) for v in args.widths.split(",")]:
            variants = [("eager", False, 1, 1)]
            if device.type == "cuda":
                for u in (int(v) for v in args.graph_steps.split(",")):
                    variants += [(f"graph of {u} step(s)", True, 1, u)] + [
                        (f"graph of {u} step(s), {k} streams", True, k, u) for k in (int(v) for v in args.streams.split(","))]
            for label, graphs, k, u in variants:
                ms, gflops = step_ms(models, width, args.batch, device, graphs, k, args.short, args.long, u,
                                     args.repeats)
                print(f"| {models} | {width} | {label} | {ms:.3f} | {gflops:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
