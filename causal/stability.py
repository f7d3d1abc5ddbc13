"""Sign stability: a baseline file of edge signs, a check against it, bootstrap stability.

A CI job keeps a baseline of which book edges were significant and with which
sign (:func:`write_baseline`), refits on every new sweep and runs
:func:`check_signs`: the check **fails** when an edge that was significant in
the baseline flips sign, loses significance, or is missing from the new fit.
:func:`bootstrap_sign_stability` says, per edge, how often the sign survives a
row resample of one table.

Baseline file (JSON)::

    {"format": "udl-sign-baseline", "version": 1, "alpha": 0.05,
     "created": "2025-01-01T00:00:00+00:00", "data": "data/reference",
     "package_version": "0.1.0",
     "edges": [{"number": 9, "edge": "init_quality→gradient_stability",
                "treatment": "init_quality", "outcome": "gradient_stability",
                "estimate": 0.81, "ci_low": 0.7, "ci_high": 0.9, "p_adjusted": 1e-30,
                "sign": 1, "significant": true}, ...]}

Edges are keyed by ``(treatment, outcome)``; edge 2's rows per
overparameterization regime (``EdgeEffects.moderation``: ``under``, ``over``,
``interaction``) are kept too, with an extra ``"regime"`` key, so a flip of
the double-descent sign is caught like any other.

Examples
--------
>>> from causal.simulate import simulate_linear_scm
>>> from causal.edges import fit_edges
>>> import tempfile, pathlib
>>> fx = fit_edges(simulate_linear_scm(1500, seed=0).data)
>>> path = write_baseline(fx, pathlib.Path(tempfile.mkdtemp()) / "signs.json")
>>> check_signs(fit_edges(simulate_linear_scm(1500, seed=1).data), path).passed
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

from causal._threads import single_threaded
from causal.errors import BaselineError, ConfigError, SchemaError
from causal.graph import BOOK_DAG, CausalGraph
from causal.mediate import bootstrap_counts
from causal.regression import weighted_ols
from causal.results import Result

__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_VERSION",
    "SignCheck",
    "SignStability",
    "write_baseline",
    "read_baseline",
    "check_signs",
    "bootstrap_sign_stability",
]

BASELINE_FORMAT = "udl-sign-baseline"
BASELINE_VERSION = 1
_EDGE_KEYS = ("treatment", "outcome", "estimate", "p_adjusted", "sign", "significant")
_NEEDED = ("treatment", "outcome", "estimate", "p_adjusted")
#: statuses that fail the check
FAILING = ("flipped", "lost_significance", "missing")


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


def _key(e: Any) -> tuple[str, str, str]:
    """(treatment, outcome, regime) of a baseline entry (dict) or a summary row (namedtuple)."""
    if isinstance(e, dict):
        return e["treatment"], e["outcome"], e.get("regime") or ""
    return e.treatment, e.outcome, getattr(e, "regime", "") or ""


def _sign(x: float) -> int:
    return int(np.sign(x)) if np.isfinite(x) else 0


def write_baseline(effects: Any, path: str | Path, *, alpha: float | None = None,
                   data: str | None = None) -> Path:
    """Write the sign baseline of ``effects`` to ``path`` (JSON, atomically).

    Parameters
    ----------
    effects : EdgeEffects or pandas.DataFrame
        A fit (or its ``summary``) with ``treatment``, ``outcome``,
        ``estimate`` and ``p_adjusted``.
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
        entry = {k: _plain(row[k]) for k in ("number", "edge", "treatment", "outcome", "estimate",
                                             "ci_low", "ci_high", "p_adjusted") if k in frame.columns}
        if row["regime"]:
            entry["regime"] = row["regime"]
        entry["sign"] = _sign(float(row["estimate"]))
        entry["significant"] = bool(float(row["p_adjusted"]) < alpha)
        edges.append(entry)
    from causal import __version__

    doc = {
        "format": BASELINE_FORMAT, "version": BASELINE_VERSION, "alpha": alpha,
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
                            f"{BASELINE_VERSION}. Regenerate the baseline with this version")
    for key in ("alpha", "edges"):
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


# ---- results ---------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class SignCheck(Result):
    """A new fit compared with a sign baseline.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per edge: ``number``, ``edge``, ``treatment``, ``outcome``,
        ``regime`` (``under``/``over``/``interaction`` for edge 2's
        moderation rows, else empty), ``baseline_estimate``,
        ``baseline_sign``, ``baseline_significant``,
        ``estimate``, ``sign``, ``p_adjusted``, ``significant``, ``status``
        (``stable``, ``flipped``, ``lost_significance``, ``missing``,
        ``newly_significant``, ``not_significant``, ``not_in_baseline``),
        ``failed``; and ``same_sign`` (bootstrap fraction) when a
        :class:`SignStability` was given.
    alpha : float
    source : str
        Where the baseline came from.
    """

    summary: pd.DataFrame
    alpha: float
    source: str

    title: ClassVar[str] = "Sign check against the baseline"

    @property
    def passed(self) -> bool:
        return not bool(self.summary["failed"].any())

    @property
    def failures(self) -> pd.DataFrame:
        return self.summary[self.summary["failed"]].reset_index(drop=True)

    @property
    def changes(self) -> pd.DataFrame:
        """Edges whose status is anything but ``stable``/``not_significant``."""
        keep = ~self.summary["status"].isin(("stable", "not_significant"))
        return self.summary[keep].reset_index(drop=True)

    def _info(self) -> dict[str, Any]:
        counts = self.summary["status"].value_counts()
        return {"baseline": self.source, "alpha": self.alpha, "result": "PASSED" if self.passed else "FAILED",
                "statuses": ", ".join(f"{k} {int(v)}" for k, v in counts.items())}

    def _display_frame(self) -> pd.DataFrame:
        cols = ["number", "treatment", "outcome", "regime", "baseline_sign", "baseline_significant", "sign",
                "significant", "p_adjusted", "status", "same_sign"]
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
def _status(b_sig: bool, b_sign: int, present: bool, sig: bool, sign: int) -> str:
    if not present:
        return "missing"
    if b_sig:
        if not sig:
            return "lost_significance"
        return "stable" if sign == b_sign else "flipped"
    return "newly_significant" if sig else "not_significant"


def check_signs(effects: Any, baseline: str | Path | dict[str, Any], *, alpha: float | None = None,
                stability: SignStability | None = None) -> SignCheck:
    """Compare a new fit with a sign baseline.

    Parameters
    ----------
    effects : EdgeEffects or pandas.DataFrame
        The new fit (or its ``summary``).
    baseline : str, Path or dict
        A baseline file (see :func:`read_baseline`) or its parsed content.
    alpha : float, optional
        Significance level for the new fit's ``p_adjusted``; the baseline's alpha by default.
    stability : SignStability, optional
        Adds its ``same_sign`` fraction as a column.

    Returns
    -------
    SignCheck
        ``passed`` is False when a baseline-significant edge flipped sign,
        lost significance, or is missing from the new fit.
    """
    if isinstance(baseline, dict):
        doc, source = validate_baseline(baseline), "(dict)"
    else:
        doc, source = read_baseline(baseline), str(baseline)
    alpha = float(doc["alpha"] if alpha is None else alpha)
    frame, _ = _effects_frame(effects)
    new = {_key(r): r for r in frame.itertuples(index=False)}
    rows = []
    for e in doc["edges"]:
        key = _key(e)
        r = new.get(key)
        est = float(r.estimate) if r is not None else np.nan
        p = float(r.p_adjusted) if r is not None else np.nan
        sig, sign = bool(p < alpha), _sign(est)
        status = _status(bool(e["significant"]), int(e["sign"]), r is not None, sig, sign)
        rows.append({
            "number": e.get("number", getattr(r, "number", None)), "edge": e.get("edge", getattr(r, "edge", None)),
            "treatment": key[0], "outcome": key[1], "regime": key[2],
            "baseline_estimate": e["estimate"], "baseline_sign": int(e["sign"]),
            "baseline_significant": bool(e["significant"]),
            "estimate": est, "sign": sign, "p_adjusted": p, "significant": sig if r is not None else False,
            "status": status, "failed": status in FAILING and bool(e["significant"]),
        })
    known = {_key(e) for e in doc["edges"]}
    for key, r in new.items():
        if key not in known:
            p = float(r.p_adjusted)
            rows.append({"number": getattr(r, "number", None), "edge": getattr(r, "edge", None),
                         "treatment": key[0], "outcome": key[1], "regime": key[2], "baseline_estimate": np.nan,
                         "baseline_sign": 0, "baseline_significant": False, "estimate": float(r.estimate),
                         "sign": _sign(float(r.estimate)), "p_adjusted": p, "significant": bool(p < alpha),
                         "status": "not_in_baseline", "failed": False})
    summary = pd.DataFrame(rows)
    if stability is not None:
        frac = stability.summary.set_index(["treatment", "outcome"])["same_sign"]
        summary["same_sign"] = [frac.get((t, o), np.nan) if not r else np.nan
                                for t, o, r in zip(summary["treatment"], summary["outcome"], summary["regime"])]
    return SignCheck(summary, alpha, source)


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
