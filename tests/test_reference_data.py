"""The shipped reference sweep (data/reference: every task family) and its sign baseline.

These read the committed data: a schema or engine change that makes the shipped
files stale fails here, not in a user's notebook.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import causal

DATA = Path(__file__).resolve().parents[1] / "data"
REFERENCE = DATA / "reference"
BASELINE = DATA / "baseline_signs.json"
MIN_RUNS = 480  # runs in the shipped reference
FAMILIES = {"teacher": {"mlp"}, "mnist1d": {"mlp", "cnn"}, "sequence": {"mlp", "transformer"},
            "graph": {"mlp", "gnn"}, "transfer": {"mlp"}, "generative": {"vae", "gan", "flow", "diffusion"}}
SUPERVISED = ["teacher", "mnist1d", "sequence", "graph", "transfer"]
MNIST_MEDIAN_FLOOR = 0.45  # issue 8: median MNIST-1D test accuracy of its non-diverged runs (space 2-all: 0.496)


@pytest.fixture(scope="module")
def runs():
    return causal.load_runs(REFERENCE)


@pytest.fixture(scope="module")
def ok(runs):
    return runs[runs["diverged"] == 0]


MEDIATORS_OUTCOMES = ["gradient_stability", "sharpness", "implicit_reg", "bias_sq", "variance", "convergence",
                      "generalization", "test_loss", "test_error", "gen_gap", "deployment_risk", "ece",
                      "precision", "recall", "coverage", "density", "mode_coverage", "sample_loglik"]
SAMPLE_QUALITY = ["precision", "recall", "coverage", "density", "mode_coverage", "sample_loglik"]
SUPERVISED_OUTCOMES = ["generalization", "test_loss", "test_error", "gen_gap", "ece", "bias_sq", "variance"]
#: the floors and caps of schema 1.x, which read as extreme measurements
OLD_PLACEHOLDERS = {"sharpness": (-8.0, 8.0), "implicit_reg": (-8.0, 8.0), "bias_sq": (-8.0, 8.0),
                    "variance": (-8.0, 8.0), "convergence": (-3.0, 6.0), "gradient_stability": (-6.0,),
                    "test_loss": (100.0,), "test_error": (100.0,), "deployment_risk": (100.0,)}


def test_reference_sweep_is_complete_and_valid(runs):
    manifest = json.loads((REFERENCE / "_sweep.json").read_text())
    assert manifest["identity"]["lever_space"] == "all"
    assert len(runs) == manifest["identity"]["runs"] >= MIN_RUNS
    assert runs["run_id"].is_unique
    pairs = {t: set(a) for t, a in runs.groupby("task")["arch"]}
    assert pairs == FAMILIES, pairs  # every family, each with all of its architectures
    assert runs["task"].value_counts().min() >= MIN_RUNS / 6 * 0.7
    numeric = runs.select_dtypes("number").to_numpy(dtype=float)
    assert not np.isinf(numeric).any(), "no infinite values; an unmeasurable value is null"


def test_columns_that_do_not_apply_are_null(runs):
    gen = runs["task"] == "generative"
    assert runs.loc[gen, SUPERVISED_OUTCOMES].isna().all().all()
    assert runs.loc[~gen, SAMPLE_QUALITY].isna().all().all()
    assert runs.loc[gen & (runs["diverged"] == 0), ["precision", "recall", "coverage", "density"]].notna().all().all()
    transfer = runs["task"] == "transfer"
    assert runs.loc[~transfer, ["source_task", "source_similarity", "source_steps"]].isna().all().all()
    assert (runs.loc[~transfer, "pretrained"] == 0).all()
    assert set(runs.loc[transfer, "pretrained"]) == {0, 1}
    assert runs.loc[transfer & (runs["pretrained"] == 1), "source_steps"].notna().all()


def test_runs_learn_on_mnist1d(ok):
    m = ok[ok["task"] == "mnist1d"]
    assert len(m) >= 60
    # chance is 0.10; issue 8 asks for a median of 0.45 (README: what this reference holds and why)
    assert m["generalization"].median() >= MNIST_MEDIAN_FLOOR, m["generalization"].describe()
    assert m["generalization"].quantile(0.9) >= 0.7, m["generalization"].describe()


@pytest.mark.parametrize("task,matched", [("mnist1d", "cnn"), ("sequence", "transformer"), ("graph", "gnn")])
def test_the_inductive_bias_is_real_in_the_data(ok, task, matched):
    """On each structured task the matched architecture's median accuracy beats the MLP's (issue 11)."""
    t = ok[ok["task"] == task]
    by = t.groupby("arch")["generalization"].median()
    assert (t["inductive_bias"].to_numpy() == (t["arch"] == matched).to_numpy()).all()
    assert by[matched] > by["mlp"] + 0.05, by


def test_generative_runs_learn_the_mixture(ok):
    """A Gaussian fitted to the ring scores precision ~0.25 (tests/test_generative.py); space 2-all trains every
    generative architecture with Adam in a budget where each learns it (benchmarks/RESULTS.md, "Space 2-all")."""
    g = ok[ok["task"] == "generative"]
    assert len(g) >= 70
    by = g.groupby("arch")
    assert (by["precision"].median() > 0.35).all(), by["precision"].describe()
    assert (by["precision"].quantile(0.9) > 0.6).all(), by["precision"].describe()
    likelihood = g[g["arch"] != "gan"]  # a GAN may drop modes (the book's mode collapse); the others cover the ring
    assert (likelihood.groupby("arch")["mode_coverage"].median() == 1.0).all()
    assert g["precision"].median() > 0.6


def test_transfer_runs_rarely_diverge_and_not_by_treatment(runs):
    """Space 2-all's transfer learning rates: few diverged runs, so excluding them barely selects on pretrained."""
    t = runs[runs["task"] == "transfer"]
    share = t.groupby("pretrained")["diverged"].mean()
    assert t["diverged"].mean() < 0.12 and (share < 0.25).all(), share


def test_transformers_learn_the_sequence_task(ok):
    """Space 2-all's sequence sizes (2,048-4,000 sequences; chance 0.25): two thirds of the transformers learn.

    Accuracy is bimodal (runs that learn reach 0.8-1.0, the rest stay near chance), so the median sits in the
    gap and moves with the draw (0.50 and 0.43 on two regenerations of the same plan, 37 runs); the mean
    (0.58 on both) and the share above 0.35 (0.65, 0.68) do not. Space 1-all's 1,024-sequence runs mostly
    stayed at chance (median 0.39).
    """
    seq = ok[ok["task"] == "sequence"]
    tr = seq[seq["arch"] == "transformer"]["generalization"]
    assert tr.mean() > 0.5, tr.describe()
    assert (tr > 0.35).mean() > 0.6, tr.describe()
    assert tr.mean() > seq[seq["arch"] == "mlp"]["generalization"].mean() + 0.1  # 0.58 vs 0.41


def test_no_placeholder_or_cap_values(runs):
    """Diverged runs carry nulls (and a step), never a floor or cap; depth 1 never reads as perfectly stable."""
    bad = runs[runs["diverged"] == 1]
    assert bad["diverged_step"].notna().all() and runs.loc[runs["diverged"] == 0, "diverged_step"].isna().all()
    post = [c for c in MEDIATORS_OUTCOMES if c != "gradient_stability"]
    assert bad[post].isna().all().all(), "a diverged run's post-training values must be null"
    for col, values in OLD_PLACEHOLDERS.items():
        for v in values:
            assert not np.isclose(runs[col].dropna(), v).any(), f"{col} holds the old placeholder {v}"
    assert not (runs["gradient_stability"] == 0.0).any()
    # no pile at a column's extreme: a placeholder shows up as many rows sharing the min or the max
    for col in ["sharpness", "implicit_reg", "bias_sq", "variance", "convergence", "test_loss", "gen_gap",
                "precision", "sample_loglik"]:
        x = runs[col].dropna()
        for extreme in (x.min(), x.max()):
            assert (x == extreme).mean() < 0.02, (col, extreme)


def test_levers_are_uncorrelated_within_families(runs):
    """Randomization: within each supervised family (its own distributions), the levers are independent."""
    levers = ["init_quality", "log_lr", "weight_decay", "dropout", "residual", "normalized", "data_noise",
              "early_stopping", "augmentation"]
    sup = runs[runs["task"].isin(SUPERVISED)]
    centred = sup[levers].astype(float) - sup.groupby("task")[levers].transform("mean").astype(float)
    r = centred.corr().to_numpy()
    off = np.abs(r[~np.eye(len(levers), dtype=bool)])
    assert off.max() < 5 / np.sqrt(len(sup)), off.max()


def test_known_results_hold_in_the_reference(ok):
    sup = ok[ok["task"].isin(SUPERVISED)]
    plain = sup[(sup["residual"] == 0) & (sup["normalization"] == "none") & (sup["depth"] >= 2)]
    near_he = plain.loc[plain["init_quality"] > -0.5, "gradient_stability"].mean()
    far = plain.loc[plain["init_quality"] < -1.5, "gradient_stability"].mean()
    assert near_he > far, (near_he, far)
    # more data, less variance: within each family (the families draw their own data sizes)
    v = sup.dropna(subset=["variance"])
    x = v["data_quantity"] - v.groupby("task")["data_quantity"].transform("mean")
    y = v["variance"] - v.groupby("task")["variance"].transform("mean")
    assert np.polyfit(x, y, 1)[0] < 0


def test_every_book_edge_is_estimated(runs):
    """Issue 11: with every family in the reference, no book edge is skipped for lack of data."""
    fx = causal.fit_edges(runs)
    assert fx.skipped.empty, fx.skipped
    numbers = set(fx.summary["number"]) | ({3} if len(fx.moderation) else set())  # edge 3 moderates edge 2
    assert numbers == set(range(1, 28)), sorted(set(range(1, 28)) - numbers)


def test_shipped_baseline_matches_the_reference(runs):
    check = causal.check_signs(causal.fit_edges(runs), BASELINE)
    assert check.passed, check.failures
    assert (check.summary["status"] == "stable").sum() >= 5
