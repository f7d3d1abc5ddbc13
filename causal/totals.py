"""Total effects of the randomized levers: :func:`total_effects`, shared with mediation.

A lever is randomized, so its **total effect** on a mediator or outcome (all
paths, the book's and the others) is identified by a regression of the outcome
on the lever, adjusted for the other randomized columns that are neither its
descendants nor its own intervention levers (``width`` when the lever is
``capacity``) nor their descendants (``capacity`` when the lever is
``inductive_bias``, whose intervention ``arch`` changes the parameter count):
adjustment only for precision and for the design's by-construction
dependencies (``optimizer`` → ``log_lr``), never for something the lever's
change moves. Rows, graph and units come from :func:`causal.prepare.prepare`
(diverged runs excluded by default; columns whose units differ by problem
z-scored within task × problem family when the rows mix problems).

:func:`randomized_totals` is the one estimator: ``mediation``'s ``total`` row
for a randomized source calls it with the same rows, seed and resamples, so
the two report the same numbers. CIs and p-values come from a nonparametric
bootstrap over the rows where the outcome and every randomized column are
observed: estimate ± z·(bootstrap sd) and the matching z-test, as in
mediation.

:func:`total_effects` runs it for every lever × outcome, pooled and per
family (``task/problem``, each in its own raw units), and words each effect
in plain units: "+1 decade of lr: +3.8 accuracy points on mnist1d/classification".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import networkx as nx
import numpy as np
import pandas as pd

from causal.errors import ConfigError, SchemaError
from causal.graph import BOOK_DAG, CausalGraph
from causal.regression import adjust_pvalues, check_correction
from causal.results import Result
from causal.sem import boot_stats, bootstrap_counts, independent_columns
from causal.units import describe as describe_units

__all__ = ["TotalEffects", "TotalDraws", "total_effects", "randomized_totals", "total_adjustment", "plain_units"]

_RANDOMIZED = ("lever", "context", "design")
_MIN_ROWS = 30
#: a family's total effect needs at least this many rows per regressor (the lever and its adjustment set):
#: on the 2-all reference the teacher and transfer families have 31-41 rows for 21-24 regressors (1.4-1.8 per
#: regressor), and their bootstrap CIs for log_lr -> generalization spanned +-0.9 to +-39 units of accuracy or R² (a
#: few near-singular resamples set the sd); graph, MNIST-1D and sequence (3.0-4.0 per regressor) gave 0.08-0.21
MIN_ROWS_PER_REGRESSOR = 3
#: skipped effects printed under the summary (all are in ``.skipped``)
SKIPPED_SHOWN = 25
#: mediators and outcomes :func:`total_effects` reports by default (those present)
DEFAULT_OUTCOMES = ("gradient_stability", "sharpness", "implicit_reg", "bias_sq", "variance", "convergence",
                    "generalization", "test_loss", "test_error", "gen_gap", "deployment_risk", "ece",
                    "precision", "recall", "coverage", "density")

# lever -> (step in its column's units, what the step is in words)
_STEPS: dict[str, tuple[float, str]] = {
    "log_lr": (1.0, "+1 decade of lr"),
    "log_batch": (1.0, "doubling the batch size"),
    "capacity": (1.0, "+1 decade of parameters"),
    "data_quantity": (1.0, "+1 decade of training examples"),
    "init_quality": (1.0, "an init scale one octave closer to He"),
    "weight_decay": (1e-4, "+1e-4 weight decay"),
    "dropout": (0.1, "+0.1 dropout"),
    "label_smoothing": (0.1, "+0.1 label smoothing"),
    "data_noise": (0.1, "+0.1 data noise"),
    "augmentation": (1.0, "augmentation (vs none)"),
    "early_stopping": (1.0, "early stopping (vs none)"),
    "residual": (1.0, "residual connections (vs none)"),
    "pretrained": (1.0, "pretraining (vs none)"),
    "inductive_bias": (1.0, "a matched architecture (vs a plain MLP)"),
    "loss_matched": (1.0, "the matched loss (vs another)"),
    "normalization_batch": (1.0, "batch norm (vs none)"),
    "normalization_layer": (1.0, "layer norm (vs none)"),
    "optimizer_momentum": (1.0, "momentum (vs SGD)"),
    "optimizer_adam": (1.0, "Adam (vs SGD)"),
}
# outcome -> (multiplier, unit) in raw units, per problem where it differs; log10 columns get a factor
_POINTS = {
    ("generalization", "classification"): (100.0, "accuracy points"),
    ("generalization", "regression"): (1.0, "R²"),
    ("test_error", "classification"): (100.0, "error-rate points"),
    ("test_error", "regression"): (1.0, "MSE/var"),
    ("test_loss", "classification"): (1.0, "nats of test loss"),
    ("test_loss", "regression"): (1.0, "test MSE"),
    ("gen_gap", "classification"): (1.0, "nats of generalization gap"),
    ("gen_gap", "regression"): (1.0, "MSE of generalization gap"),
    ("deployment_risk", "classification"): (100.0, "points of worst-minus-best group error"),
    ("deployment_risk", "regression"): (1.0, "MSE/var of worst-minus-best group error"),
    ("ece", ""): (100.0, "ECE points"),
    ("gradient_stability", ""): (1.0, "decades of gradient balance"),
}
_LOG10 = {"sharpness": "sharpness", "implicit_reg": "implicit regularization", "bias_sq": "bias²",
          "variance": "variance", "convergence": "best-constant ÷ training loss"}


def plain_units(lever: str, outcome: str, estimate: float, family: str, standardized: bool,
                lever_standardized: bool = False) -> str:
    """The effect of a lever step on an outcome in words, e.g. '+1 decade of lr: +3.8 accuracy points on mnist1d'.

    ``standardized``: the outcome is in within-family sd units; ``lever_standardized``: so is the lever
    (a step is then one within-family sd of it).
    """
    step, what = (1.0, f"+1 within-family sd of {lever}") if lever_standardized else _STEPS.get(
        lever, (1.0, f"+1 {lever}"))
    effect = estimate * step
    where = "pooled" if family == "pooled" else f"on {family}"
    if standardized:
        return f"{what}: {effect:+.2g} within-family sd of {outcome} ({where})"
    problem = family.split("/")[-1] if "/" in family else ""
    if outcome in _LOG10:
        # a log10 column's effect is a factor; past float range (a generative run's convergence is unbounded
        # below) it is written as a power of ten
        factor = f"×{10 ** effect:.3g}" if abs(effect) < 300 else f"×1e{effect:+.0f}"
        return f"{what}: {_LOG10[outcome]} {factor} ({where})"
    mult, unit = _POINTS.get((outcome, problem), _POINTS.get((outcome, ""), (1.0, f"units of {outcome}")))
    return f"{what}: {effect * mult:+.2g} {unit} ({where})"


def total_adjustment(prep: Any, source: str) -> list[str]:
    """Regression columns a randomized ``source``'s total effect adjusts for (see the module docstring)."""
    from causal.design import COMPUTED

    gid = prep.gid
    node = next((n for n, cols in prep.columns.items() if source in cols), source)  # log2_width -> width
    skip = set(COMPUTED[node].intervention) if node in COMPUTED else set()
    # what the lever's change moves is not adjusted for: its descendants and those of its intervention
    # (switching to a CNN also changes capacity at a given width)
    below = set().union(*(nx.descendants(gid, n) for n in (node, *skip) if n in gid))
    adj = [n for n, k in gid.nodes(data="kind") if k in _RANDOMIZED and n != node and n not in skip
           and n not in below]
    siblings = [c for c in prep.columns.get(node, ()) if c != source]  # loss_l1 beside loss_mse: vs the reference
    return [c for c in [*siblings, *prep.expand(adj)] if c != source]


def _randomized_columns(prep: Any) -> list[str]:
    return [c for c in prep.expand([n for n, k in prep.gid.nodes(data="kind") if k in _RANDOMIZED])
            if c in prep.numeric.columns]


@dataclass(frozen=True)
class TotalDraws:
    """Total effects of several randomized sources on one target, with bootstrap draws.

    Attributes
    ----------
    target : str
    estimate : dict of str -> float
    draws : dict of str -> (n_boot,) array
    adjustment : dict of str -> list of str
    skipped : dict of str -> str
        Sources not estimable here and why.
    rows : pandas.Index
        The rows resampled (outcome and every randomized column observed).
    """

    target: str
    estimate: dict[str, float]
    draws: dict[str, np.ndarray]
    adjustment: dict[str, list[str]]
    skipped: dict[str, str]
    rows: pd.Index


def _target_values(prep: Any, target: str) -> pd.Series:
    if target in prep.numeric.columns:
        return prep.numeric[target]
    return pd.to_numeric(prep.data[target], errors="coerce").astype("float64")


def randomized_totals(prep: Any, target: str, sources: Sequence[str], *, n_boot: int, seed: int) -> TotalDraws:
    """Each randomized source's total effect on ``target``, one bootstrap for all.

    Parameters
    ----------
    prep : causal.prepare.Prepared
    target : str
        A numeric column of ``prep.data`` (graph node or not).
    sources : sequence of str
        Randomized regression columns.
    n_boot, seed : int
        Resamples of the rows; ``numpy.random.default_rng(seed)`` draws them
        (:func:`causal.sem.bootstrap_counts`); mediation draws the same
        resamples over :attr:`TotalDraws.rows` for its SEM.
    """

    rand = _randomized_columns(prep)
    frame = pd.concat([_target_values(prep, target).rename("__y__"), prep.numeric[rand]], axis=1).dropna()
    frame = frame.loc[:, [c for c in frame.columns if c == "__y__" or frame[c].nunique() > 1]]
    adjustment: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for s in sources:
        if s not in frame.columns:
            skipped[s] = f"{s!r} does not vary in the {len(frame)} rows where {target!r} is observed"
            continue
        regs = independent_columns(frame, [s, *[c for c in total_adjustment(prep, s) if c in frame.columns]])
        if not regs or regs[0] != s:
            skipped[s] = f"{s!r} is a function of the other randomized columns"
            continue
        adjustment[s] = regs[1:]
    cols = list(dict.fromkeys(c for s in adjustment for c in (s, *adjustment[s])))
    n = len(frame)
    if adjustment and n < len(cols) + 5:
        raise SchemaError(f"only {n} rows have {target!r} and every randomized column observed; "
                          f"{len(cols)} regressors need more")
    pos = {c: i + 1 for i, c in enumerate(cols)}  # 0 is the intercept, the last column the target
    x = frame[cols].to_numpy("float64")
    y = frame["__y__"].to_numpy("float64")
    f = np.column_stack([np.ones(n), x - x.mean(0), y - y.mean()])  # (n, k)
    k = f.shape[1]
    outer = (f[:, :, None] * f[:, None, :]).reshape(n, k * k)
    idx = {s: [0, *[pos[c] for c in (s, *adjustment[s])]] for s in adjustment}

    def solve(g: np.ndarray) -> dict[str, np.ndarray]:  # g: (B, k, k) weighted cross-products
        out = {}
        for s, ix in idx.items():
            a, b = g[:, ix][:, :, ix], g[:, ix, k - 1]
            try:
                out[s] = np.linalg.solve(a, b[..., None])[:, 1, 0]
            except np.linalg.LinAlgError:  # a resample without variation in some column
                out[s] = (np.linalg.pinv(a) @ b[..., None])[:, 1, 0]
        return out

    point = solve((f.T @ f)[None])
    draws = {s: np.zeros(n_boot) for s in adjustment}
    rng = np.random.default_rng(seed)  # seeded right before the stochastic step
    start = 0
    for counts in bootstrap_counts(n, n_boot, rng):
        stop = start + counts.shape[0]
        for s, v in solve((counts @ outer).reshape(-1, k, k)).items():
            draws[s][start:stop] = v
        start = stop
    return TotalDraws(target, {s: float(v[0]) for s, v in point.items()}, draws, adjustment, skipped, frame.index)


# ---- result ------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class TotalEffects(Result):
    """Total effects of randomized levers on mediators and outcomes.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per (``family``, ``lever``, ``outcome``): ``family`` is
        ``"pooled"`` or a ``task/problem`` cell; ``estimate`` per unit of the
        lever, ``std_error`` (bootstrap sd), ``ci_low``/``ci_high`` (estimate ±
        z·sd), ``p_value`` (the matching z-test), ``p_adjusted`` (corrected
        within each family), ``pct_low``/``pct_high`` (percentile interval),
        ``n``, ``standardized`` (True when the outcome or lever is in
        within-family sd units: pooled over problems, :mod:`causal.units`),
        ``adjustment`` and ``plain`` (the effect of one lever step in words).
    skipped : pandas.DataFrame
        ``family``, ``lever``, ``outcome``, ``reason``.
    units : pandas.DataFrame
        The pooled fit's within-family standardization (empty when none).
    """

    summary: pd.DataFrame
    skipped: pd.DataFrame
    units: pd.DataFrame
    n_boot: int
    seed: int
    alpha: float
    correction: str
    adjust: str
    diverged: str
    n_rows: int
    n_diverged: int
    notes: dict = field(default_factory=dict)

    title: ClassVar[str] = "Total effects of the randomized levers"
    display_columns: ClassVar[tuple[str, ...]] = (
        "family", "lever", "outcome", "estimate", "ci_low", "ci_high", "p_adjusted", "n", "plain")

    def _info(self) -> dict[str, Any]:
        return {"adjust": self.adjust, "rows": f"{self.n_rows} ({self.n_diverged} diverged excluded)"
                if self.diverged == "exclude" else f"{self.n_rows} (diverged included)",
                "ci": f"{100 * (1 - self.alpha):g}% (estimate ± z·bootstrap sd, {self.n_boot} resamples, "
                      f"seed {self.seed})",
                "correction": f"{self.correction} within each family",
                "units": "pooled: " + describe_units(self.units) + "; families: raw units",
                "estimated": f"{len(self.summary)} ({len(self.skipped)} skipped)"}

    def summary_text(self, *, decimals: int = 3) -> str:
        from causal.results import format_table

        text = super().summary_text(decimals=decimals)
        if len(self.skipped):  # one line per family and outcome: the levers skipped there and the first reason
            g = self.skipped.groupby(["family", "outcome"], sort=False)
            frame = g.agg(levers=("lever", "size"), reason=("reason", "first")).reset_index()
            frame["levers"] = [", ".join(v) if len(v) <= 3 else f"{len(v)} levers"
                               for v in g["lever"].agg(list)]
            more = len(frame) - SKIPPED_SHOWN
            text += ("\n\nSkipped (the first reason of each family and outcome; all in .skipped)\n"
                     + format_table(frame.head(SKIPPED_SHOWN)) + (f"\n... and {more} more" if more > 0 else ""))
        return text

    def effect(self, lever: str, outcome: str, family: str = "pooled") -> pd.Series:
        """The summary row of ``lever → outcome`` in ``family`` ('pooled' or 'task/problem')."""
        s = self.summary
        rows = s[(s["lever"] == lever) & (s["outcome"] == outcome) & (s["family"] == family)]
        if rows.empty:
            raise KeyError(f"no total effect of {lever} on {outcome} in {family!r}; families: "
                           f"{', '.join(dict.fromkeys(s['family']))}; see .skipped")
        return rows.iloc[0]

    def to_dict(self) -> dict[str, Any]:
        from causal.results import json_safe

        out = super().to_dict()
        for name in ("skipped", "units"):
            frame = getattr(self, name)
            out[name] = json_safe(frame.astype(object).where(frame.notna(), None).to_dict("records"))
        return out


def _check(n_boot: int, alpha: float) -> None:
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise ConfigError(f"n_boot must be an integer >= 10 (500 is a good default), got {n_boot!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha!r}")


def _expand_levers(prep: Any, rand: list[str], levers: Sequence[str]) -> list[str]:
    """Lever names -> regression columns: raw levers to their encodings (``width`` -> ``log2_width``,
    ``loss`` -> its contrasts), categorical book levers to theirs (``optimizer`` -> ``optimizer_adam``, ...)."""
    out: list[str] = []
    for lv in levers:
        if lv in rand or lv not in prep.columns and not any(c.startswith(f"{lv}_") for c in rand):
            out.append(lv)  # a regression column, or unknown (reported as skipped)
        elif lv in prep.columns:
            out.extend(prep.columns[lv])
        else:
            out.extend(c for c in rand if c.startswith(f"{lv}_"))
    return list(dict.fromkeys(out))


def _scope(df: pd.DataFrame, family: str, graph: CausalGraph, levers: Sequence[str] | None,
           outcomes: Sequence[str] | None, n_boot: int, seed: int, alpha: float, adjust: str, diverged: str
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    from causal.prepare import prepare

    prep = prepare(df, graph, adjust=adjust, diverged=diverged, who="total_effects")
    rand = _randomized_columns(prep)
    book_levers = [n for n, k in prep.gid.nodes(data="kind")
                   if k in ("lever", "context") and n in rand and prep.numeric[n].nunique() > 1]
    chosen = _expand_levers(prep, rand, levers) if levers is not None else book_levers
    targets = list(outcomes) if outcomes is not None else [c for c in DEFAULT_OUTCOMES if c in prep.data.columns]
    in_sd = set(prep.units["column"]) if len(prep.units) else set()
    rows, skipped = [], []
    for target in targets:
        values = pd.to_numeric(prep.data[target], errors="coerce") if target in prep.data.columns else None
        if values is None or values.notna().sum() < _MIN_ROWS:
            skipped.append({"family": family, "lever": "(all)", "outcome": target,
                            "reason": f"{target!r} has fewer than {_MIN_ROWS} values here"})
            continue
        sources = [lv for lv in chosen if lv in rand]
        skipped.extend({"family": family, "lever": lv, "outcome": target,
                        "reason": f"{lv!r} is not a randomized column that varies here"}
                       for lv in chosen if lv not in rand)
        tot = randomized_totals(prep, target, sources, n_boot=n_boot, seed=seed)
        skipped.extend({"family": family, "lever": lv, "outcome": target, "reason": r}
                       for lv, r in tot.skipped.items())
        names = list(tot.estimate)
        # the rows must carry the regression, or the bootstrap CI is set by near-singular resamples
        few = {s: 1 + len(tot.adjustment[s]) for s in names
               if len(tot.rows) < MIN_ROWS_PER_REGRESSOR * (1 + len(tot.adjustment[s]))}
        fix = ("generate more runs" if family == "pooled"
               else "read the pooled estimate, or generate more runs of this family")
        skipped.extend({"family": family, "lever": s, "outcome": target,
                        "reason": f"{len(tot.rows)} rows for {k} regressors, fewer than "
                                  f"{MIN_ROWS_PER_REGRESSOR} per regressor: {fix}"} for s, k in few.items())
        names = [s for s in names if s not in few]
        if not names:
            continue
        st = boot_stats(np.array([tot.estimate[s] for s in names]),
                         np.stack([tot.draws[s] for s in names], axis=1), alpha)
        for i, s in enumerate(names):
            rows.append({"family": family, "lever": s, "outcome": target, "estimate": tot.estimate[s],
                         **{k: float(v[i]) for k, v in st.items()}, "n": len(tot.rows),
                         "standardized": target in in_sd or s in in_sd,
                         "adjustment": ",".join(tot.adjustment[s]),
                         "plain": plain_units(s, target, tot.estimate[s], family, target in in_sd, s in in_sd)})
    return rows, skipped, prep


def total_effects(runs: pd.DataFrame, *, levers: Iterable[str] | None = None, outcomes: Iterable[str] | None = None,
                  graph: CausalGraph = BOOK_DAG, n_boot: int = 500, seed: int = 0, alpha: float = 0.05,
                  correction: str = "holm", adjust: str = "design", diverged: str = "exclude",
                  by_family: bool = True) -> TotalEffects:
    """Every randomized lever's total effect on every mediator and outcome, pooled and per family.

    Parameters
    ----------
    runs : pandas.DataFrame
        A runs table (any source).
    levers : iterable of str, optional
        Randomized columns (default: the book's lever and context columns
        that vary, categorical levers as 0/1 contrasts such as
        ``optimizer_adam``). Raw levers and categorical levers by name
        (``width``, ``depth``, ``loss``, ``optimizer``) stand for their
        regression columns (``log2_width``, ``loss_mse``, ...).
    outcomes : iterable of str, optional
        Numeric columns (default: the mediators and outcomes present).
    graph : CausalGraph
    n_boot, seed : int
        Bootstrap resamples and their seed (the same as ``mediation``'s give
        the same totals).
    alpha : float
        1 − CI level; level of ``p_adjusted``.
    correction : {'holm', 'fdr_bh', 'bonferroni', 'none'}
        Across the effects of each family.
    adjust, diverged : str
        As for :func:`causal.fit_edges`.
    by_family : bool
        Also estimate within each ``task/problem`` family with at least 30
        rows, in that family's raw units (a smaller family is listed in
        ``skipped``). An effect, pooled or in a family, with fewer than
        :data:`MIN_ROWS_PER_REGRESSOR` rows per regressor is listed in
        ``skipped`` instead (its bootstrap CI would be set by near-singular
        resamples).

    Returns
    -------
    TotalEffects

    Examples
    --------
    >>> from causal.simulate_sweep import simulate_sweep
    >>> te = total_effects(simulate_sweep(1500, seed=0).data, levers=["log_lr"], outcomes=["implicit_reg"],
    ...                    n_boot=50)
    >>> round(float(te.effect("log_lr", "implicit_reg")["estimate"]), 1)
    0.8
    """
    from causal.units import families

    _check(n_boot, alpha)
    check_correction(correction)
    levers = None if levers is None else list(levers)
    outcomes = None if outcomes is None else list(outcomes)
    rows, skipped, prep = _scope(runs, "pooled", graph, levers, outcomes, n_boot, seed, alpha, adjust, diverged)
    if by_family:
        fam = families(runs)
        if fam.nunique() > 1:
            for level in sorted(fam.dropna().unique()):
                part = runs.loc[(fam == level).to_numpy()]
                if len(part) < _MIN_ROWS:
                    skipped.append({"family": str(level), "lever": "(all)", "outcome": "(all)",
                                    "reason": f"{len(part)} runs, fewer than {_MIN_ROWS}: read the pooled estimates"})
                    continue
                r, s, _ = _scope(part, str(level), graph, levers, outcomes, n_boot, seed, alpha, adjust, diverged)
                rows.extend(r)
                skipped.extend(s)
    summary = pd.DataFrame(rows, columns=[
        "family", "lever", "outcome", "estimate", "std_error", "ci_low", "ci_high", "p_value", "pct_low",
        "pct_high", "n", "standardized", "adjustment", "plain"])
    summary.insert(8, "p_adjusted", np.nan)
    for _, idx in summary.groupby("family", sort=False).groups.items():
        summary.loc[idx, "p_adjusted"] = adjust_pvalues(summary.loc[idx, "p_value"].to_numpy(float), correction)
    summary["n"] = summary["n"].astype("int64")
    skipped_df = pd.DataFrame(skipped, columns=["family", "lever", "outcome", "reason"])
    return TotalEffects(summary, skipped_df, prep.units, int(n_boot), int(seed), float(alpha), correction, adjust,
                        diverged, prep.n_input, prep.n_diverged, dict(prep.notes))
