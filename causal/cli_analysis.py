"""``udl mediate``, ``udl effects``, ``udl falsify`` and ``udl check``: thin commands over the analyses.

Registration only builds parsers; pandas, statsmodels, DoWhy and matplotlib
load inside the handlers, so ``udl --version`` stays fast.

Exit codes: 0 success; 1 ``udl check`` found a failing edge (or ``udl falsify
--fail-on-violation`` found a violation); 2 bad input (the dispatcher prints
the error).
"""

from __future__ import annotations

import argparse
from typing import Any

from causal.cli_fit import add_adjust_diverged

__all__ = ["register"]

_SUFFIXES = (".csv", ".json", ".parquet")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``mediate``, ``effects``, ``falsify`` and ``check`` commands to the ``udl`` dispatcher."""
    m = subparsers.add_parser(
        "mediate",
        help="path-specific (indirect), direct and total effects along the book's paths",
        description=(
            "Fit the book's graph as a linear SEM and decompose each lever's effect along a path "
            "(product of the path's coefficients), with bootstrap CIs (estimate ± z·sd). Without --path, "
            "every path from a lever through its mediators to generalization."
        ),
    )
    m.add_argument("data", metavar="DATA", help="a .parquet file or a sweep directory of shards")
    m.add_argument("--path", action="append", metavar='"a -> b -> c"',
                   help="a directed path of column names (repeatable); default: the book's paths")
    _add_bootstrap_options(m, "of the path-specific p-values across paths")
    add_adjust_diverged(m)
    m.add_argument("--out", metavar="FILE", help="write the table to FILE.csv, FILE.json or FILE.parquet")
    m.set_defaults(func=_mediate)

    f = subparsers.add_parser(
        "falsify",
        help="test the graph's implied conditional independences; find strong missing edges",
        description=(
            "Test every local Markov condition of the book's column graph (X independent of its "
            "non-descendants given its parents), corrected for multiple testing, and list strong "
            "lever -> mediator/outcome effects the graph lacks."
        ),
    )
    f.add_argument("data", metavar="DATA", help="a .parquet file or a sweep directory of shards")
    f.add_argument("--test", choices=("fisher_z", "kernel"), default="fisher_z",
                   help="partial-correlation Fisher z (default) or residual HSIC on a subsample, its null from "
                        "permutations within the levels of discrete parents (~20x slower)")
    f.add_argument("--alpha", type=float, default=0.05, help="level after correction (default 0.05)")
    f.add_argument("--correction", choices=("holm", "fdr_bh", "bonferroni"), default="holm",
                   help="multiple-testing correction (default holm)")
    f.add_argument("--max-conditioning", type=int, default=None, help="skip larger conditioning sets")
    f.add_argument("--threshold", type=float, default=0.1,
                   help="minimum |standardized effect| of a reported missing edge (default 0.1)")
    f.add_argument("--kernel-rows", type=int, default=500, help="rows per kernel test (default 500)")
    f.add_argument("--seed", type=int, default=0, help="seed of the kernel test's subsamples (default 0)")
    add_adjust_diverged(f)
    f.add_argument("--fail-on-violation", action="store_true",
                   help="exit 1 when an implication is violated or a strong missing edge is found")
    f.add_argument("--out", metavar="FILE",
                   help="write the implications to FILE.csv/.parquet, or everything to FILE.json")
    f.set_defaults(func=_falsify)

    e = subparsers.add_parser(
        "effects",
        help="total effect of every randomized lever on every mediator and outcome, pooled and per family",
        description=(
            "Regress each mediator and outcome on each randomized lever, adjusted for the other randomized "
            "columns that are not its descendants: the lever's total effect (all paths), with bootstrap CIs, "
            "pooled (columns whose units differ by problem in within-family sd) and per task/problem family "
            "in raw units, each also in words ('+1 decade of lr: +3.8 accuracy points'). mediate's 'total' "
            "is the same number for the same --n-boot and --seed."
        ),
    )
    e.add_argument("data", metavar="DATA", help="a .parquet file or a sweep directory of shards")
    e.add_argument("--lever", action="append", metavar="COLUMN",
                   help="a randomized column (repeatable); default: every book lever and context that varies")
    e.add_argument("--outcome", action="append", metavar="COLUMN",
                   help="a mediator or outcome column (repeatable); default: every one present")
    e.add_argument("--pooled-only", action="store_true", help="skip the per-family estimates")
    _add_bootstrap_options(e, "across the effects of each family")
    add_adjust_diverged(e)
    e.add_argument("--out", metavar="FILE", help="write the table to FILE.csv, FILE.json or FILE.parquet")
    e.set_defaults(func=_effects)

    c = subparsers.add_parser(
        "check",
        help="fail when an edge changed beyond sampling noise against a baseline",
        description=(
            "Fit every book edge on DATA with the baseline's settings and compare with the baseline FILE. "
            "Exits 1 when a significant edge's new CI lies on the other side of 0, when an estimate moved "
            "significantly given both standard errors (corrected over edges), or when a significant edge is "
            "missing; lost or gained significance is a warning. Refuses a baseline made with other settings. "
            "--write-baseline creates FILE from DATA."
        ),
    )
    c.add_argument("data", metavar="DATA", help="a .parquet file or a sweep directory of shards")
    c.add_argument("--baseline", required=True, metavar="FILE", help="the baseline JSON file")
    c.add_argument("--alpha", type=float, default=None,
                   help="significance level of p_adjusted (default: the baseline's; 0.05 when writing)")
    c.add_argument("--write-baseline", action="store_true", help="write FILE from DATA instead of checking")
    add_adjust_diverged(c, from_baseline=True)
    c.add_argument("--n-boot", type=int, default=200,
                   help="bootstrap resamples for the sign-stability column (default 200; 0 skips it)")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    c.add_argument("--out", metavar="FILE", help="write the comparison to FILE.csv, FILE.json or FILE.parquet")
    c.set_defaults(func=_check)


def _add_bootstrap_options(parser: argparse.ArgumentParser, correction_of: str) -> None:
    """--n-boot, --seed, --alpha and --correction of the bootstrap analyses (mediate, effects)."""
    parser.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - CI level (default 0.05)")
    parser.add_argument("--correction", choices=("holm", "fdr_bh", "bonferroni", "none"), default="holm",
                        help=f"correction {correction_of} (default holm)")


def _check_out(out: str | None) -> None:
    from pathlib import Path

    from causal.errors import ConfigError

    if out and Path(out).suffix.lower() not in _SUFFIXES:
        raise ConfigError(f"--out {out!r}: use a .csv, .json or .parquet file name")


def _write(result: Any, out: str | None) -> None:
    if out:
        print(f"\nwrote {result.write(out)}")


def _mediate(args: argparse.Namespace) -> int:
    _check_out(args.out)
    from causal.cli_fit import load_data
    from causal.mediate import mediation_paths

    df = load_data(args.data)
    table = mediation_paths(df, args.path, n_boot=args.n_boot, seed=args.seed, alpha=args.alpha,
                            correction=args.correction, adjust=args.adjust, diverged=args.diverged)
    table.print_summary()
    _write(table, args.out)
    return 0


def _effects(args: argparse.Namespace) -> int:
    _check_out(args.out)
    from causal.cli_fit import load_data
    from causal.totals import total_effects

    res = total_effects(load_data(args.data), levers=args.lever, outcomes=args.outcome, n_boot=args.n_boot,
                        seed=args.seed, alpha=args.alpha, correction=args.correction, adjust=args.adjust,
                        diverged=args.diverged, by_family=not args.pooled_only)
    res.print_summary()
    _write(res, args.out)
    return 0


def _falsify(args: argparse.Namespace) -> int:
    _check_out(args.out)
    from causal.graph_tests import falsify
    from causal.cli_fit import load_data

    df = load_data(args.data)
    res = falsify(df, test=args.test, alpha=args.alpha, correction=args.correction,
                  max_conditioning=args.max_conditioning, missing_edge_threshold=args.threshold,
                  seed=args.seed, kernel_rows=args.kernel_rows, adjust=args.adjust, diverged=args.diverged)
    res.print_summary()
    _write(res, args.out)
    return 1 if args.fail_on_violation and not res.passed else 0


def _check(args: argparse.Namespace) -> int:
    _check_out(args.out)
    from causal.edges import fit_edges
    from causal.cli_fit import load_data
    from causal.stability import bootstrap_sign_stability, check_signs, read_baseline, write_baseline

    if args.write_baseline:
        df = load_data(args.data)
        effects = fit_edges(df, alpha=args.alpha if args.alpha is not None else 0.05,
                            adjust=args.adjust or "design", diverged=args.diverged or "exclude")
        path = write_baseline(effects, args.baseline, data=str(args.data))
        n_sig = int((effects.summary["p_adjusted"] < effects.config.alpha).sum())
        print(f"wrote baseline {path}: {len(effects.summary)} edges, {n_sig} significant "
              f"at alpha={effects.config.alpha}")
        return 0
    doc = read_baseline(args.baseline)  # fail on a bad baseline before the slow fit
    df = load_data(args.data)
    alpha = float(doc["alpha"] if args.alpha is None else args.alpha)
    settings = doc.get("settings", {})
    # the baseline's own settings by default; explicit flags that differ are refused by check_signs
    effects = fit_edges(df, alpha=alpha, adjust=args.adjust or settings.get("adjust", "design"),
                        diverged=args.diverged or settings.get("diverged", "exclude"),
                        method=settings.get("method", "linear"),
                        se=settings.get("se", "hc3") if settings.get("method", "linear") == "linear" else "hc3",
                        correction=settings.get("correction", "holm"))
    stability = (bootstrap_sign_stability(df, effects=effects, n_boot=args.n_boot, seed=args.seed)
                 if args.n_boot else None)
    check = check_signs(effects, args.baseline, alpha=alpha, stability=stability)
    check.print_summary()
    _write(check, args.out)
    if not check.passed:
        names = ", ".join(f"{t}→{o}{f' [{r}]' if r else ''} ({s})" for t, o, r, s in
                          check.failures[["treatment", "outcome", "regime", "status"]].itertuples(index=False))
        print(f"\nFAILED: {len(check.failures)} edge(s) changed: {names}")
        return 1
    if len(check.warnings):
        print(f"\nwarning: {len(check.warnings)} edge(s) changed significance only (compare ci_width with "
              "baseline_ci_width: wider CIs mean lost power, not instability)")
    return 0
