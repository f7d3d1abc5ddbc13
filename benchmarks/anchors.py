"""Known-answer anchor runs: fixed configurations trained with the default budget rule.

Acceptance (issue 8): MNIST-1D with 4,000 training examples, CNN >= 0.88 and
MLP >= 0.60 test accuracy (the MNIST-1D paper reports 0.94 and 0.68); the
teacher tasks at zero noise, classification >= 0.90 accuracy and regression
R² >= 0.90. Each anchor is one run of K = 4 replicas drawn from the large
space with every lever fixed except ``steps``, which the budget rule resolves
(``max(min_steps, ceil(epochs x n_train / batch))``).

``--double-descent`` also trains MNIST-1D with 15% label noise over a range of
widths (one configuration otherwise) and prints test error against width and
``params / (n_train x classes)``: the book's double descent (ch. 8).

Usage::

    python benchmarks/anchors.py                      # the four anchors (~10 min on one CPU core)
    python benchmarks/anchors.py --only teacher       # a subset by name
    python benchmarks/anchors.py --double-descent     # the width sweep (~10 min on one CPU core)
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass

ANCHOR_LEVERS = dict(  # shared by every anchor: plain, well-configured training
    init_scale=1.0, optimizer="adam", lr=3e-3, batch_size=64, weight_decay=0.0, dropout=0.0, label_smoothing=0.0,
    augmentation=False, early_stopping=False, normalization="none", residual=False, noise=0.0, epochs=50,
)


@dataclass(frozen=True)
class Anchor:
    name: str
    levers: dict
    threshold: float  # acceptance: generalization (accuracy or R²) at least this


ANCHORS = (
    Anchor("mnist1d-cnn", dict(task="mnist1d", arch="cnn", width=32, depth=3, loss="cross_entropy", n_train=4000), 0.88),
    Anchor("mnist1d-mlp", dict(task="mnist1d", arch="mlp", width=128, depth=2, loss="cross_entropy", n_train=4000), 0.60),
    Anchor("teacher-classification", dict(task="teacher", problem="classification", arch="mlp", width=128, depth=2,
                                          loss="cross_entropy", n_train=4000), 0.90),
    Anchor("teacher-regression", dict(task="teacher", problem="regression", arch="mlp", width=128, depth=2,
                                      loss="mse", noise_dist="gaussian", n_train=4000), 0.90),
)

#: the double-descent setting: MNIST-1D, 15% label noise, one hidden layer, no regularization, trained far past
#: interpolation (400 epochs); a two-layer MLP at Adam lr 1e-3 / 300 epochs showed no clear peak
DD_LEVERS = dict(task="mnist1d", arch="mlp", depth=1, loss="cross_entropy", init_scale=1.0, optimizer="adam", lr=5e-3,
                 batch_size=64, weight_decay=0.0, dropout=0.0, label_smoothing=0.0, augmentation=False,
                 early_stopping=False, normalization="none", residual=False, n_train=1000, noise=0.15, epochs=400)
DD_WIDTHS = (4, 8, 12, 16, 20, 24, 32, 48, 64, 128, 256)


def _train(levers: dict, runs: int = 1, vary: dict | None = None, seed: int = 0):
    import torch

    from runs_generator.engine import train_runs
    from runs_generator.levers import LARGE_SPACE
    from runs_generator.tasks import make_task_data

    torch.set_num_threads(1)
    o = LARGE_SPACE.overrides(fix=levers, vary=vary)
    cfgs = LARGE_SPACE.draw_all(seed, runs, o)
    data = [make_task_data(c, sweep_seed=seed) for c in cfgs]
    t0 = time.perf_counter()
    res = train_runs(cfgs, data)
    return cfgs, data, res, time.perf_counter() - t0


def run_anchors(only: str | None) -> bool:
    ok = True
    print(f"# anchors: {platform.processor() or platform.machine()}, python {platform.python_version()}, 1 thread")
    print("| anchor | steps | test accuracy / R² | threshold | pass | wall s |")
    print("|---|---|---|---|---|---|")
    for a in ANCHORS:
        if only and only not in a.name:
            continue
        cfgs, _, res, wall = _train({**ANCHOR_LEVERS, **a.levers})
        g = res[0].generalization
        passed = g is not None and g >= a.threshold
        ok &= passed
        print(f"| {a.name} | {cfgs[0].steps} | {g:.3f} | {a.threshold} | {'yes' if passed else 'NO'} | {wall:.0f} |",
              flush=True)
    return ok


def run_double_descent(changes: dict, widths: tuple[int, ...] = DD_WIDTHS) -> None:
    from runs_generator._modelset import arch_spec
    from runs_generator.models import count_params

    levers = {**DD_LEVERS, **changes}
    cfgs, data, res, wall = _train(levers, runs=len(widths), vary={"width": list(widths)})
    print(f"# double descent: {levers}, {cfgs[0].steps} steps, K=4; {wall:.0f} s")
    print("| width | params | params / (n_train x 10) | train loss | test error |")
    print("|---|---|---|---|---|")
    errs = []
    for c, d, r in zip(cfgs, data, res):
        p = count_params(arch_spec(c, d))
        errs.append(r.test_error)
        print(f"| {c.width} | {p} | {p / (c.n_train * 10):.2f} | {r.train_loss_final:.3g} | {r.test_error:.3f} |")
    # the second peak: the worst width after the first local minimum of test error (the first descent)
    first_min = next((i for i in range(1, len(errs) - 1) if errs[i] <= errs[i - 1] and errs[i] < errs[i + 1]), 0)
    peak = max(range(first_min, len(errs)), key=lambda i: errs[i])
    c, d = cfgs[peak], data[peak]
    print(f"first minimum: width {cfgs[first_min].width}, test error {errs[first_min]:.3f}; peak: width {c.width}, "
          f"params / (n_train x classes) = {count_params(arch_spec(c, d)) / (c.n_train * 10):.2f}, "
          f"params / n_train = {count_params(arch_spec(c, d)) / c.n_train:.2f}, test error {errs[peak]:.3f}; "
          f"widest: test error {errs[-1]:.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="run the anchors whose name contains this")
    ap.add_argument("--double-descent", action="store_true", help="run the width sweep instead of the anchors")
    ap.add_argument("--set", action="append", default=[], metavar="LEVER=VALUE",
                    help="change a lever of the double-descent setting (repeatable)")
    ap.add_argument("--widths", help="comma-separated widths of the double-descent sweep")
    args = ap.parse_args(argv)
    if args.double_descent:
        from runs_generator.levers import LARGE_SPACE

        changes = dict(kv.split("=", 1) for kv in args.set)
        changes = {k: LARGE_SPACE.lever(k).parse(v) for k, v in changes.items()}
        widths = tuple(int(w) for w in args.widths.split(",")) if args.widths else DD_WIDTHS
        run_double_descent(changes, widths)
        return 0
    return 0 if run_anchors(args.only) else 1


if __name__ == "__main__":
    sys.exit(main())
