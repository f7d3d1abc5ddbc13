"""Which optimizer settings teach each generative architecture? A grid, not a timing benchmark.

Usage::

    python benchmarks/grid_generative.py --threads 1 --out grid.csv
    python benchmarks/grid_generative.py --archs vae,gan --steps 1500,3000 --optimizers adam,momentum

For every architecture and width (16, 64; depth 2, 512 mixture samples, batch
128, two replicas per run), trains the full grid init_scale x lr x steps x
optimizer (momentum at a third of Adam's lr, as its effective step is ~10x
larger) as one batched call per (arch, width), and prints one row per run:
diverged, precision, recall, coverage, mode coverage, convergence and sample
log-likelihood, then the median precision per (arch, optimizer, init). A fitted
Gaussian scores precision 0.25 on this mixture (``tests/test_generative.py``):
a run at or below it learnt nothing. This grid chose the generative ranges of
space ``2-all`` (``runs_generator/levers.py``; numbers in
``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import pandas as pd
import torch

from runs_generator._gen_trainer import train_generative
from runs_generator._toydata import toy_config
from runs_generator.generative import generative_data

OBJECTIVE = {"vae": "elbo", "gan": "adversarial", "flow": "nll", "diffusion": "denoising"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="vae,gan,flow,diffusion")
    ap.add_argument("--widths", default="16,64")
    ap.add_argument("--inits", default="0.5,1.0,2.0")
    ap.add_argument("--lrs", default="1e-3,3e-3,1e-2", help="Adam learning rates (momentum runs at a third)")
    ap.add_argument("--steps", default="1500,3000")
    ap.add_argument("--optimizers", default="adam,momentum")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the rows to this CSV")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    floats = lambda text: [float(v) for v in text.split(",")]  # noqa: E731
    rows = []
    for arch in args.archs.split(","):
        for width in (int(w) for w in args.widths.split(",")):
            grid = itertools.product(floats(args.inits), floats(args.lrs), (int(s) for s in args.steps.split(",")),
                                     args.optimizers.split(","))
            cfgs = [toy_config(run_index=i, seed=100 + i, task="generative", problem="generation", arch=arch,
                               loss=OBJECTIVE[arch], width=width, depth=2, n_train=512, batch_size=128, steps=steps,
                               optimizer=opt, lr=lr if opt == "adam" else lr / 3, init_scale=init, replicas=2)
                    for i, (init, lr, steps, opt) in enumerate(grid)]
            t0 = time.perf_counter()
            results = train_generative(cfgs, [generative_data(c, sweep_seed=1) for c in cfgs])
            print(f"{arch} width {width}: {len(cfgs)} runs in {time.perf_counter() - t0:.0f} s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
            rows += [dict(arch=arch, width=width, init=c.init_scale, optimizer=c.optimizer, lr=c.lr, steps=c.steps,
                          diverged=m.diverged, precision=m.precision, recall=m.recall, coverage=m.coverage,
                          mode_coverage=m.mode_coverage, convergence=m.convergence, sample_loglik=m.sample_loglik)
                     for c, m in zip(cfgs, results)]
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_rows", 10_000):
        print(df.round(3).to_string())
        print(df.groupby(["arch", "optimizer", "init"]).agg(
            runs=("precision", "size"), diverged=("diverged", "sum"),
            median_precision=("precision", "median")).round(2).to_string())
    if args.out:
        df.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
