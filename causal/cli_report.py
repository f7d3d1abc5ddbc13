"""``udl report``: the whole analysis of a runs table into one folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="edges, mediation paths, graph tests (and sign check) into one folder",
        description="Run fit, mediate and falsify (and check, given --baseline) on a runs table "
        "and write tables, figures and report.md into --out.",
    )
    p.add_argument("data", help="a runs parquet file or shard directory")
    p.add_argument("--out", default="report", help="output folder (default: ./report)")
    p.add_argument("--baseline", help="sign baseline JSON to check against (optional)")
    p.add_argument("--adjust", choices=("design", "book"), default="design",
                   help="the book's graph plus the design (default) or the book's graph alone")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples for mediation CIs")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from causal.load import load_runs
    from causal.report import report

    df = load_runs(args.data)
    rep = report(df, baseline=args.baseline, adjust=args.adjust, alpha=args.alpha,
                 n_boot=args.n_boot, seed=args.seed)
    out = rep.write_dir(Path(args.out))
    print(rep.markdown())
    print(f"\nreport written to {out}/ (report.md, edges.csv, mediation.csv, implications.csv, "
          f"missing_edges.csv, forest.png, graph.png, mediation.png)")
    return 0 if rep.signs is None or rep.signs.passed else 1
