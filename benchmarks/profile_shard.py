"""Benchmark: where one shard of a sweep spends its time (wall time, then a host-side profile).

Usage (CUDA or CPU)::

    python benchmarks/profile_shard.py --space large --runs 1024 --seed 1 --shard-size 32 --shard 0 \\
        --device cuda --streams 1,16 --profile 16

It cuts the plan that ``udl generate`` would (same space, seed and shard size), builds shard
``--shard``'s task data, and trains its runs with :func:`runs_generator.engine.train_runs` once per
``--streams`` value (K chunks interleaved on their own CUDA streams), reporting wall seconds and runs/s
(the data is built before the clock starts; the first pass also pays the CUDA context and kernel
loading, so a warm-up pass of the shard's first chunk runs first). With ``--profile K`` it trains the
shard once more under :mod:`cProfile` with K streams and prints the functions with the most own time and
the package functions with the most cumulative time. On a GPU a launch-bound loop shows up as host time
in the launching calls, and waits for the device as time in the calls that synchronize (``.cpu()``,
``.item()``, ``bool()`` of a tensor). With ``--kernels N`` it builds the shard's first chunk, trains it
past its warm-up and captures, and runs ``torch.profiler`` over its next N steps, eager and replayed:
the device kernels a step launches, and the device time of each (what fusing the step's kernels
could save).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import torch

from _plan import add_plan_arguments, draw_plan  # benchmarks/_plan.py (benchmarks run as scripts)
from runs_generator.engine import resolve_device, train_runs
from runs_generator.tasks import make_task_data


def _train(configs, data, device, streams: int) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    train_runs(configs, data, device=device, concurrent=streams)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_plan_arguments(p)
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--streams", default="1,16", help="K values to time (comma-separated)")
    p.add_argument("--profile", type=int, default=0, help="K for one more pass under cProfile (0: none)")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--kernels", type=int, default=0, help="profile N steps of the shard's first chunk (0: none)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(1)
    configs, plan = draw_plan(args)
    shard = [configs[i] for i in plan[args.shard]]
    data = [make_task_data(c, sweep_seed=args.seed) for c in shard]
    kinds = sorted({f"{c.task}/{c.arch}" for c in shard})
    steps = sum(c.steps for c in shard)
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, torch "
          f"{torch.__version__}; space {args.space}, runs {args.runs}, seed {args.seed}, shard {args.shard} of "
          f"{len(plan)}: {len(shard)} runs ({', '.join(kinds)}), {steps} run-steps", flush=True)
    _train(shard[:1], data[:1], device, 1)  # warm-up: context, kernels
    for k in (int(v) for v in args.streams.split(",")):
        wall = _train(shard, data, device, k)
        print(f"  streams {k}: {wall:.2f} s = {len(shard) / wall:.2f} runs/s", flush=True)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        wall = _train(shard, data, device, args.profile)
        prof.disable()
        print(f"\ncProfile, streams {args.profile}: {wall:.2f} s (with the profiler's overhead)")
        for key, restrict in (("tottime", ()), ("cumtime", ("runs_generator",))):
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(*restrict, args.top)
            text = buf.getvalue()
            print(text[text.find("   ncalls"):].rstrip() if "   ncalls" in text else text)
    if args.kernels:
        kernel_profile(shard, data, device, args.kernels, args.top)
    return 0


def kernel_profile(configs, data, device, n: int, top: int) -> None:
    """``torch.profiler`` over ``n`` training steps of the first chunk, eager and (on CUDA) replayed."""
    from torch.profiler import ProfilerActivity, profile

    from runs_generator import _trainer, engine
    from runs_generator._modelset import build_model_set

    pad = device.type == "cuda"
    key = engine.group_key(configs[0], pad=pad)
    members = [i for i, c in enumerate(configs) if engine.group_key(c, pad=pad) == key]
    chunk = engine.cut_chunks(members, configs, engine.CUDA_MAX_CHUNK, pad)[0]
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    for graphs in ([False, True] if cuda else [False]):
        _trainer.CUDA_GRAPHS = graphs
        ms = build_model_set([configs[j] for j in chunk], [data[j] for j in chunk], device, torch.float32)
        steps = _trainer.train_steps(ms)
        for _ in range(2 * _trainer.GRAPH_WARMUP + 4):  # warm-up and captures
            next(steps)
        if cuda:
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            for _ in range(n):
                next(steps)
            if cuda:
                torch.cuda.synchronize()
        label = "replayed graphs" if graphs else "eager"
        events = prof.key_averages()
        if cuda:
            kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
            launches = sum(e.count for e in kernels)
            busy = sum(e.self_device_time_total for e in kernels) / 1e3
            print(f"\nfirst chunk ({len(chunk)} runs, {ms.r} models, {configs[chunk[0]].task}/{configs[chunk[0]].arch}), "
                  f"{n} next() calls, {label}: {launches} kernels, {busy:.2f} ms of kernel time")
            print(events.table(sort_by="self_device_time_total", row_limit=top))
        else:
            ops = [e for e in events if e.key.startswith("aten::")]
            print(f"\nfirst chunk ({len(chunk)} runs, {ms.r} models), {n} steps, {label}: "
                  f"{sum(e.count for e in ops)} aten calls")
            print(events.table(sort_by="self_cpu_time_total", row_limit=top))


if __name__ == "__main__":
    raise SystemExit(main())
