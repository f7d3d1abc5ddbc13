"""Benchmark: the two routes to a faster CPU step that issue 10 names, on the bench config.

Usage::

    python benchmarks/bench_cpu_routes.py            # all three parts, ~2 min on 1 thread
    python benchmarks/bench_cpu_routes.py --parts gemm,profile

Parts (``--parts``):

* ``compile``: ``train_runs(..., engine="batched")`` on the bench config of
  ``bench_engine.py`` (64 MLP runs x 4 replicas, width 64, depth 2, batch 128,
  300 steps), eager and with the hand-written training step
  (``runs_generator._trainer.loss_and_grads``) wrapped in
  ``torch.compile(dynamic=False)``; each timed 3 times (the first includes
  compilation).
* ``profile``: the GEMMs' share (``bmm`` + ``baddbmm``, self CPU under
  ``torch.profiler``) of one eager call.
* ``gemm``: the step's GEMMs (forward, weight and input gradients of the
  layers 20-64, 64-64, 64-10) as ``torch.bmm`` in float32 and bfloat16, at 64
  and 256 stacked models, and the cost of casting one activation.

Together they bound what bf16 GEMMs could give: (1 - bf16/fp32 GEMM time) x
GEMM share of the step, with casts counted as free.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from runs_generator._toydata import toy_config, toy_data
from runs_generator.engine import train_runs

LAYERS = ((20, 64), (64, 64), (64, 10))
BATCH = 128


def bench_config():
    cfgs = [toy_config(run_index=i, seed=i, width=64, depth=2, batch_size=BATCH, steps=300, n_train=1024, replicas=4,
                       lr=(0.01, 0.03, 0.1)[i % 3], optimizer=("sgd", "momentum", "adam")[i % 3] if i % 2 else "sgd")
            for i in range(64)]
    return cfgs, [toy_data(c, n_in=20, n_outputs=10) for c in cfgs]


def timed_calls(cfgs, data, n: int = 3) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        train_runs(cfgs, data, engine="batched")
        out.append(time.perf_counter() - t)
    return out


def part_compile(cfgs, data) -> None:
    import runs_generator._trainer as trainer

    eager = timed_calls(cfgs, data)
    original = trainer.loss_and_grads
    trainer.loss_and_grads = torch.compile(original, dynamic=False)
    try:
        compiled = timed_calls(cfgs, data)
    finally:
        trainer.loss_and_grads = original
    print("compile: wall s per call (the first compiles)")
    print(f"  eager    {', '.join(f'{x:.2f}' for x in eager)}")
    print(f"  compiled {', '.join(f'{x:.2f}' for x in compiled)}")


def part_profile(cfgs, data) -> float:
    from torch.profiler import ProfilerActivity, profile

    train_runs(cfgs, data, engine="batched")
    with profile(activities=[ProfilerActivity.CPU]) as p:
        train_runs(cfgs, data, engine="batched")
    ka = p.key_averages()
    total = sum(e.self_cpu_time_total for e in ka) / 1e6
    gemm = sum(e.self_cpu_time_total for e in ka if e.key in ("aten::bmm", "aten::baddbmm")) / 1e6
    print(f"profile: GEMMs {gemm:.2f} s of {total:.2f} s self CPU ({gemm / total:.0%})")
    return gemm / total


def _us(f, n: int = 200) -> float:
    for _ in range(10):
        f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e6


def part_gemm() -> list[float]:
    ratios = []
    for r in (64, 256):
        per = {}
        for dt in (torch.float32, torch.bfloat16):
            us = 0.0
            for i, o in LAYERS:
                x, w, dz = torch.randn(r, BATCH, i, dtype=dt), torch.randn(r, i, o, dtype=dt), torch.randn(r, BATCH, o, dtype=dt)
                us += _us(lambda: torch.bmm(x, w)) + _us(lambda: torch.bmm(x.transpose(1, 2), dz))
                if i != LAYERS[0][0]:  # the first layer has no input gradient
                    us += _us(lambda: torch.bmm(dz, w.transpose(1, 2)))
            per[dt] = us
        ratios.append(per[torch.bfloat16] / per[torch.float32])
        print(f"gemm: {r} models, one step's GEMMs {per[torch.float32]:.0f} us float32, "
              f"{per[torch.bfloat16]:.0f} us bfloat16 (ratio {ratios[-1]:.2f})")
    a = torch.randn(64, BATCH, 64)
    b = a.to(torch.bfloat16)
    print(f"gemm: casting one (64, {BATCH}, 64) activation: {_us(lambda: a.to(torch.bfloat16)):.0f} us to bf16, "
          f"{_us(lambda: b.float()):.0f} us back")
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="compile,profile,gemm")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    parts = set(args.parts.split(","))
    cfgs, data = bench_config()
    share = ratios = None
    if "compile" in parts:
        part_compile(cfgs, data)
    if "profile" in parts:
        share = part_profile(cfgs, data)
    if "gemm" in parts:
        ratios = part_gemm()
    if share is not None and ratios is not None:
        saved = [share * (1 - x) for x in ratios]
        print(f"bound: bf16 GEMMs with free casts save {min(saved):.0%}-{max(saved):.0%} of the step")


if __name__ == "__main__":
    main()
