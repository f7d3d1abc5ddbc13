"""Benchmark: naive (one module per replica) vs batched (stacked) engine on the same runs.

Usage::

    python benchmarks/bench_engine.py --runs 64 --threads 1 --repeats 2

(``train_runs`` tunes glibc malloc itself, see ``engine._tune_malloc``; the
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` variables are no
longer needed.) On a shared machine, compare engines only within one
invocation: the engines alternate, and the table reports each engine's best
repeat with the load average before and after.

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
import os
import platform
import time

import torch

from runs_generator._toydata import toy_config, toy_data
from runs_generator.engine import resolve_device, train_runs


def mm_gflops(device: torch.device = torch.device("cpu"), reps: int = 5) -> float:
    """GFLOP/s of a float32 2048 x 2048 ``torch.mm`` on ``device``."""
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    a @ b
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * 2048**3 * reps / (time.perf_counter() - t) / 1e9


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--chunk-size", type=int, default=None, help="models per chunk (default: automatic, as the sweep)")
    ap.add_argument("--engines", default="naive,batched")
    ap.add_argument("--repeats", type=int, default=1, help="alternate the engines this many times; report the best")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (GFLOP/s fraction is then against the device's mm)")
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
    device = resolve_device(args.device)
    train_runs(cfgs[:1], data[:1], engine="batched", device=device)  # warm-up
    load_before = load()
    rows: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for engine in args.engines.split(","):
            t = time.perf_counter()
            train_runs(cfgs, data, engine=engine, chunk_size=args.chunk_size, device=device)  # type: ignore[arg-type]
            if device.type == "cuda":
                torch.cuda.synchronize()
            rows.setdefault(engine, []).append(time.perf_counter() - t)
    peak = mm_gflops(device)
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs{gpu}, device {device}, torch {torch.__version__}, "
          f"{args.threads} thread(s); load average (1/5/15 min) before {load_before}, after {load()}")
    print(f"{args.runs} runs x {args.replicas} replicas, MLP width {args.width} depth {args.depth}, batch {args.batch}, "
          f"{args.steps} steps, chunk size {args.chunk_size or 'auto'}, best of {args.repeats}\n")
    print("| engine | wall s (each repeat) | runs/s | models/s | GFLOP/s (train) | fraction of 2048² mm |")
    print("|---|---|---|---|---|---|")
    for engine, times in rows.items():
        s = min(times)
        g = flops / s / 1e9
        each = ", ".join(f"{x:.1f}" for x in times)
        print(f"| {engine} | {each} | {args.runs / s:.2f} | {args.runs * args.replicas / s:.1f} | {g:.1f} | {g / peak:.2f} |")
    if "naive" in rows and "batched" in rows:
        print(f"\nspeed-up batched / naive: {min(rows['naive']) / min(rows['batched']):.1f}x; "
              f"2048² torch.mm: {peak:.1f} GFLOP/s on {device} ({args.threads} CPU thread(s))")

if __name__ == "__main__":
    main()
