"""Benchmark the analysis on simulated data (issue 3 acceptance).

Targets on 2 CPU cores: ``fit_edges`` with analytic CIs on 10,000 rows in
≤ 10 s; edges + default mediation paths + falsify in ≤ 60 s. Reports wall
time, the Python-heap peak (``tracemalloc``) per step and the process's
peak resident memory (``ru_maxrss``). Prints a markdown table.

Usage::

    python benchmarks/bench_causal.py [--rows 10000] [--seed 0]

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
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    import dowhy.causal_estimators.linear_regression_estimator  # noqa: F401  (DoWhy import cost)
    import statsmodels.api  # noqa: F401

    from causal.edges import fit_edges
    from causal.graph_tests import falsify
    from causal.mediate import mediation_paths
    from causal.simulate import simulate_linear_scm

    import_s = time.perf_counter() - t0
    df = simulate_linear_scm(args.rows, seed=args.seed).data

    rows: list[tuple[str, float, float, str]] = [("import dowhy + statsmodels", import_s, float("nan"), "")]
    wall, peak, fx = _measure(lambda: fit_edges(df, seed=args.seed))
    rows.append(("fit_edges (linear, HC3 CIs)", wall, peak, f"{len(fx.summary)} edges; target ≤ 10 s"))
    total = wall

    wall, peak, med = _measure(lambda: mediation_paths(df, seed=args.seed))
    rows.append(("mediation_paths (defaults)", wall, peak, f"{len(med.summary)} rows"))
    total += wall
    wall, peak, fal = _measure(lambda: falsify(df, seed=args.seed))
    rows.append(("falsify (defaults)", wall, peak, f"{len(fal.summary)} rows"))
    total += wall
    rows.append(("total analysis (edges + mediation + falsify)", total, float("nan"), "target ≤ 60 s"))

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
