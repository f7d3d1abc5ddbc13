"""Benchmark: naive (one module per replica) vs batched (stacked) engine on the same runs.

Usage::

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 \
        python benchmarks/bench_engine.py --runs 64 --threads 1

Times ``train_runs(..., engine=...)`` end to end (training and every
measurement) on ``--runs`` MLP runs (width 64, depth 2, batch 128, teacher data)
and prints a markdown table: runs/s per engine, the speed-up, and the batched
engine's training GFLOP/s (matmul FLOPs of forward + backward = 6 x
multiply-adds x batch x steps x models, over the whole wall time, so
measurements count as overhead) as a fraction of a 2048 x 2048 ``torch.mm``
with the same threads.
"""

from __future__ import annotations

import argparse
import time

import torch

from runs_generator._toydata import toy_config, toy_data
from runs_generator.engine import train_runs


def mm_gflops(reps: int = 5) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * 2048**3 * reps / (time.perf_counter() - t) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--chunk-size", type=int, default=32)
    ap.add_argument("--engines", default="naive,batched")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_in, n_out = 20, 10
    cfgs = [
        toy_config(run_index=i, seed=i, width=args.width, depth=args.depth, batch_size=args.batch, steps=args.steps,
                   n_train=1024, replicas=args.replicas, lr=(0.01, 0.03, 0.1)[i % 3],
                   optimizer=("sgd", "momentum", "adam")[i % 3] if i % 2 else "sgd")
        for i in range(args.runs)
    ]
    data = [toy_data(c, n_in=n_in, n_outputs=n_out) for c in cfgs]
    dims = [n_in] + [args.width] * args.depth + [n_out]
    macs = sum(a * b for a, b in zip(dims[:-1], dims[1:]))
    flops = 6 * macs * args.batch * args.steps * args.runs * args.replicas
    train_runs(cfgs[:1], data[:1], engine="batched")  # warm-up
    rows = {}
    for engine in args.engines.split(","):
        t = time.perf_counter()
        train_runs(cfgs, data, engine=engine, chunk_size=args.chunk_size)  # type: ignore[arg-type]
        rows[engine] = time.perf_counter() - t
    peak = mm_gflops()
    print(f"{args.runs} runs x {args.replicas} replicas, MLP width {args.width} depth {args.depth}, batch {args.batch}, "
          f"{args.steps} steps, {args.threads} thread(s), torch {torch.__version__}\n")
    print("| engine | wall s | runs/s | models/s | GFLOP/s (train) | fraction of 2048² mm |")
    print("|---|---|---|---|---|---|")
    for engine, s in rows.items():
        g = flops / s / 1e9
        print(f"| {engine} | {s:.1f} | {args.runs / s:.2f} | {args.runs * args.replicas / s:.1f} | {g:.1f} | {g / peak:.2f} |")
    if "naive" in rows and "batched" in rows:
        print(f"\nspeed-up batched / naive: {rows['naive'] / rows['batched']:.1f}x; 2048² torch.mm: {peak:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
