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


@pytest.fixture(scope="module")
def runs():
    return causal.load_runs(REFERENCE)


def test_reference_sweep_is_complete_and_valid(runs):
    manifest = json.loads((REFERENCE / "sweep.json").read_text())
    assert len(runs) >= 2000
    assert runs["run_id"].is_unique
    assert set(runs["task"]) == {"teacher", "mnist1d"}
    assert len(runs) == manifest["config"]["runs"] if "config" in manifest else True
    finite = runs.select_dtypes("number").drop(columns=["deployment_risk", "ece", "precision", "recall",
                                                       "coverage", "density", "pretrained"], errors="ignore")
    assert np.isfinite(finite.to_numpy(dtype=float)).all(), "every numeric column is finite, diverged runs included"


def test_levers_are_uncorrelated_in_the_reference(runs):
    levers = ["init_quality", "log_lr", "weight_decay", "dropout", "residual", "normalized", "data_noise",
              "early_stopping", "augmentation"]
    r = runs[levers].astype(float).corr().to_numpy()
    off = np.abs(r[~np.eye(len(levers), dtype=bool)])
    assert off.max() < 5 / np.sqrt(len(runs)), off.max()


def test_known_results_hold_in_the_reference(runs):
    plain = runs[(runs["residual"] == 0) & (runs["normalization"] == "none") & (runs["depth"] >= 2)]
    near_he = plain.loc[plain["init_quality"] > -0.5, "gradient_stability"].mean()
    far = plain.loc[plain["init_quality"] < -1.5, "gradient_stability"].mean()
    assert near_he > far, (near_he, far)
    slope = np.polyfit(runs["data_quantity"], runs["variance"], 1)[0]
    assert slope < 0, slope


def test_shipped_baseline_matches_the_reference(runs):
    check = causal.check_signs(causal.fit_edges(runs), BASELINE)
    assert check.passed, check.failures
    assert (check.summary["status"] == "stable").sum() >= 5
