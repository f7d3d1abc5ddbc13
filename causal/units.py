"""Columns whose units differ across task families, put on one scale before pooling.

A runs table mixes task families (``task`` × ``problem``). Most columns have
one meaning in every family, and the mediators are logarithms, whose unit
changes are constant offsets that the design's ``task``/``problem``/``loss``
contrasts absorb. A few columns change *units* with the problem
(:data:`UNIT_DEPENDENT`): ``generalization`` is accuracy for classes and R²
for regression, ``test_loss`` cross-entropy or MSE, and so on. A regression on
such a column pooled raw across problems adds accuracy points to R² points:
its estimate has no unit, and a family with a wide spread (regression R²,
down to −104 on the reference) outweighs the others whatever the effects.

So whenever such a column's non-null rows span more than one unit (problems
with different units: ``convergence`` has one unit for classes and regression,
another for generative runs),
:func:`standardize_units` z-scores it **within each family** (each
``task`` × ``problem`` cell: mean 0, sd 1 over the rows the analysis keeps),
and every pooled analysis (``fit_edges``, ``mediation``, ``falsify``,
``total_effects``; :func:`causal.prepare.prepare`) fits that column in
within-family sd units. The result states it (``units`` table and the
``standardized`` summary column); estimates in each family's raw units come
from ``fit_edges(..., by=["task", "problem"])`` or
:func:`causal.total_effects` per family. A table whose problem is one
(mnist1d alone, or classification only) keeps raw units: there is nothing to
mix.

Why the family and the sd: a family is the cell in which a column's unit and
its spread are fixed; the pooled estimate is then a fixed-effects average of
standardized within-family effects. The sd is bounded by the data
(``|z| <= sqrt(n - 1)``), so a single extreme row (R² = −104 among values
near 0.9) shrinks its family's scale but cannot get an unbounded weight, as it
would with a robust scale (MAD or IQR: |z| ≈ 10³ there). Such rows are kept
and counted (``extreme``: |z| > 5), never dropped silently.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"task": ["teacher"] * 4, "problem": ["classification"] * 2 + ["regression"] * 2,
...                    "generalization": [0.7, 0.9, -1.0, 3.0]})
>>> out, table = standardize_units(df, ["generalization"])
>>> [round(v, 3) for v in out["generalization"]]
[-0.707, 0.707, -0.707, 0.707]
>>> list(table["units"])
['accuracy', 'R²']
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["FAMILY_KEYS", "UNIT_DEPENDENT", "families", "mixed_units", "standardize_units", "units_label"]

#: a family: one cell of these columns (those present)
FAMILY_KEYS: tuple[str, ...] = ("task", "problem")
_PROBLEM = "problem"
#: column -> its unit per problem (DESIGN.md §2; causal.schema docs)
UNIT_DEPENDENT: dict[str, dict[str, str]] = {
    "generalization": {"classification": "accuracy", "regression": "R²"},
    "test_loss": {"classification": "cross-entropy (nats)", "regression": "MSE"},
    "test_error": {"classification": "error rate", "regression": "MSE / target variance"},
    "gen_gap": {"classification": "cross-entropy gap", "regression": "MSE gap"},
    "deployment_risk": {"classification": "error-rate gap", "regression": "(MSE / target variance) gap"},
    "data_noise": {"classification": "label-noise fraction", "regression": "noise sd / signal sd"},
    "noise": {"classification": "label-noise fraction", "regression": "noise sd / signal sd"},
    # supervised runs: decades of training-loss reduction over the best constant predictor (one unit for
    # classes and regression); generative runs: decades of likelihood ratio per axis over one Gaussian (VAE,
    # flow) or of denoising-error reduction (diffusion), unbounded below for a model far worse than its baseline
    "convergence": {"classification": "decades of loss reduction", "regression": "decades of loss reduction",
                    "generation": "decades of likelihood (or denoising-error) ratio"},
}
#: |z| above which a standardized value is counted as extreme
EXTREME_Z = 5.0
_TABLE = ["column", "family", "units", "mean", "sd", "n", "extreme", "max_z"]


def families(df: pd.DataFrame) -> pd.Series:
    """Family label of each row: ``'teacher/regression'`` (the :data:`FAMILY_KEYS` present)."""
    keys = [k for k in FAMILY_KEYS if k in df.columns]
    if not keys:
        return pd.Series("all", index=df.index, dtype="string")
    label = df[keys[0]].astype("string").fillna("?")
    for k in keys[1:]:
        label = label + "/" + df[k].astype("string").fillna("?")
    return label


def units_label(column: str, problem: str) -> str:
    """The unit of ``column`` in ``problem`` ('' when it has one unit everywhere)."""
    return UNIT_DEPENDENT.get(column, {}).get(str(problem), "")


def mixed_units(df: pd.DataFrame, columns: Iterable[str], mask: np.ndarray | None = None) -> list[str]:
    """The columns of :data:`UNIT_DEPENDENT` among ``columns`` whose non-null rows span 2+ units (problems)."""
    if _PROBLEM not in df.columns:
        return []
    use = np.ones(len(df), bool) if mask is None else np.asarray(mask, bool)
    out = []
    for col in columns:
        if col in UNIT_DEPENDENT and col in df.columns:
            present = pd.to_numeric(df[col], errors="coerce").notna().to_numpy() & use
            problems = df.loc[present, _PROBLEM].dropna().astype(str).unique()
            if len({UNIT_DEPENDENT[col].get(p, p) for p in problems}) > 1:
                out.append(col)
    return out


def standardize_units(df: pd.DataFrame, columns: Iterable[str], mask: np.ndarray | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``df`` with each column of :func:`mixed_units` z-scored within family.

    Parameters
    ----------
    df : pandas.DataFrame
    columns : iterable of str
        Candidate columns (others are left as they are).
    mask : array of bool, optional
        Rows whose values set each family's mean and sd (default: all).

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The table (a copy when anything changed) and one row per (column,
        family): ``units``, the raw ``mean`` and ``sd`` divided out, ``n``,
        ``extreme`` (rows with |z| > 5) and ``max_z`` (the z of largest magnitude). A family whose column is
        constant is only centred (sd recorded as 1).
    """
    cols = mixed_units(df, columns, mask)
    if not cols:
        return df, pd.DataFrame(columns=_TABLE)
    use = np.ones(len(df), bool) if mask is None else np.asarray(mask, bool)
    fam = families(df)
    out = df.copy()
    rows = []
    for col in cols:
        x = pd.to_numeric(df[col], errors="coerce").astype("float64")
        ref = x.where(use)
        mean = ref.groupby(fam).transform("mean")
        sd = ref.groupby(fam).transform("std").replace(0.0, np.nan).fillna(1.0)
        z = (x - mean) / sd
        out[col] = z
        for level, idx in fam.groupby(fam).groups.items():
            vals = ref.loc[idx].dropna()
            if vals.empty:
                continue
            zi = z.loc[idx].where(pd.Series(use, index=df.index).loc[idx]).dropna()
            problem = df.loc[idx, _PROBLEM].iloc[0]
            rows.append({"column": col, "family": str(level), "units": units_label(col, problem),
                         "mean": float(mean.loc[idx].iloc[0]), "sd": float(sd.loc[idx].iloc[0]), "n": len(vals),
                         "extreme": int((zi.abs() > EXTREME_Z).sum()),
                         "max_z": float(zi.loc[zi.abs().idxmax()]) if len(zi) else np.nan})
    return out, pd.DataFrame(rows, columns=_TABLE)


def describe(table: pd.DataFrame) -> str:
    """One line for summaries: which columns are in within-family sd units, and extreme rows."""
    if table is None or table.empty:
        return "raw (no column mixes units)"
    cols = ", ".join(dict.fromkeys(table["column"]))
    text = f"{cols} in within-family sd units (z-scored per task×problem: units differ by problem)"
    ext = table[table["extreme"] > 0]
    if len(ext):
        text += "; kept extreme rows (|z| > 5): " + ", ".join(
            f"{r.column} {r.family} {r.extreme} (z {r.max_z:.1f})" for r in ext.itertuples(index=False))
    return text
