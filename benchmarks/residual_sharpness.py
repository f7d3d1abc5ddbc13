"""Edge 14 on a known case: sharpness of plain vs residual MLPs at init and after training (not a timing benchmark).

Usage::

    python benchmarks/residual_sharpness.py

Teacher classification (20 inputs, 4 classes, 512 examples, batch 64), width
64, depth 2-4, Adam 1e-3, one step (initialization) or 1,500 steps, 3 run seeds
x 2 replicas; prints the mean log10 top Hessian eigenvalue (``sharpness``),
``convergence`` and test accuracy per (steps, depth, residual). The generator's
skips are unscaled (h <- relu(W h) + h): each doubles the activations' variance
at He init, so sharpness at init should rise by ~log10 2 = 0.30 per skip
(``tests/test_measure.py::test_each_identity_skip_doubles_sharpness_at_init``).
Numbers in ``benchmarks/RESULTS.md`` ("Reference sweep, space 2-all").
"""

from __future__ import annotations

import itertools

import pandas as pd
import torch

from runs_generator._toydata import toy_config, toy_data
from runs_generator.engine import train_runs


def main() -> None:
    torch.set_num_threads(1)
    grid = list(itertools.product((False, True), (2, 3, 4), (1, 1500), range(3)))
    cfgs = [toy_config(run_index=i, seed=seed, width=64, depth=depth, residual=res, steps=steps, optimizer="adam",
                       lr=1e-3, n_train=512, batch_size=64, replicas=2, problem="classification",
                       loss="cross_entropy")
            for i, (res, depth, steps, seed) in enumerate(grid)]
    results = train_runs(cfgs, [toy_data(c, n_in=20, n_outputs=4, data_seed=7) for c in cfgs])
    df = pd.DataFrame([dict(residual=c.residual, depth=c.depth, steps=c.steps, sharpness=m.sharpness,
                            convergence=m.convergence, accuracy=m.generalization) for c, m in zip(cfgs, results)])
    table = df.groupby(["steps", "depth", "residual"])[["sharpness", "convergence", "accuracy"]].mean()
    print(table.round(3).unstack("residual").to_string())


if __name__ == "__main__":
    main()
