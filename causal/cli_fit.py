"""``udl fit`` and ``udl dag``: thin commands over :mod:`causal.edges` and the graph.

Registration only builds parsers; pandas, DoWhy and matplotlib load inside the
handlers, so ``udl --version`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["register", "add_adjust_diverged", "load_data"]

# the choices come from causal.prepare's Literals; repeated here as strings so that building the
# parser imports no pandas (`udl --version` stays fast); a test checks that the two agree
ADJUST_CHOICES = ("design", "book")
DIVERGED_CHOICES = ("exclude", "include")


def add_adjust_diverged(parser: argparse.ArgumentParser, *, from_baseline: bool = False) -> None:
    """``--adjust`` and ``--diverged``, shared by ``udl fit``, ``mediate``, ``falsify``, ``effects`` and ``check``.

    With ``from_baseline`` (``udl check``) both default to None: the baseline's settings.
    """
    parser.add_argument(
        "--adjust", choices=ADJUST_CHOICES, default=None if from_baseline else "design",
        help="identify on the book's graph plus the experiment's design or on the book's graph alone "
             + ("(default: the baseline's; 'design' when writing)" if from_baseline else "(default design)"))
    parser.add_argument(
        "--diverged", choices=DIVERGED_CHOICES, default=None if from_baseline else "exclude",
        help="exclude diverged runs or include them "
             + ("(default: the baseline's; 'exclude' when writing)" if from_baseline else "(default exclude)"))


def load_data(path: str) -> "pd.DataFrame":
    """:func:`causal.load_runs` of a command's DATA, with a note on stderr when it is an unfinished sweep."""
    from causal.load import load_runs, unfinished_note

    df = load_runs(path)
    note = unfinished_note(path, len(df))
    if note:
        print(note, file=sys.stderr)
    return df


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fit`` and ``dag`` commands to the ``udl`` dispatcher."""
    p = subparsers.add_parser(
        "fit",
        help="estimate the direct effect of every book edge present in a runs table",
        description=(
            "Identify each column-level edge of the book's graph with DoWhy, estimate its direct effect "
            "with a CI, correct p-values across edges and give a verdict (supports / contradicts / "
            "inconclusive). Prints a table; --out also writes it."
        ),
    )
    p.add_argument("data", metavar="DATA", help="a .parquet file or a sweep directory of shards")
    p.add_argument("--method", choices=("linear", "dml"), default="linear",
                   help="linear OLS via DoWhy (default) or cross-fitted double ML")
    add_adjust_diverged(p)
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--correction", choices=("holm", "fdr_bh", "bonferroni", "none"), default="holm",
                   help="multiple-testing correction across edges (default holm)")
    p.add_argument("--se", choices=("hc3", "hc1", "classical"), default="hc3",
                   help="standard errors: robust HC3 (default), HC1 or classical (causal.regression)")
    p.add_argument("--refute", action="store_true", help="also run placebo / random-cause / subset refuters (slow)")
    p.add_argument("--seed", type=int, default=0, help="seed for DML folds and refuters (default 0)")
    p.add_argument("--out", metavar="FILE", help="write the summary to FILE.csv, FILE.json or FILE.parquet")
    p.set_defaults(func=_fit)

    d = subparsers.add_parser(
        "dag",
        help="print or draw the book's causal graph",
        description="Print the book's graph as an edge list, DOT or GML, or draw it to a PNG.",
    )
    d.add_argument("--level", choices=("concept", "column"), default="concept",
                   help="concept graph (21 nodes) or the column-level graph fitted by `udl fit`")
    d.add_argument("--format", choices=("text", "dot", "gml", "png"), default="text", help="output format")
    d.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout (required for png)")
    d.set_defaults(func=_dag)


def _fit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from causal.edges import fit_edges
    from causal.errors import ConfigError

    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json", ".parquet"):
        raise ConfigError(f"--out {args.out!r}: use a .csv, .json or .parquet file name")
    df = load_data(args.data)
    effects = fit_edges(
        df, method=args.method, adjust=args.adjust, alpha=args.alpha, correction=args.correction,
        refute=args.refute, seed=args.seed, se=args.se,
        diverged=args.diverged,
    )
    effects.print_summary()
    print("\n" + closing_line(effects.summary["verdict"], len(df)))
    if args.out:
        path = effects.write(args.out)
        print(f"\nwrote {path}")
    return 0


def closing_line(verdicts: "pd.Series", rows: int) -> str:
    """The last thing ``udl fit`` prints: the verdict counts in words, and what to do when there is no power."""
    counts = verdicts.value_counts()
    n = {v: int(counts.get(v, 0)) for v in ("supports", "contradicts", "inconclusive")}
    est = sum(n.values())
    line = (f"In short: of {est} estimated edges, the data supports the book's sign on {n['supports']}, "
            f"contradicts it on {n['contradicts']} and cannot tell on {n['inconclusive']} ({rows} runs).")
    if est and n["inconclusive"] == est:
        line += (f"\n{rows} runs are too few to tell; a sweep of the large space (`udl generate --space large`) or "
                 "the shipped reference sweep (`udl fit data/reference` in a checkout) has more.")
    return line


def dag_text(level: str = "concept") -> str:
    """A readable edge list of the book's graph with expected signs and chapters."""
    from causal.graph import BOOK_DAG, EdgeKind

    lines = []
    if level == "concept":
        lines.append(f"{'#':>3}  {'edge':<58} sign   chapter")
        for e in BOOK_DAG.edges.values():
            label = e.label if e.kind is EdgeKind.ARROW else f"{e.source} moderates edge {e.moderates}"
            sign = e.sign.value
            if e.regime_signs:
                sign += " (" + ", ".join(f"{k} {v.value}" for k, v in e.regime_signs.items()) + ")"
            if e.column_signs:
                sign += " (" + ", ".join(f"{k} {v.value}" for k, v in e.column_signs.items()) + ")"
            lines.append(f"{e.number:>3}  {label:<58} {sign:<6} {e.chapter}")
        kinds = {}
        for c in BOOK_DAG.concepts.values():
            kinds.setdefault(c.kind.value, []).append(c.id)
        lines.append("")
        lines.extend(f"{k:<9} {', '.join(v)}" for k, v in kinds.items())
    else:
        lines.append(f"{'#':>3}  {'treatment → outcome':<44} sign  concept edge")
        for ce in BOOK_DAG.column_edges():
            lines.append(f"{ce.number:>3}  {ce.treatment + ' → ' + ce.outcome:<44} {ce.expected_sign.value:<5} {ce.edge}")
    return "\n".join(lines) + "\n"


def _dag(args: argparse.Namespace) -> int:
    from pathlib import Path

    from causal.errors import ConfigError
    from causal.graph import BOOK_DAG

    if args.format == "png":
        if not args.out:
            raise ConfigError("--format png needs --out FILE.png")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from causal.plots import draw_graph

        g = BOOK_DAG.to_networkx(args.level)
        styles = {(u, v): "dashed" for u, v, d in g.edges(data=True) if d.get("moderates")}
        labels = {(u, v): f"{d.get('number')} ({d.get('expected_sign')})" for u, v, d in g.edges(data=True)}
        fig, ax = plt.subplots(figsize=(16, 9) if args.level == "column" else (14, 8))
        draw_graph(g, ax, edge_styles=styles, edge_labels=labels,
                   title=f"Understanding Deep Learning: the book's causal graph ({args.level} level)")
        fig.tight_layout()
        fig.savefig(args.out, dpi=120)
        plt.close(fig)
        print(f"wrote {args.out}")
        return 0
    if args.format == "text":
        text = dag_text(args.level)
    elif args.format == "dot":
        text = BOOK_DAG.to_dot(args.level)
    else:
        text = BOOK_DAG.to_gml(args.level)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0
