"""Compare two fits of the book's edges: :func:`compare` and ``udl compare A B``.

Each side is an :class:`~causal.edges.EdgeEffects`, a sign baseline (JSON,
:func:`causal.stability.write_baseline`) or a runs table (a parquet file or a
sweep directory, fitted here with the same settings for both). The per-edge
test is the regression gate's (:func:`causal.stability.check_signs`, with side
``a`` as the baseline); this module adds what the gate cannot say, because it
refuses fits made with other settings:

* **settings** — the fit settings each side records (method, adjust, SE type,
  correction, diverged policy, schema version; ``SETTINGS`` of
  :mod:`causal.stability`), each edge's adjustment set and units (the
  ``standardized`` summary column: columns fitted in within-family sd units;
  a side that does not record it, such as a version-2 baseline, counts as
  raw units), and for sweep
  directories the sweep's identity (lever space, replicas, ...; the seed and
  the number of runs are expected to differ and are reported, not flagged).
  A difference is reported as ``setting_changed`` instead of refused;
* **why significance changed** — an edge significant on one side only is
  ``lost_power``/``gained_power`` when the change of its standard error
  explains more of the change of its z-statistic than the change of its
  estimate does (``|log(se_b/se_a)| > |log(est_b/est_a)|``: the CI widened or
  narrowed, the estimate stayed), else ``weakened``/``strengthened`` (the
  estimate itself moved towards or away from 0).

Statuses per edge (``status``): ``flipped`` (significant in ``a``, ``b``'s CI
wholly on the other side of 0), ``shifted`` (the estimates differ
significantly given both SEs, corrected over edges), ``lost_power``,
``weakened``, ``gained_power``, ``strengthened``, ``stable``,
``not_significant``, ``only_in_a``, ``only_in_b``.

Examples
--------
>>> from causal.simulate_sweep import simulate_sweep
>>> from causal.edges import fit_edges
>>> a = fit_edges(simulate_sweep(1500, seed=1).data)
>>> b = fit_edges(simulate_sweep(1500, seed=2).data)
>>> int((compare(a, b).summary["status"] == "flipped").sum())
0
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from causal.errors import ConfigError
from causal.results import Result

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["Comparison", "compare", "STATUS_COLORS"]

#: colours of the comparison statuses (plots, HTML)
STATUS_COLORS: dict[str, str] = {
    "flipped": "#c62828",
    "shifted": "#ef6c00",
    "lost_power": "#7e57c2",
    "weakened": "#f9a825",
    "gained_power": "#5c6bc0",
    "strengthened": "#00897b",
    "stable": "#2e7d32",
    "not_significant": "#9e9e9e",
    "only_in_a": "#6d4c41",
    "only_in_b": "#6d4c41",
}
# sweep-identity keys that differ between two regenerations of one plan by design
_EXPECTED_IDENTITY = ("seed", "runs")


@dataclass(frozen=True)
class _Side:
    frame: pd.DataFrame  # one row per edge (and edge-2 regime): treatment, outcome, regime, estimate, ...
    settings: dict[str, Any]
    source: str
    alpha: float | None
    identity: dict[str, Any] = field(default_factory=dict)
    effects: Any = None  # the EdgeEffects, when there is one


def _sweep_identity(path: Path) -> dict[str, Any]:
    meta = path / "_sweep.json" if path.is_dir() else None
    if meta is None or not meta.is_file():
        return {}
    try:
        doc = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    ident = doc.get("identity", {})
    return {k: v for k, v in ident.items() if k != "plan"} if isinstance(ident, dict) else {}


def _side(x: Any, name: str, fit_kwargs: dict[str, Any]) -> _Side:
    from causal.stability import _effects_frame, fit_settings, read_baseline

    if isinstance(x, (str, Path)):
        path = Path(x)
        if path.suffix.lower() == ".json":
            doc = read_baseline(path)
            frame = pd.DataFrame(doc["edges"])
            frame["regime"] = frame["regime"].fillna("").astype(str) if "regime" in frame else ""
            return _Side(frame, dict(doc["settings"]), str(path), float(doc["alpha"]))
        if not path.exists():
            raise ConfigError(f"compare: {name}={str(path)!r} does not exist; pass an EdgeEffects, a sign "
                              "baseline .json, a runs .parquet file or a sweep directory")
        from causal.edges import fit_edges
        from causal.load import load_runs

        effects = fit_edges(load_runs(path), **fit_kwargs)
        frame, alpha = _effects_frame(effects)
        return _Side(frame, fit_settings(effects), str(path), alpha, _sweep_identity(path), effects)
    frame, alpha = _effects_frame(x)  # raises ConfigError naming the type for anything else
    return _Side(frame, fit_settings(x), f"({type(x).__name__})", alpha, {}, x)


def _baseline_doc(side: _Side) -> dict[str, Any]:
    """Side ``a`` as a baseline document, written by the gate's own writer."""
    from causal.stability import read_baseline, write_baseline

    if side.effects is None:
        return read_baseline(side.source)
    with tempfile.TemporaryDirectory() as tmp:
        return read_baseline(write_baseline(side.effects, Path(tmp) / "a.json"))


def _settings_diff(a: _Side, b: _Side) -> pd.DataFrame:
    from causal.stability import SETTINGS

    rows = []
    for k in SETTINGS:
        va, vb = a.settings.get(k), b.settings.get(k)
        if va is not None and vb is not None and va != vb:
            rows.append({"setting": k, "a": va, "b": vb, "expected": False, "kind": "fit"})
    # a side without a recorded sweep identity (a baseline file, a fit) says nothing either way
    for k in sorted(set(a.identity) | set(b.identity)) if a.identity and b.identity else ():
        va, vb = a.identity.get(k), b.identity.get(k)
        if va != vb:
            rows.append({"setting": f"sweep.{k}", "a": json.dumps(va, sort_keys=True, default=str),
                         "b": json.dumps(vb, sort_keys=True, default=str), "expected": k in _EXPECTED_IDENTITY,
                         "kind": "sweep"})
    return pd.DataFrame(rows, columns=["setting", "a", "b", "expected", "kind"])


def _why(status: str, r: Any) -> str:
    if status in ("lost_power", "gained_power"):
        return (f"CI {r.ci_width_ratio:.2f}x as wide, estimate {r.estimate_ratio:.2f}x: "
                f"significance {'lost' if status == 'lost_power' else 'gained'} through precision")
    if status in ("weakened", "strengthened"):
        return (f"estimate {r.estimate_ratio:.2f}x, CI {r.ci_width_ratio:.2f}x as wide: the estimate moved "
                f"{'towards' if status == 'weakened' else 'away from'} 0")
    if status == "flipped":
        return f"significant with sign {int(r.sign_a):+d} in a; b's CI lies wholly on the other side of 0"
    if status == "shifted":
        return f"estimates differ beyond both SEs (z = {r.diff_z:.1f}, corrected p = {r.diff_p_adjusted:.2g})"
    return ""


@dataclass(frozen=True, repr=False)
class Comparison(Result):
    """Two fits of the book's edges side by side.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per edge (and edge-2 regime): ``number``, ``treatment``,
        ``outcome``, ``regime``, ``estimate_a``, ``ci_low_a``, ``ci_high_a``,
        ``std_error_a``, ``sign_a``, ``significant_a``, ``p_adjusted_a``, the
        same for ``b``, ``ci_width_a``/``ci_width_b`` (nominal), ``ci_width_ratio``
        (b ÷ a), ``estimate_ratio`` (b ÷ a), ``diff_z``, ``diff_p_adjusted``,
        ``status`` (see the module docstring), ``setting_changed`` (a fit
        setting or this edge's adjustment set differs), ``explanation``.
    settings : pandas.DataFrame
        Every setting that differs: ``setting``, ``a``, ``b``, ``expected``
        (a sweep's seed and size), ``kind`` (``fit``/``sweep``).
    labels : tuple of str
    alpha : float
    """

    summary: pd.DataFrame
    settings: pd.DataFrame
    labels: tuple[str, str] = ("a", "b")
    alpha: float = 0.05

    title: ClassVar[str] = "Comparison of two fits"
    display_columns: ClassVar[tuple[str, ...]] = (
        "number", "treatment", "outcome", "regime", "estimate_a", "estimate_b", "ci_width_ratio",
        "diff_p_adjusted", "status", "setting_changed", "explanation",
    )

    @property
    def flips(self) -> pd.DataFrame:
        """Edges whose sign flipped."""
        return self.summary[self.summary["status"] == "flipped"].reset_index(drop=True)

    @property
    def changes(self) -> pd.DataFrame:
        """Edges whose status is anything but ``stable``/``not_significant``."""
        keep = ~self.summary["status"].isin(("stable", "not_significant"))
        return self.summary[keep].reset_index(drop=True)

    @property
    def settings_changed(self) -> bool:
        """True when a fit setting or the sweep's identity (beyond seed and size) differs."""
        return bool((~self.settings["expected"]).any()) if len(self.settings) else False

    def _info(self) -> dict[str, Any]:
        counts = self.summary["status"].value_counts()
        info: dict[str, Any] = {"a": self.labels[0], "b": self.labels[1], "alpha": self.alpha,
                                "statuses": ", ".join(f"{k} {int(v)}" for k, v in counts.items())}
        if len(self.settings):
            info["settings differ"] = "; ".join(
                f"{r.setting}: {r.a} -> {r.b}{' (expected)' if r.expected else ''}"
                for r in self.settings.itertuples(index=False))
        else:
            info["settings differ"] = "none"
        per_edge = int(self.summary["setting_changed"].sum())
        if per_edge and not self.settings_changed:
            info["settings differ"] += f" (but {per_edge} edge(s) differ in adjustment set or units: see explanation)"
        return info

    def _display_frame(self) -> pd.DataFrame:
        return self.changes[[c for c in self.display_columns if c in self.summary.columns]]

    def summary_text(self, *, decimals: int = 3) -> str:
        text = super().summary_text(decimals=decimals)
        return text.replace("\n\n(no rows)", "\n\nno changes: every edge kept its sign and significance")

    def to_dict(self) -> dict[str, Any]:
        from causal.results import json_safe

        out = super().to_dict()
        out["settings"] = json_safe(self.settings.astype(object).where(self.settings.notna(), None)
                                    .to_dict("records"))
        return out

    def plot(self, ax: Axes | None = None, *, only_changes: bool = False) -> Axes:
        """Paired forest plot: each edge's interval in ``a`` and in ``b``, labels coloured by status.

        Intervals are matched to each side's corrected significance (level
        α·p/p_adjusted with p from estimate ÷ SE), so a bar clear of 0 is an
        edge significant on that side; ``*`` marks an edge whose settings
        (adjustment set, units, fit settings) differ.
        """
        from causal.plots import paired_forest

        df = (self.changes if only_changes else self.summary).copy()
        for side in ("a", "b"):
            df[f"ci_low_{side}"], df[f"ci_high_{side}"] = _matched(df, side, self.alpha)
        return paired_forest(df, ax, labels=self.labels, status_colors=STATUS_COLORS,
                             title=f"{self.labels[0]} vs {self.labels[1]}: per-unit direct effects, intervals "
                                   f"matched to each fit's corrected {100 * (1 - self.alpha):g}% test")


def compare(a: Any, b: Any, *, labels: tuple[str, str] | None = None, alpha: float | None = None,
            **fit_kwargs: Any) -> Comparison:
    """Compare two fits edge by edge.

    Parameters
    ----------
    a, b : EdgeEffects, DataFrame, or str/Path
        A fit (or its ``summary``), a sign baseline ``.json``, or a runs table
        path (``.parquet`` or sweep directory) fitted with ``fit_kwargs``.
        ``a`` plays the baseline.
    labels : (str, str), optional
        Names of the two sides (default: their paths, or ``'a'``/``'b'``).
    alpha : float, optional
        Level of the significance and difference tests (default: ``a``'s).
    **fit_kwargs
        Options of :func:`causal.fit_edges` for sides given as runs tables.

    Returns
    -------
    Comparison
    """
    from causal.stability import check_signs

    paths = [isinstance(x, (str, Path)) and Path(x).suffix.lower() != ".json" for x in (a, b)]
    if fit_kwargs and not any(paths):
        raise ConfigError(f"compare: fit options {sorted(fit_kwargs)} apply only to sides given as runs tables "
                          "(a .parquet file or a sweep directory); both sides are fits already")
    sa = _side(a, "a", fit_kwargs if paths[0] else {})
    sb = _side(b, "b", fit_kwargs if paths[1] else {})
    if isinstance(b, (str, Path)) and Path(b).suffix.lower() == ".json":
        b_effects: Any = sb.frame
    else:
        b_effects = sb.effects if sb.effects is not None else sb.frame
    doc = dict(_baseline_doc(sa))
    doc["settings"] = {}  # settings are compared and reported below rather than refused
    check = check_signs(b_effects, doc, alpha=alpha)
    s = check.summary
    alpha = check.alpha
    settings = _settings_diff(sa, sb)
    fit_changed = bool(((settings["kind"] == "fit") & ~settings["expected"]).any()) if len(settings) else False

    adj_a = _adjustments(sa.frame)
    adj_b = _adjustments(sb.frame)
    units_a, units_b = _units(sa.frame), _units(sb.frame)
    out = pd.DataFrame({
        "number": s["number"], "treatment": s["treatment"], "outcome": s["outcome"], "regime": s["regime"],
        "estimate_a": s["baseline_estimate"], "std_error_a": s["baseline_std_error"],
        "ci_width_a": s["baseline_ci_width"], "sign_a": s["baseline_sign"],
        "significant_a": s["baseline_significant"], "p_adjusted_b": s["p_adjusted"],
        "estimate_b": s["estimate"], "std_error_b": s["std_error"], "ci_low_b": s["ci_low"],
        "ci_high_b": s["ci_high"], "ci_width_b": s["ci_width"], "sign_b": s["sign"],
        "significant_b": s["significant"], "diff_z": s["diff_z"], "diff_p_adjusted": s["diff_p_adjusted"],
        "gate_status": s["status"],
    })
    lo_hi = sa.frame.set_index(["treatment", "outcome", "regime"])
    keys = list(zip(out["treatment"], out["outcome"], out["regime"]))
    for col in ("ci_low", "ci_high", "p_adjusted"):
        vals = lo_hi[col] if col in lo_hi.columns else pd.Series(np.nan, index=lo_hi.index)
        out[f"{col}_a"] = [float(vals.get(k, np.nan)) if k in vals.index else np.nan for k in keys]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ci_width_ratio"] = out["ci_width_b"] / out["ci_width_a"]
        out["estimate_ratio"] = out["estimate_b"] / out["estimate_a"]
    out["status"] = [_status(r) for r in out.itertuples(index=False)]
    adj_differs = [k in adj_a and k in adj_b and adj_a[k] != adj_b[k] for k in keys]
    units_differ = [units_a.get(k[:2], "") != units_b.get(k[:2], "") for k in keys]
    out["setting_changed"] = [fit_changed or x or u for x, u in zip(adj_differs, units_differ)]
    out["explanation"] = [
        "; ".join(x for x in (
            _why(st, r),
            _adjustment_diff(adj_a[k], adj_b[k]) if adj else "",
            (f"units differ: within-family sd of {units_a.get(k[:2]) or 'nothing'} in a, "
             f"of {units_b.get(k[:2]) or 'nothing'} in b (raw units otherwise)") if un else "",
        ) if x)
        for st, r, k, adj, un in zip(out["status"], out.itertuples(index=False), keys, adj_differs, units_differ)
    ]
    cols = ["number", "treatment", "outcome", "regime", "estimate_a", "ci_low_a", "ci_high_a", "std_error_a",
            "sign_a", "significant_a", "estimate_b", "ci_low_b", "ci_high_b", "std_error_b", "sign_b",
            "significant_b", "p_adjusted_a", "p_adjusted_b", "ci_width_a", "ci_width_b", "ci_width_ratio",
            "estimate_ratio", "diff_z", "diff_p_adjusted", "status", "setting_changed", "explanation"]
    labels = labels or (_label(a, sa, "a"), _label(b, sb, "b"))
    return Comparison(out[cols].reset_index(drop=True), settings, tuple(labels), float(alpha))


def _label(x: Any, side: _Side, default: str) -> str:
    return side.source if isinstance(x, (str, Path)) else default


def _adjustment_diff(a: frozenset[str], b: frozenset[str]) -> str:
    """'adjustment set differs: only in a: x, y; only in b: z' (a column constant in one table drops out)."""
    parts = [f"only in {side}: {', '.join(sorted(cols))}" for side, cols in (("a", a - b), ("b", b - a)) if cols]
    return "adjustment set differs (" + "; ".join(parts) + ")"


def _adjustments(frame: pd.DataFrame) -> dict[tuple[str, str, str], frozenset[str]]:
    if "adjustment" not in frame.columns:
        return {}
    return {(t, o, r): frozenset(c for c in str(a).split(",") if c and c != "nan")
            for t, o, r, a in zip(frame["treatment"], frame["outcome"], frame["regime"], frame["adjustment"])
            if not r}


def _matched(df: pd.DataFrame, side: str, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Each side's interval at the level its corrected test used (see :func:`causal.plots.matched_interval`)."""
    from scipy import stats

    est, se = df[f"estimate_{side}"].to_numpy(float), df[f"std_error_{side}"].to_numpy(float)
    p_adj = df[f"p_adjusted_{side}"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * stats.norm.sf(np.abs(est / se))
        level = np.where(p_adj > 0, alpha * p / p_adj, alpha)
    level = np.clip(np.nan_to_num(level, nan=alpha), 1e-300, alpha)
    z = stats.norm.isf(level / 2)
    return est - z * se, est + z * se


def _units(frame: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(treatment, outcome) -> the edge's columns fitted in within-family sd units ('' = raw; unrecorded = raw)."""
    if "standardized" not in frame.columns:
        return {}
    return {(t, o): ("" if pd.isna(u) else str(u))
            for t, o, u in zip(frame["treatment"], frame["outcome"], frame["standardized"])}


def _status(r: Any) -> str:
    gate = r.gate_status
    if gate == "not_in_baseline":
        return "only_in_b"
    if gate == "missing":
        return "only_in_a"
    if gate in ("flipped", "shifted", "stable", "not_significant"):
        return gate
    # significance changed on one side only: precision or estimate?
    se_log = abs(np.log(r.std_error_b / r.std_error_a)) if r.std_error_a > 0 and r.std_error_b > 0 else 0.0
    est_log = (abs(np.log(abs(r.estimate_b / r.estimate_a))) if r.estimate_a != 0 and r.estimate_b != 0
               else np.inf)
    if gate == "lost_significance":
        return "lost_power" if se_log > est_log and r.std_error_b > r.std_error_a else "weakened"
    return "gained_power" if se_log > est_log and r.std_error_b < r.std_error_a else "strengthened"
