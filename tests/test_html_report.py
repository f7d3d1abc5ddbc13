"""The self-contained HTML report and every result's HTML view."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

import causal
from causal.compare import compare
from causal.html import fmt, result_html, table_html
from causal.report import report
from causal.simulate_sweep import simulate_sweep
from causal.stability import SignStability, check_signs, write_baseline

# anything a browser would fetch from elsewhere
EXTERNAL = re.compile(r"""(https?:|ftp:|wss?:)//|\bsrc\s*=\s*["']?//|url\(|@import|<link\b""", re.I)


@pytest.fixture(scope="module")
def table():
    df = simulate_sweep(500, seed=8).data
    rng = np.random.default_rng(0)
    df["gen_gap"] = 0.5 * df["variance"] + 0.2 * df["sharpness"] + rng.normal(0, 0.3, len(df))
    df.loc[df["diverged"] == 1, "gen_gap"] = np.nan
    return df


@pytest.fixture(scope="module")
def rep(table, tmp_path_factory):
    base = tmp_path_factory.mktemp("base") / "signs.json"
    write_baseline(causal.fit_edges(simulate_sweep(500, seed=9).data), base)
    return report(table, baseline=base, n_boot=30, command="udl report sim.parquet --out r.html", edge_plots=2)


@pytest.fixture(scope="module")
def page(rep):
    return rep.html()


class _Checker(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "input", "link"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.imgs, self.ids = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if "id" in a:
            self.ids.append(a["id"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def test_the_page_is_one_well_formed_file_with_every_section(page):
    p = _Checker()
    p.feed(page)
    assert not p.errors and not p.stack, (p.errors[:5], p.stack[:5])
    for sid in ("overview", "data", "edges", "totals", "mediation", "graph-tests", "measures", "signs", "provenance"):
        assert sid in p.ids, sid
    # distributions, forest facets, graph, 2 diagnostics, totals, mediation, scores, paired forest: all embedded
    assert len(p.imgs) == 9 and all(src.startswith("data:image/png;base64,") for src in p.imgs)


def test_the_page_needs_no_network(page):
    assert not EXTERNAL.findall(page), EXTERNAL.findall(page)[:5]
    assert "<script src" not in page.lower()


def test_sections_show_what_the_analysis_found(rep, page):
    # every estimated edge is a row, with its verdict tinted
    assert page.count("<td style='background:#c8e6c9'>supports</td>") == int(
        (rep.effects.summary["verdict"] == "supports").sum()
        + (rep.by_task.summary["verdict"] == "supports").sum()
        + (rep.effects.moderation["verdict"] == "supports").sum()
        + (rep.by_task.moderation["verdict"] == "supports").sum()
        + (rep.scores.summary["dag_verdict"] == "supports").sum())
    assert "Runs per family" in page and "udl report sim.parquet --out r.html" in page
    assert rep.scores is not None and "Kendall" in page
    assert rep.signs is not None and "Regression gate against the baseline" in page


def test_each_results_html_is_its_section(rep, page):
    for obj in (rep.effects, rep.by_task, rep.totals, rep.mediation, rep.falsification, rep.scores, rep.signs):
        assert obj._repr_html_() == result_html(obj)  # one renderer: settings, table, the tables it carries
        assert obj._repr_html_() in page, type(obj).__name__
    assert len(rep.totals.summary) > 80  # every lever x outcome x family: folded, still sortable
    assert rep.totals._repr_html_().count("<details><summary><b>The table</b>") == 1


def test_a_baseline_with_other_settings_is_reported_not_raised(table, tmp_path):
    base = write_baseline(causal.fit_edges(table, adjust="book"), tmp_path / "book.json")
    rep = report(table, baseline=base, n_boot=20, by_task=False, scores=False, edge_plots=0, totals=False)
    assert rep.signs is None and "other settings" in rep.baseline_error
    assert "The baseline was not checked" in rep.html()


@pytest.fixture(scope="module")
def results(table):
    fx = causal.fit_edges(table)
    med = causal.mediation_paths(table, n_boot=20)
    fal = causal.falsify(table)
    doc = {"format": "udl-sign-baseline", "version": 2, "alpha": 0.05, "settings": {}, "edges": []}
    sc = check_signs(fx, doc)
    stab = SignStability(fx.summary[["treatment", "outcome", "estimate"]].assign(sign=1, same_sign=1.0, n=1), 10, 0)
    return [fx, med, med.results[next(iter(med.results))], fal, sc, stab, compare(fx, fx),
            causal.measure_scores(table, effects=fx)]


def test_every_result_has_a_short_repr_an_html_view_and_writes_html(results, tmp_path):
    for obj in results:
        name = type(obj).__name__
        r = repr(obj)
        assert r.startswith(f"<{name}:") and len(r) < 120, r[:200]
        html = obj._repr_html_()
        assert "<table" in html and obj.title.replace("'", "&#x27;") in html
        path = obj.write(tmp_path / f"{name}.html")
        text = path.read_text()
        assert text.startswith("<!DOCTYPE html>") and not EXTERNAL.findall(text)


def test_cells_keep_tiny_p_values_and_sort_by_value():
    import pandas as pd

    assert fmt(6.5e-47) == "6.50e-47" and fmt(0.0123456) == "0.01235" and fmt(float("nan")) == "–"
    out = table_html(pd.DataFrame({"p": [6.5e-47, 0.2], "verdict": ["supports", "contradicts"]}))
    assert "data-v='6.5e-47'" in out and "6.50e-47" in out and "background:#ffcdd2" in out


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_page_opens_in_headless_chromium_without_console_errors(page, tmp_path):
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    res = subprocess.run(["chromium", "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr",
                          "--v=0", "--virtual-time-budget=5000", "--dump-dom", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "CONSOLE" not in res.stderr, [ln for ln in res.stderr.splitlines() if "CONSOLE" in ln]
    assert 'data-udl-ready="1"' in res.stdout  # the page's script ran to its end
    assert '<pre id="udl-errors" hidden="">' in res.stdout  # and reported no error


@pytest.mark.slow
def test_udl_report_writes_one_html_file(table, tmp_path):
    data = tmp_path / "runs.parquet"
    table.to_parquet(data)
    out = tmp_path / "report.html"
    res = subprocess.run([sys.executable, "-m", "causal.cli", "report", str(data), "--out", str(out), "--n-boot", "20",
                          "--edge-plots", "0"],
                         capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert out.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "runs.parquet"]
    assert f"udl report {data}" in out.read_text()
