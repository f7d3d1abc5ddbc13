"""FINDINGS.md: what a runs table says about each of the book's 27 edges, written by one command.

:func:`write_findings` (``udl findings DATA --out FINDINGS.md``) builds the
document entirely from the data and the package's analysis API, so that its
numbers are reproduced by re-running the command it states at its top:

* **estimates**: :func:`causal.fit_edges` with its defaults (the book's graph
  plus the experiment's design, diverged runs excluded, linear OLS with HC3
  errors, Holm across edges) — every column edge of every book edge, with its
  CI and verdict; edge 3 (a moderation) as edge 2 per regime;
* **heterogeneity**: ``fit_edges(..., by="task")`` — per-task estimates (each
  task's own units) where the tasks disagree (Cochran's ``q_p < alpha`` or
  significant estimates of opposite sign: the package's own rule);
* **sensitivity**: the verdict of each column edge under three other settings
  (within-task standardized pooling, diverged runs included, the book's graph
  alone) beside the default;
* **contradictions**: for every ``contradicts`` verdict (default fit, or any
  other setting or task) a per-edge diagnostic — rows used, diverged rows
  excluded by family, the families the rows come from, the sign under every
  setting and per task, whether exclusion of diverged runs selects on the
  treatment — and a classification by a stated rule (finding / artefact);
* **missing edges**: :func:`causal.falsify`'s search for strong lever →
  mediator/outcome effects the book's graph lacks;
* **caveats** computed from the table: diverged share per family, runs that do
  not learn (``convergence <= 0``: the training loss is no better than the
  best constant predictor's; test R² <= 0), columns piled at a ceiling or
  floor, edges with few rows or rows from one family, extreme rows kept.

Nothing is timed or dated, so the same table and settings give the same text.
This module also registers the ``udl findings`` command; it imports nothing
heavy at module level so ``udl --version`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from causal.edges import EdgeEffects
    from causal.graph_tests import FalsifyResult

__all__ = ["FindingsConfig", "Findings", "compute_findings", "render_findings", "write_findings", "register"]

#: the three settings besides the default, in the order the sensitivity column shows them
_SETTINGS = (("task-std", "within-task standardized pooling (`by='task'`)"),
             ("div-incl", "diverged runs included (`diverged='include'`)"),
             ("book", "the book's graph alone (`adjust='book'`)"))
_LETTER = {"supports": "S", "contradicts": "C", "inconclusive": "i"}


@dataclass(frozen=True)
class FindingsConfig:
    """Settings of one findings document (all stated in it)."""

    alpha: float = 0.05  # level of CIs, verdicts, heterogeneity and caveat tests
    correction: str = "holm"  # across edges (fit_edges) and candidates (falsify)
    seed: int = 0  # seeds fit_edges / falsify (the default linear fits are deterministic anyway)
    threshold: float = 0.1  # min |standardized effect| of a reported missing edge
    top_missing: int = 10  # missing edges listed
    small_n: int = 100  # column edges with fewer rows are flagged
    one_family: float = 0.8  # share of an edge's rows from one task above which it "rests on one family"
    pile_up: float = 0.25  # share of rows at a column's max (min) above which it is at a ceiling (floor)

    def __post_init__(self) -> None:
        from causal.errors import ConfigError

        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must lie in (0, 1), got {self.alpha!r}")
        for name in ("one_family", "pile_up"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"{name} must lie in (0, 1], got {getattr(self, name)!r}")
        if self.top_missing < 0 or self.small_n < 0:
            raise ConfigError("top_missing and small_n must be >= 0")


@dataclass(frozen=True, repr=False)
class Findings:
    """Everything the document is rendered from (the fits are the package's result objects)."""

    runs: "pd.DataFrame"
    primary: "EdgeEffects"
    settings: dict[str, "EdgeEffects"]  # task-std / div-incl / book
    graph_tests: "FalsifyResult"
    manifest: dict[str, Any]
    config: FindingsConfig
    command: str
    data: str

    def __repr__(self) -> str:
        s = self.primary.summary["verdict"].value_counts()
        return (f"Findings({len(self.runs)} runs, {len(self.primary.summary)} column edges: "
                f"{dict(s)}, {len(self.graph_tests.missing_edges)} missing edges)")


# ---- computing ----------------------------------------------------------------------

#: contradictions whose mechanism a test reproduces on a known case: (treatment, outcome) -> (test, what it shows).
#: Shown as evidence beside the data-driven label, which they do not change: they say what a real sign means.
MECHANISMS: dict[tuple[str, str], tuple[str, str]] = {
    ("residual", "sharpness"): (
        "tests/test_measure.py::test_each_identity_skip_doubles_sharpness_at_init",
        "the generator's skips are unscaled (h <- relu(W h) + h), so at He init each one doubles the activations' "
        "variance and log10 of the top Hessian eigenvalue rises by about log10 2 = 0.30 per skip before any "
        "training (measured +0.24-0.31 with one skip, +0.68-0.76 with three); after 1,500 Adam steps on the "
        "teacher task residual networks stay sharper by +0.28, +0.58, +0.82 at depth 2, 3, 4 (benchmarks/"
        "RESULTS.md). A scale effect of this parametrization on a scale-dependent measure, not evidence against "
        "the book's claim that skips smooth the landscapes of deep networks"),
}


def _group_label(key) -> str:
    """A groupby key (one value or a tuple) as ``'task/arch'``."""
    return "/".join(map(str, key if isinstance(key, tuple) else (key,)))


def _manifest(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path)
    meta = p / "_sweep.json" if p.is_dir() else None
    if meta is not None and meta.is_file():
        doc = json.loads(meta.read_text())
        return {**(doc.get("identity") or {}), "versions": doc.get("versions") or {}}
    if p.is_file() and p.suffix == ".parquet":
        import pyarrow.parquet as pq

        raw = (pq.read_metadata(p).metadata or {}).get(b"udl.sweep", b"{}")
        doc = json.loads(raw.decode())
        return {**(doc.get("identity") or {}), "versions": doc.get("versions") or {}}
    return {}


def compute_findings(runs: "pd.DataFrame | str | Path", *, config: FindingsConfig | None = None,
                     command: str | None = None) -> Findings:
    """Fit everything FINDINGS.md reports on ``runs`` (a table, a parquet file or a sweep directory)."""
    import pandas as pd

    from causal.edges import fit_edges
    from causal.graph_tests import falsify
    from causal.load import load_runs

    cfg = config or FindingsConfig()
    path = None if isinstance(runs, pd.DataFrame) else runs
    df = runs if isinstance(runs, pd.DataFrame) else load_runs(runs)
    kw = dict(alpha=cfg.alpha, correction=cfg.correction, seed=cfg.seed)
    primary = fit_edges(df, **kw)
    settings: dict[str, Any] = {}
    if "task" in df.columns and 2 <= df["task"].nunique() <= 20:
        with warnings.catch_warnings():
            # edge 2's per-regime fit inside a task all of whose runs sit in one regime averages an empty
            # frame before it is skipped (causal.edges._moderation); the estimates are unaffected
            warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"numpy\..*")
            warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
            warnings.filterwarnings("ignore", message="invalid value encountered", category=RuntimeWarning)
            settings["task-std"] = fit_edges(df, by="task", **kw)
    settings["div-incl"] = fit_edges(df, diverged="include", **kw)
    settings["book"] = fit_edges(df, adjust="book", **kw)
    corr = cfg.correction if cfg.correction != "none" else "holm"
    tests = falsify(df, alpha=cfg.alpha, correction=corr, missing_edge_threshold=cfg.threshold, seed=cfg.seed)
    data = str(path) if path is not None else "<DataFrame>"
    return Findings(df, primary, settings, tests, _manifest(path), cfg,
                    command or f"causal.write_findings({data!r}, ...)", data)


# ---- facts about the table ----------------------------------------------------------
def _f(x: float) -> str:
    """3 significant digits, no exponent for ordinary magnitudes."""
    import math

    if x is None or not math.isfinite(float(x)):
        return "–"
    x = float(x)
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e5 or x == 0 else f"{x:.2e}"


def _p(p: float) -> str:
    import math

    return "–" if p is None or not math.isfinite(float(p)) else (f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}")


def _kept(df: "pd.DataFrame", diverged: str = "exclude") -> "pd.Series":
    import pandas as pd

    if diverged == "include" or "diverged" not in df.columns:
        return pd.Series(True, index=df.index)
    return pd.to_numeric(df["diverged"], errors="coerce").fillna(0) != 1


def _edge_rows(table: "pd.DataFrame", treatment: str, outcome: str) -> "pd.Series":
    """Rows where both columns of an edge are observed (the adjustment set may drop a few more)."""
    return table[treatment].notna() & table[outcome].notna()


def _families(table: "pd.DataFrame", rows: "pd.Series", treatment: str) -> list[tuple[str, int, bool]]:
    """(task, rows, treatment varies there) for the tasks that contribute rows, largest first."""
    if "task" not in table.columns:
        return [("all", int(rows.sum()), table.loc[rows, treatment].nunique() > 1)]
    out = []
    for task, g in table[rows].groupby("task", sort=True):
        out.append((str(task), len(g), g[treatment].nunique() > 1))
    return sorted(out, key=lambda t: (-t[1], t[0]))


def _selection(df: "pd.DataFrame", treatments: list[str], alpha: float, correction: str) -> "pd.DataFrame":
    """Does excluding diverged runs select on a treatment? Mann–Whitney of the treatment, diverged vs kept, per task × problem."""
    import numpy as np
    import pandas as pd
    from scipy import stats

    from causal.regression import adjust_pvalues
    from causal.variables import add_contrasts

    cols = ["treatment", "task", "diverged", "kept", "mean_diverged", "mean_kept", "p_value", "p_adjusted"]
    if "diverged" not in df.columns:
        return pd.DataFrame(columns=cols)
    table = add_contrasts(df)
    div = pd.to_numeric(table["diverged"], errors="coerce").fillna(0) == 1
    # per task × problem: a family's divergence may select on a lever that the pooled task hides
    fam = table["task"].astype(str) + ("/" + table["problem"].astype(str) if "problem" in table.columns else "") \
        if "task" in table.columns else None
    groups = table.groupby(fam, sort=True) if fam is not None else [("all", table)]
    rows = []
    for t in treatments:
        if t not in table.columns:
            continue
        for task, g in groups:
            x = pd.to_numeric(g[t], errors="coerce")
            a, b = x[div.loc[g.index] & x.notna()], x[~div.loc[g.index] & x.notna()]
            if len(a) < 3 or len(b) < 3 or x.nunique() < 2:
                continue
            p = float(stats.mannwhitneyu(a, b).pvalue) if pd.concat([a, b]).nunique() > 1 else 1.0
            rows.append({"treatment": t, "task": str(task), "diverged": len(a), "kept": len(b),
                         "mean_diverged": float(a.mean()), "mean_kept": float(b.mean()), "p_value": p})
    out = pd.DataFrame(rows, columns=cols[:-1])
    out["p_adjusted"] = adjust_pvalues(out["p_value"].to_numpy(float), correction) if len(out) else np.array([])
    return out


def _het_rows(fx: "EdgeEffects", alpha: float) -> "pd.DataFrame":
    import pandas as pd

    het = fx.heterogeneity if fx.heterogeneity is not None else pd.DataFrame()
    if het.empty:
        return het
    return het[het["sign_differs"] | (het["q_p"] < alpha)]


def _verdicts(find: Findings, t: str, o: str) -> dict[str, tuple[float, str] | None]:
    out: dict[str, tuple[float, str] | None] = {}
    for name, fx in (("default", find.primary), *find.settings.items()):
        s = fx.summary
        r = s[(s["treatment"] == t) & (s["outcome"] == o)]
        out[name] = (float(r["estimate"].iloc[0]), str(r["verdict"].iloc[0])) if len(r) else None
    return out


def _strata(find: Findings, t: str, o: str) -> "pd.DataFrame":
    import pandas as pd

    fx = find.settings.get("task-std")
    if fx is None or fx.strata is None or fx.strata.empty:
        return pd.DataFrame()
    s = fx.strata
    return s[(s["treatment"] == t) & (s["outcome"] == o)].sort_values("stratum")


# ---- the contradiction slot ---------------------------------------------------------
def diagnose(find: Findings, treatment: str, outcome: str, selection: "pd.DataFrame") -> tuple[str, list[str]]:
    """Classify a contradiction as a finding or an artefact, with the evidence (one line each).

    Rule (stated in the document): **artefact** when the estimate's sign is not the
    same under every setting, when tasks give significant estimates of opposite
    sign (unless only a task contradicts: a per-task difference), or when
    excluding diverged runs selects on the treatment in a task that supplies
    the edge's rows and the fit that keeps them (on more rows) does not
    contradict too; otherwise **finding** — "limited to TASK"
    when one task supplies at least ``one_family`` of the rows or is the only
    one where the treatment varies.
    """
    import numpy as np

    from causal.variables import add_contrasts

    cfg = find.config
    table = add_contrasts(find.runs)
    kept = _kept(table)
    base = _edge_rows(table, treatment, outcome)
    rows = base & kept
    fams = _families(table, rows, treatment)
    total = max(sum(n for _, n, _ in fams), 1)
    varies = [f for f, _, v in fams if v]
    ev: list[str] = []
    r = find.primary.summary
    r = r[(r["treatment"] == treatment) & (r["outcome"] == outcome)]
    if len(r):
        ev.append(f"rows used by the default fit: n = {int(r['n'].iloc[0])} "
                  f"({int(r['n_null_dropped'].iloc[0])} more dropped for a null in the adjustment set)")
    if "diverged" in table.columns:
        treat_obs = table[treatment].notna()
        div = (~kept) & treat_obs
        by = table[div].groupby("task").size() if "task" in table.columns else None
        parts = ", ".join(f"{k} {v}/{int((treat_obs & (table['task'] == k)).sum())}" for k, v in by.items()) \
            if by is not None and len(by) else "none"
        ev.append(f"diverged rows excluded (of rows with `{treatment}` observed), by task: {parts}")
    ev.append("rows by task: " + ", ".join(f"{f} {n} ({n / total:.0%}){'' if v else ', treatment constant'}"
                                           for f, n, v in fams))
    verdicts = _verdicts(find, treatment, outcome)
    ev.append("estimate (verdict) per setting: " + "; ".join(
        f"{k} {_f(v[0])} ({v[1]})" if v else f"{k} not estimated" for k, v in verdicts.items()))
    st = _strata(find, treatment, outcome)
    if len(st):
        ev.append("per task (own units): " + "; ".join(
            f"{s.stratum} {_f(s.estimate)} [{_f(s.ci_low)}, {_f(s.ci_high)}] ({s.verdict})" for s in st.itertuples()))
    signs = {np.sign(v[0]) for v in verdicts.values() if v and v[0] != 0}
    sig = st[st["p_adjusted"] < cfg.alpha] if len(st) else st
    task_signs = set(np.sign(sig["estimate"]).astype(int)) - {0} if len(sig) else set()
    sel = selection[(selection["treatment"] == treatment) & (selection["p_adjusted"] < cfg.alpha)
                    & selection["task"].str.split("/").str[0].isin(varies)] if len(selection) else selection
    reasons = []
    if len(signs) > 1:
        reasons.append("the sign changes with the setting")
    if len(task_signs) > 1:
        reasons.append("tasks give significant estimates of opposite sign")
    if len(sel):
        # selection explains nothing when the fit that keeps the diverged runs (more rows) contradicts too
        inc = find.settings.get("div-incl")
        n_inc = inc.summary[(inc.summary["treatment"] == treatment) & (inc.summary["outcome"] == outcome)]["n"] \
            if inc is not None else []
        n_def = r["n"].iloc[0] if len(r) else 0
        held = len(n_inc) and int(n_inc.iloc[0]) > n_def and (verdicts.get("div-incl") or (0, ""))[1] == "contradicts"
        if held:
            ev.append(f"excluding diverged runs selects on the treatment in {', '.join(sel['task'])}, but the fit "
                      f"that keeps them (n = {int(n_inc.iloc[0])}) contradicts too")
        else:
            reasons.append("excluding diverged runs selects on the treatment in " + ", ".join(sel["task"]))
        ev.append("diverged-vs-kept mean of the treatment: " + "; ".join(
            f"{s.task} {_f(s.mean_diverged)} vs {_f(s.mean_kept)} (p_adj {_p(s.p_adjusted)})" for s in sel.itertuples()))
    n_sig = sum(1 for v in verdicts.values() if v and v[1] == "contradicts")
    ev.append(f"contradicts under {n_sig} of {sum(1 for v in verdicts.values() if v)} settings")
    if (treatment, outcome) in MECHANISMS:
        test, what = MECHANISMS[(treatment, outcome)]
        ev.append(f"mechanism, reproduced on a known case by `{test}`: {what}")
    within = sorted(st.loc[st["verdict"] == "contradicts", "stratum"]) if len(st) else []
    opposite = "tasks give significant estimates of opposite sign"
    if n_sig == 0 and within and reasons == [opposite]:  # a real per-task difference, not a pooled artefact
        return f"finding within {', '.join(within)} only ({opposite}; pooled, the book's sign holds)", ev
    if reasons:
        return "artefact (" + "; ".join(reasons) + ")", ev
    if n_sig == 0 and within:
        return (f"finding within {', '.join(within)} only (pooled, the sign agrees under every setting but is not "
                "significant)"), ev
    top = fams[0] if fams else ("", 0, False)
    if len(varies) == 1 or top[1] / total >= cfg.one_family:
        return f"finding, limited to {varies[0] if len(varies) == 1 else top[0]}", ev
    return "finding (same sign under every setting and in every task where it is significant)", ev


# ---- rendering ----------------------------------------------------------------------
def _row_cells(r: Any, sens: str, standardized: str) -> str:
    units = f" (sd units: {standardized})" if standardized else ""
    return (f"| `{r.treatment}` → `{r.outcome}` | {r.expected_sign} | {_f(r.estimate)} [{_f(r.ci_low)}, "
            f"{_f(r.ci_high)}]{units} | {_p(r.p_adjusted)} | {int(r.n)} | **{r.verdict}** | {sens} |")


def render_findings(find: Findings) -> str:
    """The markdown document (deterministic for a given table and settings)."""
    import pandas as pd

    from causal import __version__
    from causal.graph import BOOK_DAG, EdgeKind
    from causal.schema import SCHEMA_VERSION
    from causal.totals import plain_units
    from causal.variables import add_contrasts

    cfg, fx, df = find.config, find.primary, find.runs
    s = fx.summary
    m = find.manifest
    counts = s["verdict"].value_counts()
    L: list[str] = ["# Findings: the book's causal graph against the runs", ""]
    L += ["Generated by one command, from the data and the package's analysis API only "
          "(do not edit by hand; re-run it):", "", "```", find.command, "```", ""]
    L += ["## Data and settings", ""]
    if m:
        L.append(f"- data: `{find.data}` — lever space `{m.get('lever_space')}` (version "
                 f"`{m.get('lever_space_version')}`), {m.get('runs')} runs, sweep seed {m.get('seed')}, "
                 f"{m.get('replicas')} replicas, schema {m.get('schema_version')}"
                 + (f"; generated with {', '.join(f'{k} {v}' for k, v in m['versions'].items())}"
                    if m.get("versions") else ""))
    else:
        L.append(f"- data: `{find.data}` (no sweep manifest)")
    tasks = df["task"].value_counts().sort_index() if "task" in df.columns else pd.Series(dtype=int)
    L.append(f"- table: {len(df)} runs" + (" (" + ", ".join(f"{k} {v}" for k, v in tasks.items()) + ")"
                                            if len(tasks) else "")
             + f"; {fx.n_diverged} diverged, excluded by default")
    L.append(f"- analysis: udl-causal {__version__}, schema {SCHEMA_VERSION}; `fit_edges` defaults "
             f"(adjust={fx.config.adjust}, method={fx.config.method}, SE {fx.config.se}, "
             f"{fx.config.correction}-corrected across the {len(s)} column edges, alpha={cfg.alpha}, seed={cfg.seed})")
    L.append(f"- per-task estimates: `fit_edges(runs, by='task')` strata, shown where the tasks disagree "
             f"(Cochran's Q p < {cfg.alpha} or significant estimates of opposite sign)")
    L.append("- sensitivity (column `S/C/i` = supports / contradicts / inconclusive): default, then "
             + "; ".join(f"{k} = {v}" for k, v in _SETTINGS))
    L.append(f"- missing edges: `falsify(runs)` search, |standardized effect| > {cfg.threshold:g}, "
             f"{find.graph_tests.correction}-corrected p < {cfg.alpha}")
    units = describe_units(fx)
    if units:
        L.append(f"- units: {units}")
    L += ["", "## In short", ""]
    L.append(f"Of {len(s)} column edges ({len(fx.skipped)} skipped), the default fit supports the book's sign on "
             f"{int(counts.get('supports', 0))}, contradicts it on {int(counts.get('contradicts', 0))} and cannot "
             f"tell on {int(counts.get('inconclusive', 0))}. The graph's tests: "
             f"{int(find.graph_tests.summary['violated'].sum())} of {len(find.graph_tests.summary)} implied "
             f"independences violated; {len(find.graph_tests.missing_edges)} strong effects missing from the graph.")
    L.append("")

    # per edge
    L += ["## The 27 edges", "",
          "Estimates are direct effects per unit of the treatment column (per within-family sd where marked), "
          f"{int((1 - cfg.alpha) * 100)}% CI; p is {fx.config.correction}-adjusted.", ""]
    het = _het_rows(find.settings["task-std"], cfg.alpha) if "task-std" in find.settings else pd.DataFrame()
    het_keys = {(h.treatment, h.outcome): h for h in het.itertuples()} if len(het) else {}
    for e in BOOK_DAG.edges.values():
        sign = e.sign.value
        if e.regime_signs:
            sign += " (" + ", ".join(f"{k} {v.value}" for k, v in e.regime_signs.items()) + ")"
        if e.column_signs:
            sign += " (" + ", ".join(f"{k} {v.value}" for k, v in e.column_signs.items()) + ")"
        L += [f"### {e.number}. {e.source} → {e.target}", "",
              f"Book: sign {sign}, chapter {e.chapter}." + (f" {e.note[0].upper()}{e.note[1:]}." if e.note else ""),
              ""]
        if e.kind is EdgeKind.MODERATION:
            mod = fx.moderation
            if mod.empty:
                L += ["Not estimated: the table lacks capacity, variance or the overparameterization regime.", ""]
                continue
            L += ["| regime | expected | estimate [CI] | p | n | verdict |", "|---|---|---|---|---|---|"]
            for r in mod.itertuples():
                L.append(f"| {r.regime} | {r.expected_sign} | {_f(r.estimate)} [{_f(r.ci_low)}, {_f(r.ci_high)}] | "
                         f"{_p(r.p_adjusted)} | {int(r.n)} | **{r.verdict}** |")
            flips = {r.regime: r for r in mod.itertuples()}
            u, o = flips.get("under"), flips.get("over")
            if u is not None and o is not None:
                shown = "does" if (u.verdict == "supports" and o.verdict == "supports") else "does not"
                L += ["", f"The data {shown} show the flip (significant + under and − over)."]
            L.append("")
            continue
        rows = s[s["number"] == e.number]
        skipped = fx.skipped[fx.skipped["number"] == e.number]
        if len(rows):
            L += ["| column edge | expected | estimate [CI] | p | n | verdict | sensitivity |",
                  "|---|---|---|---|---|---|---|"]
            for r in rows.itertuples():
                v = _verdicts(find, r.treatment, r.outcome)
                sens = " ".join(_LETTER.get(x[1], "?") if x else "–" for x in v.values())
                L.append(_row_cells(r, sens, r.standardized))
        for r in skipped.itertuples():
            L.append(f"- `{r.treatment}` → `{r.outcome}` not estimated: {r.reason}")
        for r in rows.itertuples():
            h = het_keys.get((r.treatment, r.outcome))
            if h is None:
                continue
            st = _strata(find, r.treatment, r.outcome)
            why = "significant estimates of opposite sign" if h.sign_differs else f"Cochran's Q p = {_p(h.q_p)}"
            L += ["", f"Tasks disagree on `{r.treatment}` → `{r.outcome}` ({why}); per task, in each task's units:", "",
                  "| task | estimate [CI] | p | n | verdict |", "|---|---|---|---|---|"]
            for t in st.itertuples():
                L.append(f"| {t.stratum} | {_f(t.estimate)} [{_f(t.ci_low)}, {_f(t.ci_high)}] | {_p(t.p_adjusted)} | "
                         f"{int(t.n)} | {t.verdict} |")
        L.append("")

    # contradictions
    treatments = sorted(set(s["treatment"]))
    selection = _selection(df, treatments, cfg.alpha, find.graph_tests.correction)
    L += ["## Contradictions: finding or artefact", "",
          "Rule: **artefact** when the estimate's sign changes with the setting, when tasks give significant "
          "estimates of opposite sign (unless only a task contradicts: a per-task difference), or when excluding diverged runs selects on the treatment (Mann–Whitney, "
          "diverged vs kept, per task × problem, corrected) in a task that supplies the edge's rows and the fit that "
          "keeps the diverged runs (on more rows) does not contradict too; otherwise "
          f"**finding**, *limited to* a task when it supplies ≥ {cfg.one_family:.0%} of the rows or is the only "
          "one where the treatment varies.", ""]
    prim = s[s["verdict"] == "contradicts"]
    if prim.empty:
        L += ["**The default fit contradicts none of the book's signs.**", ""]
    for r in prim.itertuples():
        L += _slot(find, r.number, r.treatment, r.outcome, selection)
    others = []
    for name, f in find.settings.items():
        for r in f.summary[f.summary["verdict"] == "contradicts"].itertuples():
            others.append((r.number, r.treatment, r.outcome, name))
        if f.strata is not None and len(f.strata):
            for r in f.strata[f.strata["verdict"] == "contradicts"].itertuples():
                others.append((r.number, r.treatment, r.outcome, f"task {r.stratum}"))
    seen = {(r.treatment, r.outcome) for r in prim.itertuples()}
    extra: dict[tuple[int, str, str], list[str]] = {}
    for n, t, o, where in others:
        if (t, o) not in seen:
            extra.setdefault((n, t, o), []).append(where)
    if extra:
        L += ["Contradictions under another setting or within one task only:", ""]
        for (n, t, o), where in sorted(extra.items()):
            L += _slot(find, n, t, o, selection, where=", ".join(sorted(set(where))))
    else:
        L += ["No other setting and no single task contradicts a book sign either.", ""]

    # missing edges
    g = find.graph_tests
    me = g.missing_edges.head(cfg.top_missing)
    unit_cols = set(fx.units["column"]) if len(fx.units) else set()
    L += ["## The strongest effects the book's graph is missing", "",
          f"`falsify`'s search: each randomized column regressed into each mediator/outcome the book does not "
          f"connect it to, adjusted for every randomized column and the target's book parents ('direct'), "
          f"or its total effect when the target has no such parents ('total'). {len(g.missing_edges)} of "
          f"{len(g.edge_search)} candidates pass; the {len(me)} strongest:", ""]
    if me.empty:
        L += ["None.", ""]
    else:
        L += ["| source → target | kind | estimate | std. effect | p | n | in words |", "|---|---|---|---|---|---|---|"]
        for r in me.itertuples():
            words = plain_units(r.source, r.target, r.estimate, "pooled", r.target in unit_cols,
                                r.source in unit_cols)
            L.append(f"| `{r.source}` → `{r.target}` | {r.method} | {_f(r.estimate)} | {_f(r.std_effect)} | "
                     f"{_p(r.p_adjusted)} | {int(r.n)} | {words} |")
        L.append("")

    # caveats
    L += ["## Caveats (measured on this table)", ""]
    L += _caveats(find, add_contrasts(df), selection)
    return "\n".join(L).rstrip() + "\n"


def describe_units(fx: "EdgeEffects") -> str:
    from causal.units import describe

    return describe(fx.units) if len(fx.units) else ""


def _slot(find: Findings, number: int, t: str, o: str, selection: "pd.DataFrame", where: str = "") -> list[str]:
    verdict, ev = diagnose(find, t, o, selection)
    head = f"### Edge {number}: `{t}` → `{o}`" + (f" (contradicts under: {where})" if where else "")
    return [head, "", f"**{verdict[0].upper()}{verdict[1:]}.** Evidence:", "", *[f"- {x}" for x in ev], ""]


def _caveats(find: Findings, table: "pd.DataFrame", selection: "pd.DataFrame") -> list[str]:
    import numpy as np
    import pandas as pd

    cfg, fx = find.config, find.primary
    L: list[str] = []
    has_task = "task" in table.columns
    keys = [k for k in ("task", "arch") if k in table.columns]
    if "diverged" in table.columns and has_task:
        fam = table["task"].astype(str) + ("/" + table["problem"].astype(str) if "problem" in table.columns else "")
        d = table.groupby(fam)["diverged"].agg(["size", "sum"]).sort_index()
        L.append("- **Diverged runs** (excluded by default), by task/problem: " + ", ".join(
            f"{k} {int(r['sum'])}/{int(r['size'])} ({r['sum'] / r['size']:.0%})" for k, r in d.iterrows()) + ".")
    sel = selection[selection["p_adjusted"] < cfg.alpha] if len(selection) else selection
    if len(sel):
        L.append("- **Excluding diverged runs selects on a treatment** (its mean differs between diverged and kept "
                 "runs, Mann–Whitney, corrected): " + "; ".join(
                     f"`{r.treatment}` in {r.task} ({_f(r.mean_diverged)} vs {_f(r.mean_kept)}, p_adj "
                     f"{_p(r.p_adjusted)})" for r in sel.itertuples()) + ". Edges from these treatments compare "
                 "survivors.")
    else:
        L.append("- Excluding diverged runs selects on no treatment (no corrected Mann–Whitney test, diverged vs "
                 "kept, per task × problem, is significant).")
    kept = table[_kept(table)]
    if "convergence" in kept.columns and keys:
        c = kept.groupby(keys)["convergence"].agg(
            n="count", median="median", share=lambda x: float((x.dropna() <= 0).mean()) if x.notna().any() else np.nan)
        bad = c[c["median"] <= 0]
        if len(bad):
            L.append("- **Not learning**: groups whose median `convergence` is <= 0 (training loss no better than the "
                     "best constant predictor's): " + ", ".join(
                         f"{_group_label(k)} (median {_f(r['median'])}, "
                         f"{r['share']:.0%} of {int(r['n'])} runs <= 0)" for k, r in bad.iterrows())
                     + ". Edges into their outcomes contrast non-learners.")
        else:
            L.append("- Every task/architecture has median `convergence` > 0 (it beats the best constant predictor).")
    if "mode_coverage" in kept.columns and keys and kept["mode_coverage"].notna().any():
        mc = kept.groupby(keys)["mode_coverage"].agg(n="count", median="median")
        bad = mc[(mc["n"] > 0) & (mc["median"] < 0.5)]
        if len(bad):
            L.append("- **Generators that miss most modes**: groups whose median `mode_coverage` (share of the known "
                     "mixture's modes their samples reach) is below 0.5: " + ", ".join(
                         f"{_group_label(k)} (median {_f(r['median'])}, "
                         f"{int(r['n'])} runs)" for k, r in bad.iterrows())
                     + ". Sample-quality edges contrast these with generators that learn.")
    if {"generalization", "problem"} <= set(kept.columns):
        reg = kept[kept["problem"] == "regression"]
        if len(reg):
            by = reg.groupby("task")["generalization"].agg(lambda x: float((x.dropna() <= 0).mean()))
            bad = by[by > 0]
            if len(bad):
                L.append("- **Regression no better than the mean** (test R² <= 0), share of runs: " + ", ".join(
                    f"{k} {v:.0%}" for k, v in bad.items()) + ".")
    piles = []
    for col in ("gradient_stability", "sharpness", "implicit_reg", "bias_sq", "variance", "convergence",
                "generalization", "deployment_risk", "precision", "recall", "coverage", "density"):
        if col not in kept.columns:
            continue
        x = pd.to_numeric(kept[col], errors="coerce").dropna()
        if len(x) < 10 or x.nunique() < 2:
            continue
        for side, v in (("ceiling", x.max()), ("floor", x.min())):
            share = float((x == v).mean())
            if share >= cfg.pile_up:
                piles.append(f"`{col}` at its {side} {_f(v)} in {share:.0%} of {len(x)} runs")
    if piles:
        L.append("- **Columns piled at a bound** (their edges have little variation to use): " + "; ".join(piles) + ".")
    s = fx.summary
    small = s[s["n"] < cfg.small_n]
    if len(small):
        L.append(f"- **Few rows** (n < {cfg.small_n}): " + ", ".join(
            f"edge {r.number} `{r.treatment}` → `{r.outcome}` (n = {int(r.n)})" for r in small.itertuples()) + ".")
    one = []
    kept_all = _kept(table)
    for r in s.itertuples():
        fams = _families(table, _edge_rows(table, r.treatment, r.outcome) & kept_all, r.treatment)
        total = max(sum(n for _, n, _ in fams), 1)
        varies = [f for f, _, v in fams if v]
        if has_task and (len(varies) == 1 or (fams and fams[0][1] / total >= cfg.one_family)):
            fam = varies[0] if len(varies) == 1 else fams[0][0]
            one.append(f"edge {r.number} `{r.treatment}` → `{r.outcome}` ({fam})")
    if one:
        L.append("- **Rows from one task** (the treatment varies in one task only, or one task supplies "
                 f"≥ {cfg.one_family:.0%} of the rows): " + ", ".join(one) + ".")
    if len(fx.units) and "extreme" in fx.units.columns:
        ext = fx.units[fx.units["extreme"] > 0]
        if len(ext):
            L.append("- **Extreme rows kept** (|z| > 5 within their family, not dropped): " + ", ".join(
                f"`{r.column}` in {r.family} ({int(r.extreme)}; max |z| {_f(abs(r.max_z))})" for r in ext.itertuples())
                     + ".")
    if len(fx.skipped):
        L.append(f"- **Skipped column edges**: {len(fx.skipped)} (see their edges above).")
    viol = find.graph_tests.violations
    L.append(f"- **Graph tests**: {len(viol)} of {len(find.graph_tests.summary)} implied conditional independences "
             f"are violated after {find.graph_tests.correction} correction"
             + (": " + ", ".join(f"`{r.x}` ⟂ `{r.y}`" for r in viol.head(10).itertuples())
                + (" …" if len(viol) > 10 else "") if len(viol) else "") + ".")
    return L + [""]


def write_findings(runs: "pd.DataFrame | str | Path", path: str | Path = "FINDINGS.md", *,
                   config: FindingsConfig | None = None, command: str | None = None) -> Path:
    """Compute and write the findings document; returns its path.

    ``command`` is the line stated at the document's top (``udl findings`` passes its own);
    e.g. ``write_findings("data/reference", "FINDINGS.md")`` (about 30 s: five fits and the graph tests).
    """
    out = Path(path)
    text = render_findings(compute_findings(runs, config=config, command=command))
    out.write_text(text)
    return out


# ---- the `udl findings` command -----------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``udl findings`` to the dispatcher (builds the parser only; nothing heavy is imported)."""
    p = subparsers.add_parser(
        "findings",
        help="write FINDINGS.md: every book edge's estimate, verdict and diagnostics, missing edges, caveats",
        description=("Fit every book edge (default settings, per task and under three other settings), test the "
                     "graph and search for missing edges, and write a markdown document that states this command."),
    )
    p.add_argument("data", metavar="DATA", help="a .parquet file or a sweep directory of shards")
    p.add_argument("--out", metavar="FILE", default="FINDINGS.md", help="markdown file to write (default FINDINGS.md)")
    defaults = FindingsConfig()
    helps = {"alpha": "level of CIs, verdicts and the caveats' tests", "seed": "seed of the fits",
             "threshold": "min |standardized effect| of a listed missing edge",
             "top_missing": "missing edges listed", "small_n": "flag column edges with fewer rows",
             "one_family": "share of an edge's rows from one task that makes it rest on that task",
             "pile_up": "share of rows at a column's max (min) that puts it at a ceiling (floor)"}
    for name, text in helps.items():
        value = getattr(defaults, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value, help=f"{text} (default {value})")
    p.add_argument("--correction", choices=("holm", "fdr_bh", "bonferroni"), default=defaults.correction,
                   help=f"multiple-testing correction (default {defaults.correction})")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    defaults = FindingsConfig()
    cfg = FindingsConfig(**{f.name: getattr(args, f.name) for f in fields(FindingsConfig)})
    opts = "".join(f" --{f.name.replace('_', '-')} {getattr(cfg, f.name)}" for f in fields(FindingsConfig)
                   if getattr(cfg, f.name) != getattr(defaults, f.name))
    out = Path(args.out)  # an absolute path (a temporary copy) is stated by its name: the text stays the same
    command = f"udl findings {args.data} --out {out.name if out.is_absolute() else args.out}{opts}"
    out = write_findings(args.data, args.out, config=cfg, command=command)
    print(f"wrote {out}")
    return 0
