"""The shipped reference sweep (data/reference) and its sign baseline.

These read the committed data: a schema or engine change that makes the shipped
files stale fails here, not in a user's notebook.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import causal

DATA = Path(__file__).resolve().parents[1] / "data"
REFERENCE = DATA / "reference"
BASELINE = DATA / "baseline_signs.json"
MIN_RUNS = 300  # runs in the shipped reference
MEDIAN_FLOOR = 0.38  # median MNIST-1D test accuracy of its non-diverged runs, rounded down


@pytest.fixture(scope="module")
def runs():
    return causal.load_runs(REFERENCE)


MEDIATORS_OUTCOMES = ["gradient_stability", "sharpness", "implicit_reg", "bias_sq", "variance", "convergence",
                      "generalization", "test_loss", "test_error", "gen_gap", "deployment_risk", "ece"]
#: the floors and caps of schema 1.x, which read as extreme measurements
OLD_PLACEHOLDERS = {"sharpness": (-8.0, 8.0), "implicit_reg": (-8.0, 8.0), "bias_sq": (-8.0, 8.0),
                    "variance": (-8.0, 8.0), "convergence": (-3.0, 6.0), "gradient_stability": (-6.0,),
                    "test_loss": (100.0,), "test_error": (100.0,), "deployment_risk": (100.0,)}


def test_reference_sweep_is_complete_and_valid(runs):
    manifest = json.loads((REFERENCE / "_sweep.json").read_text())
    assert manifest["identity"]["lever_space"] == "large"
    # 300 runs: what 2 shared cores made in 90 min (README, benchmarks/RESULTS.md); a GPU atlas will be far larger
    assert len(runs) == manifest["identity"]["runs"] >= MIN_RUNS
    assert runs["run_id"].is_unique
    assert set(runs["task"]) == {"teacher", "mnist1d"} and set(runs["arch"]) == {"mlp", "cnn"}
    numeric = runs.select_dtypes("number").to_numpy(dtype=float)
    assert not np.isinf(numeric).any(), "no infinite values; an unmeasurable value is null"


def test_runs_learn_on_mnist1d(runs):
    ok = runs[(runs["task"] == "mnist1d") & (runs["diverged"] == 0)]
    assert len(ok) >= 80
    # chance is 0.10; the schema-1.0 reference's median was 0.116 and the first schema-2.0 one's 0.29. Issue 8
    # asks for 0.45: MEDIAN_FLOOR is what this reference holds (README gives the number and why it falls short)
    assert ok["generalization"].median() >= MEDIAN_FLOOR, ok["generalization"].describe()
    assert ok["generalization"].quantile(0.9) >= 0.7, ok["generalization"].describe()
    # the CNN learns the task given the data: the anchors' 4,000 examples
    cnn = ok[(ok["arch"] == "cnn") & (ok["n_train"] == 4000)]
    assert cnn["generalization"].median() >= 0.8, cnn["generalization"].describe()


def test_no_placeholder_or_cap_values(runs):
    """Diverged runs carry nulls (and a step), never a floor or cap; depth 1 never reads as perfectly stable."""
    bad = runs[runs["diverged"] == 1]
    assert bad["diverged_step"].notna().all() and runs.loc[runs["diverged"] == 0, "diverged_step"].isna().all()
    post = [c for c in MEDIATORS_OUTCOMES if c != "gradient_stability"]
    assert bad[post].isna().all().all(), "a diverged run's post-training values must be null"
    for col, values in OLD_PLACEHOLDERS.items():
        for v in values:
            assert not np.isclose(runs[col].dropna(), v).any(), f"{col} holds the old placeholder {v}"
    assert (runs["depth"] >= 2).all() or runs.loc[runs["depth"] == 1, "gradient_stability"].isna().all()
    assert not (runs["gradient_stability"] == 0.0).any()
    # no pile at a column's extreme: a placeholder shows up as many rows sharing the min or the max
    for col in ["sharpness", "implicit_reg", "bias_sq", "variance", "convergence", "test_loss", "gen_gap"]:
        x = runs[col].dropna()
        for extreme in (x.min(), x.max()):
            assert (x == extreme).mean() < 0.01, (col, extreme)


def test_levers_are_uncorrelated_in_the_reference(runs):
    levers = ["init_quality", "log_lr", "weight_decay", "dropout", "residual", "normalized", "data_noise",
              "early_stopping", "augmentation"]
    r = runs[levers].astype(float).corr().to_numpy()
    off = np.abs(r[~np.eye(len(levers), dtype=bool)])
    assert off.max() < 5 / np.sqrt(len(runs)), off.max()


def test_known_results_hold_in_the_reference(runs):
    runs = runs[runs["diverged"] == 0]
    plain = runs[(runs["residual"] == 0) & (runs["normalization"] == "none") & (runs["depth"] >= 2)]
    near_he = plain.loc[plain["init_quality"] > -0.5, "gradient_stability"].mean()
    far = plain.loc[plain["init_quality"] < -1.5, "gradient_stability"].mean()
    assert near_he > far, (near_he, far)
    v = runs.dropna(subset=["variance"])
    slope = np.polyfit(v["data_quantity"], v["variance"], 1)[0]
    assert slope < 0, slope


def test_shipped_baseline_matches_the_reference(runs):
    check = causal.check_signs(causal.fit_edges(runs), BASELINE)
    assert check.passed, check.failures
    assert (check.summary["status"] == "stable").sum() >= 5
