"""Mediators scored as generalization measures, the anchors' way: :func:`measure_scores`.

Each mediator (``sharpness``, ``variance``, ``bias_sq``, ``implicit_reg``,
``gradient_stability``, ``convergence``) is read as a *measure* that should
predict the generalization gap (``gen_gap`` = test loss − training loss), and
scored two ways, beside the verdict the DAG gives its book edge:

* **Jiang et al. 2020** ("Fantastic Generalization Measures and Where to Find
  Them"): Kendall's τ between the measure and the gap over all runs, and the
  *granulated* Ψ = mean over levers i of ψ_i, where ψ_i is the mean, over the
  groups of runs that agree on everything but lever i, of Kendall's τ within
  the group (computed over the pairs whose lever i differs).
* **Dziugaite et al. 2020** ("In Search of Robust Measures of
  Generalization"): an *environment* is a lever i, a pair of its values
  (a, b) and a group as above; a coupled pair is one run with i = a and one
  with i = b in that group. The sign error of a pair is
  ``(1 − sign(Δmeasure) · sign(Δgap)) / 2`` (0 when the measure orders the
  two gaps right, 1 when wrong, ½ on a tie); an environment's error is its
  mean over its pairs. Reported: the mean over environments and the worst
  case (max), with the environment it comes from.

Orientation: a measure is oriented so that larger predicts a larger gap in
the book's reading (``ORIENTATION``: the sign of its book path to
``generalization``, negated because a larger gap is worse generalization).
τ, Ψ > 0 and a sign error < ½ mean "agrees with the book's direction".

Environments in a randomized sweep
----------------------------------
The anchors train grids: a pair that differs in exactly one hyperparameter
exists for every cell. A randomized sweep draws every lever at random, so two
runs that agree on every other lever almost never exist (on the 400-run
reference the closest pair of non-diverged runs still differs in 3 of 21
levers). Two settings say what a group is:

* ``hold`` — columns every pair shares (default ``task`` and ``problem``);
* ``exact`` — when True, pairs must also share every other lever in
  ``levers``: the anchors' single-lever changes, for grid-like tables. When
  False (default), the other levers differ at random between the two runs of
  a pair: the pair is *coupled* only through ``hold``, and the measure must
  order gap differences that also carry the other levers' (randomized,
  hence unbiased but noisy) effects. ``mean_other_diff`` reports how many
  other levers differ in an average pair.

Continuous levers (more than ``max_levels`` distinct values: ``lr``,
``init_scale``, ``weight_decay``) are coarsened into ``bins`` quantile bins;
a change of bin is a change of the lever. Environments with fewer than
``min_pairs`` pairs are dropped (a single pair makes a worst case of 1 by
chance); diverged runs are excluded, and a run with a null measure or gap
is dropped for that measure.

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"a": [0, 1, 0, 1], "b": [0, 0, 1, 1],
...                   "gen_gap": [1.0, 2.0, 3.0, 4.0], "m": [1.0, 3.0, 2.0, 2.5]})
>>> s = measure_scores(t, measures=["m"], levers=["a", "b"], hold=(), exact=True,
...                    min_pairs=1, orientation={"m": 1}, effects=None).summary
>>> s[["kendall_tau", "psi", "mean_sign_error", "worst_sign_error"]].round(3).values.tolist()
[[0.333, 0.5, 0.25, 1.0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from causal.errors import ConfigError, SchemaError
from causal.results import Result

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["MEASURES", "ORIENTATION", "DEFAULT_LEVERS", "MeasureScores", "measure_scores"]

MEASURES = ("sharpness", "variance", "bias_sq", "implicit_reg", "gradient_stability", "convergence")
#: +1: the book reads a larger value as a larger gap (worse generalization); -1: smaller
ORIENTATION: dict[str, int] = {
    "sharpness": 1,  # edge 27: sharpness -> generalization (-)
    "variance": 1,  # edge 5: variance -> generalization (-)
    "bias_sq": 1,  # edge 4: bias -> generalization (-)
    "implicit_reg": -1,  # edges 18 (-), 5 (-): more implicit regularization, less variance, better
    "gradient_stability": -1,  # edges 10 (+), 16 (+): stabler gradients, better convergence, better
    "convergence": -1,  # edge 16: convergence -> generalization (+)
}
#: the book edge out of each measure whose DAG verdict is shown beside its scores
_BOOK_EDGE = {
    "sharpness": ("sharpness", "generalization"),
    "variance": ("variance", "generalization"),
    "bias_sq": ("bias_sq", "generalization"),
    "implicit_reg": ("implicit_reg", "variance"),
    "gradient_stability": ("gradient_stability", "convergence"),
    "convergence": ("convergence", "generalization"),
}
#: raw levers a user sets (task and problem are held: they define the environments)
DEFAULT_LEVERS = ("arch", "width", "depth", "loss", "init_scale", "optimizer", "lr", "batch_size", "n_train",
                  "noise", "noise_dist", "epochs", "weight_decay", "dropout", "label_smoothing", "augmentation",
                  "early_stopping", "normalization", "residual")


@dataclass(frozen=True, repr=False)
class MeasureScores(Result):
    """Mediators scored as predictors of the generalization gap.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per measure: ``measure``, ``orientation``, ``n`` (runs),
        ``kendall_tau``, ``psi`` (granulated, Jiang et al.),
        ``mean_sign_error``, ``worst_sign_error``, ``worst_environment``
        (Dziugaite et al.), ``n_environments``, ``n_pairs``,
        ``mean_other_diff``, and the DAG's book edge out of the measure:
        ``book_edge``, ``dag_estimate``, ``dag_ci_low``, ``dag_ci_high``,
        ``dag_verdict``.
    by_lever : pandas.DataFrame
        One row per (measure, lever): ``psi_lever`` (ψ_i), ``mean_sign_error``,
        ``worst_sign_error``, ``n_environments``, ``n_pairs``.
    settings : dict
        target, hold, exact, bins, min_pairs and the levers used.
    """

    summary: pd.DataFrame
    by_lever: pd.DataFrame
    settings: dict

    title: ClassVar[str] = "Mediators as generalization measures (Jiang et al. 2020; Dziugaite et al. 2020)"
    display_columns: ClassVar[tuple[str, ...]] = (
        "measure", "orientation", "n", "kendall_tau", "psi", "mean_sign_error", "worst_sign_error",
        "n_environments", "mean_other_diff", "book_edge", "dag_estimate", "dag_verdict",
    )

    def _info(self) -> dict[str, Any]:
        s = self.settings
        return {"target": s["target"], "pairs share": ", ".join(s["hold"]) or "(nothing)",
                "exact": f"{s['exact']} ({'other levers equal' if s['exact'] else 'other levers differ at random'})",
                "levers": ", ".join(s["levers"]), "continuous levers": f"{s['bins']} quantile bins",
                "min_pairs": s["min_pairs"]}

    def to_dict(self) -> dict[str, Any]:
        from causal.results import json_safe

        out = super().to_dict()
        out["by_lever"] = json_safe(self.by_lever.astype(object).where(self.by_lever.notna(), None)
                                    .to_dict("records"))
        return out

    def plot(self, ax: Axes | None = None) -> Axes:
        """τ, Ψ and 1 − 2 × sign error (mean, worst) per measure: 1 is a perfect predictor, 0 chance."""
        from causal.plots import measure_bars

        return measure_bars(self.summary, ax)


def _coarsen(col: pd.Series, bins: int, max_levels: int) -> pd.Series:
    if col.nunique(dropna=True) <= max_levels or not pd.api.types.is_numeric_dtype(col):
        return col.astype(str)
    q = pd.qcut(col.rank(method="first"), bins, labels=False)
    return q.astype("Int64").astype(str)


def _order(v: str) -> tuple[int, float, str]:
    """Numeric values in numeric order (bins and levels are strings here)."""
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, 0.0, v)


def _sign_pairs(m: np.ndarray, g: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sign(Δm)·sign(Δg) for every pair (i in a, j in b): shape (len(a), len(b))."""
    return np.sign(m[b][None, :] - m[a][:, None]) * np.sign(g[b][None, :] - g[a][:, None])


def measure_scores(
    df: pd.DataFrame,
    *,
    measures: Sequence[str] | None = None,
    target: str = "gen_gap",
    levers: Sequence[str] | None = None,
    hold: Sequence[str] = ("task", "problem"),
    exact: bool = False,
    bins: int = 3,
    max_levels: int = 6,
    min_pairs: int = 5,
    orientation: Mapping[str, int] | None = None,
    effects: Any = "fit",
    diverged: str = "exclude",
) -> MeasureScores:
    """Score each mediator as a predictor of ``target`` (see the module docstring).

    Parameters
    ----------
    df : pandas.DataFrame
        A runs table.
    measures : sequence of str, optional
        Columns scored (default :data:`MEASURES` present in ``df``).
    target : str
        The generalization gap (default ``gen_gap``; larger = worse).
    levers : sequence of str, optional
        Levers whose changes define the pairs (default :data:`DEFAULT_LEVERS`
        present and varying, minus ``hold``).
    hold : sequence of str
        Columns every pair shares (define the groups).
    exact : bool
        Pairs must also share every other lever in ``levers``.
    bins, max_levels : int
        A lever with more than ``max_levels`` values is cut into ``bins``
        quantile bins.
    min_pairs : int
        Environments with fewer pairs are dropped.
    orientation : mapping measure -> +1/-1, optional
        Overrides :data:`ORIENTATION` (default +1 for other measures).
    effects : EdgeEffects, 'fit' or None
        The DAG fit whose verdicts are shown; ``'fit'`` runs
        :func:`causal.fit_edges` on ``df``; None leaves those columns empty.
    diverged : {'exclude', 'include'}

    Returns
    -------
    MeasureScores
    """
    if target not in df.columns:
        raise SchemaError(f"measure_scores: the target column {target!r} is not in the table; "
                          "pass target= a generalization-gap column (larger = worse)")
    if diverged not in ("exclude", "include"):
        raise ConfigError(f"diverged must be 'exclude' or 'include', got {diverged!r}")
    if not isinstance(bins, int) or bins < 2:
        raise ConfigError(f"bins must be an integer >= 2, got {bins!r}")
    if not isinstance(min_pairs, int) or min_pairs < 1:
        raise ConfigError(f"min_pairs must be an integer >= 1, got {min_pairs!r}")
    measures = list(measures) if measures is not None else [m for m in MEASURES if m in df.columns]
    missing = [m for m in measures if m not in df.columns]
    if missing or not measures:
        raise SchemaError(f"measure_scores: measure column(s) {missing or list(MEASURES)} not in the table; "
                          f"choose among its columns, e.g. {[m for m in MEASURES if m in df.columns]}")
    hold = [h for h in hold]
    absent = [h for h in hold if h not in df.columns]
    if absent:
        raise SchemaError(f"measure_scores: hold column(s) {absent} not in the table; pass hold= columns it has")
    if levers is None:
        levers = [lv for lv in DEFAULT_LEVERS if lv in df.columns and lv not in hold and df[lv].nunique() > 1]
    else:
        levers = list(levers)
        bad = [lv for lv in levers if lv not in df.columns]
        if bad:
            raise SchemaError(f"measure_scores: lever column(s) {bad} not in the table")
        overlap = [lv for lv in levers if lv in hold]
        if overlap:
            raise ConfigError(f"measure_scores: {overlap} are both held and varied; remove them from hold or levers")
    if not levers:
        raise ConfigError("measure_scores: no lever varies in this table; pass levers= columns that do")
    orient = {**ORIENTATION, **dict(orientation or {})}
    for m in measures:
        if orient.get(m, 1) not in (1, -1):
            raise ConfigError(f"orientation of {m!r} must be +1 or -1, got {orient[m]!r}")

    data = df
    if diverged == "exclude" and "diverged" in df.columns:
        data = df[df["diverged"].fillna(0) != 1]
    coarse = pd.DataFrame({c: _coarsen(data[c], bins, max_levels) for c in dict.fromkeys([*hold, *levers])},
                          index=data.index)

    rows, lever_rows = [], []
    other_diff = 0.0 if exact else _other_differences(coarse[data[target].notna()], hold, levers)
    for m in measures:
        ok = data[m].notna() & data[target].notna()
        sub, cs = data[ok], coarse[ok]
        mv = orient.get(m, 1) * sub[m].to_numpy(float)
        gv = sub[target].to_numpy(float)
        tau = float(stats.kendalltau(mv, gv).statistic) if len(sub) > 1 else np.nan
        envs: list[dict[str, Any]] = []
        psis: list[float] = []
        for lever in levers:
            group_cols = [*hold, *([lv for lv in levers if lv != lever] if exact else [])]
            groups = cs.groupby(group_cols, sort=True).indices if group_cols else {(): np.arange(len(cs))}
            lv_values = cs[lever].to_numpy()
            cell_taus = []
            for key, idx in groups.items():
                idx = np.asarray(idx)
                values = sorted(set(lv_values[idx]), key=_order)
                if len(values) < 2:
                    continue
                agree_sum, n_cell = 0.0, 0
                for i, va in enumerate(values):
                    for vb in values[i + 1:]:
                        a, b = idx[lv_values[idx] == va], idx[lv_values[idx] == vb]
                        s = _sign_pairs(mv, gv, a, b)
                        agree_sum += float(s.sum())
                        n_cell += s.size
                        if s.size >= min_pairs:
                            envs.append({"lever": lever, "from": va, "to": vb,
                                         "group": key if isinstance(key, tuple) else (key,),
                                         "error": float(np.mean((1 - s) / 2)), "pairs": s.size})
                if n_cell:
                    cell_taus.append(agree_sum / n_cell)
            lev_envs = [e for e in envs if e["lever"] == lever]
            psi_i = float(np.mean(cell_taus)) if cell_taus else np.nan
            if cell_taus:
                psis.append(psi_i)
            lever_rows.append({
                "measure": m, "lever": lever, "psi_lever": psi_i,
                "mean_sign_error": float(np.mean([e["error"] for e in lev_envs])) if lev_envs else np.nan,
                "worst_sign_error": float(np.max([e["error"] for e in lev_envs])) if lev_envs else np.nan,
                "n_environments": len(lev_envs), "n_pairs": int(sum(e["pairs"] for e in lev_envs)),
            })
        worst = max(envs, key=lambda e: e["error"]) if envs else None
        rows.append({
            "measure": m, "orientation": orient.get(m, 1), "n": int(len(sub)), "kendall_tau": tau,
            "psi": float(np.mean(psis)) if psis else np.nan,
            "mean_sign_error": float(np.mean([e["error"] for e in envs])) if envs else np.nan,
            "worst_sign_error": worst["error"] if worst else np.nan,
            "worst_environment": (f"{worst['lever']} {worst['from']}→{worst['to']} | "
                                  + ", ".join(f"{h}={v}" for h, v in zip(hold, worst["group"]))
                                  + f" ({worst['pairs']} pairs)") if worst else "",
            "n_environments": len(envs), "n_pairs": int(sum(e["pairs"] for e in envs)),
            "mean_other_diff": other_diff,
        })
    summary = pd.DataFrame(rows)
    if not (summary["n_environments"] > 0).any():
        raise ConfigError(
            f"measure_scores: no environment has {min_pairs} or more coupled pairs (levers {levers}, hold {hold}, "
            f"exact={exact}). Try: exact=False; fewer hold columns; fewer levers; bins=2; or a smaller min_pairs"
        )
    summary = _with_dag(summary, df, effects)
    return MeasureScores(summary, pd.DataFrame(lever_rows), {
        "target": target, "hold": list(hold), "exact": bool(exact), "bins": bins, "max_levels": max_levels,
        "min_pairs": min_pairs, "levers": list(levers), "diverged": diverged})


def _other_differences(cs: pd.DataFrame, hold: list[str], levers: list[str]) -> float:
    """Mean number of other levers that differ in a coupled pair of some lever (pairs share ``hold``).

    One number for the table (the rows with a target), not per measure.
    """
    total, count = 0.0, 0
    groups = cs.groupby(hold, sort=False).indices if hold else {(): np.arange(len(cs))}
    codes = np.column_stack([pd.factorize(cs[lv])[0] for lv in levers])  # (rows, levers)
    for idx in groups.values():
        x = codes[np.asarray(idx)]
        diff = (x[:, None, :] != x[None, :, :]).sum(-1)  # (n, n): levers that differ
        iu = np.triu_indices(len(x), 1)
        d = diff[iu]
        # a pair whose runs differ in d levers is a coupled pair of each of those d levers,
        # and each time the other d - 1 differ as well
        total += float((d * (d - 1)).sum())
        count += int(d.sum())
    return total / count if count else 0.0


def _with_dag(summary: pd.DataFrame, df: pd.DataFrame, effects: Any) -> pd.DataFrame:
    if isinstance(effects, str):
        if effects != "fit":
            raise ConfigError(f"effects must be an EdgeEffects, 'fit' or None, got {effects!r}")
        from causal.edges import fit_edges

        effects = fit_edges(df)
    out = []
    for m in summary["measure"]:
        t, o = _BOOK_EDGE.get(m, (m, ""))
        row = {"book_edge": f"{t} → {o}" if o else "", "dag_estimate": np.nan, "dag_ci_low": np.nan,
               "dag_ci_high": np.nan, "dag_verdict": "not fitted" if effects is None else "not estimated"}
        if effects is not None and o:
            s = effects.summary
            hit = s[(s["treatment"] == t) & (s["outcome"] == o)]
            if len(hit):
                h = hit.iloc[0]
                row.update({"book_edge": f"{int(h['number'])}: {t} → {o} ({h['expected_sign']})",
                            "dag_estimate": float(h["estimate"]), "dag_ci_low": float(h["ci_low"]),
                            "dag_ci_high": float(h["ci_high"]), "dag_verdict": str(h["verdict"])})
        out.append(row)
    return pd.concat([summary, pd.DataFrame(out, index=summary.index)], axis=1)
