"""Graph tests: the book graph's implied conditional independences, and missing edges.

Implications tested
-------------------
Rows and graph come from :func:`causal.prepare.prepare`, as for ``fit_edges``:
diverged runs excluded by default, the book's graph plus the design by default
(``adjust="book"``: the book's alone), missing columns marginalized by the
latent projection. The graph implies the local Markov conditions
``X ⟂ Y | parents(X)``; each book column ``X`` is tested against the book
columns *before* it in a fixed topological order (the ordered local Markov
property), keeping only the pairs its observed parents d-separate in the
projected graph, so a missing column's paths are never tested as absent.
Raw levers enter conditioning sets as their regression columns. Pairs of 0/1
contrasts of one categorical lever are dependent by construction and are not
tested.

Under the design every lever may act on every mediator, so the claim that a
lever does *not* act on a mediator is tested by the missing-edge search below,
not by an independence. Lever-vs-lever pairs test the randomization itself
(``FalsifyResult.randomization``, corrected on their own so they do not dilute
the graph's tests); excluding diverged runs, which depend on the learning rate
and the init scale, can make those two dependent among the rows kept.

Tests
-----
* ``fisher_z`` (default): partial correlation of ``X`` and ``Y`` given the
  parents, from the residuals of one least-squares fit of ``[X, Y...]`` on the
  parents (vectorized over all ``Y`` of a node); Fisher's z with
  ``n - |parents| - 3`` degrees of freedom. Seconds on 10,000 rows.
* ``kernel``: the residuals of ``X`` and of ``Y`` on the parents (linear
  adjustment) tested for *any* dependence with HSIC (Gaussian kernels, median
  bandwidth, Gretton et al.'s gamma approximation) on a seeded subsample of
  ``kernel_rows`` rows, since HSIC costs O(rows²). Where the parents include
  discrete columns (a task, a loss, a 0/1 lever), the gamma null's moments
  come from permutations within their levels instead, since residuals whose
  spread differs by level are not independent of each other even under the
  null (:func:`_hsic_permuted_gamma`). It detects nonlinear
  dependence left between the residuals, not nonlinear confounding through the
  parents; DoWhy's fully nonparametric KCI takes ~800 s per pass at 5,000 rows.

p-values are corrected for multiple testing across implications
(:func:`causal.regression.adjust_pvalues`).

Missing edges
-------------
For each randomized book column (``lever``/``context``) and each
mediator/outcome column the book (projected onto the columns present) does not
connect by an edge, the target is regressed (OLS, HC3 standard errors,
:func:`causal.regression.ols`) on *all* randomized columns — raw design levers
included — plus its non-randomized book parents. The coefficient is the source's effect not carried by the target's
graph parents (``method="direct"``), 0 if the book's graph is right; it points
at the missing arrow itself rather than at every descendant of it. When the
target has no non-randomized parents (``method="total"``) this is the total
effect, unbiased because the levers are randomized independently; the total
effect (regression on the randomized columns only) is always reported as
``total_estimate``. The direct estimate assumes, like the rest of the graph
analysis, no hidden common cause of a mediator and the target.

Pairs whose ``|std_effect|`` (estimate × sd(source) / sd(target)) exceeds
``missing_edge_threshold`` and whose corrected p-value is below ``alpha`` are
reported in ``missing_edges``.

Examples
--------
>>> from causal.simulate import simulate_linear_scm
>>> sim = simulate_linear_scm(2000, seed=0, add_edges={("log_lr", "sharpness"): -0.5})
>>> res = falsify(sim.data)
>>> list(res.missing_edges[["source", "target"]].itertuples(index=False, name=None))
[('log_lr', 'sharpness')]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats

from causal._threads import single_threaded
from causal.errors import ConfigError, SchemaError
from causal.graph import BOOK_DAG, CausalGraph
from causal.mediate import usable_columns
from causal.regression import adjust_pvalues, check_correction, ols
from causal.results import Result, format_table
from causal.variables import CONTRAST_COLUMNS

__all__ = ["FalsifyResult", "falsify", "implications"]

TestName = Literal["fisher_z", "kernel"]
Correction = Literal["holm", "fdr_bh", "bonferroni"]
_ROOT_KINDS = ("lever", "context")


# ---- implications -------------------------------------------------------------------
def implications(g: nx.DiGraph) -> list[tuple[str, list[str], list[str]]]:
    """The ordered local Markov implications of ``g``: ``(x, ys, parents_of_x)`` per node.

    Every non-adjacent pair appears once; pairs of contrasts of one categorical
    lever are left out (dependent by construction).
    """
    rank = {v: i for i, v in enumerate(g.nodes)}
    order = list(nx.lexicographical_topological_sort(g, key=rank.__getitem__))
    out = []
    for i, x in enumerate(order):
        parents = sorted(g.predecessors(x), key=rank.__getitem__)
        ys = [y for y in order[:i] if y not in parents and not _same_categorical(x, y)]
        if ys:
            out.append((x, ys, parents))
    return out


def _same_categorical(a: str, b: str) -> bool:
    ca, cb = CONTRAST_COLUMNS.get(a), CONTRAST_COLUMNS.get(b)
    return ca is not None and cb is not None and ca[0] == cb[0]


def _residualize(S: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Residuals of every column of ``M`` (n, k) after OLS on ``[1, S]``."""
    A = np.column_stack([np.ones(len(M)), S - S.mean(0)])
    # normal equations on centred columns: a handful of small BLAS calls, unlike lstsq's SVD
    coef = np.linalg.pinv(A.T @ A) @ (A.T @ M)
    return M - A @ coef


def _fisher_z(R: np.ndarray, n_given: int) -> tuple[np.ndarray, np.ndarray]:
    """Partial correlation of column 0 of residuals ``R`` with each other column, and p."""
    norms = np.sqrt((R**2).sum(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (R[:, 1:].T @ R[:, 0]) / (norms[1:] * norms[0])
    r = np.clip(r, -1 + 1e-15, 1 - 1e-15)
    dof = len(R) - n_given - 3
    z = np.arctanh(r) * np.sqrt(max(dof, 1))
    return r, 2 * stats.norm.sf(np.abs(z))


def _determined(M: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Columns of ``M`` that the conditioning set determines (residuals ``R`` are rounding: R² > 1 - 1e-10).

    Such a column is constant given the set, so its independence of anything given the set holds trivially;
    a test on its rounding noise would be noise (the kernel test's scaling blows rounding up to unit size).
    """
    centred = ((M - M.mean(0)) ** 2).sum(0)
    return (R**2).sum(0) <= 1e-10 * np.where(centred > 0, centred, 1.0)


def _rbf(x: np.ndarray) -> np.ndarray:
    x = (x - x.mean()) / (x.std() or 1.0)
    d2 = (x[:, None] - x[None, :]) ** 2
    med = np.median(d2[np.triu_indices(len(x), 1)])
    return np.exp(-d2 / (med if med > 0 else 1.0))  # median heuristic: 2 sigma² = median d²


def _hsic_gamma(K: np.ndarray, L: np.ndarray) -> tuple[float, float]:
    """HSIC statistic (m × biased HSIC) and gamma-approximation p-value (Gretton et al. 2008)."""
    m = K.shape[0]
    Kc = K - K.mean(0) - K.mean(1)[:, None] + K.mean()
    Lc = L - L.mean(0) - L.mean(1)[:, None] + L.mean()
    stat = float((Kc * Lc).sum() / m)
    v = (Kc * Lc / 6) ** 2
    var = (v.sum() - np.trace(v)) / m / (m - 1)
    var *= 72 * (m - 4) * (m - 5) / m / (m - 1) / (m - 2) / (m - 3)
    mu_x = (K.sum() - np.trace(K)) / m / (m - 1)
    mu_y = (L.sum() - np.trace(L)) / m / (m - 1)
    mean = (1 + mu_x * mu_y - mu_x - mu_y) / m
    if var <= 0 or mean <= 0:
        return stat, float("nan")
    shape, scale = mean**2 / var, var * m / mean
    return stat, float(stats.gamma.sf(stat, shape, scale=scale))


#: a conditioning column with at most this many distinct values is discrete: the kernel test permutes within
#: its levels
DISCRETE_LEVELS = 12
#: within-stratum permutations whose HSIC mean and variance set the kernel test's gamma null
KERNEL_PERMUTATIONS = 100
#: the discrete columns' combinations must hold this many rows on average to permute within them
MIN_STRATUM_ROWS = 5


def _strata(S: np.ndarray) -> np.ndarray | None:
    """Labels of the rows' combinations of the discrete conditioning columns, or None.

    Discrete columns join in order while their combinations hold at least :data:`MIN_STRATUM_ROWS` rows on
    average (permuting within tiny strata leaves nothing to permute and the test has no power). None when
    no discrete column fits; the unconditional gamma null is used then.
    """
    labels = None
    for j in range(S.shape[1]):  # in order, each discrete column that keeps the strata populated enough
        if len(np.unique(S[:, j])) > DISCRETE_LEVELS:
            continue
        cols = S[:, j : j + 1] if labels is None else np.column_stack([labels, S[:, j]])
        new = np.unique(cols, axis=0, return_inverse=True)[1].ravel()
        if len(S) >= MIN_STRATUM_ROWS * (new.max() + 1):
            labels = new
    return labels


def _hsic_permuted_gamma(K: np.ndarray, L: np.ndarray, strata: np.ndarray,
                         rng: np.random.Generator) -> tuple[float, float]:
    """HSIC with a gamma null whose mean and variance come from permutations of ``L`` within ``strata``.

    Linear residualization on a discrete conditioning set (a task, a loss) removes each level's mean only:
    residuals whose spread differs by level, plus each level's estimated mean, leave a dependence that the
    unconditional gamma approximation rejects (22-31% of independent pairs at 5%, measured with three
    levels of unequal variance at 48-200 rows). Permuting within levels keeps that structure in the null.
    The permutation moments feed a gamma fit, not a rank, so p-values stay continuous under Holm's
    correction. NaN when no level holds two rows.
    """
    m = K.shape[0]
    Kc = K - K.mean(0) - K.mean(1)[:, None] + K.mean()
    Lc = L - L.mean(0) - L.mean(1)[:, None] + L.mean()
    stat = float((Kc * Lc).sum() / m)
    if np.bincount(strata).max() < 2:
        return stat, float("nan")
    base = np.argsort(strata, kind="stable")
    null = np.empty(KERNEL_PERMUTATIONS)
    for b in range(KERNEL_PERMUTATIONS):
        perm = np.empty(m, dtype=np.intp)
        perm[base] = np.lexsort((rng.random(m), strata))  # a random order within each stratum
        null[b] = (Kc * Lc[np.ix_(perm, perm)]).sum() / m
    mean, var = null.mean(), null.var(ddof=1)
    if var <= 0 or mean <= 0:
        return stat, float("nan")
    return stat, float(stats.gamma.sf(stat, mean**2 / var, scale=var / mean))


def _test_node(values: np.ndarray, col: dict[str, int], x: str, ys: list[str], given: list[str],
               test: TestName, kernel_rows: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    base = ~np.isnan(values[:, [col[v] for v in (x, *given)]]).any(1)
    rows = []
    # Ys observed on every row the node's test uses go together; others one at a time
    y_ok = ~np.isnan(values[base][:, [col[y] for y in ys]]).any(0)
    full = [y for y, ok in zip(ys, y_ok) if ok]
    groups = ([full] if full else []) + [[y] for y, ok in zip(ys, y_ok) if not ok]
    for group in groups:
        data = values[base][:, [col[v] for v in (x, *given, *group)]]
        data = data[~np.isnan(data).any(1)]
        n = len(data)
        if n < len(given) + 5:
            rows += [_row(x, y, given, n, np.nan, np.nan, np.nan) for y in group]
            continue
        S, M = data[:, 1 : 1 + len(given)], np.column_stack([data[:, 0], data[:, 1 + len(given) :]])
        if test == "fisher_z":
            R = _residualize(S, M)
            r, p = _fisher_z(R, len(given))
            fixed = _determined(M, R)
            p = np.where(fixed[1:] | fixed[0], np.nan, p)
            rows += [_row(x, y, given, n, r[j], r[j], p[j]) for j, y in enumerate(group)]
        else:
            take = rng.choice(n, size=min(n, kernel_rows), replace=False) if n > kernel_rows else np.arange(n)
            R = _residualize(S[take], M[take])
            r, _ = _fisher_z(R, len(given))
            K = _rbf(R[:, 0])
            strata = _strata(S[take])
            fixed = _determined(M[take], R)
            for j, y in enumerate(group):
                L = _rbf(R[:, j + 1])
                if strata is None:
                    stat, p = _hsic_gamma(K, L)
                else:
                    stat, p = _hsic_permuted_gamma(K, L, strata, rng)
                rows.append(_row(x, y, given, len(take), stat, r[j], np.nan if fixed[0] or fixed[j + 1] else p))
    return rows


def _row(x, y, given, n, statistic, r, p) -> dict[str, Any]:
    return {"x": x, "y": y, "given": ", ".join(given), "n_given": len(given), "n": n,
            "statistic": statistic, "partial_corr": r, "p_value": p}


# ---- missing edges -------------------------------------------------------------------
def _edge_search(numeric: pd.DataFrame, gid: nx.DiGraph, book: nx.DiGraph, expand: Any) -> pd.DataFrame:
    """Randomized column -> mediator/outcome effects the book lacks, adjusted for the design."""
    from causal.sem import independent_columns

    latent = {n for n in gid if gid.nodes[n].get("latent")}
    observed = [n for n in gid if n not in latent]
    randomized = [n for n in observed if gid.nodes[n].get("kind") in (*_ROOT_KINDS, "design")]
    sources = [n for n in randomized if n in book]
    root_cols = expand(randomized)
    targets = [v for v in observed if v in book and gid.nodes[v].get("kind") not in (*_ROOT_KINDS, "design")]
    rows = []
    for t in targets:
        candidates = [s for s in sources if not book.has_edge(s, t)]
        mediators = [p for p in book.predecessors(t) if p in observed and p not in randomized]
        data = numeric[[t, *root_cols, *mediators]].dropna()
        regs = independent_columns(data, [c for c in [*candidates, *root_cols] if data[c].nunique() > 1])
        regs_total = list(regs)
        regs = independent_columns(data, [*regs, *[m for m in mediators if data[m].nunique() > 1]])
        if not candidates or len(data) < len(regs) + 5:
            continue
        y = data[t].to_numpy(dtype="float64")
        sd_t = y.std(ddof=1)
        total = ols(y, data[regs_total].to_numpy(dtype="float64")).params
        fit = ols(y, data[regs].to_numpy(dtype="float64"))
        for s in candidates:
            if s not in regs:
                continue
            j, jt = regs.index(s), regs_total.index(s)
            est, sd_s = float(fit.params[j]), data[s].std(ddof=1)
            rows.append({
                "source": s, "target": t, "method": "direct" if mediators else "total",
                "estimate": est, "std_error": float(fit.std_error[j]),
                "std_effect": est * sd_s / sd_t if sd_t > 0 else np.nan,
                "p_value": float(fit.p_value[j]),
                "total_estimate": float(total[jt]),
                "n": len(data), "in_book": False,
            })
    cols = ["source", "target", "method", "estimate", "std_error", "std_effect", "p_value", "total_estimate",
            "n", "in_book"]
    return pd.DataFrame(rows, columns=cols)


# ---- result ---------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class FalsifyResult(Result):
    """The graph's implications tested against a table.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per implication ``x ⟂ y | given``: ``x``, ``y``, ``given``,
        ``n_given``, ``n``, ``statistic`` (partial correlation for Fisher z,
        HSIC for the kernel test), ``partial_corr``, ``p_value``,
        ``p_adjusted``, ``violated`` (``p_adjusted < alpha``).
    edge_search : pandas.DataFrame
        Every randomized-column → mediator/outcome pair the book lacks:
        ``source``, ``target``, ``method`` (``direct``/``total``),
        ``estimate``, ``std_error``, ``std_effect``, ``p_value``,
        ``p_adjusted``, ``total_estimate``, ``n``, ``in_book`` (False).
    missing_edges : pandas.DataFrame
        The rows of ``edge_search`` with ``|std_effect| > threshold`` and
        ``p_adjusted < alpha``, strongest first.
    skipped : dict
        Graph columns left out (absent, constant, ...), levers left out of the
        design, and implications skipped by ``max_conditioning``.
    randomization : pandas.DataFrame
        Lever-vs-lever implications (columns as ``summary``): checks of the
        randomization itself, corrected on their own so they do not dilute
        the correction of the graph's tests (and not part of ``passed``).
    adjust : str
        ``'design'`` (the book's graph plus the design) or ``'book'``.
    n_diverged : int
        Diverged rows excluded.
    """

    summary: pd.DataFrame
    edge_search: pd.DataFrame
    missing_edges: pd.DataFrame
    test: str
    alpha: float
    correction: str
    threshold: float
    n_rows: int
    skipped: dict[str, str] = field(default_factory=dict)
    randomization: pd.DataFrame = field(default_factory=pd.DataFrame)
    adjust: str = "design"
    n_diverged: int = 0

    title: ClassVar[str] = "Graph falsification (local Markov conditions)"

    @property
    def violations(self) -> pd.DataFrame:
        """Implications rejected after correction."""
        return self.summary[self.summary["violated"]].reset_index(drop=True)

    @property
    def passed(self) -> bool:
        """True when no implication is violated and no strong missing edge is found."""
        return self.violations.empty and self.missing_edges.empty

    @property
    def rejection_rate(self) -> float:
        """Fraction of implications with an *uncorrected* p-value below ``alpha``."""
        p = self.summary["p_value"].dropna()
        return float((p < self.alpha).mean()) if len(p) else float("nan")

    def _info(self) -> dict[str, Any]:
        rand = self.randomization
        return {"test": self.test, "adjust": self.adjust,
                "rows": f"{self.n_rows} ({self.n_diverged} diverged excluded)", "implications": len(self.summary),
                "violated": int(self.summary["violated"].sum()),
                "raw rejections": f"{self.rejection_rate:.3f} at alpha={self.alpha}",
                "correction": self.correction, "missing edges": len(self.missing_edges),
                "randomization checks": f"{len(rand)} ({int(rand['violated'].sum()) if len(rand) else 0} rejected)"}

    def _display_frame(self) -> pd.DataFrame:
        return self.violations

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: the implications plus ``missing_edges`` and ``edge_search``."""
        from causal.results import json_safe

        out = super().to_dict()
        for name in ("missing_edges", "edge_search", "randomization"):
            frame = getattr(self, name)
            out[name] = json_safe(frame.astype(object).where(frame.notna(), None).to_dict("records"))
        out["skipped"] = json_safe(self.skipped)
        return out

    def summary_text(self, *, decimals: int = 3) -> str:
        text = super().summary_text(decimals=decimals).replace("\n\n(no rows)", "\n\nno violated implications")
        miss = self.missing_edges[["source", "target", "method", "estimate", "std_effect", "p_adjusted"]]
        extra = format_table(miss, decimals=decimals) if len(miss) else "none"
        return f"{text}\n\nStrong effects missing from the graph (|std_effect| > {self.threshold:g}):\n{extra}"

    def plot_pvalues(self, ax: Any = None) -> Any:
        """QQ plot of -log10 p against the uniform; violations in red. Returns ``ax``."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4.5))
        s = self.summary.dropna(subset=["p_value"]).sort_values("p_value")
        k = len(s)
        expected = -np.log10((np.arange(1, k + 1) - 0.5) / max(k, 1))
        observed = -np.log10(np.clip(s["p_value"].to_numpy(float), 1e-300, 1))
        colors = np.where(s["violated"].to_numpy(bool), "C3", "C0")
        ax.scatter(expected, observed, c=colors, s=12)
        top = max(expected.max(initial=1), 1)
        ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--")
        ax.set_xlabel("expected -log10 p (all implications hold)")
        ax.set_ylabel("observed -log10 p")
        ax.set_title(f"{self.test}: {int(s['violated'].sum())} of {k} violated")
        return ax

    def plot_missing_edges(self, ax: Any = None, *, top: int = 20) -> Any:
        """Bar chart of the strongest standardized effects the book lacks. Returns ``ax``."""
        import matplotlib.pyplot as plt

        s = self.edge_search.reindex(self.edge_search["std_effect"].abs().sort_values(ascending=False).index)
        s = s.head(top)
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 0.3 * len(s) + 1.2))
        y = np.arange(len(s))[::-1]
        strong = s["p_adjusted"].lt(self.alpha) & s["std_effect"].abs().gt(self.threshold)
        ax.barh(y, s["std_effect"], color=np.where(strong, "C3", "C7"))
        ax.set_yticks(y)
        ax.set_yticklabels((s["source"] + " → " + s["target"]).tolist())
        for v in (-self.threshold, self.threshold):
            ax.axvline(v, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("standardized effect (not in the book's graph)")
        return ax


# ---- entry point -----------------------------------------------------------------------
def falsify(df: pd.DataFrame, *, graph: CausalGraph = BOOK_DAG, test: TestName = "fisher_z",
            alpha: float = 0.05, correction: Correction = "holm", max_conditioning: int | None = None,
            missing_edge_threshold: float = 0.1, seed: int = 0, kernel_rows: int = 500,
            adjust: str = "design", diverged: str = "exclude") -> FalsifyResult:
    """Test the graph's implied conditional independences and search for missing edges.

    Parameters
    ----------
    df : pandas.DataFrame
        A runs table; categorical levers are expanded to contrasts, graph
        columns that are absent or constant are left out of the graph.
    graph : CausalGraph
    test : {'fisher_z', 'kernel'}
        Partial-correlation Fisher z (fast, linear) or residual HSIC on a
        subsample of ``kernel_rows`` rows (see the module docstring).
    alpha : float
        Level of every test after correction.
    correction : {'holm', 'fdr_bh', 'bonferroni'}
        Multiple-testing correction across implications (and separately across
        missing-edge candidates).
    max_conditioning : int, optional
        Skip implications whose conditioning set is larger.
    missing_edge_threshold : float
        Minimum ``|std_effect|`` for a missing edge to be reported.
    seed : int
        Seeds the kernel test's subsampling.
    kernel_rows : int
        Rows per kernel test.
    adjust : {'design', 'book'}
        Test the implications of the book's graph plus the design (default) or
        of the book's graph alone (see :func:`causal.prepare.prepare`).
    diverged : {'exclude', 'include'}

    Returns
    -------
    FalsifyResult
    """
    if test not in ("fisher_z", "kernel"):
        raise ConfigError(f"test must be 'fisher_z' or 'kernel', got {test!r}")
    check_correction(correction)
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha!r}")
    if kernel_rows < 20:
        raise ConfigError(f"kernel_rows must be at least 20, got {kernel_rows!r}")
    from causal.prepare import prepare

    prep = prepare(df, graph, adjust=adjust, diverged=diverged, who="falsify")
    gid, numeric = prep.gid, prep.numeric
    full = graph.column_graph()
    keep, skipped = usable_columns(prep.data, full.nodes)
    latent = {n for n in gid if gid.nodes[n].get("latent")}
    nodes = [n for n in full.nodes if n in keep and n in gid]
    if len(nodes) < 2:
        raise SchemaError(
            f"only {len(nodes)} usable column(s) of the graph in the table ({', '.join(nodes) or 'none'}); "
            f"falsify needs at least two of: {', '.join(full.nodes)}"
        )
    cols = list(dict.fromkeys([*nodes, *prep.expand([n for n in gid if n not in latent])]))
    values, col = numeric[cols].to_numpy(dtype="float64"), {c: i for i, c in enumerate(cols)}
    rng = np.random.default_rng(seed)  # seeded right before the stochastic step (kernel subsamples)
    rows: list[dict[str, Any]] = []
    randomization: list[dict[str, Any]] = []
    with single_threaded():
        for x, ys, given in _implications(gid, nodes, latent):
            given_cols = prep.expand(given)
            if max_conditioning is not None and len(given_cols) > max_conditioning:
                skipped[f"{x} ⟂ * | {len(given)} parents"] = f"conditioning set larger than {max_conditioning}"
                continue
            roots = gid.nodes[x].get("kind") in _ROOT_KINDS
            for group, sink in (([y for y in ys if roots and gid.nodes[y].get("kind") in _ROOT_KINDS], randomization),
                                ([y for y in ys if not (roots and gid.nodes[y].get("kind") in _ROOT_KINDS)], rows)):
                if group:
                    new = _test_node(values, col, x, group, given_cols, test, kernel_rows, rng)
                    for r in new:
                        r["given"] = ", ".join(given)
                    sink += new
        # "in the book" after marginalizing missing columns: a missing mediator's parents reach its children
        from causal._dowhy import identification_graph

        search = _edge_search(numeric, gid, identification_graph(full, nodes), prep.expand)
    names = ["x", "y", "given", "n_given", "n", "statistic", "partial_corr", "p_value"]
    summary = pd.DataFrame(rows, columns=names)
    summary["p_adjusted"] = adjust_pvalues(summary["p_value"].to_numpy(float), correction)
    summary["violated"] = summary["p_adjusted"].lt(alpha)
    rand = pd.DataFrame(randomization, columns=names)
    rand["p_adjusted"] = adjust_pvalues(rand["p_value"].to_numpy(float), correction)
    rand["violated"] = rand["p_adjusted"].lt(alpha)

    search.insert(7, "p_adjusted", adjust_pvalues(search["p_value"].to_numpy(float), correction))
    strong = search["std_effect"].abs().gt(missing_edge_threshold) & search["p_adjusted"].lt(alpha)
    missing = search[strong].reindex(search[strong]["std_effect"].abs().sort_values(ascending=False).index)
    skipped.update(prep.notes)
    return FalsifyResult(summary, search, missing.reset_index(drop=True), test, alpha, correction,
                         missing_edge_threshold, len(prep.data), skipped, rand, adjust, prep.n_diverged)


def _implications(gid: nx.DiGraph, nodes: list[str], latent: set[str]) -> list[tuple[str, list[str], list[str]]]:
    """Local Markov implications among the book's observed columns that hold in ``gid``.

    For each column ``x`` (topological order) and each earlier, non-adjacent
    column ``y``: ``x ⟂ y | observed parents of x`` when that set d-separates
    them in the (latent-projected) graph — a missing column's paths are not
    tested as if they were absent.
    """
    rank = {v: i for i, v in enumerate(nodes)}
    order = [n for n in nx.lexicographical_topological_sort(gid, key=lambda v: rank.get(v, -1)) if n in rank]
    out = []
    for i, x in enumerate(order):
        parents = sorted((p for p in gid.predecessors(x) if p not in latent), key=lambda p: rank.get(p, -1))
        adj = set(gid.predecessors(x)) | set(gid.successors(x))
        ys = [y for y in order[:i] if y not in adj and not _same_categorical(x, y)
              and nx.is_d_separator(gid, {x}, {y}, set(parents))]
        if ys:
            out.append((x, ys, parents))
    return out
