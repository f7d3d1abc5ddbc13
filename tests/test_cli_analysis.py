"""The real ``udl mediate`` / ``udl falsify`` / ``udl check`` commands on small simulated parquet files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from causal.simulate import simulate_linear_scm

# parent-closed corner of the graph: fit_edges stays fast in `udl check`
COLUMNS = ["init_quality", "residual", "normalization_batch", "normalization_layer", "loss_matched",
           "gradient_stability", "sharpness", "convergence"]


def udl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "causal.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "runs.parquet"
    simulate_linear_scm(800, seed=0, add_edges={("log_lr", "sharpness"): -0.6}).data.to_parquet(path)
    return path


@pytest.mark.slow
def test_mediate_default_and_given_paths(full, tmp_path):
    out = tmp_path / "paths.csv"
    r = udl("mediate", full, "--n-boot", 50, "--out", out)
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(out)
    assert len(table) > 20 and table["path"].str.endswith("generalization").all()
    assert "residual -> gradient_stability" in r.stdout
    out = tmp_path / "one.json"
    path = "residual -> sharpness -> convergence"
    r = udl("mediate", full, "--path", path, "--n-boot", 50, "--seed", 3, "--out", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert [row["path"] for row in doc["summary"]] == [path]
    assert {row["effect"] for row in doc["decomposition"]} == {"path_specific", "direct", "other_indirect", "book_paths",
                                                               "total", "unexplained"}
    r = udl("mediate", full, "--path", "residual -> convergence")
    assert r.returncode == 2 and "'residual' -> 'convergence' is not an edge" in r.stderr
    r = udl("mediate", full, "--out", tmp_path / "x.txt")
    assert r.returncode == 2 and "--out" in r.stderr


@pytest.mark.slow
def test_falsify_reports_and_can_fail(full, tmp_path):
    out = tmp_path / "falsify.json"
    r = udl("falsify", full, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "log_lr" in r.stdout and "sharpness" in r.stdout
    doc = json.loads(out.read_text())
    assert len(doc["summary"]) > 40 and len(doc["randomization"]) > 100
    assert [(m["source"], m["target"]) for m in doc["missing_edges"]] == [("log_lr", "sharpness")]
    r = udl("falsify", full, "--fail-on-violation", "--out", tmp_path / "f.parquet")
    assert r.returncode == 1
    assert len(pd.read_parquet(tmp_path / "f.parquet")) > 40


@pytest.mark.slow
def test_check_passes_on_reseeded_data_and_fails_on_a_flipped_sign(tmp_path):
    paths = {}
    for name, kw in {"base": {"seed": 0}, "again": {"seed": 1},
                     "flipped": {"seed": 2, "coefficients": {("residual", "sharpness"): 0.8}}}.items():
        paths[name] = tmp_path / f"{name}.parquet"
        simulate_linear_scm(1200, columns=COLUMNS, **kw).data.to_parquet(paths[name])
    baseline = tmp_path / "signs.json"
    r = udl("check", paths["base"], "--baseline", baseline, "--write-baseline")
    assert r.returncode == 0, r.stderr
    assert json.loads(baseline.read_text())["format"] == "udl-sign-baseline"

    r = udl("check", paths["again"], "--baseline", baseline, "--n-boot", 50)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASSED" in r.stdout

    # a fit under other settings than the baseline's is refused, naming them
    r = udl("check", paths["again"], "--baseline", baseline, "--adjust", "book", "--diverged", "include")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "adjust: baseline 'design', this fit 'book'" in r.stderr
    assert "diverged: baseline 'exclude', this fit 'include'" in r.stderr

    out = tmp_path / "check.csv"
    r = udl("check", paths["flipped"], "--baseline", baseline, "--out", out)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED" in r.stdout and "residual→sharpness (flipped)" in r.stdout
    table = pd.read_csv(out)
    assert table.loc[table["failed"], "outcome"].tolist() == ["sharpness"]
    assert "same_sign" in table.columns


def test_check_with_a_bad_baseline_exits_2(full, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    r = udl("check", full, "--baseline", bad)
    assert r.returncode == 2 and "bad.json" in r.stderr and "not valid JSON" in r.stderr


def test_mediate_and_falsify_take_the_fit_commands_adjust_and_diverged_flags(tmp_path):
    from causal.cli_fit import ADJUST_CHOICES, DIVERGED_CHOICES
    from causal.prepare import ADJUST_CHOICES as PREP_ADJUST, DIVERGED_CHOICES as PREP_DIVERGED
    from causal.simulate_sweep import simulate_sweep

    assert (ADJUST_CHOICES, DIVERGED_CHOICES) == (PREP_ADJUST, PREP_DIVERGED)
    path = tmp_path / "sweep.parquet"
    data = simulate_sweep(600, seed=3, placeholders=False).data
    data.to_parquet(path)
    n_div = int(data["diverged"].sum())
    path_arg = "log_lr -> implicit_reg -> variance -> generalization"
    r = udl("mediate", path, "--path", path_arg, "--n-boot", 20)
    assert r.returncode == 0, r.stderr
    assert re.search(r"adjust\s+design", r.stdout) and re.search(rf"diverged\s+{n_div} excluded", r.stdout)
    r = udl("mediate", path, "--path", path_arg, "--n-boot", 20, "--adjust", "book", "--diverged", "include")
    assert r.returncode == 0, r.stderr
    assert re.search(r"adjust\s+book", r.stdout) and re.search(r"diverged\s+included", r.stdout)
    r = udl("falsify", path, "--adjust", "book", "--diverged", "include")
    assert r.returncode == 0, r.stderr
    assert re.search(r"adjust\s+book", r.stdout) and re.search(r"rows\s+600 \(0 diverged excluded\)", r.stdout)
    r = udl("falsify", path)
    assert re.search(r"adjust\s+design", r.stdout) and re.search(rf"rows\s+{600 - n_div} \({n_div} diverged excluded\)", r.stdout)
    r = udl("mediate", path, "--adjust", "graph")
    assert r.returncode == 2 and "invalid choice: 'graph'" in r.stderr


def test_effects_prints_and_writes_total_effects_per_family(tmp_path):
    from causal.simulate_sweep import simulate_sweep

    path = tmp_path / "sweep.parquet"
    simulate_sweep(800, seed=2, placeholders=False).data.to_parquet(path)
    out = tmp_path / "effects.csv"
    r = udl("effects", path, "--lever", "log_lr", "--lever", "residual", "--outcome", "generalization",
            "--n-boot", 30, "--out", out)
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(out)
    assert set(table["family"]) == {"pooled", "mnist1d/classification", "teacher/classification",
                                    "teacher/regression"}
    assert len(table) == 8 and "+1 decade of lr:" in r.stdout
    r = udl("effects", path, "--lever", "log_lr", "--outcome", "variance", "--n-boot", 30, "--pooled-only",
            "--adjust", "book", "--diverged", "include")
    assert r.returncode == 0, r.stderr
    assert re.search(r"adjust\s+book", r.stdout) and re.search(r"rows\s+800 \(diverged included\)", r.stdout)
    r = udl("effects", path, "--n-boot", 3)
    assert r.returncode == 2 and "n_boot must be an integer >= 10" in r.stderr
