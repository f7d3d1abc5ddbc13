"""One call that runs the whole analysis of a runs table: ``udl report``.

Edges (pooled and, when the table has several tasks, per task), the total
effects of every randomized lever, the default mediation paths, the graph
tests, the mediators scored as generalization measures and,
given a baseline, the sign check. :meth:`Report.write_html` writes one
self-contained HTML file (:mod:`causal.html`: figures embedded, sortable
tables, no network needed); :meth:`Report.write_dir` a folder of tables,
figures, ``report.md`` and ``report.html``.

To check the page in a browser without a display (Debian's ``chromium``)::

    chromium --headless --disable-gpu --no-sandbox --enable-logging=stderr --v=0 \\
        --virtual-time-budget=5000 --dump-dom report.html > dom.html 2> console.log
    grep -c "CONSOLE" console.log            # 0: no console message
    grep -o 'data-udl-ready="1"' dom.html     # the page's script ran to the end
    chromium --headless --disable-gpu --no-sandbox --screenshot=report.png \\
        --window-size=1400,4000 report.html
"""

from __future__ import annotations

import datetime as _dt
import html as _html
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from causal.edges import EdgeEffects, fit_edges
from causal.errors import BaselineError
from causal.graph import BOOK_DAG, CausalGraph
from causal.graph_tests import FalsifyResult, falsify
from causal.mediate import MediationTable, mediation_paths
from causal.results import Result, format_table
from causal.stability import SignCheck, check_signs

__all__ = ["Report", "report", "provenance"]

#: numeric columns whose distributions the data section draws (those present)
DISTRIBUTION_COLUMNS = (
    "capacity", "init_quality", "log_lr", "log_batch", "data_quantity", "data_noise", "overparam",
    "gradient_stability", "sharpness", "implicit_reg", "bias_sq", "variance", "convergence",
    "generalization", "test_error", "gen_gap", "deployment_risk", "ece",
)


@dataclass(repr=False)
class Report(Result):
    """Every analysis of one runs table.

    Attributes
    ----------
    effects : EdgeEffects
    mediation : MediationTable
    falsification : FalsifyResult
    signs : SignCheck or None
        Present when a baseline was given and matches the fit's settings.
    n_rows : int
    data : DataFrame or None
        The table analysed (for the data section and the figures).
    by_task : EdgeEffects or None
        ``fit_edges(..., by="task")`` when the table has several tasks.
    scores : MeasureScores or None
    totals : TotalEffects or None
        :func:`causal.total_effects` (pooled and per family).
    comparison : Comparison or None
        The fit against the baseline, edge by edge (for the paired plot).
    baseline_error : str
        Why the baseline could not be checked (other settings, bad file).
    provenance : dict
        Sweep identity and command, versions, schema, the analysis settings.
    edge_plots : int
        Most added-variable plots in the HTML (contradicting edges first).
    """

    effects: EdgeEffects
    mediation: MediationTable
    falsification: FalsifyResult
    signs: SignCheck | None
    n_rows: int
    data: pd.DataFrame | None = None
    by_task: EdgeEffects | None = None
    scores: Any = None
    totals: Any = None
    comparison: Any = None
    baseline_error: str = ""
    provenance: dict = field(default_factory=dict)
    edge_plots: int = 6

    title = "udl-causal report"

    @property
    def summary(self) -> pd.DataFrame:
        """One row per part: the verdict counts and checks at a glance."""
        s = self.effects.summary
        rows: list[dict[str, Any]] = [
            {"part": "edges", "item": v, "count": int((s["verdict"] == v).sum())}
            for v in ("supports", "contradicts", "inconclusive")
        ]
        rows.append({"part": "edges", "item": "skipped", "count": len(self.effects.skipped)})
        rows.append({"part": "mediation", "item": "paths significant",
                     "count": int((self.mediation.summary.get("p_adjusted", pd.Series(dtype=float))
                                   < self.mediation.alpha).sum())})
        rows.append({"part": "falsify", "item": "violated implications", "count": len(self.falsification.violations)})
        rows.append({"part": "falsify", "item": "strong missing edges", "count": len(self.falsification.missing_edges)})
        if self.signs is not None:
            rows.append({"part": "signs", "item": "check passed", "count": int(self.signs.passed)})
        return pd.DataFrame(rows)

    def _info(self) -> dict[str, Any]:
        return {"rows": self.n_rows}

    def markdown(self) -> str:
        """The report as Markdown text."""
        parts = [f"# {self.title}", "", f"Runs analysed: {self.n_rows}", "", "## Overview", "",
                 "```", format_table(self.summary), "```", "",
                 "## Book edges (direct effects)", "", "```", self.effects.summary_text(), "```", "",
                 "## Mediation paths", "", "```", self.mediation.summary_text(), "```", "",
                 "## Graph tests", "", "```", self.falsification.summary_text(), "```", ""]
        if self.scores is not None:
            parts += ["## Mediators as generalization measures", "", "```", self.scores.summary_text(), "```", ""]
        if self.signs is not None:
            parts += ["## Sign stability against the baseline", "", "```", self.signs.summary_text(), "```", ""]
        elif self.baseline_error:
            parts += ["## Sign stability against the baseline", "", self.baseline_error, ""]
        return "\n".join(parts)

    # ---- HTML --------------------------------------------------------------------------
    def html(self) -> str:
        """The whole report as one self-contained HTML document (see :mod:`causal.html`)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from causal.html import page

        sections = [("overview", "Overview", self._overview_html())]
        if self.data is not None:
            sections.append(("data", "Data", self._data_html()))
        sections.append(("edges", "Book edges (direct effects)", self._edges_html()))
        if self.totals is not None:
            sections.append(("totals", "Total effects", self._totals_html()))
        sections.append(("mediation", "Mediation", self._mediation_html()))
        sections.append(("graph-tests", "Graph tests", self._falsify_html()))
        if self.scores is not None:
            sections.append(("measures", "Mediators as generalization measures", self._scores_html()))
        sections.append(("signs", "Sign stability", self._signs_html()))
        sections.append(("provenance", "Provenance", self._provenance_html()))
        src = self.provenance.get("data") or "a runs table"
        return page(self.title, sections, subtitle=f"{src}: {self.n_rows} runs")

    def write_html(self, path: str | Path) -> Path:
        """Write :meth:`html` to ``path`` (one file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding="utf-8")
        return path

    def _overview_html(self) -> str:
        from causal.html import info_html, table_html

        e = self.effects
        info = {**e._info(), "mediation paths": len(self.mediation.summary),
                "implications tested": len(self.falsification.summary)}
        legend = "".join(f"<span style='background:{c}'>{v}</span>" for v, c in
                         (("supports", "#c8e6c9"), ("contradicts", "#ffcdd2"), ("inconclusive", "#eeeeee")))
        return (info_html(info) + table_html(self.summary, sortable=False)
                + f"<p class='legend'>Verdict colours: {legend}. A verdict is significant after the fit's "
                  "multiplicity correction; intervals in the figures are matched to it (a bar clear of 0 is a "
                  "significant verdict).</p>")

    def _data_html(self) -> str:
        from causal.html import figure_html, table_html
        from causal.plots import distributions

        df = self.data
        out = []
        group = [c for c in ("task", "problem") if c in df.columns]
        if group:
            counts = df.groupby(group, dropna=False).size().rename("runs").reset_index()
            if "diverged" in df.columns:
                div = df.groupby(group, dropna=False)["diverged"].apply(lambda s: int((s == 1).sum()))
                counts["diverged"] = div.to_numpy()
                counts["diverged %"] = 100 * counts["diverged"] / counts["runs"]
            out.append("<h5>Runs per family</h5>" + table_html(counts))
        for col in ("arch", "optimizer", "normalization", "loss"):
            if col in df.columns and df[col].nunique() > 1:
                vc = df[col].value_counts(dropna=False).rename_axis(col).rename("runs").reset_index()
                out.append(f"<div style='display:inline-block;vertical-align:top;margin-right:18px'>"
                           f"{table_html(vc, sortable=False)}</div>")
        nulls = df.isna().sum()
        nulls = nulls[nulls > 0]
        if len(nulls):
            why = []
            for c in nulls.index:
                in_div = int(df.loc[df[c].isna(), "diverged"].eq(1).sum()) if "diverged" in df.columns else 0
                why.append(in_div)
            frame = pd.DataFrame({"column": nulls.index, "null": nulls.to_numpy(), "of which diverged": why,
                                  "null %": 100 * nulls.to_numpy() / len(df)})
            out.append("<h5>Null values per column (a column that cannot be measured for a run is null)</h5>"
                       + table_html(frame))
        cols = [c for c in DISTRIBUTION_COLUMNS if c in df.columns and df[c].notna().sum() > 1]
        if cols:
            out.append(figure_html(distributions(df, cols), caption="Distributions of the book's columns by task; where a few extreme runs would squash the rest, the central 98% (the panel title counts nulls and runs outside) "
                                   "(non-diverged runs; diverged runs are excluded from every fit by default)"))
        return "".join(out)

    def _edges_html(self) -> str:
        from causal.html import figure_html
        from causal.plots import effects_graph, forest_facets, plot_edge

        out = [self.effects._repr_html_()]
        if self.by_task is not None:
            out.append("<h5>Per task</h5>" + self.by_task._repr_html_())
        fx = self.by_task if self.by_task is not None else self.effects
        out.append(figure_html(forest_facets(fx), caption="Forest plot: standardized direct effects; intervals "
                               "matched to each panel's corrected verdict; the book's expected sign at the right"))
        out.append(figure_html(effects_graph(self.effects).figure,
                               caption="The book's graph on this table: colour = verdict, dashes = negative "
                               "estimate, width = |standardized effect|"))
        if self.data is not None:
            picks = self._diagnostic_edges()
            if picks:
                out.append("<h5>Per-edge diagnostics: added-variable plots</h5><p class='note'>Edges that contradict "
                           "the book, whose sign differs across tasks, or the strongest supported ones. Does the "
                           "verdict rest on a trend or on a few points?</p>")
                out.append("<div class='grid'>")
                for t, o, why in picks:
                    fitted = self.by_task if (self.by_task is not None and why == "sign differs by task") \
                        else self.effects
                    ax = plot_edge(fitted, self.data, t, o)
                    fig = (ax if not isinstance(ax, np.ndarray) else ax[0]).figure
                    out.append(figure_html(fig, caption=f"{t} → {o} ({why})", dpi=80))
                out.append("</div>")
        return "".join(out)

    def _diagnostic_edges(self) -> list[tuple[str, str, str]]:
        s = self.effects.summary
        picks: list[tuple[str, str, str]] = []
        for r in s[s["verdict"] == "contradicts"].itertuples(index=False):
            picks.append((r.treatment, r.outcome, "contradicts the book"))
        het = getattr(self.by_task, "heterogeneity", None) if self.by_task is not None else None
        if het is not None and len(het) and "sign_differs" in het.columns:
            sig = het[het["sign_differs"] & (het["q_p"] < self.effects.config.alpha)]
            for r in sig.itertuples(index=False):
                if (r.treatment, r.outcome) not in {(a, b) for a, b, _ in picks}:
                    picks.append((r.treatment, r.outcome, "sign differs by task"))
        sup = s[s["verdict"] == "supports"].assign(_a=lambda d: d["std_effect"].abs()).sort_values("_a",
                                                                                                   ascending=False)
        for r in sup.itertuples(index=False):
            if len(picks) >= self.edge_plots:
                break
            if (r.treatment, r.outcome) not in {(a, b) for a, b, _ in picks}:
                picks.append((r.treatment, r.outcome, "supports the book"))
        return picks[:self.edge_plots]

    def _totals_html(self) -> str:
        from causal.html import figure_html
        from causal.plots import totals_heatmap

        s = self.totals.summary
        out = []
        if len(s) and {"family", "lever", "outcome", "estimate", "std_error", "p_adjusted"} <= set(s.columns):
            out.append(figure_html(totals_heatmap(s, alpha=float(getattr(self.totals, "alpha", 0.05))),
                                   caption="Each randomized lever's total effect on each mediator and outcome, "
                                   "pooled and per family (sortable table below, with each effect in words)"))
        out.append(self.totals._repr_html_())
        return "".join(out)

    def _mediation_html(self) -> str:
        from causal.html import figure_html
        from causal.plots import mediation_forest

        out = [self.mediation._repr_html_()]
        if self.data is not None and len(self.mediation.summary):
            out.append(figure_html(mediation_forest(self.mediation, self.data).figure,
                                   caption="Path-specific effects in standardized units (sd of target per sd of "
                                   "source), with each source's total effect"))
        return "".join(out)

    def _falsify_html(self) -> str:
        return self.falsification._repr_html_()

    def _scores_html(self) -> str:
        from causal.html import figure_html

        return self.scores._repr_html_() + figure_html(self.scores.plot().figure, caption=(
            "Each mediator as a predictor of gen_gap: Kendall τ and granulated Ψ (Jiang et al. 2020); "
            "1 − 2 × sign error, mean and worst environment (Dziugaite et al. 2020)"))

    def _signs_html(self) -> str:
        from causal.html import figure_html

        if self.signs is None:
            if self.baseline_error:
                return f"<p><b>The baseline was not checked:</b> {_html.escape(self.baseline_error)}</p>"
            return ("<p class='note'>No baseline given. Pass one (<code>udl report DATA --baseline "
                    "data/baseline_signs.json</code>) to check every edge's sign and size against it.</p>")
        out = [self.signs._repr_html_()]
        if self.comparison is not None:
            out.append(figure_html(self.comparison.plot().figure, caption="Baseline (a) and this fit (b) per edge; "
                                   "labels coloured when the edge changed"))
        return "".join(out)

    def _provenance_html(self) -> str:
        from causal.html import info_html

        p = dict(self.provenance)
        out = []
        if p.get("generate_command"):
            out.append(f"<h5>Sweep</h5><pre>{_html.escape(p['generate_command'])}</pre>")
        if p.get("sweep"):
            out.append(info_html({k: json.dumps(v) if isinstance(v, (dict, list)) else v
                                  for k, v in p["sweep"].items()}))
        if p.get("report_command"):
            out.append(f"<h5>This report</h5><pre>{_html.escape(p['report_command'])}</pre>")
        out.append("<h5>Versions and schema</h5>" + info_html(p.get("versions", {})))
        return "".join(out)

    # ---- folder ------------------------------------------------------------------------
    def write_dir(self, out: str | Path) -> Path:
        """Write tables (CSV + JSON), figures (PNG), ``report.md`` and ``report.html`` into ``out``."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from causal.plots import effects_graph, forest_facets, mediation_forest

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.effects.write(out / "edges.csv")
        self.effects.write(out / "edges.json")
        self.mediation.write(out / "mediation.csv")
        self.falsification.write(out / "implications.csv")
        self.falsification.missing_edges.to_csv(out / "missing_edges.csv", index=False)
        if self.signs is not None:
            self.signs.write(out / "signs.csv")
        if self.scores is not None:
            self.scores.write(out / "measure_scores.csv")
        figures: dict[str, Any] = {
            "forest.png": lambda: forest_facets(self.by_task if self.by_task is not None else self.effects),
            "graph.png": lambda: effects_graph(self.effects).figure,
        }
        if self.data is not None:
            figures["mediation.png"] = lambda: mediation_forest(self.mediation, self.data).figure
        else:
            figures["mediation.png"] = lambda: self.mediation.plot().figure
        for name, draw in figures.items():
            fig = draw()
            fig.savefig(out / name, dpi=110, bbox_inches="tight")
            plt.close(fig)
        (out / "report.md").write_text(self.markdown())
        self.write_html(out / "report.html")
        return out


def provenance(path: str | Path | None, df: pd.DataFrame | None = None) -> dict[str, Any]:
    """Where a table came from: its sweep's identity and ``udl generate`` command, versions, schema.

    Reads ``_sweep.json`` of a sweep directory, or the ``udl.sweep`` key-value
    metadata of a parquet file; the table's own ``package_version`` and
    ``torch_version`` columns; and the analysis side's versions.
    """
    import importlib.metadata as md

    from causal import __version__
    from causal.schema import SCHEMA_VERSION

    sweep: dict[str, Any] = {}
    versions: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            if p.is_dir() and (p / "_sweep.json").is_file():
                doc = json.loads((p / "_sweep.json").read_text())
            elif p.is_file() and p.suffix == ".parquet":
                import pyarrow.parquet as pq

                meta = pq.read_metadata(p).metadata or {}
                doc = json.loads(meta.get(b"udl.sweep", b"{}").decode())
            else:
                doc = {}
        except (OSError, ValueError):
            doc = {}
        sweep = {k: v for k, v in (doc.get("identity") or {}).items()}
        if doc.get("execution"):
            sweep["execution"] = doc["execution"]
        versions.update({f"sweep: {k}": v for k, v in (doc.get("versions") or {}).items()})
    out: dict[str, Any] = {"data": str(path) if path is not None else None, "sweep": sweep}
    if sweep.get("runs") is not None and sweep.get("seed") is not None:
        cmd = [f"udl generate --runs {sweep['runs']} --seed {sweep['seed']}"]
        if sweep.get("lever_space"):
            cmd.append(f"--space {sweep['lever_space']}")
        if sweep.get("replicas") is not None:
            cmd.append(f"--replicas {sweep['replicas']}")
        if sweep.get("shard_size") is not None:
            cmd.append(f"--shard-size {sweep['shard_size']}")
        for k, v in (sweep.get("fix") or {}).items():
            cmd.append(f"--fix {k}={v}")
        for k, v in (sweep.get("vary") or {}).items():
            cmd.append(f"--vary {k}={','.join(map(str, v)) if isinstance(v, list) else v}")
        cmd.append(f"--out {Path(path).name if path is not None else 'DIR'}")
        out["generate_command"] = " ".join(cmd)
    if df is not None:
        for col in ("package_version", "torch_version", "engine", "device"):
            if col in df.columns:
                versions[f"table: {col}"] = ", ".join(sorted(map(str, df[col].dropna().unique())))
    versions["schema (this package reads)"] = SCHEMA_VERSION
    if sweep.get("schema_version"):
        versions["schema (sweep)"] = sweep["schema_version"]
    versions["udl-causal (analysis)"] = __version__
    for pkg in ("numpy", "pandas", "statsmodels", "dowhy", "matplotlib", "networkx", "scipy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    versions["python"] = platform.python_version()
    versions["generated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    out["versions"] = versions
    return out


def report(
    df: pd.DataFrame,
    *,
    graph: CausalGraph = BOOK_DAG,
    baseline: str | Path | dict | None = None,
    adjust: str = "design",
    alpha: float = 0.05,
    n_boot: int = 200,
    seed: int = 0,
    source: str | Path | None = None,
    by_task: bool = True,
    scores: bool = True,
    command: str | None = None,
    edge_plots: int = 6,
    totals: bool = True,
) -> Report:
    """Run edges, default mediation paths, graph tests, measure scores and the sign check.

    Parameters
    ----------
    df : pandas.DataFrame
        A runs table (see :func:`causal.load_runs`).
    baseline : path or dict, optional
        A sign baseline (``udl check --write-baseline``); checked when given.
        One made with other settings is reported in the sign section, not
        raised.
    adjust : {'design', 'book'}
        Adjustment mode of :func:`causal.fit_edges`.
    n_boot : int
        Bootstrap resamples for the mediation CIs.
    source : path, optional
        Where ``df`` was read from (provenance: the sweep's identity and command).
    by_task : bool
        Also fit per task when the table has several (forest facets, diagnostics).
    scores : bool
        Score the mediators as generalization measures (needs ``gen_gap``).
    command : str, optional
        The command that made the report (shown under provenance).
    edge_plots : int
        Most per-edge added-variable plots in the HTML.
    totals : bool
        Estimate every randomized lever's total effect (:func:`causal.total_effects`,
        pooled and per family, ``n_boot`` resamples).

    Returns
    -------
    Report
    """
    from causal.errors import UdlError

    effects = fit_edges(df, graph=graph, adjust=adjust, alpha=alpha, seed=seed)
    med = mediation_paths(df, graph=graph, n_boot=n_boot, seed=seed, alpha=alpha)
    fal = falsify(df, graph=graph, alpha=alpha, seed=seed)
    signs, comparison, baseline_error = None, None, ""
    if baseline is not None:
        try:
            signs = check_signs(effects, baseline)
            if not isinstance(baseline, dict):
                from causal.compare import compare

                comparison = compare(baseline, effects, labels=("baseline", "this table"))
        except BaselineError as exc:
            baseline_error = str(exc)
    fx_task = None
    if by_task and "task" in df.columns and df["task"].nunique() > 1:
        fx_task = fit_edges(df, graph=graph, adjust=adjust, alpha=alpha, seed=seed, by="task")
    ms = None
    if scores and "gen_gap" in df.columns:
        from causal.scores import measure_scores

        try:
            ms = measure_scores(df, effects=effects)
        except UdlError:  # a table too small for coupled pairs: the section is left out
            ms = None
    if totals:
        from causal.totals import total_effects

        tot = total_effects(df, graph=graph, n_boot=n_boot, seed=seed, alpha=alpha, adjust=adjust)
    else:
        tot = None
    prov = provenance(source, df)
    prov["analysis"] = {"adjust": adjust, "alpha": alpha, "n_boot": n_boot, "seed": seed}
    if command:
        prov["report_command"] = command
    return Report(effects=effects, mediation=med, falsification=fal, signs=signs, n_rows=len(df), data=df,
                  by_task=fx_task, scores=ms, totals=tot, comparison=comparison,
                  baseline_error=baseline_error, provenance=prov, edge_plots=edge_plots)
