"""``udl report`` (the whole analysis of a runs table) and ``udl compare`` (two fits side by side).

Exit codes of ``udl compare``: 0 no edge flipped or shifted; 1 one did; 2 bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="the whole analysis as one self-contained HTML file (or a folder of tables and figures)",
        description="Run fit (pooled and per task), mediate, falsify, the measure scores (and check, given "
        "--baseline) on a runs table. --out FILE.html writes one self-contained HTML page (figures embedded, "
        "sortable tables, no network needed); any other --out is a folder of tables, figures, report.md and "
        "report.html.",
    )
    p.add_argument("data", help="a runs parquet file or shard directory")
    p.add_argument("--out", default="report", help="FILE.html, or an output folder (default: ./report)")
    p.add_argument("--baseline", help="sign baseline JSON to check against (optional)")
    p.add_argument("--adjust", choices=("design", "book"), default="design",
                   help="the book's graph plus the design (default) or the book's graph alone")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples for mediation CIs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--edge-plots", type=int, default=6,
                   help="most per-edge added-variable plots in the HTML (default 6; 0 for none)")
    p.set_defaults(func=_run)

    c = sub.add_parser(
        "compare",
        help="two sweeps (or fits, or sign baselines) edge by edge: flips, lost power, changed settings",
        description="Fit the book's edges on A and on B with the same settings (or read sign baselines given "
        "as .json) and compare them edge by edge. Tells a sign flip from lost power (a wider CI) and from "
        "a changed setting. Writes compare.csv, compare.json and compare.png (a paired forest plot) into --out.",
    )
    c.add_argument("a", metavar="A", help="runs parquet file, sweep directory or sign baseline .json (the reference)")
    c.add_argument("b", metavar="B", help="runs parquet file, sweep directory or sign baseline .json")
    c.add_argument("--out", help="output folder for compare.csv/.json/.png (optional)")
    c.add_argument("--adjust", choices=("design", "book"), default="design",
                   help="adjustment of the fits of runs tables (default design)")
    c.add_argument("--diverged", choices=("exclude", "include"), default="exclude")
    c.add_argument("--alpha", type=float, default=None, help="significance level (default: A's, else 0.05)")
    c.add_argument("--all", action="store_true", help="print every edge, not only the changed ones")
    c.set_defaults(func=_compare)


def _run(args: argparse.Namespace) -> int:
    from causal.cli_fit import load_data
    from causal.report import report

    import shlex
    import sys

    df = load_data(args.data)
    command = "udl " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["report"] else None
    rep = report(df, baseline=args.baseline, adjust=args.adjust, alpha=args.alpha,
                 n_boot=args.n_boot, seed=args.seed, source=args.data, edge_plots=args.edge_plots,
                 command=command or f"udl report {shlex.quote(args.data)} --out {shlex.quote(args.out)}"
                 + (f" --baseline {shlex.quote(args.baseline)}" if args.baseline else ""))
    print(rep.markdown())
    if Path(args.out).suffix.lower() in (".html", ".htm"):
        out = rep.write_html(Path(args.out))
        print(f"\nreport written to {out} (one self-contained HTML file)")
    else:
        out = rep.write_dir(Path(args.out))
        print(f"\nreport written to {out}/ (report.html, report.md, edges.csv, mediation.csv, implications.csv, "
              f"missing_edges.csv, measure_scores.csv, forest.png, graph.png, mediation.png)")
    return 0 if rep.signs is None or rep.signs.passed else 1


def _compare(args: argparse.Namespace) -> int:
    from causal.compare import compare
    from causal.results import format_table

    fit = {"adjust": args.adjust, "diverged": args.diverged}
    if args.alpha is not None:
        fit["alpha"] = args.alpha
    paths = [Path(x).suffix.lower() != ".json" for x in (args.a, args.b)]
    cmp = compare(args.a, args.b, alpha=args.alpha, **(fit if any(paths) else {}))
    print(cmp.summary_text())
    if args.all:
        print("\nEvery edge\n" + format_table(cmp.summary[list(cmp.display_columns)]))
    if args.out:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        cmp.write(out / "compare.csv")
        cmp.write(out / "compare.json")
        ax = cmp.plot()
        ax.figure.savefig(out / "compare.png", dpi=110, bbox_inches="tight")
        plt.close(ax.figure)
        print(f"\ncomparison written to {out}/ (compare.csv, compare.json, compare.png)")
    return 1 if cmp.summary["status"].isin(("flipped", "shifted")).any() else 0
