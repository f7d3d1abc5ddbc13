"""Benchmark: cost per generative run (VAE, GAN, flow, diffusion), batched vs naive engine.

Usage::

    python benchmarks/bench_generative.py --threads 1 --runs 8 --steps 400

For each architecture, times ``train_runs`` end to end (training, samples,
sample quality and every mediator, as a sweep runs them) on ``--runs`` runs of
one shape (K replicas each, mixed optimizers and learning rates, 512
mixture samples, batch 128) with the batched engine (one chunk) and the naive
one (one module per replica), and prints a markdown table: seconds per run,
the speed-up and mean precision. On a shared machine the load average before
and after is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import cpu_model, load  # noqa: E402

from runs_generator._toydata import toy_config  # noqa: E402
from runs_generator.engine import resolve_device, train_runs  # noqa: E402
from runs_generator.generative import generative_data  # noqa: E402

OBJECTIVE = {"vae": "elbo", "gan": "adversarial", "flow": "nll", "diffusion": "denoising"}


def configs(arch: str, args) -> list:
    return [toy_config(task="generative", problem="generation", arch=arch, loss=OBJECTIVE[arch], run_index=i, seed=i,
                       width=args.width, depth=args.depth, n_train=512, batch_size=128, steps=args.steps,
                       replicas=args.replicas, optimizer=("adam", "momentum")[i % 2], lr=(3e-3, 1e-2)[i % 2])
            for i in range(args.runs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--archs", default="vae,gan,flow,diffusion")
    ap.add_argument("--engines", default="batched,naive")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    warm = configs("diffusion", argparse.Namespace(**{**vars(args), "runs": 1, "steps": 3}))
    train_runs(warm, [generative_data(c, sweep_seed=0) for c in warm], device=device)  # imports, first calls
    before = load()
    rows = []
    for arch in args.archs.split(","):
        cfgs = configs(arch, args)
        data = [generative_data(c, sweep_seed=0) for c in cfgs]
        times, prec = {}, None
        for engine in args.engines.split(","):
            t = time.perf_counter()
            out = train_runs(cfgs, data, engine=engine, device=device)  # type: ignore[arg-type]
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[engine] = time.perf_counter() - t
            ok = [m.precision for m in out if m.precision is not None]
            prec = sum(ok) / len(ok) if ok else float("nan")
        rows.append((arch, out[0].n_params, times, prec))
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs{gpu}, device {device}, torch {torch.__version__}, "
          f"{args.threads} thread(s); load average (1/5/15 min) before {before}, after {load()}")
    print(f"{args.runs} runs x {args.replicas} replicas per arch, width {args.width} depth {args.depth}, 512 samples, "
          f"batch 128, {args.steps} steps; 1,000 samples per replica scored against 1,000 held-out\n")
    engines = args.engines.split(",")
    print("| arch | params | " + " | ".join(f"{e} s/run" for e in engines)
          + (" | speed-up" if len(engines) == 2 else "") + " | mean precision |")
    print("|---|---:|" + "---:|" * len(engines) + ("---:|" if len(engines) == 2 else "") + "---:|")
    for arch, n_params, times, prec in rows:
        per = [times[e] / args.runs for e in engines]
        speed = f" | {per[1] / per[0]:.1f}x" if len(engines) == 2 else ""
        print(f"| {arch} | {n_params} | " + " | ".join(f"{p:.2f}" for p in per) + f"{speed} | {prec:.2f} |")


if __name__ == "__main__":
    main()
