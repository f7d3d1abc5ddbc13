"""Effects per stratum (task family, architecture, ...) and pooled without mixing units.

``fit_edges(df, by="task")`` calls :func:`fit_by`:

* **per stratum**: the same fit (same graph, adjustment, diverged policy, SE,
  correction) on each level's rows — ``EdgeEffects.strata``, one row per
  (stratum, edge), estimates in that stratum's own units;
* **pooled**: every book column is standardized *within* its stratum (mean 0,
  sd 1 over the rows the fit uses), then one fit on all rows. Within-stratum
  centring is the stratum fixed effect; within-stratum scaling puts every
  column in within-stratum sd units. A column whose units differ by problem
  (:mod:`causal.units`: ``generalization`` is accuracy or R²) is standardized
  within stratum × task × problem, so it is never pooled raw even when a
  stratum holds two problems. The pooled ``estimate`` is therefore a
  standardized effect (sd of the outcome per sd of the treatment, within
  stratum);
* ``by`` may name several columns (``["task", "problem"]``): a stratum is then
  one cell of them (``"teacher/regression"``), and every stratum's estimates
  are in its own raw units (:func:`causal.prepare.prepare` standardizes a
  column only when a table mixes problems);
* **heterogeneity**: per edge, Cochran's Q over the strata's standardized
  estimates (``q_p``) and ``sign_differs`` — significant in two strata with
  opposite signs.

Raw levers (strings, ``width``, ``init_scale``, ...) are left as they are:
they enter as design adjustment, and within-stratum centring of the book
columns already absorbs the stratum's level.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from causal.errors import ConfigError, SchemaError

__all__ = ["fit_by", "standardize_within"]

_MIN_ROWS = 30


def standardize_within(df: pd.DataFrame, by: str, columns: list[str], mask: np.ndarray | None = None) -> pd.DataFrame:
    """``columns`` z-scored within each level of ``by`` (statistics over ``mask`` rows).

    A column constant within a level is only centred there.
    """
    out = df.copy()
    use = np.ones(len(df), bool) if mask is None else np.asarray(mask, bool)
    groups = df[by].astype("string")
    for col in columns:
        x = pd.to_numeric(df[col], errors="coerce").astype("float64")
        ref = x.where(use)
        mean = ref.groupby(groups).transform("mean")
        sd = ref.groupby(groups).transform("std").replace(0.0, np.nan).fillna(1.0)
        out[col] = (x - mean) / sd
    return out


def fit_by(df: pd.DataFrame, by: str, **kwargs: Any):
    """Per-stratum, pooled (within-stratum standardized) fits and a heterogeneity table.

    Parameters
    ----------
    df : pandas.DataFrame
    by : str or sequence of str
        A categorical column (``task``, ``arch``, ...) or several (their cells).
    **kwargs
        :func:`causal.fit_edges` options (``by`` excluded).

    Returns
    -------
    EdgeEffects
        The pooled fit, with ``strata`` and ``heterogeneity`` filled.
    """
    from causal.edges import fit_edges
    from causal.prepare import usable
    from causal.units import families, mixed_units, standardize_units
    from causal.variables import add_contrasts

    keys = [by] if isinstance(by, str) else list(by)
    missing = [k for k in keys if k not in df.columns]
    if missing or not keys:
        raise SchemaError(f"by={by!r}: {missing or 'no column'} not in the table; choose categorical column(s) "
                          "such as 'task' or ['task', 'problem']")
    label = "×".join(keys)
    levels = df[keys[0]].astype("string")
    for k in keys[1:]:
        levels = levels + "/" + df[k].astype("string")
    if levels.isna().any():
        raise SchemaError(f"by={by!r} has {int(levels.isna().sum())} row(s) with a null value; fill or drop them "
                          "first")
    counts = levels.value_counts()
    if len(counts) < 2 or len(counts) > 20:
        raise ConfigError(f"by={by!r} must have between 2 and 20 levels, got {len(counts)}")
    graph = kwargs.get("graph")
    from causal.graph import BOOK_DAG

    graph = graph or BOOK_DAG
    data = add_contrasts(df)
    book_cols = [c for c in graph.column_graph().nodes if not usable(data, c)]
    keep = np.ones(len(df), bool)
    if kwargs.get("diverged", "exclude") == "exclude" and "diverged" in df.columns:
        keep = pd.to_numeric(df["diverged"], errors="coerce").fillna(0).to_numpy() != 1
    data = data.assign(**{label: levels})
    unit_cols = mixed_units(data, book_cols, keep)
    pooled_table = standardize_within(data, label, [c for c in book_cols if c not in unit_cols], keep)
    if unit_cols:  # units differ by problem: never pooled raw, even within a stratum
        data = data.assign(**{label: levels + "|" + families(data)})
        pooled_table[unit_cols] = standardize_within(data, label, unit_cols, keep)[unit_cols]
    pooled = fit_edges(pooled_table.drop(columns=[label]) if label not in df.columns else pooled_table, **kwargs)
    per = []
    for level in counts.index:
        rows = (levels == level).to_numpy()
        if rows.sum() < _MIN_ROWS:
            continue
        fx = fit_edges(df.loc[rows], **kwargs)
        per.append(fx.summary.assign(stratum=str(level), n_diverged=fx.n_diverged))
    strata = pd.concat(per, ignore_index=True) if per else pd.DataFrame()
    het = _heterogeneity(strata, pooled.config.alpha) if len(strata) else pd.DataFrame()
    object.__setattr__(pooled, "strata", strata)
    object.__setattr__(pooled, "heterogeneity", het)
    object.__setattr__(pooled, "by", label)
    if unit_cols:  # the raw family means and sds, not those of the already standardized pooled table
        object.__setattr__(pooled, "units", standardize_units(add_contrasts(df), unit_cols, keep)[1])
    return pooled


def _heterogeneity(strata: pd.DataFrame, alpha: float) -> pd.DataFrame:
    rows = []
    for (t, o), g in strata.groupby(["treatment", "outcome"], sort=False):
        scale = (g["std_effect"] / g["estimate"]).where(g["estimate"] != 0)
        est = g["std_effect"].to_numpy(float)
        se = (g["std_error"] * scale).abs().to_numpy(float)
        ok = np.isfinite(est) & np.isfinite(se) & (se > 0)
        q, q_p = np.nan, np.nan
        if ok.sum() >= 2:
            w = 1 / se[ok] ** 2
            mean = float((w * est[ok]).sum() / w.sum())
            q = float((w * (est[ok] - mean) ** 2).sum())
            q_p = float(stats.chi2.sf(q, ok.sum() - 1))
        sig = g[g["p_adjusted"] < alpha]
        signs = set(np.sign(sig["estimate"]).astype(int)) - {0}
        rows.append({
            "treatment": t, "outcome": o, "strata": len(g),
            **{f"std_effect[{s}]": v for s, v in zip(g["stratum"], g["std_effect"])},
            "q": q, "q_p": q_p, "sign_differs": len(signs) > 1,
        })
    return pd.DataFrame(rows)
