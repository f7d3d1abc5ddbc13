"""The regression gate: a baseline of edge estimates, a check that sampling noise cannot fire.

A CI job keeps a baseline fit (:func:`write_baseline`: every edge's estimate,
standard error, CI, corrected p-value, sign and significance, and the settings
that made it), refits on every new sweep and runs :func:`check_signs`.

The check **refuses** (:class:`causal.errors.BaselineError`) a fit made with
other settings than the baseline's — method, adjustment, SE type, correction,
diverged-row policy, schema version, units (which columns were fitted in
within-family sd units, :mod:`causal.units`) — naming each that differs:
such estimates are not comparable. A setting the baseline predates is not
compared.

It **fails** only on what a reseed cannot do:

* ``flipped`` — the edge was significant in the baseline and the new CI lies
  entirely on the other side of 0;
* ``shifted`` — the two estimates differ significantly given both standard
  errors: ``z = (new - old) / sqrt(se_new² + se_old²)``, p-values corrected
  over edges (the fit's correction, Holm by default);
* ``missing`` — an edge significant in the baseline is not estimated any more.

Lost or gained significance alone (``lost_significance``,
``newly_significant``) is a **warning**, reported with both CI widths, so lost
power (a smaller sweep: wider CIs) is told apart from instability.
:func:`bootstrap_sign_stability` says, per edge, how often the sign survives a
row resample of one table, refitting exactly the checked model.

Baseline file (JSON, version 2)::

    {"format": "udl-sign-baseline", "version": 2, "alpha": 0.05,
     "settings": {"method": "linear", "adjust": "design", "se": "hc3", "correction": "holm",
                  "diverged": "exclude", "schema_version": "2.0",
                  "units": "within-family sd: data_noise,deployment_risk,generalization"},
     "created": "...", "data": "data/reference", "package_version": "0.1.0",
     "edges": [{"number": 9, "edge": "init_quality→gradient_stability",
                "treatment": "init_quality", "outcome": "gradient_stability",
                "estimate": 0.81, "std_error": 0.05, "ci_low": 0.7, "ci_high": 0.9,
                "p_adjusted": 1e-30, "sign": 1, "significant": true}, ...]}

Edges are keyed by ``(treatment, outcome)``; edge 2's rows per
overparameterization regime (``EdgeEffects.moderation``) carry a ``"regime"``.

Examples
--------
>>> from causal.simulate_sweep import simulate_sweep
>>> from causal.edges import fit_edges
>>> import tempfile, pathlib
>>> fx = fit_edges(simulate_sweep(1500, seed=2).data)
>>> path = write_baseline(fx, pathlib.Path(tempfile.mkdtemp()) / "signs.json")
>>> check_signs(fit_edges(simulate_sweep(1500, seed=3).data), path).passed
True
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from causal._threads import single_threaded
from causal.errors import BaselineError, ConfigError, SchemaError
from causal.graph import BOOK_DAG, CausalGraph
from causal.regression import adjust_pvalues, weighted_ols
from causal.results import Result
from causal.sem import bootstrap_counts

__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_VERSION",
    "SETTINGS",
    "SignCheck",
    "SignStability",
    "write_baseline",
    "read_baseline",
    "check_signs",
    "bootstrap_sign_stability",
]

BASELINE_FORMAT = "udl-sign-baseline"
BASELINE_VERSION = 2
#: settings a baseline records and a check must match
SETTINGS = ("method", "adjust", "se", "correction", "diverged", "schema_version", "units")
#: the settings of the fit itself (the others describe the table)
_FIT_SETTINGS = ("method", "adjust", "se", "correction", "diverged")
_EDGE_KEYS = ("treatment", "outcome", "estimate", "std_error", "p_adjusted", "sign", "significant")
_NEEDED = ("treatment", "outcome", "estimate", "std_error", "p_adjusted")
#: statuses that fail the check (for an edge significant in the baseline; ``shifted`` always)
FAILING = ("flipped", "shifted", "missing")
#: statuses reported as warnings
WARNING = ("lost_significance", "newly_significant")


# ---- inputs ---------------------------------------------------------------------------
def _effects_frame(effects: Any) -> tuple[pd.DataFrame, float | None]:
    """The summary DataFrame of an EdgeEffects (or a DataFrame) and its alpha, if known."""
    if isinstance(effects, pd.DataFrame):
        frame, alpha = effects, None
    elif isinstance(getattr(effects, "summary", None), pd.DataFrame):
        frame = effects.summary
        alpha = getattr(getattr(effects, "config", None), "alpha", None)
    else:
        raise ConfigError(
            f"effects must be an EdgeEffects (from causal.fit_edges) or its summary DataFrame, "
            f"got {type(effects).__name__}"
        )
    missing = [c for c in _NEEDED if c not in frame.columns]
    if missing:
        raise SchemaError(f"effects summary lacks column(s) {missing}; expected the columns of "
                          f"EdgeEffects.summary ({', '.join(_NEEDED)}, ...)")
    frame = frame.copy()
    if "regime" not in frame.columns:
        frame["regime"] = ""
    frame["regime"] = frame["regime"].fillna("").astype(str)
    moderation = getattr(effects, "moderation", None)
    if isinstance(moderation, pd.DataFrame) and len(moderation) and "regime" in moderation.columns:
        # edge 2 per overparameterization regime (edge 3): its sign is the book's sharpest claim
        mod = moderation.assign(regime=moderation["regime"].astype(str))
        for col in ("number", "edge"):
            if col in frame.columns:
                base = frame[(frame["treatment"] == "capacity") & (frame["outcome"] == "variance")]
                mod[col] = base[col].iloc[0] if len(base) else None
        frame = pd.concat([frame, mod[[c for c in frame.columns if c in mod.columns]]], ignore_index=True)
    return frame, alpha


def fit_settings(effects: Any) -> dict[str, Any]:
    """The settings of a fit that a baseline records (those a summary DataFrame carries)."""
    from causal.schema import SCHEMA_VERSION

    config = getattr(effects, "config", None)
    if config is not None:
        out = {k: getattr(config, k) for k in SETTINGS if hasattr(config, k)}
        out["schema_version"] = SCHEMA_VERSION
        if out.get("method") == "dml":
            out["se"] = "dml_sandwich"
        out.update(_units_setting(getattr(effects, "summary", None)))
        return out
    frame = effects if isinstance(effects, pd.DataFrame) else getattr(effects, "summary", pd.DataFrame())
    out = {k: frame[k].iloc[0] for k in ("method", "adjust", "se") if k in frame.columns and len(frame)}
    return {**out, **_units_setting(frame)}


def _units_setting(summary: Any) -> dict[str, str]:
    """``{"units": ...}``: the columns fitted in within-family sd units (:mod:`causal.units`), else "raw".

    Empty for a summary without the ``standardized`` column (made before it existed).
    """
    if not isinstance(summary, pd.DataFrame) or "standardized" not in summary.columns:
        return {}
    cols = sorted({c for v in summary["standardized"].dropna() for c in str(v).split(",") if c})
    return {"units": "within-family sd: " + ",".join(cols) if cols else "raw"}


def _key(e: Any) -> tuple[str, str, str]:
    """(treatment, outcome, regime) of a baseline entry (dict) or a summary row (namedtuple)."""
    if isinstance(e, dict):
        return e["treatment"], e["outcome"], e.get("regime") or ""
    return e.treatment, e.outcome, getattr(e, "regime", "") or ""


def _sign(x: float) -> int:
    return int(np.sign(x)) if np.isfinite(x) else 0


def write_baseline(effects: Any, path: str | Path, *, alpha: float | None = None,
                   data: str | None = None) -> Path:
    """Write the baseline of ``effects`` to ``path`` (JSON, atomically).

    Parameters
    ----------
    effects : EdgeEffects
        A fit; its settings (method, adjust, SE, correction, diverged policy,
        schema version, units) are recorded. A summary DataFrame records only the
        settings its columns carry.
    path : str or Path
    alpha : float, optional
        Significance level for ``p_adjusted``; the fit's own alpha (or 0.05).
    data : str, optional
        Where the fitted data came from (stored for the record).

    Returns
    -------
    Path
    """
    frame, fit_alpha = _effects_frame(effects)
    alpha = float(alpha if alpha is not None else fit_alpha if fit_alpha is not None else 0.05)
    edges = []
    for _, row in frame.iterrows():
        entry = {k: _plain(row[k]) for k in ("number", "edge", "treatment", "outcome", "estimate", "std_error",
                                             "ci_low", "ci_high", "p_adjusted", "n") if k in frame.columns}
        if row["regime"]:
            entry["regime"] = row["regime"]
        entry["sign"] = _sign(float(row["estimate"]))
        entry["significant"] = bool(float(row["p_adjusted"]) < alpha)
        edges.append(entry)
    from causal import __version__

    doc = {
        "format": BASELINE_FORMAT, "version": BASELINE_VERSION, "alpha": alpha,
        "settings": {k: _plain(v) for k, v in fit_settings(effects).items()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": data, "package_version": __version__, "edges": edges,
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _plain(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not np.isfinite(v) else float(v)
    return v


def read_baseline(path: str | Path) -> dict[str, Any]:
    """Read and validate a baseline file.

    Raises
    ------
    BaselineError
        Naming the file and what is wrong: missing, not JSON, wrong format or
        version, missing keys.
    """
    path = Path(path)
    if not path.is_file():
        raise BaselineError(f"baseline file {str(path)!r} does not exist; create it with "
                            "`udl check DATA --baseline FILE --write-baseline` or causal.stability.write_baseline")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BaselineError(f"baseline file {str(path)!r} is not valid JSON ({exc}); regenerate it") from None
    return validate_baseline(doc, source=str(path))


def validate_baseline(doc: Any, *, source: str = "baseline") -> dict[str, Any]:
    """Check a parsed baseline dict; return it. See :func:`read_baseline`."""
    where = f"baseline {source!r}"
    if not isinstance(doc, dict):
        raise BaselineError(f"{where} must be a JSON object, got {type(doc).__name__}")
    if doc.get("format") != BASELINE_FORMAT:
        raise BaselineError(f"{where} has format {doc.get('format')!r}; expected {BASELINE_FORMAT!r}")
    if doc.get("version") != BASELINE_VERSION:
        raise BaselineError(f"{where} has version {doc.get('version')!r}; this package reads version "
                            f"{BASELINE_VERSION} (estimates, standard errors and the fit's settings). Regenerate "
                            "it: `udl check DATA --baseline FILE --write-baseline`")
    for key in ("alpha", "edges", "settings"):
        if key not in doc:
            raise BaselineError(f"{where} lacks the key {key!r}")
    if not isinstance(doc["edges"], list):
        raise BaselineError(f"{where}: 'edges' must be a list, got {type(doc['edges']).__name__}")
    for i, e in enumerate(doc["edges"]):
        missing = [k for k in _EDGE_KEYS if not isinstance(e, dict) or k not in e]
        if missing:
            raise BaselineError(f"{where}: edge #{i} lacks key(s) {missing}; every edge needs {list(_EDGE_KEYS)}")
    keys = [_key(e) for e in doc["edges"]]
    dup = sorted({k for k in keys if keys.count(k) > 1})  # (treatment, outcome, regime)
    if dup:
        raise BaselineError(f"{where}: edge(s) {dup} appear more than once")
    return doc


def _setting(key: str, value: Any) -> Any:
    """A setting as the comparison sees it: only the major part of a schema version (a minor bump only adds
    columns, and readers accept files of the same major version: ``causal.schema.SCHEMA_VERSION``)."""
    if key == "schema_version" and isinstance(value, str):
        return value.split(".")[0]
    return value


def _compare_settings(doc: dict[str, Any], effects: Any, source: str) -> None:
    mine = fit_settings(effects)
    theirs = doc.get("settings") or {}
    differ = [f"{k}: baseline {theirs[k]!r}, this fit {mine[k]!r}"
              for k in SETTINGS if k in mine and k in theirs and _setting(k, mine[k]) != _setting(k, theirs[k])]
    if differ:
        keys = [k for k in SETTINGS if k in mine and k in theirs and _setting(k, mine[k]) != _setting(k, theirs[k])]
        fits = [k for k in keys if k in _FIT_SETTINGS]
        hint = []
        if fits:
            hint.append("refit with the baseline's settings (" + ", ".join(f"{k}={theirs[k]!r}" for k in fits)
                        + "): `udl check` uses them unless --adjust or --diverged say otherwise; in Python pass "
                        "them to fit_edges")
        if "units" in keys:
            hint.append("'units' differs because the two tables hold different task/problem families (another "
                        "lever space or a sweep too small to hold them all): compare sweeps of the same space")
        if "schema_version" in keys:
            hint.append("the schema's major version differs: regenerate the sweep or the baseline with this version")
        raise BaselineError(
            f"baseline {source!r} was made with other settings, so its estimates are not comparable: "
            + "; ".join(differ) + ". To compare, " + "; ".join(hint)
            + ". Or write a new baseline (`udl check DATA --baseline FILE --write-baseline`)"
        )


# ---- results ---------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class SignCheck(Result):
    """A new fit compared with a baseline.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per edge: ``number``, ``edge``, ``treatment``, ``outcome``,
        ``regime``, ``baseline_estimate``, ``baseline_std_error``,
        ``baseline_sign``, ``baseline_significant``, ``baseline_ci_width``,
        ``estimate``, ``std_error``, ``ci_low``, ``ci_high``, ``ci_width``,
        ``sign``, ``p_adjusted``, ``significant``, ``diff_z``, ``diff_p``,
        ``diff_p_adjusted`` (the difference test, corrected over edges),
        ``status`` (``stable``, ``not_significant``, ``flipped``, ``shifted``,
        ``missing``, ``lost_significance``, ``newly_significant``,
        ``not_in_baseline``), ``failed``, ``warning``; ``same_sign``
        (bootstrap fraction) when a :class:`SignStability` was given.
    alpha : float
    source : str
        Where the baseline came from.
    settings : dict
        The settings both fits share.
    """

    summary: pd.DataFrame
    alpha: float
    source: str
    settings: dict | None = None

    title: ClassVar[str] = "Regression gate against the baseline"

    @property
    def passed(self) -> bool:
        return not bool(self.summary["failed"].any())

    @property
    def failures(self) -> pd.DataFrame:
        return self.summary[self.summary["failed"]].reset_index(drop=True)

    @property
    def warnings(self) -> pd.DataFrame:
        """Lost or gained significance: not failures; compare the CI widths."""
        return self.summary[self.summary["warning"]].reset_index(drop=True)

    @property
    def changes(self) -> pd.DataFrame:
        """Edges whose status is anything but ``stable``/``not_significant``."""
        keep = ~self.summary["status"].isin(("stable", "not_significant"))
        return self.summary[keep].reset_index(drop=True)

    def _info(self) -> dict[str, Any]:
        counts = self.summary["status"].value_counts()
        info = {"baseline": self.source, "alpha": self.alpha, "result": "PASSED" if self.passed else "FAILED",
                "statuses": ", ".join(f"{k} {int(v)}" for k, v in counts.items())}
        if self.settings:
            info["settings"] = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return info

    def _display_frame(self) -> pd.DataFrame:
        cols = ["number", "treatment", "outcome", "regime", "baseline_estimate", "estimate", "baseline_ci_width",
                "ci_width", "diff_p_adjusted", "status", "failed", "same_sign"]
        return self.changes[[c for c in cols if c in self.summary.columns]]

    def summary_text(self, *, decimals: int = 3) -> str:
        text = super().summary_text(decimals=decimals)
        return text.replace("\n\n(no rows)", "\n\nno changes: every edge kept its sign and significance")


@dataclass(frozen=True, repr=False)
class SignStability(Result):
    """Bootstrap sign stability per edge.

    Attributes
    ----------
    summary : pandas.DataFrame
        ``treatment``, ``outcome``, ``estimate``, ``sign``, ``same_sign``
        (fraction of resamples whose estimate has the full-data sign), ``n``.
    n_boot, seed : int
    """

    summary: pd.DataFrame
    n_boot: int
    seed: int

    title: ClassVar[str] = "Bootstrap sign stability"

    def _info(self) -> dict[str, Any]:
        return {"n_boot": self.n_boot, "seed": self.seed, "edges": len(self.summary)}


# ---- the check ---------------------------------------------------------------------------
def _num(r: Any, name: str) -> float:
    v = getattr(r, name, np.nan) if r is not None else np.nan
    return float(v) if v is not None and not pd.isna(v) else np.nan


def check_signs(effects: Any, baseline: str | Path | dict[str, Any], *, alpha: float | None = None,
                stability: SignStability | None = None) -> SignCheck:
    """Compare a new fit with a baseline (see the module docstring for the rules).

    Parameters
    ----------
    effects : EdgeEffects or pandas.DataFrame
        The new fit (or its ``summary``: then only the settings its columns
        carry are compared).
    baseline : str, Path or dict
        A baseline file (see :func:`read_baseline`) or its parsed content.
    alpha : float, optional
        Significance level (new fit's ``p_adjusted``, the difference test);
        the baseline's alpha by default.
    stability : SignStability, optional
        Adds its ``same_sign`` fraction as a column.

    Returns
    -------
    SignCheck
        ``passed`` is False when an edge ``flipped``, ``shifted`` or went
        ``missing``.

    Raises
    ------
    BaselineError
        The baseline was made with other settings (each difference is named).
    """
    if isinstance(baseline, dict):
        doc, source = validate_baseline(baseline), "(dict)"
    else:
        doc, source = read_baseline(baseline), str(baseline)
    _compare_settings(doc, effects, source)
    alpha = float(doc["alpha"] if alpha is None else alpha)
    frame, _ = _effects_frame(effects)
    correction = getattr(getattr(effects, "config", None), "correction", None) or doc["settings"].get(
        "correction", "holm")
    new = {_key(r): r for r in frame.itertuples(index=False)}
    rows = []
    for e in doc["edges"]:
        key = _key(e)
        r = new.get(key)
        est, se, p = _num(r, "estimate"), _num(r, "std_error"), _num(r, "p_adjusted")
        lo, hi = _num(r, "ci_low"), _num(r, "ci_high")
        b_est, b_se = float(e["estimate"] if e["estimate"] is not None else np.nan), float(e["std_error"] or np.nan)
        b_lo, b_hi = float(e.get("ci_low") or np.nan), float(e.get("ci_high") or np.nan)
        z = (est - b_est) / np.sqrt(se**2 + b_se**2) if r is not None else np.nan
        rows.append({
            "number": e.get("number", getattr(r, "number", None)), "edge": e.get("edge", getattr(r, "edge", None)),
            "treatment": key[0], "outcome": key[1], "regime": key[2],
            "baseline_estimate": b_est, "baseline_std_error": b_se, "baseline_sign": int(e["sign"]),
            "baseline_significant": bool(e["significant"]), "baseline_ci_width": b_hi - b_lo,
            "estimate": est, "std_error": se, "ci_low": lo, "ci_high": hi, "ci_width": hi - lo,
            "sign": _sign(est), "p_adjusted": p, "significant": bool(p < alpha) if r is not None else False,
            "present": r is not None, "in_baseline": True, "diff_z": z,
            "diff_p": float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan,
        })
    known = {_key(e) for e in doc["edges"]}
    for key, r in new.items():
        if key not in known:
            est, p = float(r.estimate), float(r.p_adjusted)
            lo, hi = _num(r, "ci_low"), _num(r, "ci_high")
            rows.append({"number": getattr(r, "number", None), "edge": getattr(r, "edge", None),
                         "treatment": key[0], "outcome": key[1], "regime": key[2], "baseline_estimate": np.nan,
                         "baseline_std_error": np.nan, "baseline_sign": 0, "baseline_significant": False,
                         "baseline_ci_width": np.nan, "estimate": est, "std_error": _num(r, "std_error"),
                         "ci_low": lo, "ci_high": hi, "ci_width": hi - lo, "sign": _sign(est), "p_adjusted": p,
                         "significant": bool(p < alpha), "present": True, "in_baseline": False,
                         "diff_z": np.nan, "diff_p": np.nan})
    summary = pd.DataFrame(rows)
    summary["diff_p_adjusted"] = adjust_pvalues(summary["diff_p"].to_numpy(float), correction)
    statuses, failed = [], []
    for r in summary.itertuples(index=False):
        if not r.in_baseline:
            status = "not_in_baseline"
        elif not r.present:
            status = "missing"
        elif r.baseline_significant and r.baseline_sign * r.ci_high < 0 and r.baseline_sign * r.ci_low < 0:
            status = "flipped"  # the whole new CI lies on the other side of 0
        elif r.diff_p_adjusted < alpha:
            status = "shifted"
        elif r.baseline_significant != r.significant:
            status = "lost_significance" if r.baseline_significant else "newly_significant"
        else:
            status = "stable" if r.significant else "not_significant"
        statuses.append(status)
        failed.append(status in ("flipped", "shifted") or (status == "missing" and r.baseline_significant))
    summary["status"] = statuses
    summary["failed"] = failed
    summary["warning"] = summary["status"].isin(WARNING)
    summary = summary.drop(columns=["present", "in_baseline"])
    if stability is not None:
        frac = stability.summary.set_index(["treatment", "outcome"])["same_sign"]
        summary["same_sign"] = [frac.get((t, o), np.nan) if not r else np.nan
                                for t, o, r in zip(summary["treatment"], summary["outcome"], summary["regime"])]
    shared = {k: v for k, v in fit_settings(effects).items()}
    return SignCheck(summary, alpha, source, shared)


# ---- bootstrap sign stability -------------------------------------------------------------
def bootstrap_sign_stability(df: pd.DataFrame, *, effects: Any = None, graph: CausalGraph = BOOK_DAG,
                             n_boot: int = 200, seed: int = 0) -> SignStability:
    """Fraction of bootstrap resamples that keep each edge's sign.

    Refits exactly the model of ``effects``: the same rows (its ``adjust`` and
    ``diverged`` settings through :func:`causal.prepare.prepare`), the same
    regression columns (its ``adjustment``), OLS per resample. Without
    ``effects``, :func:`causal.fit_edges` with its defaults is run first.
    Edges sharing an outcome and a regressor set share one batched fit; all
    edges share one set of resamples.

    Parameters
    ----------
    df : pandas.DataFrame
    effects : EdgeEffects, optional
        A linear fit (the bootstrap refits OLS; a DML fit is refused).
    graph : CausalGraph
    n_boot : int
        Resamples of rows.
    seed : int
        Seed of the resampling ``numpy.random.Generator``.

    Returns
    -------
    SignStability
    """
    from causal.prepare import prepare

    if not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise ConfigError(f"n_boot must be an integer >= 10, got {n_boot!r}")
    if effects is None:
        from causal.edges import fit_edges

        effects = fit_edges(df, graph=graph)
    config = getattr(effects, "config", None)
    if config is None:
        raise ConfigError("bootstrap_sign_stability needs the EdgeEffects (not its summary): it refits that "
                          "model with the fit's adjust and diverged settings")
    if config.method != "linear":
        raise ConfigError(f"bootstrap_sign_stability refits OLS; the fit used method={config.method!r}. "
                          "Pass a linear fit (fit_edges(..., method='linear'))")
    frame, _ = _effects_frame(effects)
    data = prepare(df, graph, adjust=config.adjust, diverged=config.diverged).numeric
    edges = [(r.treatment, r.outcome, [c for c in str(r.adjustment).split(",") if c and c != "nan"])
             for r in frame.itertuples(index=False) if not r.regime]
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for t, o, adj in edges:
        missing = [c for c in (t, o, *adj) if c not in data.columns]
        if missing:
            raise SchemaError(f"columns {missing} of the fit of {t} → {o} are not in this table; "
                              "pass the table the effects were fitted on")
        groups.setdefault((o, (t, *adj)), []).append(t)
    rows = []
    with single_threaded():
        for (o, regressors), treatments in groups.items():
            sub = data[[o, *regressors]].dropna()
            X, y = sub[list(regressors)].to_numpy(), sub[o].to_numpy()
            full = weighted_ols(X, y, np.ones((1, len(sub))))[0]
            rng = np.random.default_rng(seed)  # same resamples for every group of the same size
            boot = np.concatenate([weighted_ols(X, y, c) for c in bootstrap_counts(len(sub), n_boot, rng)])
            for t in treatments:
                j = regressors.index(t)
                sign = _sign(full[j])
                rows.append({"treatment": t, "outcome": o, "estimate": float(full[j]), "sign": sign,
                             "same_sign": float(np.mean(np.sign(boot[:, j]) == sign)), "n": len(sub)})
    order = {(t, o): i for i, (t, o, _) in enumerate(edges)}
    summary = pd.DataFrame(rows, columns=["treatment", "outcome", "estimate", "sign", "same_sign", "n"])
    summary = summary.iloc[np.argsort([order[(t, o)] for t, o in zip(summary.treatment, summary.outcome)],
                                      kind="stable")].reset_index(drop=True)
    return SignStability(summary, int(n_boot), int(seed))
