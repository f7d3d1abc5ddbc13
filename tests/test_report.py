"""`causal.report` and `udl report`: the whole analysis of one table into a folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

import causal
from causal.report import report


@pytest.fixture(scope="module")
def sim():
    return causal.simulate_linear_scm(1500, seed=3)


def test_report_runs_every_part_and_writes_files(sim, tmp_path):
    effects = causal.fit_edges(sim.data)
    base = tmp_path / "baseline.json"
    causal.write_baseline(effects, base)
    rep = report(sim.data, baseline=base, n_boot=50, edge_plots=1)
    assert rep.signs is not None and rep.signs.passed
    counts = rep.summary.set_index("item")["count"]
    assert counts["supports"] + counts["contradicts"] + counts["inconclusive"] == len(effects.summary)
    out = rep.write_dir(tmp_path / "rep")
    for name in ("report.md", "edges.csv", "mediation.csv", "implications.csv", "missing_edges.csv",
                 "forest.png", "graph.png", "mediation.png", "signs.csv", "report.html"):
        assert (out / name).stat().st_size > 0, name
    edges = pd.read_csv(out / "edges.csv")
    assert len(edges) == len(effects.summary)
    assert "## Book edges" in (out / "report.md").read_text()


@pytest.mark.slow
def test_udl_report_cli(sim, tmp_path):
    data = tmp_path / "runs.parquet"
    sim.data.head(800).to_parquet(data)
    out = tmp_path / "rep"
    res = subprocess.run(
        [sys.executable, "-m", "causal.cli", "report", str(data), "--out", str(out), "--n-boot", "30",
         "--edge-plots", "0"],
        capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert res.returncode == 0, res.stderr
    assert "Direct effects of the book's edges" in res.stdout
    assert (out / "graph.png").exists()
