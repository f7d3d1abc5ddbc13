"""One call that runs the whole analysis of a runs table: ``udl report``.

Edges, the default mediation paths, the graph tests and (given a baseline) the
sign check, written to a folder as tables, figures and a Markdown summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from causal.edges import EdgeEffects, fit_edges
from causal.graph_tests import FalsifyResult, falsify
from causal.graph import BOOK_DAG, CausalGraph
from causal.mediate import MediationTable, mediation_paths
from causal.results import Result, format_table
from causal.stability import SignCheck, check_signs

__all__ = ["Report", "report"]


@dataclass
class Report(Result):
    """Every analysis of one runs table.

    Attributes
    ----------
    effects : EdgeEffects
    mediation : MediationTable
    falsification : FalsifyResult
    signs : SignCheck or None
        Present when a baseline was given.
    n_rows : int
    """

    effects: EdgeEffects
    mediation: MediationTable
    falsification: FalsifyResult
    signs: SignCheck | None
    n_rows: int

    title = "udl-causal report"

    @property
    def summary(self) -> pd.DataFrame:
        """One row per book edge: the verdict counts and checks at a glance."""
        s = self.effects.summary
        rows: list[dict[str, Any]] = [
            {"part": "edges", "item": v, "count": int((s["verdict"] == v).sum())}
            for v in ("supports", "contradicts", "inconclusive")
        ]
        rows.append({"part": "edges", "item": "skipped", "count": len(self.effects.skipped)})
        rows.append({"part": "mediation", "item": "paths significant",
                     "count": int((self.mediation.summary.get("p_adjusted", pd.Series(dtype=float)) < 0.05).sum())})
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
        if self.signs is not None:
            parts += ["## Sign stability against the baseline", "", "```", self.signs.summary_text(), "```", ""]
        return "\n".join(parts)

    def write_dir(self, out: str | Path) -> Path:
        """Write tables (CSV + JSON), figures (PNG) and ``report.md`` into ``out``."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.effects.write(out / "edges.csv")
        self.effects.write(out / "edges.json")
        self.mediation.write(out / "mediation.csv")
        self.falsification.write(out / "implications.csv")
        self.falsification.missing_edges.to_csv(out / "missing_edges.csv", index=False)
        if self.signs is not None:
            self.signs.write(out / "signs.csv")
        figures = {
            "forest.png": (self.effects.plot_forest, (8, 10)),
            "graph.png": (self.effects.plot_graph, (12, 8)),
            "mediation.png": (self.mediation.plot, (8, 6)),
        }
        for name, (plot, size) in figures.items():
            fig, ax = plt.subplots(figsize=size)
            plot(ax=ax)
            fig.tight_layout()
            fig.savefig(out / name, dpi=110)
            plt.close(fig)
        (out / "report.md").write_text(self.markdown())
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
) -> Report:
    """Run edges, default mediation paths, graph tests and the sign check.

    Parameters
    ----------
    df : pandas.DataFrame
        A runs table (see :func:`causal.load_runs`).
    baseline : path or dict, optional
        A sign baseline (``udl check --write-baseline``); checked when given.
    adjust : {'design', 'book'}
        Adjustment mode of :func:`causal.fit_edges`.
    n_boot : int
        Bootstrap resamples for the mediation CIs.

    Returns
    -------
    Report
    """
    effects = fit_edges(df, graph=graph, adjust=adjust, alpha=alpha, seed=seed)
    med = mediation_paths(df, graph=graph, n_boot=n_boot, seed=seed, alpha=alpha)
    fal = falsify(df, graph=graph, alpha=alpha, seed=seed)
    signs = check_signs(effects, baseline) if baseline is not None else None
    return Report(effects=effects, mediation=med, falsification=fal, signs=signs, n_rows=len(df))
