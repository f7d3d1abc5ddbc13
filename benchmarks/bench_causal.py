"""Benchmark the analysis on sweep-like simulated data (issues 3 and 9).

Targets on 2 CPU cores, 10,000 rows of :func:`causal.simulate_sweep.simulate_sweep`
(raw levers, design adjustment, diverged rows): ``fit_edges`` linear ≤ 5 s;
``fit_edges(method="dml")`` ≤ 120 s; edges + default mediation paths +
falsify ≤ 60 s. Reports wall time, the Python-heap peak (``tracemalloc``) per
step and the process's peak resident memory (``ru_maxrss``). Prints a markdown
table. ``--coverage SEEDS`` also prints how often linear and DML CIs cover the
true direct effects, on the default simulator and with nonlinear confounding.

Usage::

    python benchmarks/bench_causal.py [--rows 10000] [--seed 0] [--no-dml] [--kernel] [--coverage 3]

The first call of a step pays for DoWhy/statsmodels imports; that is timed
separately (``import``) so the step times are steady-state analysis times.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any


def _measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall time of an untraced call, then the heap peak of a second, traced call.

    tracemalloc slows allocation-heavy code, so timing and memory come from
    separate runs (the analyses are deterministic for a seed).
    """
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return wall, peak / 2**20, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-dml", action="store_true", help="skip the DML timing")
    parser.add_argument("--kernel", action="store_true", help="also time falsify(test='kernel')")
    parser.add_argument("--coverage", type=int, default=0, metavar="SEEDS",
                        help="also measure CI coverage of linear and DML over SEEDS simulated sweeps (3,000 rows)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    import dowhy.causal_estimators.linear_regression_estimator  # noqa: F401  (DoWhy import cost)
    import statsmodels.api  # noqa: F401

    from causal.edges import fit_edges
    from causal.graph_tests import falsify
    from causal.mediate import mediation_paths
    from causal.simulate_sweep import simulate_sweep

    import_s = time.perf_counter() - t0
    df = simulate_sweep(args.rows, seed=args.seed).data

    rows: list[tuple[str, float, float, str]] = [("import dowhy + statsmodels", import_s, float("nan"), "")]
    wall, peak, fx = _measure(lambda: fit_edges(df, seed=args.seed))
    rows.append(("fit_edges (linear, design adjustment, HC3)", wall, peak,
                 f"{len(fx.summary)} edges, {fx.n_diverged} diverged rows excluded; target ≤ 5 s"))
    total = wall
    wall, peak, fb = _measure(lambda: fit_edges(df, seed=args.seed, adjust="book"))
    rows.append(("fit_edges (linear, book adjustment)", wall, peak, f"{len(fb.summary)} edges"))
    if not args.no_dml:
        t1 = time.perf_counter()
        fd = fit_edges(df, seed=args.seed, method="dml")
        rows.append(("fit_edges (DML through DoWhy, 5 folds)", time.perf_counter() - t1, float("nan"),
                     f"{len(fd.summary)} edges; target ≤ 120 s"))

    wall, peak, med = _measure(lambda: mediation_paths(df, seed=args.seed))
    rows.append(("mediation_paths (defaults)", wall, peak, f"{len(med.summary)} rows"))
    total += wall
    wall, peak, fal = _measure(lambda: falsify(df, seed=args.seed))
    rows.append(("falsify (defaults)", wall, peak,
                 f"{len(fal.summary)} implications + {len(fal.randomization)} randomization checks"))
    total += wall
    rows.append(("total analysis (edges + mediation + falsify)", total, float("nan"), "target ≤ 60 s"))
    if args.kernel:
        t1 = time.perf_counter()
        fk = falsify(df, seed=args.seed, test="kernel")
        rows.append(("falsify (kernel test, 500-row subsamples)", time.perf_counter() - t1, float("nan"),
                     f"{len(fk.summary)} implications + {len(fk.randomization)} randomization checks, "
                     f"{int(fk.randomization['violated'].sum())} rejected"))

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    maxrss_mib = maxrss / 2**20 if sys.platform == "darwin" else maxrss / 2**10
    print(f"# causal benchmark: {args.rows:,} simulated rows, seed {args.seed}\n")
    print(f"{platform.processor() or platform.machine()}, python {platform.python_version()}\n")
    print("| step | wall (s) | Python heap peak (MiB) | note |")
    print("|---|---:|---:|---|")
    for name, wall, peak, note in rows:
        peak_s = "" if peak != peak else f"{peak:.1f}"
        print(f"| {name} | {wall:.2f} | {peak_s} | {note} |")
    print(f"\npeak resident memory of the process (ru_maxrss): {maxrss_mib:.0f} MiB")
    if args.coverage:
        _coverage(args.coverage)
    return 0


def _coverage(seeds: int) -> None:
    """CI coverage of the true direct effects: linear vs DML, default and nonlinear-confounding simulators."""
    import numpy as np

    from causal.edges import fit_edges
    from causal.simulate_sweep import simulate_sweep

    print("\n| simulator | adjust | method | edges x seeds | coverage | sharpness→convergence (truth −0.5) |")
    print("|---|---|---|---:|---:|---|")
    for nonlinear in (False, True):
        for adjust, method in (("design", "linear"), ("design", "dml"), ("book", "linear")):
            hits, sc = [], []
            for seed in range(seeds):
                sim = simulate_sweep(3000, seed=100 + seed, nonlinear_confounding=nonlinear)
                fx = fit_edges(sim.data, adjust=adjust, method=method, seed=seed)
                m = fx.summary.merge(sim.true_effects, on=["treatment", "outcome"])
                hits.extend((m["ci_low"] <= m["coefficient"]) & (m["coefficient"] <= m["ci_high"]))
                sc.append(f"{fx.effect('sharpness', 'convergence')['estimate']:+.2f}")
            name = "nonlinear confounding" if nonlinear else "default"
            print(f"| {name} | {adjust} | {method} | {len(hits)} | {np.mean(hits):.3f} | {', '.join(sc)} |")


if __name__ == "__main__":
    sys.exit(main())
