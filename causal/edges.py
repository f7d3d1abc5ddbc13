"""Direct effects of the book's column-level edges: :func:`fit_edges`.

For every column edge ``t → o`` of the graph whose columns are in the table,
:func:`fit_edges` estimates the edge's **direct** effect (per unit of ``t``):

1. *Rows* (:func:`causal.prepare.prepare`, shared with mediation and
   falsify): diverged runs (``diverged == 1``) are excluded by default
   (``diverged="include"`` keeps them; ``EdgeEffects.n_diverged`` counts
   them); categorical levers are expanded to 0/1 contrasts; per edge, rows
   with a null in the treatment, the outcome or the adjustment set are dropped
   (``n`` is what was used, ``n_null_dropped`` what was not).
2. *Graph*: ``adjust="design"`` (default) identifies on the book's graph plus
   the experiment's design (:mod:`causal.design`: raw levers as randomized
   roots, parents of the columns computed from them and possible direct
   causes of every mediator and outcome); ``adjust="book"`` on the book's
   graph alone. Columns missing from the table are marginalized by a latent
   projection (:func:`causal._dowhy.identification_graph`): a missing mediator
   passes its parents' effects on to its children.
3. *Identification*: DoWhy's ``nonparametric-cde`` (controlled direct effect)
   backdoor identification (:func:`causal._dowhy.identify_direct`; minimal
   search on the book graph, maximal on the design graph). The set adjusted
   for holds the outcome's other observed parents (under ``design``: every
   randomized lever and the book parents) and, for a mediator treatment,
   every randomized lever present (roots are always admissible; this takes
   in the loss, the signed init scale, ...). It is checked with networkx
   d-separation; an edge without a valid set is *skipped* with the reason.
   Adjustment columns that are exact linear combinations of others are
   dropped; a treatment that is a function of its adjustment set is skipped
   as not identifiable (never estimated as noise).
4. *Estimation*: ``method="linear"`` — OLS through DoWhy's
   ``backdoor.linear_regression``, standard errors from the one regression
   core (:func:`causal.regression.ols`, HC3 by default);
   ``method="dml"`` — cross-fitted partialling-out double ML with
   gradient-boosted nuisances (:func:`causal._dowhy.estimate_dml`).
5. *Units*: a column whose units differ by problem (``generalization``:
   accuracy or R²; ``data_noise``; ``deployment_risk``) is z-scored within
   each task × problem family when the rows span several problems
   (:mod:`causal.units`), so its edges are estimated in within-family sd
   units, never on a raw pool of accuracy and R² (``standardized`` column,
   :attr:`EdgeEffects.units`); ``by=["task", "problem"]`` gives each family's
   estimates in raw units.
6. *Testing*: p-values are corrected across all estimated edges
   (:func:`causal.regression.adjust_pvalues`: Holm by default).

Every summary row records ``adjust``, ``method``, ``se``, ``adjustment``
(the columns used) and ``dowhy_set``. ``method="dml"`` adds the linear
estimate beside the DML one (``linear_*``), the flags ``disagree_sign`` and
``disagree_significance``, and ``overlap`` (the share of the treatment's
variance its adjustment set leaves; near 0 the edge rests on the linear form).
``by="task"`` (any categorical column) adds per-stratum fits and a
heterogeneity table (:mod:`causal.strata`).

Verdicts (``alpha`` applies to ``p_adjusted``)
----------------------------------------------
* expected sign ``+``/``-``: ``supports`` when significant with the expected
  sign, ``contradicts`` when significant with the opposite sign, else
  ``inconclusive``;
* expected sign ``?`` (the book draws the arrow but states no direction):
  ``supports`` when significant in either direction (the arrow exists),
  otherwise ``inconclusive``; such an edge can never ``contradict``.

Edge 2 (``capacity → variance``) is also estimated per overparameterization
regime and with a ``capacity × overparameterized`` interaction (edge 3, a
moderation): see :attr:`EdgeEffects.moderation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import networkx as nx
import numpy as np
import pandas as pd

from causal.errors import ConfigError
from causal.graph import BOOK_DAG, CausalGraph
from causal.prepare import Adjust, Diverged
from causal.regression import StdErr, adjust_pvalues, ols
from causal.results import Result
from causal.units import describe as describe_units

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["Method", "Adjust", "Correction", "FitConfig", "EdgeEffects", "fit_edges", "plot_forest", "verdict"]

Method = Literal["linear", "dml"]
Correction = Literal["holm", "fdr_bh", "bonferroni", "none"]


@dataclass(frozen=True)
class FitConfig:
    """Settings of one :func:`fit_edges` call (stored on the result)."""

    method: Method = "linear"  # linear OLS through DoWhy, or cross-fitted double ML
    adjust: Adjust = "design"  # book graph + the experiment's design, or the book graph alone
    alpha: float = 0.05  # significance level for CIs and verdicts
    correction: Correction = "holm"  # multiple-testing correction across edges
    refute: bool = False  # run DoWhy's placebo / random-cause / subset refuters
    seed: int = 0  # seeds DML folds and refuters
    standardize: bool = True  # report std_effect = estimate * sd(t) / sd(o)
    se: StdErr = "hc3"  # linear method: robust HC3 or DoWhy's classical SEs
    refute_simulations: int = 20  # re-estimations per refuter
    diverged: Diverged = "exclude"  # drop diverged == 1 rows, or keep them

    def __post_init__(self) -> None:
        choices = {
            "method": ("linear", "dml"),
            "adjust": ("design", "book"),
            "diverged": ("exclude", "include"),
            "correction": ("holm", "fdr_bh", "bonferroni", "none"),
            "se": ("hc3", "hc1", "classical"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key} must be one of {allowed}, got {getattr(self, key)!r}")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if self.refute_simulations < 1:
            raise ConfigError(f"refute_simulations must be >= 1, got {self.refute_simulations!r}")


def verdict(expected_sign: str, estimate: float, p_adjusted: float, alpha: float) -> str:
    """'supports', 'contradicts' or 'inconclusive' (see the module docstring)."""
    if not np.isfinite(p_adjusted) or p_adjusted >= alpha or estimate == 0:
        return "inconclusive"
    if expected_sign == "?":
        return "supports"
    if expected_sign not in ("+", "-"):
        return "inconclusive"
    return "supports" if (estimate > 0) == (expected_sign == "+") else "contradicts"


# ---- result ------------------------------------------------------------------------
@dataclass
class EdgeEffects(Result):
    """Estimated direct effects of the graph's column edges.

    Attributes
    ----------
    summary : DataFrame
        One row per estimated column edge: ``number``, ``edge`` (concept
        ``source→target``), ``treatment``, ``outcome``, ``estimate`` (per unit
        of the treatment column), ``std_error``, ``ci_low``, ``ci_high``,
        ``p_value``, ``p_adjusted``, ``n``, ``expected_sign``,
        ``estimated_sign``, ``significant``, ``verdict``, ``std_effect``
        (``estimate × sd(t) / sd(o)``) with ``std_ci_low``/``std_ci_high``,
        ``adjustment`` (comma-separated set used), ``dowhy_set`` (DoWhy's
        minimal set), ``method``, ``adjust``; with ``refute=True`` also
        ``placebo_effect``, ``placebo_p``, ``random_cause_effect``,
        ``subset_effect``.
    skipped : DataFrame
        Column edges not estimated: ``number``, ``edge``, ``treatment``,
        ``outcome``, ``reason``.
    moderation : DataFrame
        Edge 2 per regime (``under``, ``over``) and the ``interaction``
        (``capacity × overparameterized``: the over-minus-under slope), with
        estimate, CI, p-values (corrected across the three), expected sign,
        verdict. Empty when ``capacity``/``variance``/``overparam`` are absent.
    config : FitConfig
    graph : CausalGraph
    n_rows : int
        Rows of the input table.
    n_diverged : int
        Diverged rows excluded before fitting (``config.diverged``).
    notes : dict
        Levers left out of the design and why (absent, constant).
    moderation_skipped : dict
        Regimes of ``moderation`` not estimated (``'under'``/``'over'``) and why.
    units : DataFrame
        Columns whose units differ by problem, z-scored within each
        task × problem family before fitting (:mod:`causal.units`): one row
        per (column, family) with the raw ``mean``/``sd`` and the ``extreme``
        rows kept. The summary's ``standardized`` column names the edge's
        columns in within-family sd units (``estimate`` is then per sd of
        those). Empty when no column mixes units.
    by : str or None
        With ``fit_edges(..., by=COLUMN)`` (:mod:`causal.strata`): the
        summary is the pooled fit on within-stratum standardized columns,
        ``strata`` holds one row per (stratum, edge) in each stratum's own
        units, ``heterogeneity`` one row per edge (standardized effect per
        stratum, Cochran's ``q``/``q_p``, ``sign_differs``).
    """

    summary: pd.DataFrame
    skipped: pd.DataFrame
    moderation: pd.DataFrame
    config: FitConfig
    graph: CausalGraph
    n_rows: int
    n_diverged: int = 0
    notes: dict = field(default_factory=dict)
    units: pd.DataFrame = field(default_factory=pd.DataFrame)
    moderation_skipped: dict = field(default_factory=dict)
    by: str | None = None
    strata: pd.DataFrame | None = None
    heterogeneity: pd.DataFrame | None = None

    title: ClassVar[str] = "Direct effects of the book's edges"
    display_columns: ClassVar[tuple[str, ...]] = (
        "number", "treatment", "outcome", "estimate", "ci_low", "ci_high", "p_adjusted",
        "std_effect", "n", "expected_sign", "verdict",
    )

    def _display_frame(self) -> pd.DataFrame:
        """The summary's columns, plus the refuters' with ``refute`` and the linear fit's beside ``dml``."""
        extra = []
        if self.config.method == "dml":
            extra += ["linear_estimate", "disagree_sign", "disagree_significance"]
        if self.config.refute:
            extra += ["placebo_p", "random_cause_effect", "subset_effect"]
        cols = [c for c in (*self.display_columns, *extra) if c in self.summary.columns]
        return self.summary[cols]

    def _info(self) -> dict[str, Any]:
        counts = self.summary["verdict"].value_counts() if len(self.summary) else pd.Series(dtype=int)
        return {
            "method": self.config.method + (f" (SE {self.config.se})" if self.config.method == "linear" else ""),
            "adjust": self.config.adjust,
            "alpha": f"{self.config.alpha} ({self.config.correction}-corrected)",
            "rows": f"{self.n_rows} ({self.n_diverged} diverged excluded)" if self.config.diverged == "exclude"
            else f"{self.n_rows} (diverged included)",
            "edges": f"{len(self.summary)} estimated, {len(self.skipped)} skipped",
            "units": describe_units(self.units),
            **({"by": f"{self.by} (pooled: within-stratum standardized)"} if self.by else {}),
            "verdicts": ", ".join(f"{k} {int(counts.get(k, 0))}" for k in ("supports", "contradicts", "inconclusive")),
        }

    def to_dict(self) -> dict[str, Any]:
        from causal.results import json_safe

        out = super().to_dict()
        out["config"] = json_safe(asdict(self.config))
        out["n_rows"], out["n_diverged"], out["notes"] = self.n_rows, self.n_diverged, json_safe(self.notes)
        out["moderation_skipped"] = dict(self.moderation_skipped)
        out["units"] = json_safe(self.units.to_dict("records"))
        if self.by is not None:
            out["by"] = self.by
            for name in ("strata", "heterogeneity"):
                frame = getattr(self, name)
                out[name] = json_safe(frame.astype(object).where(frame.notna(), None).to_dict("records"))
        out["skipped"] = json_safe(self.skipped.astype(object).where(self.skipped.notna(), None).to_dict("records"))
        out["moderation"] = json_safe(
            self.moderation.astype(object).where(self.moderation.notna(), None).to_dict("records")
        )
        return out

    def summary_text(self, *, decimals: int = 3) -> str:
        from causal.results import format_table

        text = super().summary_text(decimals=decimals)
        if len(self.moderation):
            cols = ["regime", "estimate", "ci_low", "ci_high", "p_adjusted", "n", "expected_sign", "verdict"]
            text += "\n\nEdge 2 by overparameterization regime (edge 3)\n"
            text += format_table(self.moderation[cols], decimals=decimals)
        for regime, reason in self.moderation_skipped.items():
            text += f"\nedge 2, {regime}-parameterized regime not estimated: {reason}"
        text += self._unbounded_note()
        if len(self.skipped):
            text += "\n\nSkipped edges\n" + format_table(self.skipped[["number", "treatment", "outcome", "reason"]])
        if self.heterogeneity is not None and len(self.heterogeneity):
            het = self.heterogeneity[self.heterogeneity["sign_differs"] | (self.heterogeneity["q_p"] < self.config.alpha)]
            text += (f"\n\nEdges that differ across {self.by} (pooled estimates above are in within-{self.by} sd "
                     "units)\n" + format_table(het, decimals=decimals))
        return text

    def _unbounded_note(self) -> str:
        """A paragraph naming the edges with no finite CI, and why (empty when there are none)."""
        import textwrap

        if not len(self.summary):
            return ""
        s = self.summary
        open_ci = ~(np.isfinite(s["ci_low"]) & np.isfinite(s["ci_high"]))
        name = lambda rows: ", ".join(f"{r.number} ({r.treatment} -> {r.outcome}, {r.n} rows)"  # noqa: E731
                                      for r in rows.itertuples())
        parts = []
        lost = s[open_ci & ~np.isfinite(s["estimate"])]
        if len(lost):
            parts.append(f"Not identified: {name(lost)}: in these rows the treatment is a combination of the "
                         "columns adjusted for (e.g. it varies in one task only, or with another lever), so its "
                         "effect cannot be separated from theirs.")
        wide = s[open_ci & np.isfinite(s["estimate"])]
        if len(wide):
            parts.append(f"No finite CI: {name(wide)}: the rows cannot pin its standard error down (its "
                         "treatment varies only in rows with leverage 1, e.g. a lever level that a single run "
                         "has, or the regression has nearly as many regressors as rows).")
        if not parts:
            return ""
        parts.append("Such edges are inconclusive; more runs identify them.")
        return "\n\n" + textwrap.fill(" ".join(parts), width=100)

    def effect(self, treatment: str, outcome: str) -> pd.Series | pd.DataFrame:
        """The summary row of ``treatment → outcome`` (a :class:`causal.results.Row`: tiny p-values print).

        A categorical lever estimated as 0/1 contrasts (``optimizer`` as
        ``optimizer_momentum``/``optimizer_adam`` vs SGD) gives a DataFrame,
        one row per contrast.

        Raises
        ------
        KeyError
            If the edge was not estimated (see :attr:`skipped`).
        """
        from causal.results import Row

        s = self.summary
        rows = s[(s["treatment"] == treatment) & (s["outcome"] == outcome)]
        if rows.empty:
            contrasts = s[s["treatment"].str.startswith(f"{treatment}_") & (s["outcome"] == outcome)]
            if len(contrasts):
                return contrasts.reset_index(drop=True)
            into = ", ".join(sorted(s.loc[s["outcome"] == outcome, "treatment"])) or "none"
            raise KeyError(f"{treatment} → {outcome} was not estimated (edges into {outcome}: {into}); see .skipped")
        return Row(rows.iloc[0])

    def plot_forest(self, ax: Axes | None = None) -> Axes:
        """Forest plot of the (standardized) effects, intervals matched to the corrected verdicts."""
        return plot_forest([self], ax=ax)

    def plot_graph(self, ax: Axes | None = None, *, hide_unestimated: bool = True) -> Axes:
        """The column graph: colour = verdict, dashes = negative estimate, width = ``|std_effect|``.

        Nodes none of whose edges was estimated are left out unless
        ``hide_unestimated=False`` (:func:`causal.plots.effects_graph`).
        """
        from causal.plots import effects_graph

        return effects_graph(self, ax, hide_unestimated=hide_unestimated)

    def plot_edge(self, treatment: str, outcome: str, data: pd.DataFrame, ax: Axes | None = None) -> Any:
        """Added-variable plot of one edge on ``data`` (the table it was fitted on): does the verdict
        rest on a trend or on a few points? See :func:`causal.plots.plot_edge`; one panel per stratum
        for a ``by=`` fit."""
        from causal.plots import plot_edge

        return plot_edge(self, data, treatment, outcome, ax)


def plot_forest(
    effects: EdgeEffects | Sequence[EdgeEffects],
    ax: Axes | None = None,
    *,
    labels: Sequence[str] | None = None,
) -> Axes:
    """Forest plot comparing one or several :class:`EdgeEffects` in one panel.

    Standardized effects are drawn when every fit has them, raw per-unit
    estimates otherwise.
    """
    from causal.plots import forest

    fits = [effects] if isinstance(effects, EdgeEffects) else list(effects)
    if not fits:
        raise ConfigError("plot_forest needs at least one EdgeEffects")
    frames = [f.summary for f in fits]
    if labels is None and len(fits) > 1:
        labels = [f"{f.config.method}/{f.config.adjust} #{i + 1}" for i, f in enumerate(fits)]
    alpha = fits[0].config.alpha
    if all(f.config.standardize for f in fits):
        return forest(frames, ax, labels=labels, alpha=alpha)
    return forest(frames, ax, labels=labels, value="estimate", low="ci_low", high="ci_high", alpha=alpha,
                  xlabel="direct effect per unit of treatment")


# ---- fitting -----------------------------------------------------------------------
_SKIP_COLUMNS = ["number", "edge", "treatment", "outcome", "reason"]


def _independent(sub: pd.DataFrame, treatment: str, adjustment: list[str]) -> tuple[list[str], bool]:
    """Drop adjustment columns that are exact linear combinations of earlier ones.

    Returns the kept columns and whether the treatment itself is (linearly) a
    function of them: then its effect is not identifiable from this table.
    """
    from causal.sem import independent_columns

    kept = independent_columns(sub, [*adjustment, treatment])
    return [c for c in kept if c != treatment], treatment not in kept


def _determined_by_design(sub: pd.DataFrame, treatment: str, adjustment: list[str], prep: Any) -> bool:
    """True when a computed column is constant within every cell of its adjusted confounders.

    Catches the nonlinear case the linear rank check misses (capacity at a fixed
    width is a nonlinear function of depth, arch, task and problem).
    """
    from causal.design import COMPUTED

    comp = COMPUTED.get(treatment)
    if comp is None:
        return False
    group = [c for c in prep.expand(list(comp.confounders)) if c in adjustment]
    present = [lv for lv in comp.intervention if lv in prep.columns or lv in sub.columns]
    if not group or present:
        return False
    cells = sub.groupby(group)[treatment]
    if cells.ngroups > len(sub) / 5:  # continuous confounders: cells too small to tell
        return False
    spread = cells.std(ddof=0).fillna(0.0)
    return bool(spread.max() <= 1e-9 * max(float(sub[treatment].std(ddof=0)), 1e-300))


def fit_edges(
    df: pd.DataFrame,
    *,
    graph: CausalGraph = BOOK_DAG,
    method: Method = "linear",
    adjust: Adjust = "design",
    alpha: float = 0.05,
    correction: Correction = "holm",
    diverged: Diverged = "exclude",
    refute: bool = False,
    seed: int = 0,
    standardize: bool = True,
    se: StdErr = "hc3",
    refute_simulations: int = 20,
    by: str | Sequence[str] | None = None,
) -> EdgeEffects:
    """Estimate the direct effect of every column edge of ``graph`` in ``df``.

    Parameters
    ----------
    df : pandas.DataFrame
        A runs table (any source) carrying some of the graph's columns; string
        ``optimizer``/``normalization`` are expanded to contrasts.
    graph : CausalGraph
        The hypothesis (default :data:`causal.BOOK_DAG`).
    method : {'linear', 'dml'}
    adjust : {'design', 'book'}
        Identify on the book's graph plus the experiment's design (default;
        :mod:`causal.prepare`, :mod:`causal.design`) or on the book's graph alone.
    alpha : float
        Level of the CIs and of the verdicts (applied to ``p_adjusted``).
    correction : {'holm', 'fdr_bh', 'bonferroni', 'none'}
    diverged : {'exclude', 'include'}
        Drop ``diverged == 1`` rows (default) or keep them.
    refute : bool
        Also run DoWhy's refuters per edge (slow: ~3 × ``refute_simulations``
        regressions per edge).
    seed : int
        Seeds DML cross-fitting and refuters; results are reproducible.
    standardize : bool
        Report ``std_effect`` (else NaN) and plot it in forest plots.
    se : {'hc3', 'hc1', 'classical'}
        Standard errors of the linear method (:func:`causal.regression.ols`).
    by : str or sequence of str, optional
        A categorical column (e.g. ``'task'``) or several (``['task',
        'problem']``: each family in its own raw units): per-stratum fits and
        a pooled fit on within-stratum standardized columns
        (:mod:`causal.strata`).

    Notes
    -----
    Columns whose units differ by problem (``generalization`` is accuracy or
    R², ``data_noise``, ``deployment_risk``; :mod:`causal.units`) are never
    pooled raw: when the rows span several problems they are z-scored within
    each task × problem family first, and their edges' estimates are per
    within-family sd (``summary['standardized']``, ``EdgeEffects.units``).

    Returns
    -------
    EdgeEffects

    Examples
    --------
    >>> from causal.simulate import simulate_linear_scm
    >>> fx = fit_edges(simulate_linear_scm(2000, seed=0).data)
    >>> print(fx.effect("residual", "gradient_stability")["verdict"])
    supports
    """
    from causal import _dowhy
    from causal.prepare import prepare, usable

    if by is not None:
        from causal.strata import fit_by

        return fit_by(df, by, graph=graph, method=method, adjust=adjust, alpha=alpha, correction=correction,
                      diverged=diverged, refute=refute, seed=seed, standardize=standardize, se=se,
                      refute_simulations=refute_simulations)
    config = FitConfig(method, adjust, alpha, correction, refute, seed, standardize, se, refute_simulations,
                       diverged)
    prep = prepare(df, graph, adjust=adjust, diverged=diverged, who="fit_edges")
    data, numeric, gid = prep.data, prep.numeric, prep.gid
    in_sd = set(prep.units["column"]) if len(prep.units) else set()

    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    with _dowhy.single_threaded():
        for k, ce in enumerate(graph.column_edges()):
            base = {"number": ce.number, "edge": ce.edge, "treatment": ce.treatment, "outcome": ce.outcome}
            reason = usable(data, ce.treatment) or usable(data, ce.outcome)
            if reason:
                skipped.append({**base, "reason": reason})
                continue
            ident = _dowhy.identify_direct(gid, ce.treatment, ce.outcome, extra=prep.extra_for(ce.treatment),
                                           search=prep.search)
            if not ident.valid:
                skipped.append({**base, "reason": ident.reason})
                continue
            # book columns first: a raw lever collinear with one (arch with inductive_bias) is the one dropped
            nodes = sorted(ident.adjustment, key=lambda c: c in prep.columns)
            cols = [c for c in prep.expand(nodes) if c not in (ce.treatment, ce.outcome)]
            frame = numeric[[ce.treatment, ce.outcome, *cols]]
            sub = frame.dropna()
            n_null = len(frame) - len(sub)
            adjustment = [c for c in cols if sub[c].nunique() > 1]  # constants are collinear
            if sub[ce.treatment].nunique() < 2:
                skipped.append({**base, "reason": f"treatment {ce.treatment!r} does not vary in the {len(sub)} complete rows"})
                continue
            if sub[ce.outcome].nunique() < 2:
                skipped.append({**base, "reason": f"outcome {ce.outcome!r} does not vary in the {len(sub)} complete rows"})
                continue
            if len(sub) < len(adjustment) + 5:
                skipped.append({**base, "reason": f"too few complete rows ({len(sub)}) for {len(adjustment)} adjustment columns"})
                continue
            adjustment, determined = _independent(sub, ce.treatment, adjustment)
            if determined or _determined_by_design(sub, ce.treatment, adjustment, prep):
                skipped.append({**base, "reason": f"not identifiable: {ce.treatment!r} is a deterministic function "
                                f"of its adjustment set ({', '.join(ident.adjustment)}); vary its intervention "
                                "independently of them"})
                continue
            linear = _dowhy.estimate_linear(sub, ident, adjustment, alpha=alpha, se=se)
            est = linear if method == "linear" else _dowhy.estimate_dml(sub, ident, adjustment, alpha=alpha,
                                                                       seed=seed + 101 * k)
            scale = float(sub[ce.treatment].std() / sub[ce.outcome].std()) if standardize else np.nan
            row = {
                **base,
                "estimate": est.estimate, "std_error": est.std_error, "ci_low": est.ci_low, "ci_high": est.ci_high,
                "p_value": est.p_value, "n": est.n, "n_null_dropped": n_null, "expected_sign": ce.expected_sign.value,
                "std_effect": est.estimate * scale, "std_ci_low": est.ci_low * scale, "std_ci_high": est.ci_high * scale,
                "adjustment": ",".join(adjustment), "dowhy_set": ",".join(ident.dowhy_set or ()),
                "method": method, "adjust": adjust, "se": se if method == "linear" else "dml_sandwich",
                "standardized": ",".join(c for c in (ce.treatment, ce.outcome) if c in in_sd),
            }
            if method == "dml":  # the linear estimate beside it, for the disagreement flags
                row.update({"linear_estimate": linear.estimate, "linear_ci_low": linear.ci_low,
                            "linear_ci_high": linear.ci_high, "linear_p_value": linear.p_value,
                            "overlap": est.overlap})
            if refute:
                row.update(_dowhy.refute(sub, gid, ident, adjustment, seed=seed + 101 * k, simulations=refute_simulations))
            rows.append(row)

    summary = _finish(pd.DataFrame(rows), config)
    with _dowhy.single_threaded():
        moderation_skipped: dict[str, str] = {}
        moderation = _moderation(data.assign(**{c: numeric[c] for c in numeric.columns if c not in data.columns}),
                                 graph, gid, summary, config, moderation_skipped)
    return EdgeEffects(
        summary=summary,
        skipped=pd.DataFrame(skipped, columns=_SKIP_COLUMNS),
        moderation=moderation,
        moderation_skipped=moderation_skipped,
        config=config,
        graph=graph,
        n_rows=prep.n_input,
        n_diverged=prep.n_diverged,
        notes=dict(prep.notes),
        units=prep.units[prep.units["column"].isin(in_sd & set(graph.column_graph().nodes))].reset_index(drop=True)
        if len(prep.units) else prep.units,
    )


_ORDER = [
    "number", "edge", "treatment", "outcome", "estimate", "std_error", "ci_low", "ci_high", "p_value",
    "p_adjusted", "n", "expected_sign", "estimated_sign", "significant", "verdict", "std_effect",
    "std_ci_low", "std_ci_high", "adjustment", "dowhy_set", "method", "adjust", "se", "n_null_dropped",
    "standardized",
]


def _finish(summary: pd.DataFrame, config: FitConfig) -> pd.DataFrame:
    if summary.empty:
        return pd.DataFrame(columns=_ORDER)
    summary["p_adjusted"] = adjust_pvalues(summary["p_value"].to_numpy(dtype=float), config.correction)
    summary["significant"] = summary["p_adjusted"] < config.alpha
    summary["estimated_sign"] = np.where(summary["estimate"] > 0, "+", np.where(summary["estimate"] < 0, "-", "0"))
    summary["verdict"] = [
        verdict(s, e, p, config.alpha)
        for s, e, p in zip(summary["expected_sign"], summary["estimate"], summary["p_adjusted"])
    ]
    if "linear_p_value" in summary.columns:
        # DML vs linear: opposite significant signs, or significant under one only
        lin_p = adjust_pvalues(summary["linear_p_value"].to_numpy(dtype=float), config.correction)
        lin_sig = lin_p < config.alpha
        summary["linear_p_adjusted"] = lin_p
        summary["disagree_sign"] = (summary["significant"] & lin_sig
                                    & (np.sign(summary["estimate"]) != np.sign(summary["linear_estimate"])))
        summary["disagree_significance"] = summary["significant"] != lin_sig
    summary["n"] = summary["n"].astype("int64")
    summary["n_null_dropped"] = summary["n_null_dropped"].astype("int64")
    summary["standardized"] = summary["standardized"].astype(object)
    rest = [c for c in summary.columns if c not in _ORDER]
    return summary[_ORDER + rest].reset_index(drop=True)


def _moderation(
    data: pd.DataFrame, graph: CausalGraph, gid: nx.DiGraph, summary: pd.DataFrame, config: FitConfig,
    skipped: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Edge 2 per regime and with the capacity × overparameterized interaction; a regime that cannot be
    estimated goes into ``skipped`` (regime -> reason)."""
    cols = ["regime", "treatment", "outcome", "estimate", "std_error", "ci_low", "ci_high", "p_value",
            "p_adjusted", "n", "expected_sign", "verdict"]
    try:
        edge2 = graph.edge(2)
    except Exception:  # a custom graph without edge 2
        return pd.DataFrame(columns=cols)
    row = summary[(summary["treatment"] == "capacity") & (summary["outcome"] == "variance")]
    if row.empty:
        return pd.DataFrame(columns=cols)
    if "overparameterized" in data.columns and data["overparameterized"].notna().any():
        regime = pd.to_numeric(data["overparameterized"]).astype("float64")
    elif "overparam" in data.columns and data["overparam"].notna().any():
        regime = (pd.to_numeric(data["overparam"]) > 0).astype("float64").where(data["overparam"].notna())
    else:
        return pd.DataFrame(columns=cols)
    adjustment = [c for c in row.iloc[0]["adjustment"].split(",") if c]
    frame = data[["capacity", "variance", *adjustment]].astype("float64").assign(_over=regime).dropna()
    out = []
    se = "hc3" if config.method == "dml" else config.se
    for name, flag in (("under", 0.0), ("over", 1.0)):
        part = frame[frame["_over"] == flag]
        adj = _independent(part, "capacity", [c for c in adjustment if part[c].nunique() > 1])[0]
        if len(part) < len(adj) + 5 or part["capacity"].nunique() < 2:
            if skipped is not None:
                skipped[name] = (f"{len(part)} {name}-parameterized runs: too few for the {len(adj)} adjustment "
                                 "columns" if part["capacity"].nunique() >= 2
                                 else f"capacity does not vary in the {len(part)} {name}-parameterized runs")
            continue
        fit = ols(part["variance"].to_numpy(), part[["capacity", *adj]].to_numpy(), se=se, alpha=config.alpha)
        out.append({"regime": name, "estimate": fit.params[0], "std_error": fit.std_error[0],
                    "ci_low": fit.ci_low[0], "ci_high": fit.ci_high[0], "p_value": fit.p_value[0], "n": len(part),
                    "expected_sign": edge2.regime_signs.get(name, edge2.sign).value})
    if frame["_over"].nunique() == 2:
        keep = _independent(frame.assign(_cx=frame["capacity"] * frame["_over"]), "_cx",
                            ["capacity", "_over", *[c for c in adjustment if frame[c].nunique() > 1]])[0]
        x = frame[keep].copy()
        x["capacity_x_over"] = x["capacity"] * x["_over"]
        x = x[["capacity_x_over", *[c for c in x.columns if c != "capacity_x_over"]]]
        fit = ols(frame["variance"].to_numpy(), x.to_numpy(), se=se, alpha=config.alpha)
        # over minus under slope: the book expects it negative (+ under, - over)
        out.append({"regime": "interaction", "estimate": fit.params[0], "std_error": fit.std_error[0],
                    "ci_low": fit.ci_low[0], "ci_high": fit.ci_high[0], "p_value": fit.p_value[0],
                    "n": len(frame), "expected_sign": "-"})
    if not out:
        return pd.DataFrame(columns=cols)
    mod = pd.DataFrame(out)
    mod["treatment"], mod["outcome"] = "capacity", "variance"
    mod["p_adjusted"] = adjust_pvalues(mod["p_value"].to_numpy(dtype=float), config.correction)
    mod["verdict"] = [verdict(s, e, p, config.alpha) for s, e, p in zip(mod["expected_sign"], mod["estimate"], mod["p_adjusted"])]
    mod["n"] = mod["n"].astype("int64")
    return mod[cols].reset_index(drop=True)
