import json
import os
import subprocess
import sys

import networkx as nx
import pandas as pd
import pytest

from causal.simulate import simulate_linear_scm


def udl(*args, cwd=None):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "causal.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "sim.parquet"
    simulate_linear_scm(600, seed=1, coefficients={("residual", "sharpness"): 0.8}).data.to_parquet(path)
    return path


@pytest.mark.slow
def test_udl_fit_prints_table_and_writes_files(runs, tmp_path):
    out = tmp_path / "effects.csv"
    r = udl("fit", str(runs), "--out", str(out), "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert "Direct effects of the book's edges" in r.stdout and "contradicts" in r.stdout
    df = pd.read_csv(out)
    last = [ln for ln in r.stdout.splitlines() if ln.strip()][-2]  # before "wrote ..."
    counts = df["verdict"].value_counts()
    assert last.startswith("In short: of ") and f"contradicts it on {counts['contradicts']} " in last, last
    assert len(df) == 42
    row = df[(df.treatment == "residual") & (df.outcome == "sharpness")].iloc[0]
    assert row["verdict"] == "contradicts"
    r = udl("fit", str(runs), "--adjust", "book", "--alpha", "0.01", "--out", str(tmp_path / "e.json"))
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["config"]["adjust"] == "book" and data["config"]["alpha"] == 0.01


def test_closing_line_says_when_there_is_no_power():
    from causal.cli_fit import closing_line

    none = closing_line(pd.Series(["inconclusive"] * 3 + ["skipped"]), 48)
    assert none.startswith("In short: of 3 estimated edges") and "48 runs are too few" in none
    some = closing_line(pd.Series(["supports", "contradicts", "inconclusive"]), 300)
    assert "supports the book's sign on 1, contradicts it on 1 and cannot tell on 1 (300 runs)" in some
    assert "too few" not in some


def test_udl_fit_errors_name_the_problem(runs, tmp_path):
    r = udl("fit", str(tmp_path / "missing.parquet"))
    assert r.returncode == 2 and "missing.parquet" in r.stderr and "does not exist" in r.stderr
    r = udl("fit", str(runs), "--out", str(tmp_path / "x.txt"))
    assert r.returncode == 2 and ".csv, .json or .parquet" in r.stderr
    r = udl("fit", str(runs), "--method", "magic")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_udl_dag_text_dot_gml_png(tmp_path):
    r = udl("dag")
    assert r.returncode == 0
    numbered = [ln for ln in r.stdout.splitlines() if ln[:3].strip().isdigit()]
    assert len(numbered) == 27 and "model_capacity→model_bias" in r.stdout
    r = udl("dag", "--level", "column")
    assert len([ln for ln in r.stdout.splitlines() if ln[:3].strip().isdigit()]) == 42
    r = udl("dag", "--format", "dot")
    assert r.stdout.startswith("digraph") and '"init_quality" -> "gradient_stability"' in r.stdout
    gml = tmp_path / "g.gml"
    assert udl("dag", "--format", "gml", "--level", "column", "--out", str(gml)).returncode == 0
    assert nx.read_gml(gml).number_of_edges() == 42
    png = tmp_path / "g.png"
    assert udl("dag", "--format", "png", "--out", str(png)).returncode == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    r = udl("dag", "--format", "png")
    assert r.returncode == 2 and "--out" in r.stderr


def test_registration_imports_nothing_heavy():
    code = ("import sys, argparse; import causal.cli_fit as m; p = argparse.ArgumentParser(); "
            "m.register(p.add_subparsers()); "
            "bad = [x for x in ('dowhy', 'matplotlib', 'pandas', 'torch') if x in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
