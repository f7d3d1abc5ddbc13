"""Path-specific effects in a linear SEM of the book's graph plus the design.

Rows and graph come from :func:`causal.prepare.prepare`, as for
``fit_edges``: diverged runs excluded by default (``diverged``), the design
graph by default (``adjust="design"``; ``"book"`` for the book's graph alone),
missing columns marginalized by the same latent projection (a path with an
edge that a missing column confounds is skipped with the reason).

Every mediator/outcome node is regressed (OLS, :func:`causal.regression.ols`)
on its parents in that graph — under the design, every randomized lever and
raw lever besides its book parents — so each path coefficient is the direct
effect ``fit_edges`` identifies for a lever → mediator edge. Then

* the **path-specific** effect of ``a -> m1 -> ... -> y`` is the product of its
  coefficients;
* the **direct** effect is the coefficient of the book edge ``a -> y`` (0 when
  the book has none);
* **book_paths** is the sum of the products over every book path from ``a`` to ``y``;
* the **total** effect of a randomized source is estimated directly by
  :func:`causal.totals.randomized_totals`, the estimator of
  :func:`causal.total_effects` (same rows, seed and resamples, so the same
  numbers): ``y`` regressed on ``a`` and the other randomized columns that
  its change does not move (not its descendants, nor its own intervention
  levers and their descendants), on the rows
  where ``y`` and every randomized column are observed. For a mediator
  source, which is not randomized, it is the SEM's implied total
  ``[(I - B)^-1]_{a,y}``;
* **other_indirect** = total − path − direct and **unexplained** = total −
  book_paths: effects along paths the book lacks.

All CIs and p-values come from one nonparametric bootstrap over rows, shared by
every node, path and total (so products keep their joint distribution; the
SEM's rows, complete in every mediator, are a subset of the totals' rows and
use each resample's counts of them):
``ci_low``/``ci_high`` are estimate ± z·(bootstrap sd) and ``p_value`` the
matching z-test, so a CI excludes 0 exactly when p < alpha; the percentile
interval is given beside them. Every node's regression is solved for every
resample at once (:func:`causal.regression.weighted_ols`).

DoWhy's ``mediation.two_stage_regression`` handles one mediator and chooses it
itself (in hash order), so the chains of the book are done here; the tests
cross-check single-mediator paths against DoWhy and ``statsmodels``.

Examples
--------
>>> from causal.simulate import simulate_linear_scm
>>> sim = simulate_linear_scm(2000, seed=0)
>>> res = mediation(sim.data, "residual -> gradient_stability -> convergence -> generalization", n_boot=100)
>>> list(res.summary["effect"])
['path_specific', 'direct', 'other_indirect', 'book_paths', 'total', 'unexplained']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import networkx as nx
import numpy as np
import pandas as pd

from causal._threads import single_threaded
from causal.errors import ConfigError, GraphError, SchemaError
from causal.graph import BOOK_DAG, CausalGraph
from causal.regression import adjust_pvalues, check_correction
from causal.results import Result
from causal.sem import LinearSEM, boot_stats, bootstrap_counts, independent_columns
from causal.units import describe as describe_units
from causal.variables import add_contrasts

__all__ = [
    "MediationResult",
    "MediationTable",
    "LinearSEM",
    "mediation",
    "mediation_paths",
    "default_paths",
    "parse_path",
    "bootstrap_counts",  # re-exported from causal.sem, where it now lives
    "usable_columns",
]

Correction = Literal["holm", "fdr_bh", "bonferroni", "none"]



# ---- helpers shared with falsify/stability ----------------------------------------
def parse_path(path: str | Sequence[str]) -> tuple[str, ...]:
    """Split ``"a -> b -> c"`` (or ``→``) into column names; lists pass through."""
    if isinstance(path, str):
        parts = [p.strip() for p in path.replace("→", "->").split("->")]
    else:
        parts = [str(p).strip() for p in path]
    if len(parts) < 2 or any(not p for p in parts):
        raise GraphError(
            f"path {path!r} must name at least two columns joined by '->', "
            "e.g. 'residual -> gradient_stability -> convergence -> generalization'"
        )
    return tuple(parts)


def usable_columns(df: pd.DataFrame, columns: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """The columns of ``columns`` that can enter a regression, and why others cannot.

    A column is usable when it is present, numeric (bool/int/float), has at
    least 3 non-missing values and is not constant.
    """
    keep, dropped = [], {}
    for col in columns:
        if col not in df.columns:
            dropped[col] = "absent"
            continue
        s = df[col]
        if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
            dropped[col] = f"not numeric ({s.dtype})"
            continue
        s = s.dropna()
        if len(s) < 3:
            dropped[col] = "fewer than 3 values"
        elif s.nunique() < 2:
            dropped[col] = "constant"
        else:
            keep.append(col)
    return keep, dropped


# ---- results ------------------------------------------------------------------------
_EFFECTS = ("path_specific", "direct", "other_indirect", "book_paths", "total", "unexplained")


@dataclass(frozen=True, repr=False)
class MediationResult(Result):
    """Decomposition of one lever's effect along a path.

    Attributes
    ----------
    path : tuple of str
    summary : pandas.DataFrame
        One row per effect: ``path_specific`` (product of the path's
        coefficients), ``direct`` (the source → target edge, 0 when the book
        has none), ``other_indirect`` (total − path − direct), ``book_paths``
        (sum over every book path from source to target), ``total`` (for a
        randomized source its total effect estimated directly: the target
        regressed on the source and the other randomized columns; for a
        mediator source the SEM's implied total) and ``unexplained`` (total −
        book_paths: effects through paths the book lacks). Columns
        ``estimate``, ``std_error`` (bootstrap sd), ``ci_low``/``ci_high``
        (estimate ± z·sd), ``p_value`` (the matching z-test: CI and p-value
        come from the same bootstrap and agree), ``pct_low``/``pct_high``
        (percentile interval), ``method``, ``n``.
    edges : pandas.DataFrame
        The path's edge coefficients with bootstrap CIs.
    omitted : dict
        Graph nodes left out of the SEM and why (absent, constant, ...).
    units : pandas.DataFrame
        Columns fitted in within-family sd units because their units differ by
        problem (:mod:`causal.units`; e.g. ``generalization``), with each
        family's mean and sd. Empty when none is.
    """

    path: tuple[str, ...]
    summary: pd.DataFrame
    edges: pd.DataFrame
    n: int
    n_boot: int
    alpha: float
    seed: int
    omitted: dict[str, str] = field(default_factory=dict)
    adjust: str = "design"
    diverged: str = "exclude"
    n_diverged: int = 0
    units: pd.DataFrame = field(default_factory=pd.DataFrame)

    title: ClassVar[str] = "Mediation (linear SEM, bootstrap)"

    def _info(self) -> dict[str, Any]:
        info = {"path": " -> ".join(self.path), "rows": f"{self.n} ({self.n_diverged} diverged excluded)"
                if self.diverged == "exclude" else f"{self.n} (diverged included)", "adjust": self.adjust,
                "n_boot": self.n_boot, "ci": f"{100 * (1 - self.alpha):g}% (estimate ± z·bootstrap sd)",
                "seed": self.seed, "units": describe_units(self.units)}
        if self.omitted:
            info["omitted"] = ", ".join(f"{c} ({r})" for c, r in self.omitted.items())
        return info

    @property
    def estimate(self) -> float:
        """The path-specific effect."""
        return float(self.summary.loc[self.summary["effect"] == "path_specific", "estimate"].iloc[0])

    def plot(self, ax: Any = None) -> Any:
        """Forest plot of the decomposition (estimate and CI per effect); returns ``ax``."""
        return _forest(self.summary, "effect", ax, title=" → ".join(self.path))

    plot_decomposition = plot


@dataclass(frozen=True, repr=False)
class MediationTable(Result):
    """Many paths at once: a tidy ``summary`` with one row per path.

    Attributes
    ----------
    summary : pandas.DataFrame
        ``path``, ``source``, ``target``, ``mediators``, the path-specific
        ``estimate``/``std_error``/``ci_low``/``ci_high``/``p_value``,
        ``p_adjusted`` (across paths), ``direct``, ``other_indirect``,
        ``total`` (+ ``total_ci_low``/``total_ci_high``, ``total_method``:
        ``randomized`` or ``sem``), ``book_paths`` (sum of the book's paths),
        ``unexplained`` (total − book_paths, with its bootstrap ``unexplained_p``),
        ``share`` (path / total) and ``n``.
    results : dict of str -> MediationResult
        The full decomposition per path (keyed by the ``path`` text).
    skipped : dict of str -> str
        Paths not estimated and why (an edge a missing column confounds, an unusable column on a default
        path, too few rows for the path's regressions).
    units : pandas.DataFrame
        As :attr:`MediationResult.units`.
    """

    summary: pd.DataFrame
    results: dict[str, MediationResult]
    n_boot: int
    alpha: float
    seed: int
    correction: str
    skipped: dict[str, str] = field(default_factory=dict)
    units: pd.DataFrame = field(default_factory=pd.DataFrame)
    adjust: str = "design"
    diverged: str = "exclude"
    n_diverged: int = 0

    title: ClassVar[str] = "Mediation paths (linear SEM, bootstrap)"
    display_columns: ClassVar[tuple[str, ...]] = (
        "path", "estimate", "ci_low", "ci_high", "p_adjusted", "direct", "total", "book_paths", "unexplained",
        "share", "n")

    def _info(self) -> dict[str, Any]:
        return {"paths": len(self.summary), **({"skipped": len(self.skipped)} if self.skipped else {}),
                "adjust": self.adjust, "diverged": f"{self.n_diverged} excluded" if self.diverged == "exclude"
                else "included",
                "n_boot": self.n_boot,
                "ci": f"{100 * (1 - self.alpha):g}%", "correction": self.correction, "seed": self.seed,
                "units": describe_units(self.units)}

    def summary_text(self, *, decimals: int = 3) -> str:
        from causal.results import format_table
        from causal.totals import SKIPPED_SHOWN

        text = super().summary_text(decimals=decimals)
        if self.skipped:  # one line per reason: the paths it skipped (all in .skipped)
            by_reason: dict[str, list[str]] = {}
            for path, reason in self.skipped.items():
                by_reason.setdefault(reason, []).append(path)
            frame = pd.DataFrame({"paths": [", ".join(v) if len(v) <= 2 else f"{len(v)} paths" for v in
                                             by_reason.values()], "reason": list(by_reason)})
            more = len(frame) - SKIPPED_SHOWN
            text += ("\n\nSkipped paths (all in .skipped)\n" + format_table(frame.head(SKIPPED_SHOWN))
                     + (f"\n... and {more} more" if more > 0 else ""))
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: the per-path table plus every path's ``decomposition``."""
        from causal.results import json_safe

        out = super().to_dict()
        frame = self.decomposition()
        out["decomposition"] = json_safe(frame.astype(object).where(frame.notna(), None).to_dict("records"))
        return out

    def decomposition(self) -> pd.DataFrame:
        """All paths' decompositions as one long table (a ``path`` column added)."""
        frames = [r.summary.assign(path=key) for key, r in self.results.items()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def plot(self, ax: Any = None, data: pd.DataFrame | None = None) -> Any:
        """Forest plot of the path-specific effects of every path; returns ``ax``.

        Given the runs table ``data``, in standardized units (sd of target per
        sd of source, :func:`causal.plots.mediation_forest`), with intervals
        matched to the corrected p-values and each source's total effect;
        otherwise in raw units, which differ from path to path.
        """
        if data is not None:
            from causal.plots import mediation_forest

            first = next(iter(self.results.values()), None)
            return mediation_forest(self, data, ax, adjust=getattr(first, "adjust", "design"),
                                    diverged=getattr(first, "diverged", "exclude"))
        return _forest(self.summary, "path", ax, title="path-specific effects (raw units; plot(data=runs) "
                       "for standardized)")


def _forest(df: pd.DataFrame, label: str, ax: Any, *, title: str) -> Any:
    import matplotlib.pyplot as plt  # deferred: plotting is optional at import time

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.4 * len(df) + 1.2))
    y = np.arange(len(df))[::-1]
    est = df["estimate"].to_numpy(float)
    lo, hi = df["ci_low"].to_numpy(float), df["ci_high"].to_numpy(float)
    ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="o", color="C0", capsize=3)
    ax.axvline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels(df[label].astype(str))
    ax.set_xlabel("effect (units of the outcome per unit of the source)")
    ax.set_title(title)
    return ax


# ---- paths ---------------------------------------------------------------------------
def _present_graph(df: pd.DataFrame | None, graph: CausalGraph) -> tuple[nx.DiGraph, dict[str, str]]:
    g = graph.column_graph()
    if df is None:
        return g, {}
    keep, dropped = usable_columns(df, g.nodes)
    return g.subgraph(keep).copy(), dropped


def default_paths(df: pd.DataFrame | None = None, graph: CausalGraph = BOOK_DAG,
                  *, target: str = "generalization") -> list[tuple[str, ...]]:
    """The book's mediation paths: each lever/context column through its mediators to ``target``.

    Every directed path from a randomized root (``lever`` or ``context``
    column) to ``target`` with at least one mediator, in the column-level
    graph restricted to the usable columns of ``df`` (all columns when ``df``
    is None). Sorted by source in graph order, then path.
    """
    if df is not None:
        df = add_contrasts(df)
    g, _ = _present_graph(df, graph)
    if target not in g:
        return []
    roots = [v for v, kind in g.nodes(data="kind") if kind in ("lever", "context")]
    out: list[tuple[str, ...]] = []
    for src in roots:
        paths = sorted(tuple(p) for p in nx.all_simple_paths(g, src, target) if len(p) > 2)
        out.extend(paths)
    return out


def _validate_path(path: tuple[str, ...], df: pd.DataFrame, full: nx.DiGraph, g: nx.DiGraph,
                   dropped: dict[str, str]) -> None:
    for col in path:
        if col not in full:
            raise GraphError(f"path column {col!r} is not a node of the column-level graph; "
                             f"nodes: {', '.join(full.nodes)}")
        if col not in df.columns:
            raise SchemaError(f"path column {col!r} is missing from the table; "
                              f"present columns include {', '.join(map(str, list(df.columns)[:30]))}")
        if col not in g:
            raise SchemaError(f"path column {col!r} cannot be analysed: {dropped.get(col, 'unusable')}; "
                              "check its values")
    for a, b in zip(path[:-1], path[1:]):
        if not full.has_edge(a, b):
            children = sorted(full.successors(a)) or ["(none)"]
            raise GraphError(f"{a!r} -> {b!r} is not an edge of the column-level graph; "
                             f"children of {a!r}: {', '.join(children)}. Pick a directed path of the graph.")


def _summarize_path(path: tuple[str, ...], sem: LinearSEM, book: nx.DiGraph, alpha: float, seed: int,
                    omitted: dict[str, str], total_key: tuple[str, str] | None) -> MediationResult:
    i = [sem.index(v) for v in path]
    s, t = i[0], i[-1]
    pairs = list(zip(i[:-1], i[1:]))
    path_est = float(np.prod([sem.coef[a, b] for a, b in pairs]))
    path_b = np.prod(np.stack([sem.boot[:, a, b] for a, b in pairs]), axis=0)
    has_direct = book.has_edge(path[0], path[-1]) and len(path) > 2
    direct_est = float(sem.coef[s, t]) if has_direct else 0.0
    direct_b = sem.boot[:, s, t] if has_direct else np.zeros(sem.boot.shape[0])
    # the book's paths from source to target, each a product of fitted coefficients
    bp_est, bp_b = 0.0, np.zeros(sem.boot.shape[0])
    for bp in nx.all_simple_paths(book, path[0], path[-1]):
        idx = [sem.index(v) for v in bp]
        bp_est += float(np.prod([sem.coef[a, b] for a, b in zip(idx[:-1], idx[1:])]))
        bp_b = bp_b + np.prod(np.stack([sem.boot[:, a, b] for a, b in zip(idx[:-1], idx[1:])]), axis=0)
    if total_key is not None:  # a randomized source: its total effect, estimated directly
        total_est, total_b = sem.totals[total_key]
        total_method = "randomized"
    else:  # a mediator source is not randomized: the SEM's implied total
        tot, tot_b = sem.total()
        total_est, total_b, total_method = float(tot[s, t]), tot_b[:, s, t], "sem"
    other_est, other_b = total_est - path_est - direct_est, total_b - path_b - direct_b
    est = np.array([path_est, direct_est, other_est, bp_est, total_est, total_est - bp_est])
    draws = np.stack([path_b, direct_b, other_b, bp_b, total_b, total_b - bp_b], axis=1)  # (n_boot, 6)
    st = boot_stats(est, draws, alpha)
    if not has_direct:
        st["p_value"][1] = 1.0
    summary = pd.DataFrame({"effect": list(_EFFECTS), "estimate": est, **st,
                            "method": ["product", "edge" if has_direct else "none", "difference", "product_sum",
                                       total_method, "difference"], "n": sem.n})
    e_b = np.stack([sem.boot[:, a, b] for a, b in pairs], axis=1)
    e_est = np.array([sem.coef[a, b] for a, b in pairs])
    est_e = boot_stats(e_est, e_b, alpha)
    edges = pd.DataFrame({"treatment": list(path[:-1]), "outcome": list(path[1:]), "estimate": e_est,
                          "std_error": est_e["std_error"], "ci_low": est_e["ci_low"], "ci_high": est_e["ci_high"],
                          "p_value": est_e["p_value"], "ols_std_error": [sem.std_error[a, b] for a, b in pairs]})
    return MediationResult(path, summary, edges, sem.n, sem.boot.shape[0], alpha, seed, dict(omitted))


def _check_options(n_boot: int, alpha: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise ConfigError(f"n_boot must be an integer >= 10 (500 is a good default), got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha!r}")


_RANDOMIZED = ("lever", "context", "design")


def _run_paths(df: pd.DataFrame, paths: Sequence[tuple[str, ...]], graph: CausalGraph, n_boot: int, seed: int,
               alpha: float, adjust: str, diverged: str, *, lenient: bool = False,
               ) -> tuple[dict[tuple[str, ...], MediationResult], Any]:
    """Fit ``paths``; a path that cannot be estimated here is in ``prep.notes`` ('path A -> B') with the reason.

    ``lenient`` (the default paths, which the user did not name): a path with an unusable column is skipped
    with the reason instead of raising.
    """
    from causal._dowhy import is_valid_direct_adjustment
    from causal.design import intervention_levers
    from causal.prepare import prepare
    from causal.totals import MIN_ROWS_PER_REGRESSOR, randomized_totals

    _check_options(n_boot, alpha)
    prep = prepare(df, graph, adjust=adjust, diverged=diverged, who="mediation")
    data, gid = prep.data, prep.gid
    full = graph.column_graph()
    g, dropped = _present_graph(data, graph)
    skipped: dict[str, str] = {}
    for p in paths:
        try:
            _validate_path(p, data, full, g, dropped)
        except (GraphError, SchemaError) as exc:
            if not lenient:
                raise
            skipped[" -> ".join(p)] = str(exc)
    paths = [p for p in paths if " -> ".join(p) not in skipped]
    latent = {n for n in gid if gid.nodes[n].get("latent")}
    book = nx.DiGraph([(u, v) for u, v, d in gid.edges(data=True)
                       if not d.get("design") and u not in latent and v not in latent])
    book.add_nodes_from(v for p in paths for v in p)
    out: dict[tuple[str, ...], MediationResult] = {}
    for p in paths:
        for a, b in zip(p[:-1], p[1:]):  # every coefficient of the path must be a direct effect
            regs = [u for u in gid.predecessors(b) if u not in latent and u != a]
            if not is_valid_direct_adjustment(gid, a, b, regs):
                skipped[" -> ".join(p)] = (f"the edge {a} -> {b} is not identifiable from this table (a missing "
                                           "column confounds it); add the missing columns")
    paths = [p for p in paths if " -> ".join(p) not in skipped]
    for target in dict.fromkeys(p[-1] for p in paths):
        nodes = (nx.ancestors(gid, target) | {target}) - latent
        equations: dict[str, list[str]] = {}
        for v in nodes:
            if gid.nodes[v].get("kind") in _RANDOMIZED:
                continue
            regs = [u for u in gid.predecessors(v) if u not in latent]
            equations[v] = prep.expand(sorted(regs, key=lambda c: c in prep.columns))
        # a randomized source's total: the one estimator of total_effects, on its rows and resamples
        sources = list(dict.fromkeys(p[0] for p in paths if p[-1] == target
                                     and gid.nodes[p[0]].get("kind") in _RANDOMIZED))
        mine = [p for p in paths if p[-1] == target]
        try:
            tot = randomized_totals(prep, target, sources, n_boot=n_boot, seed=seed)
        except SchemaError as exc:  # too few rows for the target's totals: these paths cannot be estimated
            if not lenient:
                raise
            skipped.update({" -> ".join(p): str(exc) for p in mine})
            continue
        interventions_all = prep.expand([lv for lv in intervention_levers() if lv in prep.columns])
        cols = list(dict.fromkeys([*equations, *(c for r in equations.values() for c in r), *interventions_all]))
        frame = prep.numeric[cols].dropna()
        frame = frame[frame.index.isin(tot.rows)]  # the SEM's rows are a subset of the totals' resampled rows
        if len(frame) < len(cols) + 3:
            why = (f"only {len(frame)} rows have every column the paths to {target!r} need ({', '.join(cols)}); "
                   "drop rows or columns with missing values")
            if not lenient:
                raise SchemaError(why)
            skipped.update({" -> ".join(p): why for p in mine})
            continue
        frame = frame.loc[:, [c for c in cols if frame[c].nunique() > 1 or c in equations]]
        # as in fit_edges: a mediator parent's coefficient also adjusts for every raw lever (interventions
        # too: the loss, the signed init scale); a lever parent's does not (its intervention is the treatment)
        interventions = prep.expand([lv for lv in intervention_levers() if lv in prep.columns])
        regressions: dict[str, list[tuple[list[str], list[str]]]] = {}
        for v, regs in equations.items():
            base = independent_columns(frame, [r for r in regs if r in frame.columns])
            mediators = [r for r in base if r in gid and gid.nodes[r].get("kind") not in _RANDOMIZED]
            extra = [c for c in interventions if c in frame.columns and c not in base]
            if mediators and extra:
                wide = independent_columns(frame, [*base, *extra])
                regressions[v] = [(base, [r for r in base if r not in mediators]),
                                  (wide, [r for r in mediators if r in wide])]
            else:
                regressions[v] = [(base, base)]
        widest = max(len(c) for regs in regressions.values() for c, _ in regs)
        if len(frame) < MIN_ROWS_PER_REGRESSOR * (1 + widest):  # else near-singular resamples set the CIs
            why = (f"{len(frame)} rows for regressions of up to {1 + widest} regressors, fewer than "
                   f"{MIN_ROWS_PER_REGRESSOR} per regressor: generate more runs")
            if not lenient:
                raise SchemaError(f"paths to {target!r}: {why}")
            skipped.update({" -> ".join(p): why for p in mine})
            continue
        totals = {(src, target): (tot.estimate[src], tot.draws[src]) for src in tot.estimate}
        sem = LinearSEM.fit(frame, regressions, n_boot=n_boot, seed=seed, totals=totals,
                            universe=(len(tot.rows), tot.rows.get_indexer(frame.index)))
        omitted = {c: r for c, r in dropped.items() if c in nx.ancestors(full, target)}
        for p in paths:
            if p[-1] == target:
                key = (p[0], target) if (p[0], target) in totals else None
                out[p] = _summarize_path(p, sem, book, alpha, seed, omitted, key)
    object.__setattr__(prep, "notes", {**prep.notes, **{f"path {k}": v for k, v in skipped.items()}})
    return out, prep


def _path_units(prep: Any, paths: Sequence[tuple[str, ...]]) -> pd.DataFrame:
    """The rows of ``prep.units`` for columns on ``paths``."""
    cols = {v for p in paths for v in p}
    return prep.units[prep.units["column"].isin(cols)].reset_index(drop=True) if len(prep.units) else prep.units


def mediation(df: pd.DataFrame, path: str | Sequence[str], *, graph: CausalGraph = BOOK_DAG,
              n_boot: int = 500, seed: int = 0, alpha: float = 0.05, adjust: str = "design",
              diverged: str = "exclude") -> MediationResult:
    """Path-specific, direct, other-indirect and total effect along one path.

    Parameters
    ----------
    df : pandas.DataFrame
        A runs table (categorical levers are expanded to contrasts; rows with
        a missing value in any ancestor of the path's last column are dropped).
    path : str or sequence of str
        ``"residual -> gradient_stability -> convergence -> generalization"``
        or the list of its columns; each consecutive pair must be an edge of
        the column-level graph.
    graph : CausalGraph
    n_boot : int
        Bootstrap resamples of rows (percentile CIs).
    seed : int
        Seed of the resampling ``numpy.random.Generator``.
    alpha : float
        1 - CI level.

    Returns
    -------
    MediationResult

    Raises
    ------
    GraphError
        A pair of the path is not an edge (the message lists the node's children).
    SchemaError
        A path column is missing or unusable.
    """
    p = parse_path(path)
    with single_threaded():
        results, prep = _run_paths(df, [p], graph, n_boot, seed, alpha, adjust, diverged)
    if p not in results:
        raise SchemaError(f"path {' -> '.join(p)}: {prep.notes['path ' + ' -> '.join(p)]}")
    return replace(results[p], adjust=adjust, diverged=diverged, n_diverged=prep.n_diverged,
                   units=_path_units(prep, [p]))


def mediation_paths(df: pd.DataFrame, paths: Iterable[str | Sequence[str]] | None = None, *,
                    graph: CausalGraph = BOOK_DAG, n_boot: int = 500, seed: int = 0,
                    alpha: float = 0.05, correction: Correction = "holm", adjust: str = "design",
                    diverged: str = "exclude") -> MediationTable:
    """Many paths in one pass (one SEM fit and one set of resamples per target).

    Parameters
    ----------
    paths : iterable, optional
        Paths as for :func:`mediation`; :func:`default_paths` of ``df`` when None.
    correction : {'holm', 'fdr_bh', 'bonferroni', 'none'}
        Multiple-testing correction of the path-specific p-values across paths.

    Other parameters are as for :func:`mediation`.

    Returns
    -------
    MediationTable
    """
    check_correction(correction)
    parsed = default_paths(df, graph) if paths is None else [parse_path(p) for p in paths]
    parsed = list(dict.fromkeys(parsed))
    with single_threaded():
        results, prep = (_run_paths(df, parsed, graph, n_boot, seed, alpha, adjust, diverged, lenient=paths is None)
                         if parsed else ({}, None))
    n_div = prep.n_diverged if prep is not None else 0
    units = _path_units(prep, list(results)) if prep is not None else pd.DataFrame()
    results = {p: replace(r, adjust=adjust, diverged=diverged, n_diverged=n_div, units=_path_units(prep, [p]))
               for p, r in results.items()}
    skipped = {k[5:]: v for k, v in (prep.notes if prep is not None else {}).items() if k.startswith("path ")}
    parsed = [p for p in parsed if p in results]
    rows = []
    for p in parsed:
        r = results[p].summary.set_index("effect")
        rows.append({
            "path": " -> ".join(p), "source": p[0], "target": p[-1], "mediators": " -> ".join(p[1:-1]),
            **{k: r.loc["path_specific", k] for k in ("estimate", "std_error", "ci_low", "ci_high", "p_value")},
            "direct": r.loc["direct", "estimate"],
            "other_indirect": r.loc["other_indirect", "estimate"],
            "total": r.loc["total", "estimate"],
            "total_ci_low": r.loc["total", "ci_low"],
            "total_ci_high": r.loc["total", "ci_high"],
            "total_method": r.loc["total", "method"],
            "book_paths": r.loc["book_paths", "estimate"],
            "unexplained": r.loc["unexplained", "estimate"],
            "unexplained_p": r.loc["unexplained", "p_value"],
            "share": r.loc["path_specific", "estimate"] / r.loc["total", "estimate"]
            if r.loc["total", "estimate"] != 0 else np.nan,
            "n": int(r.loc["total", "n"]),
        })
    summary = pd.DataFrame(rows, columns=[
        "path", "source", "target", "mediators", "estimate", "std_error", "ci_low", "ci_high", "p_value",
        "direct", "other_indirect", "total", "total_ci_low", "total_ci_high", "total_method", "book_paths",
        "unexplained", "unexplained_p", "share", "n"])
    summary.insert(9, "p_adjusted", adjust_pvalues(summary["p_value"].to_numpy(float), correction))
    return MediationTable(summary, {" -> ".join(p): results[p] for p in parsed}, n_boot, alpha, seed, correction,
                          skipped, units, adjust, diverged, n_div)
