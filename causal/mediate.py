"""Path-specific effects in the fitted linear SEM of the book's graph.

The column-level graph is fitted as a linear structural equation model: every
node with parents is regressed (OLS with intercept) on its graph parents that
are present in the table. In that model

* the **path-specific** (indirect) effect of a directed chain
  ``a -> m1 -> ... -> y`` is the product of its edge coefficients;
* the **total** effect of ``a`` on ``y`` is the sum of those products over
  every directed path, i.e. ``[(I - B)^-1]_{a,y}`` for the coefficient matrix
  ``B``;
* the **direct** effect is the coefficient of the edge ``a -> y`` (0 when the
  graph has none) and **other_indirect** = total - path-specific - direct.

Confidence intervals are percentile bootstrap intervals over row resamples.
Every node's regression is solved for every resample at once (the resample
counts times row-wise outer products is one matrix product), and one set of
resamples is shared by all nodes and all paths, so products of coefficients
keep their joint sampling distribution and many paths cost little more than
one.

DoWhy's ``mediation.two_stage_regression`` handles one mediator and chooses it
itself (in hash order), so the chains of the book are done here; the tests
cross-check single-mediator paths against ``statsmodels``.

Examples
--------
>>> from causal.simulate import simulate_linear_scm
>>> sim = simulate_linear_scm(2000, seed=0)
>>> res = mediation(sim.data, "residual -> gradient_stability -> convergence -> generalization", n_boot=100)
>>> list(res.summary["effect"])
['path_specific', 'direct', 'other_indirect', 'total']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats

from causal._threads import single_threaded
from causal.errors import ConfigError, GraphError, SchemaError
from causal.graph import BOOK_DAG, CausalGraph
from causal.regression import DEFAULT_SE, adjust_pvalues, check_correction, ols, weighted_ols
from causal.results import Result
from causal.variables import add_contrasts

__all__ = [
    "MediationResult",
    "MediationTable",
    "LinearSEM",
    "mediation",
    "mediation_paths",
    "default_paths",
    "parse_path",
    "bootstrap_counts",
    "usable_columns",
]

Correction = Literal["holm", "fdr_bh", "bonferroni", "none"]

#: rows of a resample-count block are limited to this many cells (memory bound)
_BLOCK_CELLS = 4_000_000


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


def bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator) -> Iterable[np.ndarray]:
    """Yield blocks of resample counts, shape ``(block, n)`` float64, ``n_boot`` rows in all.

    Row ``b`` holds how often each of the ``n`` rows appears in resample ``b``
    (a nonparametric bootstrap draw of ``n`` rows with replacement). Blocks
    bound memory; the draws depend only on ``(n, n_boot, rng)``.
    """
    block = max(1, min(n_boot, _BLOCK_CELLS // max(n, 1)))
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b)[:, None] * n)
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype("float64")
        done += b


# ---- the fitted SEM -----------------------------------------------------------------
@dataclass(frozen=True)
class LinearSEM:
    """A linear SEM fitted to a table, with bootstrap draws of every coefficient.

    Attributes
    ----------
    nodes : tuple of str
        Column-level nodes, the index order of the matrices.
    coef : (k, k) array
        ``coef[i, j]`` is the coefficient of edge ``nodes[i] -> nodes[j]`` (0 if none).
    std_error : (k, k) array
        HC3 standard errors of ``coef`` from :func:`causal.regression.ols` (NaN where no edge).
    boot : (n_boot, k, k) array
        The same coefficients in each bootstrap resample.
    graph : networkx.DiGraph
        The fitted graph (present, usable columns only).
    n : int
        Complete rows used.
    """

    nodes: tuple[str, ...]
    coef: np.ndarray
    std_error: np.ndarray
    boot: np.ndarray
    graph: nx.DiGraph
    n: int

    def index(self, node: str) -> int:
        return self.nodes.index(node)

    def total(self) -> tuple[np.ndarray, np.ndarray]:
        """Total-effect matrices ``(I - B)^-1 - I`` for the fit and every resample."""
        eye = np.eye(len(self.nodes))
        return np.linalg.inv(eye - self.coef) - eye, np.linalg.inv(eye - self.boot) - eye

    @classmethod
    def fit(cls, data: pd.DataFrame, graph: nx.DiGraph, *, n_boot: int, seed: int) -> LinearSEM:
        """Fit every node of ``graph`` on its parents; ``data`` must be complete and numeric."""
        nodes = tuple(graph.nodes)
        k, n = len(nodes), len(data)
        pos = {v: i for i, v in enumerate(nodes)}
        values = data[list(nodes)].to_numpy(dtype="float64")
        coef = np.zeros((k, k))
        se = np.full((k, k), np.nan)
        fitted = [v for v in nodes if graph.in_degree(v) > 0]
        parents = {v: [pos[u] for u in graph.predecessors(v)] for v in fitted}
        for v in fitted:
            fit = ols(values[:, pos[v]], values[:, parents[v]], se=DEFAULT_SE)
            coef[parents[v], pos[v]] = fit.params
            se[parents[v], pos[v]] = fit.std_error
        boot = np.zeros((n_boot, k, k))
        rng = np.random.default_rng(seed)  # seeded right before the stochastic step
        start = 0
        for counts in bootstrap_counts(n, n_boot, rng):
            stop = start + counts.shape[0]
            for v in fitted:
                boot[start:stop, parents[v], pos[v]] = weighted_ols(
                    values[:, parents[v]], values[:, pos[v]], counts
                )
            start = stop
        return cls(nodes, coef, se, boot, graph, n)


# ---- results ------------------------------------------------------------------------
_EFFECTS = ("path_specific", "direct", "other_indirect", "total")


@dataclass(frozen=True, repr=False)
class MediationResult(Result):
    """Decomposition of one lever's effect along a path.

    Attributes
    ----------
    path : tuple of str
    summary : pandas.DataFrame
        One row per effect (``path_specific``, ``direct``, ``other_indirect``,
        ``total``): ``estimate``, ``std_error`` (bootstrap sd), ``ci_low``,
        ``ci_high``, ``p_value``, ``p_method`` (``delta``: the multivariate
        delta method for the product of coefficients, Sobel's test for one
        mediator; ``ols``: the direct edge's t-test; ``bootstrap_z``:
        estimate / bootstrap sd against a normal; ``none``: the graph has no
        direct edge, so the effect is 0 by assumption), ``n``.
    edges : pandas.DataFrame
        The path's edge coefficients with bootstrap CIs.
    omitted : dict
        Graph nodes left out of the SEM and why (absent, constant, ...).
    """

    path: tuple[str, ...]
    summary: pd.DataFrame
    edges: pd.DataFrame
    n: int
    n_boot: int
    alpha: float
    seed: int
    omitted: dict[str, str] = field(default_factory=dict)

    title: ClassVar[str] = "Mediation (linear SEM, percentile bootstrap)"

    def _info(self) -> dict[str, Any]:
        info = {"path": " -> ".join(self.path), "rows": self.n, "n_boot": self.n_boot,
                "ci": f"{100 * (1 - self.alpha):g}%", "seed": self.seed}
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
        ``total`` (+ ``total_ci_low``/``total_ci_high``), ``share`` (path /
        total) and ``n``.
    results : dict of str -> MediationResult
        The full decomposition per path (keyed by the ``path`` text).
    """

    summary: pd.DataFrame
    results: dict[str, MediationResult]
    n_boot: int
    alpha: float
    seed: int
    correction: str

    title: ClassVar[str] = "Mediation paths (linear SEM, percentile bootstrap)"
    display_columns: ClassVar[tuple[str, ...]] = (
        "path", "estimate", "ci_low", "ci_high", "p_adjusted", "direct", "total", "share", "n")

    def _info(self) -> dict[str, Any]:
        return {"paths": len(self.summary), "n_boot": self.n_boot,
                "ci": f"{100 * (1 - self.alpha):g}%", "correction": self.correction, "seed": self.seed}

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

    def plot(self, ax: Any = None) -> Any:
        """Forest plot of the path-specific effects of every path; returns ``ax``."""
        return _forest(self.summary, "path", ax, title="path-specific effects")


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


def _summarize_path(path: tuple[str, ...], sem: LinearSEM, tot: np.ndarray, tot_b: np.ndarray,
                    alpha: float, seed: int, omitted: dict[str, str]) -> MediationResult:
    i = [sem.index(v) for v in path]
    s, t = i[0], i[-1]
    pairs = list(zip(i[:-1], i[1:]))
    path_est = float(np.prod([sem.coef[a, b] for a, b in pairs]))
    path_b = np.prod(np.stack([sem.boot[:, a, b] for a, b in pairs]), axis=0)
    single_edge = len(path) == 2
    direct_est, direct_b = float(sem.coef[s, t]), sem.boot[:, s, t]
    total_est, total_b = float(tot[s, t]), tot_b[:, s, t]
    if single_edge:  # the path is the direct edge: nothing else to split off
        other_est, other_b = total_est - path_est, total_b - path_b
    else:
        other_est, other_b = total_est - path_est - direct_est, total_b - path_b - direct_b
    est = np.array([path_est, direct_est, other_est, total_est])
    draws = np.stack([path_b, direct_b, other_b, total_b], axis=1)  # (n_boot, 4)
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
    sd = draws.std(0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * stats.norm.sf(np.abs(est / sd))  # bootstrap z-test (continuous, unlike a percentile p)
    p[sd <= 1e-12 * (np.abs(est) + 1.0)] = 1.0  # identically 0 by the graph (e.g. a single path)
    methods = ["delta", "ols", "bootstrap_z", "bootstrap_z"]
    # delta method for a product of coefficients from separate equations (Sobel when one
    # mediator): var(prod a_i) ~ sum_i var(a_i) prod_{j != i} a_j^2; OLS estimates of a
    # recursive SEM's equations are asymptotically uncorrelated.
    a = np.array([sem.coef[u, v] for u, v in pairs])
    sa = np.array([sem.std_error[u, v] for u, v in pairs])
    var = sum(sa[j] ** 2 * np.prod(np.delete(a, j) ** 2) for j in range(len(a)))
    p[0] = 2 * stats.norm.sf(abs(path_est) / np.sqrt(var)) if var > 0 else np.nan
    if sem.graph.has_edge(path[0], path[-1]):
        z = direct_est / sem.std_error[s, t]
        p[1] = 2 * stats.norm.sf(abs(z))
        if single_edge:
            p[0], methods[0] = p[1], "ols"
    else:  # no such edge: the direct effect is 0 by the graph
        lo[1] = hi[1] = 0.0
        p[1], methods[1] = 1.0, "none"
    summary = pd.DataFrame({
        "effect": list(_EFFECTS),
        "estimate": est,
        "std_error": sd,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p,
        "p_method": methods,
        "n": sem.n,
    })
    e_b = np.stack([sem.boot[:, a, b] for a, b in pairs], axis=1)
    elo, ehi = np.quantile(e_b, [alpha / 2, 1 - alpha / 2], axis=0)
    edges = pd.DataFrame({
        "treatment": list(path[:-1]),
        "outcome": list(path[1:]),
        "estimate": [sem.coef[a, b] for a, b in pairs],
        "std_error": [sem.std_error[a, b] for a, b in pairs],
        "ci_low": elo,
        "ci_high": ehi,
    })
    return MediationResult(path, summary, edges, sem.n, sem.boot.shape[0], alpha, seed, dict(omitted))


def _check_options(n_boot: int, alpha: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise ConfigError(f"n_boot must be an integer >= 10 (500 is a good default), got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha!r}")


def _run_paths(df: pd.DataFrame, paths: Sequence[tuple[str, ...]], graph: CausalGraph,
               n_boot: int, seed: int, alpha: float) -> dict[tuple[str, ...], MediationResult]:
    _check_options(n_boot, alpha)
    df = add_contrasts(df)
    full = graph.column_graph()
    g, dropped = _present_graph(df, graph)
    for p in paths:
        _validate_path(p, df, full, g, dropped)
    out: dict[tuple[str, ...], MediationResult] = {}
    # one SEM per target: its ancestors are every node any path to it can touch
    for target in dict.fromkeys(p[-1] for p in paths):
        nodes = nx.ancestors(g, target) | {target}
        sub = g.subgraph(nodes).copy()
        data = df[list(sub.nodes)].astype("float64").dropna()
        if len(data) < len(nodes) + 3:
            raise SchemaError(
                f"only {len(data)} rows have every column the paths to {target!r} need "
                f"({', '.join(sub.nodes)}); drop rows or columns with missing values"
            )
        sem = LinearSEM.fit(data, sub, n_boot=n_boot, seed=seed)
        # graph ancestors of the target left out: their effects load onto the remaining paths
        omitted = {c: r for c, r in dropped.items() if c in nx.ancestors(full, target)}
        tot, tot_b = sem.total()
        for p in paths:
            if p[-1] == target:
                out[p] = _summarize_path(p, sem, tot, tot_b, alpha, seed, omitted)
    return out


def mediation(df: pd.DataFrame, path: str | Sequence[str], *, graph: CausalGraph = BOOK_DAG,
              n_boot: int = 500, seed: int = 0, alpha: float = 0.05) -> MediationResult:
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
        return _run_paths(df, [p], graph, n_boot, seed, alpha)[p]


def mediation_paths(df: pd.DataFrame, paths: Iterable[str | Sequence[str]] | None = None, *,
                    graph: CausalGraph = BOOK_DAG, n_boot: int = 500, seed: int = 0,
                    alpha: float = 0.05, correction: Correction = "holm") -> MediationTable:
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
        results = _run_paths(df, parsed, graph, n_boot, seed, alpha) if parsed else {}
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
            "share": r.loc["path_specific", "estimate"] / r.loc["total", "estimate"]
            if r.loc["total", "estimate"] != 0 else np.nan,
            "n": int(r.loc["total", "n"]),
        })
    summary = pd.DataFrame(rows, columns=[
        "path", "source", "target", "mediators", "estimate", "std_error", "ci_low", "ci_high", "p_value",
        "direct", "other_indirect", "total", "total_ci_low", "total_ci_high", "share", "n"])
    summary.insert(9, "p_adjusted", adjust_pvalues(summary["p_value"].to_numpy(float), correction))
    return MediationTable(summary, {" -> ".join(p): results[p] for p in parsed}, n_boot, alpha, seed, correction)
