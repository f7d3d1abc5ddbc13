"""Benchmark: one mixed sweep plan, run several ways: runs/s, GPU utilization, and whether the rows agree.

Usage (on a CUDA machine; ``--device cpu`` works too, without utilization)::

    python benchmarks/bench_gpu_sweep.py --space large --runs 1024 --seed 1 --shard-size 128 \\
        --variant off:1 --variant on:8 --limit 150 --out /tmp/bench

Each ``--variant PAD:WORKERS[:eager][:streams=K]`` runs ``udl generate`` with ``--pad-widths PAD --workers
WORKERS`` (with ``eager``, ``UDL_CUDA_GRAPHS=0``: eager training steps; with ``streams=K``,
``UDL_CUDA_STREAMS=K``: K chunks interleaved on their own CUDA streams) into its own directory; ``old:WORKERS``
runs the checkout given by ``--old-src`` instead (the code before a change, for a before/after on one
machine). Every variant draws the same runs (count, seed, space) and cuts shards of the same size (an
older checkout may order its plan differently, so its shards hold other runs).
A variant still running at ``--limit`` seconds is stopped (its finished shards stay; a shard is written
atomically), and its rate is rows written / wall time: a lower bound, since shards in flight count 0.
While a variant runs, ``nvidia-smi`` samples GPU utilization and memory every 0.5 s (the fraction of
time a kernel was running, as the driver reports it). The table gives rows, wall s, runs/s, GPU
utilization (mean and median over the run) and peak memory; then, for every pair of variants, the
largest relative difference of their common rows' metrics (padding and the process count must not
change a row beyond float rounding).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

METRICS = ("generalization", "test_loss", "gen_gap", "sharpness", "gradient_stability", "implicit_reg",
           "convergence", "bias_sq", "variance")


def _rows(path: Path) -> pd.DataFrame:
    files = sorted(path.glob("*.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


class Sampler:
    """``nvidia-smi`` utilization / memory samples in the background (nothing when there is no nvidia-smi)."""

    def __init__(self, path: Path):
        self.path, self.proc = path, None
        if shutil.which("nvidia-smi"):
            self.fh = open(path, "w")
            self.proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 "-lms", "500"], stdout=self.fh, stderr=subprocess.DEVNULL)

    def stop(self) -> dict[str, float]:
        if self.proc is None:
            return {}
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.fh.close()
        util, mem = [], []
        for line in self.path.read_text().splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0].isdigit():
                util.append(float(parts[0]))
                mem.append(float(parts[1]))
        if not util:
            return {}
        return {"util_mean": statistics.fmean(util), "util_median": statistics.median(util),
                "mem_peak_mib": max(mem), "samples": len(util)}


def run_variant(args, pad: str, workers: int, eager: bool = False, streams: int = 1) -> dict:
    old = pad == "old"
    name = ("old" if old else f"pad-{pad}") + f"_w{workers}" + ("_eager" if eager else "") + \
        (f"_s{streams}" if streams > 1 else "")
    out = Path(args.out).resolve() / name
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "causal.cli", "generate", "--runs", str(args.runs), "--seed", str(args.seed),
           "--space", args.space, "--shard-size", str(args.shard_size), "--device", args.device,
           "--workers", str(workers), "--out", str(out)]
    if not old:
        cmd += ["--pad-widths", pad]
    log = open(Path(args.out) / f"{name}.log", "w")
    sampler = Sampler(Path(args.out) / f"{name}.smi")
    env = {**os.environ, **({"UDL_CUDA_GRAPHS": "0"} if eager else {}), "UDL_CUDA_STREAMS": str(streams)}
    cwd = None
    if old:  # another checkout of the package (the code before a change): run from it, first on the path
        cwd = str(Path(args.old_src).resolve())
        env["PYTHONPATH"] = os.pathsep.join([cwd, env.get("PYTHONPATH", "")])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=cwd)
    try:
        rc = proc.wait(timeout=args.limit)
        stopped = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        rc, stopped = None, True
    wall = time.perf_counter() - t0
    util = sampler.stop()
    log.close()
    rows = _rows(out)
    label = (f"before ({args.old_src})" if old else f"pad {pad}") + f", {workers} worker(s)" + \
        (", no CUDA graphs" if eager else "") + (f", {streams} streams" if streams > 1 else "")
    return {"variant": label, "dir": out, "rows": len(rows), "wall_s": wall,
            "runs_per_s": len(rows) / wall, "stopped_at_limit": stopped, "rc": rc, **util, "frame": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="large")
    p.add_argument("--runs", type=int, default=1024)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--shard-size", type=int, default=128)
    p.add_argument("--device", default="cuda")
    p.add_argument("--variant", action="append", default=[], metavar="PAD:WORKERS[:eager][:streams=K]",
                   help="e.g. off:1:eager (no padding, one process, no CUDA graphs), on:8, or on:1:streams=16 "
                        "(16 chunks interleaved on their own CUDA streams; UDL_CUDA_STREAMS) (repeatable; "
                        "default on:1)")
    p.add_argument("--limit", type=float, default=300.0, help="seconds per variant before it is stopped")
    p.add_argument("--old-src", default=None,
                   help="a checkout of the package to run the 'old:WORKERS' variants with (the code before a "
                        "change, e.g. `git archive COMMIT | tar -x -C DIR`): the same plan, its own engine")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    variants = []
    for v in args.variant or ["on:1"]:
        parts = v.split(":")
        opts = parts[2:]
        ok = len(parts) >= 2 and parts[0] in ("auto", "on", "off", "old") and parts[1].isdigit() and all(
            o == "eager" or (o.startswith("streams=") and o[8:].isdigit()) for o in opts)
        if not ok:
            p.error(f"--variant must be PAD:WORKERS[:eager][:streams=K] with PAD auto, on, off or old; received {v!r}")
        if parts[0] == "old" and not args.old_src:
            p.error("a variant 'old:...' needs --old-src DIR (a checkout of the code to compare with)")
        streams = next((int(o[8:]) for o in opts if o.startswith("streams=")), 1)
        variants.append((parts[0], int(parts[1]), "eager" in opts, streams))
    print(f"plan: udl generate --space {args.space} --runs {args.runs} --seed {args.seed} "
          f"--shard-size {args.shard_size} --device {args.device}; limit {args.limit:.0f} s per variant", flush=True)
    results = []
    for pad, workers, eager, streams in variants:
        r = run_variant(args, pad, workers, eager, streams)
        results.append(r)
        print(f"  {r['variant']}: {r['rows']} rows in {r['wall_s']:.1f} s = {r['runs_per_s']:.2f} runs/s"
              f"{' (stopped at the limit)' if r['stopped_at_limit'] else ''}; rc {r['rc']}; "
              f"GPU util mean {r.get('util_mean', float('nan')):.0f}% median {r.get('util_median', float('nan')):.0f}%"
              f", peak memory {r.get('mem_peak_mib', float('nan')):.0f} MiB", flush=True)
    print()
    print("| variant | rows | wall s | runs/s | GPU util mean % | GPU util median % | peak GPU memory MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        stop = " (stopped)" if r["stopped_at_limit"] else ""
        print(f"| {r['variant']} | {r['rows']}{stop} | {r['wall_s']:.1f} | {r['runs_per_s']:.2f} | "
              f"{r.get('util_mean', float('nan')):.0f} | {r.get('util_median', float('nan')):.0f} | "
              f"{r.get('mem_peak_mib', float('nan')):.0f} |")
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            a, b = results[i]["frame"], results[j]["frame"]
            if a.empty or b.empty:
                continue
            m = a.merge(b, on="run_index", suffixes=("_a", "_b"))
            if m.empty:
                continue
            worst = {}
            for col in METRICS:
                x, y = m[f"{col}_a"].astype(float).to_numpy(), m[f"{col}_b"].astype(float).to_numpy()
                ok = np.isfinite(x) & np.isfinite(y)
                rel = np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-6)
                worst[col] = (float(np.median(rel)) if rel.size else float("nan"),
                              float(rel.max()) if rel.size else float("nan"),
                              int((np.isnan(x) != np.isnan(y)).sum()))
            div = int((m["diverged_a"] != m["diverged_b"]).sum())
            print(f"\nrows of {results[i]['variant']} vs {results[j]['variant']}: {len(m)} common runs, "
                  f"{div} differ in `diverged`; relative difference median / max, NaN mismatches:")
            for col, (med, mx, nan) in worst.items():
                print(f"  {col}: {med:.1e} / {mx:.1e}, {nan}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
