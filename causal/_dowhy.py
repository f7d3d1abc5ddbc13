"""The one adapter that owns DoWhy: identification, estimation, refutation.

Everything else in :mod:`causal` speaks DataFrames, networkx graphs and result
objects; DoWhy's quirks are handled here (DEVELOPERS notes):

* ``effect_modifiers=[]`` is always passed to ``estimate_effect`` — by default
  DoWhy adds most other columns as effect modifiers and switches to bootstrap
  CIs (hundreds of refits).
* Every column handed to DoWhy is cast to float64 (integer 0/1 columns are
  otherwise treated inconsistently and ``refute_graph`` crashes on them).
* Refuters run with an explicit ``random_state`` and ``n_jobs=1`` so numbers
  are reproducible for a seed.
* DoWhy's deprecation/future/pandas-4 warnings are filtered inside
  :func:`quiet` around each call, never globally.

The DoWhy calls this package makes (all of them, all here)
----------------------------------------------------------
1. **Identification**, once per column edge (:func:`identify_direct`):
   ``dowhy.causal_identifier.auto_identifier.identify_effect_auto(graph, [t],
   [o], observed, EstimandType.NONPARAMETRIC_CDE, backdoor_adjustment=...)``
   on the identification graph (the book's graph, or the book's graph plus
   the experiment's design, latent-projected onto the columns present).
   ``BACKDOOR_MIN`` on the sparse book graph; ``BACKDOOR_MAX`` on the dense
   design graph (DoWhy's minimal search is exhaustive there: 255 s for 42
   edges at 2,000 rows, against 3 s). DoWhy's answer decides whether the edge
   is identified and supplies the set where latent projections need it.
2. **Linear estimation** (:func:`estimate_linear`):
   ``dowhy.causal_estimator.estimate_effect(frame, t, o, "backdoor",
   LinearRegressionEstimator(estimand, test_significance=False,
   confidence_intervals=False), effect_modifiers=[], method_params={})`` with
   the estimand's backdoor set replaced by the adjustment columns. DoWhy gives
   the point estimate; the standard error, CI and p-value come from the one
   regression core (:func:`causal.regression.ols`, HC3 by default) on the same
   design, and the two point estimates are checked equal.
3. **DML** (:func:`estimate_dml`): the same ``estimate_effect`` call with a
   DoWhy ``CausalEstimator`` subclass (cross-fitted partialling-out; OLS plus
   gradient-boosted trees as nuisance learners) — DoWhy's EconML route needs
   ``econml`` and its numba/llvmlite/shap/lightgbm/sparse dependencies.
4. **Refutation** (:func:`refute`, ``fit_edges(refute=True)``):
   ``dowhy.CausalModel(data, treatment, outcome, graph)`` and
   ``CausalModel.refute_estimate`` with ``placebo_treatment_refuter``
   (permute), ``random_common_cause`` and ``data_subset_refuter`` (0.8), each
   with a seeded ``random_state`` and ``n_jobs=1``.
5. **Tests only**: ``CausalModel.identify_effect("nonparametric-nie")`` and
   ``estimate_effect(method_name="mediation.two_stage_regression")`` cross-check
   single-mediator path effects (tests/test_mediation.py).

Not used: ``dowhy.gcm.falsify`` and its kernel CI tests (~800 s per pass at
5,000 rows; ``falsify`` uses Fisher z or a subsampled HSIC), ``refute_graph``
(crashes on integer columns and does not correct for multiplicity), DoWhy's
``mediation.two_stage_regression`` for chains (it picks its own mediator).

Identification of a direct effect
---------------------------------
A column edge ``t → o`` is the *direct* effect of ``t`` on ``o``. In a linear
SCM its coefficient is identified by a set ``Z`` that (i) contains no
descendant of ``o`` and (ii) d-separates ``t`` from ``o`` in the graph with the
edge ``t → o`` removed (Pearl's single-door criterion; DoWhy's
``nonparametric-cde`` estimand searches exactly this). :func:`identify_direct`
adjusts for the outcome's other observed parents (always admissible; in the
design graph every randomized lever is one) plus ``extra`` (for a mediator
treatment: every randomized lever, roots being always admissible), adds
DoWhy's set where latent nodes leave a path open, and checks the union with
networkx d-separation (:func:`is_valid_direct_adjustment`).

Columns missing from the table are marginalized by a latent projection
(:func:`identification_graph`): a missing node's parents become parents of its
children, and two observed nodes that share a missing ancestor through
missing-only paths get an explicit latent common cause ``U[a|b]``. Contrast
columns of one categorical lever (``optimizer_momentum``/``optimizer_adam``)
also get a latent common cause: they come from one draw and are dependent.
"""

from __future__ import annotations

from causal._threads import single_threaded  # re-exported: the adapter's callers use it

import contextlib
import itertools
import logging
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from causal.errors import ConfigError
from causal.variables import CATEGORICALS

__all__ = [
    "quiet",
    "single_threaded",
    "identification_graph",
    "is_valid_direct_adjustment",
    "Identification",
    "identify_direct",
    "Estimate",
    "estimate_linear",
    "estimate_dml",
    "refute",
]

LATENT_PREFIX = "U["


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence DoWhy's (and pandas-under-DoWhy's) warnings and info logging."""
    logger = logging.getLogger("dowhy")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning, UserWarning, RuntimeWarning):
                warnings.filterwarnings("ignore", category=category, module=r"dowhy\..*")
            try:
                from pandas.errors import Pandas4Warning

                warnings.filterwarnings("ignore", category=Pandas4Warning)
            except ImportError:  # pandas < 3
                pass
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"(pandas|sklearn|statsmodels)\..*")
            # DoWhy's regression estimators print a statsmodels summary, whose normality tests warn on < 20 rows
            warnings.filterwarnings("ignore", message=r".*(kurtosistest|skewtest).*", category=UserWarning)
            yield
    finally:
        logger.setLevel(level)


# ---- graphs ---------------------------------------------------------------------
def _latent_name(a: str, b: str) -> str:
    a, b = sorted((a, b))
    return f"{LATENT_PREFIX}{a}|{b}]"


def identification_graph(
    graph: nx.DiGraph,
    observed: Iterable[str],
    *,
    groups: Iterable[Sequence[str]] | None = None,
) -> nx.DiGraph:
    """The latent projection of ``graph`` onto ``observed``, as a DAG DoWhy accepts.

    Parameters
    ----------
    graph : networkx.DiGraph
        The column-level DAG (all nodes, observed or not).
    observed : iterable of str
        The nodes present in the data.
    groups : iterable of sequences of str, optional
        Sets of nodes that share an unmodelled common cause (default: the
        contrast columns of each categorical lever).

    Returns
    -------
    networkx.DiGraph
        Observed nodes (attributes copied) with a directed edge ``u → v`` when
        ``graph`` has a directed path from ``u`` to ``v`` through unobserved
        nodes only (edge attributes copied when the edge is direct), plus latent
        nodes ``U[a|b]`` (attribute ``latent=True``) with edges to ``a`` and
        ``b`` for every pair that shares an unobserved cause.
    """
    obs = [n for n in graph.nodes if n in set(observed)]
    obs_set = set(obs)
    out = nx.DiGraph()
    for n in obs:
        out.add_node(n, **graph.nodes[n])

    def reach(start: str) -> set[str]:
        """Observed nodes reachable from ``start`` through unobserved intermediates."""
        seen, stack, found = {start}, list(graph.successors(start)), set()
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            if v in obs_set:
                found.add(v)
            else:
                stack.extend(graph.successors(v))
        return found

    for u in obs:
        for v in sorted(reach(u)):
            attrs = graph.edges[u, v] if graph.has_edge(u, v) else {"projected": True}
            out.add_edge(u, v, **attrs)
    pairs: set[tuple[str, str]] = set()
    for latent in (n for n in graph.nodes if n not in obs_set):
        children = sorted(reach(latent))
        pairs.update(itertools.combinations(children, 2))
    if groups is None:
        groups = [cat.contrasts for cat in CATEGORICALS.values()]
    for group in groups:
        present = sorted(c for c in group if c in obs_set)
        pairs.update(itertools.combinations(present, 2))
    for a, b in sorted(pairs):
        u = _latent_name(a, b)
        out.add_node(u, latent=True, kind="latent")
        out.add_edge(u, a)
        out.add_edge(u, b)
    return out


def is_valid_direct_adjustment(
    graph: nx.DiGraph, treatment: str, outcome: str, adjustment: Iterable[str]
) -> bool:
    """Single-door check: does ``adjustment`` identify the direct edge ``treatment → outcome``?

    True when ``adjustment`` holds no latent node, no descendant of ``outcome``
    and d-separates ``treatment`` from ``outcome`` in ``graph`` without the edge.
    """
    z = set(adjustment)
    if any(graph.nodes[n].get("latent") for n in z if n in graph):
        return False
    if z & (nx.descendants(graph, outcome) | {treatment, outcome}):
        return False
    cut = graph.copy()
    if cut.has_edge(treatment, outcome):
        cut.remove_edge(treatment, outcome)
    return bool(nx.is_d_separator(cut, {treatment}, {outcome}, z))


# ---- identification -----------------------------------------------------------------
@dataclass(frozen=True)
class Identification:
    """How the direct edge ``treatment → outcome`` is identified.

    Attributes
    ----------
    dowhy_set : tuple of str or None
        DoWhy's minimal ``nonparametric-cde`` backdoor set (None: none found).
    adjustment : tuple of str
        The set actually adjusted for: ``dowhy_set`` ∪ the outcome's other
        observed parents ∪ ``extra`` (sorted).
    valid : bool
        Whether ``adjustment`` passes :func:`is_valid_direct_adjustment`.
    reason : str
        Why the edge is not identifiable, when it is not.
    estimand : object
        DoWhy's ``IdentifiedEstimand`` (used by :func:`estimate_linear`).
    """

    treatment: str
    outcome: str
    dowhy_set: tuple[str, ...] | None
    adjustment: tuple[str, ...]
    valid: bool
    reason: str = ""
    estimand: Any = field(default=None, repr=False, compare=False)


def _plain(graph: nx.DiGraph) -> nx.DiGraph:
    """Node names and edges only: DoWhy does not need (or like) our attributes."""
    g = nx.DiGraph()
    g.add_nodes_from(graph.nodes)
    g.add_edges_from(graph.edges)
    return g


def _unidentifiable(graph: nx.DiGraph, treatment: str, outcome: str) -> str:
    confounders = sorted(n for n in graph.predecessors(outcome) if graph.nodes[n].get("latent"))
    return (
        f"not identifiable: no observed set blocks every non-direct path from {treatment!r} to {outcome!r}"
        + (f" (unobserved common causes {confounders})" if confounders else "")
        + "; add the missing mediator/confounder columns to the table"
    )


def identify_direct(
    graph: nx.DiGraph,
    treatment: str,
    outcome: str,
    *,
    extra: Iterable[str] = (),
    search: str = "minimal",
) -> Identification:
    """Identify the direct effect ``treatment → outcome`` with DoWhy.

    Parameters
    ----------
    graph : networkx.DiGraph
        An :func:`identification_graph`: its non-latent nodes are the observed ones.
    extra : iterable of str
        Further columns to adjust for (e.g. every randomized lever); those that
        are descendants of ``outcome`` or equal to the treatment are dropped.
    search : {'minimal', 'maximal'}
        DoWhy's backdoor search. ``'minimal'`` (``minimal-adjustment``) is
        exhaustive over subsets: fine on the book's sparse graph, minutes on
        the design graph, where every lever points to every mediator.
        ``'maximal'`` (``maximal-adjustment``) tests the largest eligible set
        first (one d-separation test when it is valid) and says whether the
        edge is identified. The set adjusted for is then the outcome's other
        parents ∪ ``extra`` (in a DAG without latent nodes the parents always
        block every non-direct path; in the design graph they are every
        randomized lever and the book parents); where latent projections
        leave a path open, DoWhy's randomized pre-treatment members are added,
        and failing that DoWhy's whole set. Other mediators and outcomes off
        the direct path are not adjusted for: they add noise and share
        measurement error with the outcome.
    """
    from dowhy.causal_identifier.auto_identifier import BackdoorAdjustment, EstimandType, identify_effect_auto

    observed = [n for n in graph.nodes if not graph.nodes[n].get("latent")]
    banned = nx.descendants(graph, outcome) | {treatment, outcome}
    cut = graph.copy()
    if cut.has_edge(treatment, outcome):
        cut.remove_edge(treatment, outcome)
    # polynomial pre-check: DoWhy searches subsets exhaustively (seconds) when none exists
    if nx.find_minimal_d_separator(cut, {treatment}, {outcome}, restricted=set(observed) - banned) is None:
        return Identification(treatment, outcome, None, (), False, _unidentifiable(graph, treatment, outcome))
    how = {"minimal": BackdoorAdjustment.BACKDOOR_MIN, "maximal": BackdoorAdjustment.BACKDOOR_MAX}[search]
    with quiet():
        estimand = identify_effect_auto(
            _plain(graph), [treatment], [outcome], observed, EstimandType.NONPARAMETRIC_CDE,
            backdoor_adjustment=how,
        )
    found = (estimand.estimands or {}).get("backdoor") is not None
    dowhy_set = tuple(sorted(estimand.get_backdoor_variables() or ())) if found else None
    parents = {p for p in graph.predecessors(outcome) if p != treatment and not graph.nodes[p].get("latent")}
    extra_ok = {c for c in extra if c in graph and not graph.nodes[c].get("latent")} - banned
    adjustment = tuple(sorted(parents | extra_ok))
    if search == "maximal" and found and not is_valid_direct_adjustment(graph, treatment, outcome, adjustment):
        # latent projections left a path open: add DoWhy's randomized pre-treatment members, then all of it
        pre = {c for c in set(dowhy_set or ()) - nx.descendants(graph, treatment)
               if graph.nodes[c].get("kind") in ("lever", "context", "design")}
        adjustment = tuple(sorted(pre | parents | extra_ok))
        if not is_valid_direct_adjustment(graph, treatment, outcome, adjustment):
            adjustment = tuple(sorted(set(dowhy_set or ()) | parents | extra_ok))
    elif search == "minimal":
        adjustment = tuple(sorted(set(dowhy_set or ()) | parents | extra_ok))
    valid = found and is_valid_direct_adjustment(graph, treatment, outcome, adjustment)
    reason = "" if valid else _unidentifiable(graph, treatment, outcome)
    return Identification(treatment, outcome, dowhy_set, adjustment, valid, reason, estimand if found else None)


# ---- estimation --------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """One edge estimate (per unit of the treatment column)."""

    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    overlap: float = float("nan")  # DML: share of the treatment's variance its adjustment set leaves


def estimate_linear(
    data: pd.DataFrame,
    ident: Identification,
    adjustment: Sequence[str] | None = None,
    *,
    alpha: float = 0.05,
    se: str = "hc3",
) -> Estimate:
    """OLS of the outcome on the treatment + adjustment via DoWhy's ``backdoor.linear_regression``.

    Parameters
    ----------
    data : DataFrame
        Complete (no missing values) float rows holding the treatment, the
        outcome and the adjustment columns.
    ident : Identification
        From :func:`identify_direct` (must be valid).
    adjustment : sequence of str, optional
        Override of ``ident.adjustment`` (e.g. with constant columns dropped).
    se : {'hc3', 'hc1', 'classical'}
        Standard errors from the one regression core (:func:`causal.regression.ols`)
        on the same design; DoWhy's point estimate is checked equal to it.
    """
    from dowhy.causal_estimator import estimate_effect
    from dowhy.causal_estimators.linear_regression_estimator import LinearRegressionEstimator

    from causal.regression import check_se, ols

    check_se(se)
    t, o = ident.treatment, ident.outcome
    adjustment, frame, estimand = _backdoor_inputs(data, ident, adjustment)
    with quiet():
        estimator = LinearRegressionEstimator(estimand, test_significance=False, confidence_intervals=False)
        est = estimate_effect(frame, t, o, "backdoor", estimator, effect_modifiers=[], method_params={})
        value = float(est.value)
    fit = ols(frame[o].to_numpy(), frame[[t, *adjustment]].to_numpy(), se=se, alpha=alpha)
    b, std_error, lo, hi, p_value = (float(fit.params[0]), float(fit.std_error[0]), float(fit.ci_low[0]),
                                     float(fit.ci_high[0]), float(fit.p_value[0]))
    if not np.isfinite(b):  # the core finds the treatment collinear with the adjustment set: not identified
        return Estimate(float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), len(frame))
    if not np.isclose(b, value, rtol=1e-6, atol=1e-8):  # same design, same OLS
        raise RuntimeError(f"DoWhy ({value}) and the regression core ({b}) disagree on {t} → {o}")
    return Estimate(value, std_error, lo, hi, p_value, len(frame))


def _crossfit(data: pd.DataFrame, treatment: str, outcome: str, adjustment: Sequence[str], *, folds: int,
              seed: int, max_iter: int) -> tuple[float, float, int, float]:
    """Partialling-out DML on complete float rows: (θ, sandwich SE, n, overlap)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import KFold

    y = data[outcome].to_numpy(dtype="float64")
    t = data[treatment].to_numpy(dtype="float64")
    n = len(data)
    if adjustment:
        z = data[list(adjustment)].to_numpy(dtype="float64")
        ry, rt = np.empty(n), np.empty(n)
        for k, (train, test) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(z)):
            for target, resid, offset in ((y, ry, 0), (t, rt, 1)):
                # linear part first, trees on what it leaves: boosted trees alone approximate the many
                # linear adjustment terms poorly and leave them in the residuals (attenuation bias)
                linear = LinearRegression().fit(z[train], target[train])
                learner = HistGradientBoostingRegressor(max_iter=max_iter, random_state=seed + 2 * k + offset)
                learner.fit(z[train], target[train] - linear.predict(z[train]))
                resid[test] = target[test] - linear.predict(z[test]) - learner.predict(z[test])
    else:
        ry, rt = y - y.mean(), t - t.mean()
    denom = float(np.mean(rt * rt))
    theta = float(np.mean(rt * ry) / denom)
    psi = (ry - theta * rt) * rt
    overlap = denom / float(np.var(t)) if np.var(t) > 0 else float("nan")
    return theta, float(np.sqrt(np.mean(psi**2) / denom**2 / n)), n, overlap


def _dml_estimator_class():
    """A DoWhy ``CausalEstimator`` for the partially linear model (built lazily: DoWhy loads on use)."""
    from dowhy.causal_estimator import CausalEstimate, CausalEstimator

    class PartiallyLinearDML(CausalEstimator):
        """Cross-fitted partialling-out DML as a DoWhy estimator (``outcome = θ·t + g(Z) + ε``)."""

        def __init__(self, identified_estimand: Any, *, folds: int = 5, seed: int = 0, max_iter: int = 100,
                     **kwargs: Any):
            super().__init__(identified_estimand, test_significance=False, confidence_intervals=False, **kwargs)
            self.folds, self.seed, self.max_iter = folds, seed, max_iter

        def fit(self, data: pd.DataFrame, effect_modifier_names: list[str] | None = None):
            self._set_effect_modifiers(data, [])
            t = self._target_estimand.treatment_variable[0]
            o = self._target_estimand.outcome_variable[0]
            adjustment = list(self._target_estimand.get_adjustment_set() or [])
            self.theta_, self.std_error_, self.n_, self.overlap_ = _crossfit(
                data, t, o, adjustment, folds=self.folds, seed=self.seed, max_iter=self.max_iter)
            self.symbolic_estimator = self.construct_symbolic_estimator(self._target_estimand)
            return self

        def estimate_effect(self, data: pd.DataFrame, treatment_value: Any = 1, control_value: Any = 0,
                            target_units: Any = None, **_: Any):
            estimate = CausalEstimate(
                data=data, treatment_name=self._target_estimand.treatment_variable,
                outcome_name=self._target_estimand.outcome_variable,
                estimate=self.theta_ * (treatment_value - control_value), control_value=control_value,
                treatment_value=treatment_value, conditional_estimates=None,
                target_estimand=self._target_estimand, realized_estimand_expr=self.symbolic_estimator)
            estimate.add_estimator(self)
            return estimate

        def construct_symbolic_estimator(self, estimand: Any) -> str:
            return "partially linear DML: E[y - E[y|Z]] = θ (t - E[t|Z]), cross-fitted gradient boosting"

    return PartiallyLinearDML


def estimate_dml(
    df: pd.DataFrame,
    ident: Identification,
    adjustment: Sequence[str] | None = None,
    *,
    alpha: float = 0.05,
    folds: int = 5,
    seed: int = 0,
    max_iter: int = 100,
) -> Estimate:
    """Cross-fitted partialling-out double ML (Chernozhukov et al. 2018) through DoWhy.

    Fits the partially linear model ``outcome = θ·treatment + g(adjustment) + ε``:
    ``E[outcome | Z]`` and ``E[treatment | Z]`` are learned by OLS plus
    gradient-boosted trees on its residuals (``HistGradientBoostingRegressor``,
    seeded, ``max_iter`` rounds) on ``folds - 1`` folds and predicted on the held-out fold; ``θ`` is the
    regression of outcome residuals on treatment residuals, with the usual
    sandwich (heteroskedasticity-robust) standard error and normal CI. It runs
    as a DoWhy ``CausalEstimator`` (``dowhy.causal_estimator.estimate_effect``
    with the identified estimand and its backdoor set). EconML's ``LinearDML``
    would do the same but pulls in numba, llvmlite, shap, lightgbm and sparse
    (~70 MB of wheels); it is not a dependency. With an empty adjustment set
    it reduces to OLS of the centred variables. ``Estimate.overlap`` is the
    share of the treatment's variance left after its cross-fitted prediction
    from the adjustment set (about 1, or a little above from prediction
    noise, for a randomized lever): near 0 the treatment is (nonlinearly) a
    function of its adjustment set and the edge is not identified without a
    functional form.
    """
    from dowhy.causal_estimator import estimate_effect
    from scipy import stats

    t, o = ident.treatment, ident.outcome
    adjustment, frame, estimand = _backdoor_inputs(df, ident, adjustment)
    estimator = _dml_estimator_class()(estimand, folds=folds, seed=seed, max_iter=max_iter)
    with quiet():
        est = estimate_effect(frame, t, o, "backdoor", estimator, effect_modifiers=[], method_params={})
    theta, std_error, n = float(est.value), estimator.std_error_, estimator.n_
    zcrit = float(stats.norm.ppf(1 - alpha / 2))
    p_value = float(2 * stats.norm.sf(abs(theta / std_error))) if std_error > 0 else float("nan")
    return Estimate(theta, std_error, theta - zcrit * std_error, theta + zcrit * std_error, p_value, n,
                    estimator.overlap_)


def _backdoor_inputs(df: pd.DataFrame, ident, adjustment: Sequence[str] | None):
    """(adjustment, float frame, estimand with that backdoor set) for one identified edge; refuses an unidentified one."""
    import copy

    if ident.estimand is None:
        raise ConfigError(f"{ident.treatment} → {ident.outcome} is not identified: {ident.reason}")
    adjustment = list(ident.adjustment if adjustment is None else adjustment)
    frame = _float_frame(df, [ident.treatment, ident.outcome, *adjustment])
    estimand = copy.deepcopy(ident.estimand)
    estimand.set_backdoor_variables(adjustment, key="backdoor")
    return adjustment, frame, estimand


def _float_frame(df: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """The columns as float64 (DoWhy treats ints inconsistently), no index."""
    cols = list(dict.fromkeys(columns))
    return pd.DataFrame({c: np.asarray(df[c], dtype="float64") for c in cols})


def _model(data: pd.DataFrame, graph: nx.DiGraph, treatment: str, outcome: str):
    from dowhy import CausalModel

    with quiet():
        return CausalModel(data=data, treatment=treatment, outcome=outcome, graph=_plain(graph))


# ---- refutation ------------------------------------------------------------------
def refute(
    data: pd.DataFrame,
    graph: nx.DiGraph,
    ident: Identification,
    adjustment: Sequence[str] | None = None,
    *,
    seed: int = 0,
    simulations: int = 20,
) -> dict[str, float]:
    """DoWhy's placebo-treatment, random-common-cause and data-subset refuters.

    Each runs ``simulations`` seeded re-estimations with the linear estimator
    and ``n_jobs=1``. Returns ``placebo_effect`` (should be ≈ 0),
    ``placebo_p`` (DoWhy's p-value of the original estimate under the placebo
    distribution; small means the refutation passed), ``random_cause_effect``
    and ``subset_effect`` (should stay ≈ the estimate).
    """
    import copy

    t, o = ident.treatment, ident.outcome
    adjustment = list(ident.adjustment if adjustment is None else adjustment)
    frame = _float_frame(data, [t, o, *adjustment])
    model = _model(frame, graph, t, o)

    def fitted():
        # a fresh estimand/estimate per refuter: the placebo refuter mutates its estimand
        estimand = copy.deepcopy(ident.estimand)
        estimand.set_backdoor_variables(adjustment, key="backdoor")
        est = model.estimate_effect(estimand, method_name="backdoor.linear_regression", effect_modifiers=[])
        return estimand, est

    common = dict(num_simulations=simulations, n_jobs=1)
    with quiet():
        placebo = model.refute_estimate(
            *fitted(), method_name="placebo_treatment_refuter", placebo_type="permute",
            random_state=np.random.RandomState(seed), **common,
        )
        rcc = model.refute_estimate(
            *fitted(), method_name="random_common_cause", random_state=np.random.RandomState(seed + 1), **common,
        )
        subset = model.refute_estimate(
            *fitted(), method_name="data_subset_refuter", subset_fraction=0.8,
            random_state=np.random.RandomState(seed + 2), **common,
        )
    return {
        "placebo_effect": float(placebo.new_effect),
        "placebo_p": float((placebo.refutation_result or {}).get("p_value", np.nan)),
        "random_cause_effect": float(rcc.new_effect),
        "subset_effect": float(subset.new_effect),
    }
