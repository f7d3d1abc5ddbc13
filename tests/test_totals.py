"""causal.total_effects: randomized total effects, pooled and per family, shared with mediation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causal import ConfigError
from causal.mediate import mediation_paths
from causal.simulate_sweep import simulate_sweep
from causal.totals import plain_units, total_effects

LEVERS = ["weight_decay", "dropout", "residual", "normalization_batch", "augmentation", "label_smoothing", "capacity"]
OUTCOMES = ["gradient_stability", "sharpness", "bias_sq", "variance", "convergence", "generalization"]


@pytest.fixture(scope="module")
def sims():
    return [simulate_sweep(3000, seed=seed) for seed in (0, 1)]


def test_recovers_the_simulators_total_effects_within_ci(sims):
    """Levers whose every path runs along book edges: the truth is the sum over the book's paths
    (generalization mixes problems, so its truth is in within-family sd units)."""
    hits = []
    for seed, sim in enumerate(sims):
        te = total_effects(sim.data, levers=LEVERS, outcomes=OUTCOMES, n_boot=200, seed=seed, by_family=False)
        assert len(te.summary) == len(LEVERS) * len(OUTCOMES) and te.skipped.empty
        assert set(te.summary.loc[te.summary["standardized"], "outcome"]) == {"generalization"}
        for r in te.summary.itertuples(index=False):
            truth = sim.in_fit_units(r.lever, r.outcome, te.units, total=True)
            hits.append(r.ci_low <= truth <= r.ci_high)
        # a lever with no path to an outcome: zero total effect, and one that clearly has one
        assert te.effect("residual", "gradient_stability")["ci_low"] > 0.3
        assert te.effect("weight_decay", "gradient_stability")["p_value"] > 0.001
    assert np.mean(hits) >= 0.85, np.mean(hits)


def test_what_the_levers_change_moves_is_not_adjusted_for(sims):
    te = total_effects(sims[0].data, levers=["inductive_bias", "capacity", "log_lr", "width", "loss", "loss_matched"],
                       outcomes=["variance"], n_boot=20, by_family=False)
    adj = {lv: set(te.effect(lv, "variance")["adjustment"].split(",")) for lv in (
        "inductive_bias", "capacity", "log_lr", "log2_width", "loss_mse", "loss_matched")}
    # the loss decides whether label smoothing acts (0 unless cross-entropy): a loss change moves it
    assert "label_smoothing" not in adj["loss_matched"] and "problem_regression" in adj["loss_matched"]
    # a CNN instead of an MLP also changes the parameter count: capacity is moved by arch, not a confounder
    assert "capacity" not in adj["inductive_bias"] and "task_mnist1d" in adj["inductive_bias"]
    assert not any(c.startswith("arch_") for c in adj["inductive_bias"])
    assert "log2_width" not in adj["capacity"] and {"depth", "task_mnist1d"} <= adj["capacity"]
    # the optimizer sets the lr range (log_lr's confounder), and a mediator is never adjusted for
    assert {"optimizer_adam", "optimizer_momentum"} <= adj["log_lr"] and "implicit_reg" not in adj["log_lr"]
    # a raw lever by name: width moves capacity; the loss moves loss_matched; loss_mse is against the
    # reference (cross-entropy), so the other contrast is held
    assert "capacity" not in adj["log2_width"] and "depth" in adj["log2_width"]
    assert "loss_matched" not in adj["loss_mse"] and "loss_l1" in adj["loss_mse"]


def test_mediation_total_is_the_same_number(sims):
    sim = sims[1]
    table = mediation_paths(sim.data, ["weight_decay -> variance -> generalization",
                                       "residual -> sharpness -> convergence -> generalization"], n_boot=100, seed=4)
    te = total_effects(sim.data, levers=["weight_decay", "residual"], outcomes=["generalization"], n_boot=100,
                       seed=4, by_family=False)
    for lever in ("weight_decay", "residual"):
        row = table.summary.set_index("source").loc[lever]
        ours = te.effect(lever, "generalization")
        assert row["total_method"] == "randomized"
        assert row["total"] == pytest.approx(ours["estimate"], rel=1e-9)
        assert row["total_ci_low"] == pytest.approx(ours["ci_low"], rel=1e-9)
        assert row["total_ci_high"] == pytest.approx(ours["ci_high"], rel=1e-9)


def test_per_family_effects_are_in_raw_units_with_plain_words(sims):
    sim = sims[0]
    te = total_effects(sim.data, levers=["log_lr", "residual"], outcomes=["implicit_reg", "generalization"],
                       n_boot=50)
    fams = set(te.summary["family"])
    assert fams == {"pooled", "mnist1d/classification", "teacher/classification", "teacher/regression"}
    per = te.summary[te.summary["family"] != "pooled"]
    assert not per["standardized"].any()
    # the simulator's generalization is in one unit in every family: raw estimates recover the book's total
    for fam in ("teacher/classification", "teacher/regression"):
        row = te.effect("residual", "generalization", fam)
        truth = sim.total_effect("residual", "generalization", "teacher")
        assert row["ci_low"] <= truth <= row["ci_high"]
    lr = te.effect("log_lr", "implicit_reg", "mnist1d/classification")
    assert lr["plain"].startswith("+1 decade of lr: implicit regularization ×")
    assert "accuracy points (on mnist1d/classification)" in te.effect("log_lr", "generalization",
                                                                     "mnist1d/classification")["plain"]
    assert "within-family sd of generalization (pooled)" in te.effect("log_lr", "generalization")["plain"]
    text = te.summary_text()
    assert text.startswith("Total effects of the randomized levers") and "within-family sd" in text
    with pytest.raises(KeyError, match="families: pooled"):
        te.effect("log_lr", "generalization", "nope")


def test_plain_units_words():
    assert plain_units("log_lr", "generalization", 0.038, "mnist1d/classification", False) == (
        "+1 decade of lr: +3.8 accuracy points (on mnist1d/classification)")
    assert plain_units("log_lr", "generalization", 0.05, "teacher/regression", False) == (
        "+1 decade of lr: +0.05 R² (on teacher/regression)")
    assert plain_units("dropout", "variance", -1.0, "pooled", False) == "+0.1 dropout: variance ×0.794 (pooled)"
    # a factor past float range (the reference's generative convergence: +403 decades per decade of data)
    assert plain_units("data_quantity", "variance", 403.0, "generative/generation", False).endswith(
        "variance ×1e+403 (on generative/generation)")
    assert plain_units("data_noise", "generalization", -0.13, "pooled", True, True) == (
        "+1 within-family sd of data_noise: -0.13 within-family sd of generalization (pooled)")


def test_bad_input_names_the_value(sims):
    d = sims[0].data
    with pytest.raises(ConfigError, match="n_boot must be an integer >= 10"):
        total_effects(d, n_boot=3)
    named = total_effects(d, levers=["width", "optimizer", "loss", "depth"], outcomes=["variance"], n_boot=20,
                          by_family=False)
    assert sorted(named.summary["lever"]) == ["depth", "log2_width", "loss_l1", "loss_mse", "optimizer_adam",
                                              "optimizer_momentum"]
    te = total_effects(d, levers=["nope"], outcomes=["variance"], n_boot=20, by_family=False)
    assert te.summary.empty and "'nope' is not a randomized column" in te.skipped["reason"].iloc[0]
    assert isinstance(te.to_dict()["skipped"], list) and isinstance(te.summary, pd.DataFrame)


def test_a_family_with_too_few_rows_per_regressor_is_skipped_not_estimated(sims):
    """Per-family regressions need MIN_ROWS_PER_REGRESSOR rows per regressor; the pooled fit always runs."""
    from causal.totals import MIN_ROWS_PER_REGRESSOR

    data = sims[0].data
    fam = (data["task"].astype(str) + "/" + data["problem"].astype(str)).to_numpy()
    cut = np.flatnonzero(fam == "teacher/regression")[40:]  # that family keeps 40 rows: about 2 per regressor
    small = data.drop(index=data.index[cut])
    te = total_effects(small, levers=["log_lr"], outcomes=["implicit_reg"], n_boot=30)
    fams = set(te.summary["family"])
    assert "pooled" in fams and "mnist1d/classification" in fams
    assert "teacher/regression" not in fams
    reason = te.skipped.set_index("family").loc["teacher/regression", "reason"]
    assert f"fewer than {MIN_ROWS_PER_REGRESSOR} per regressor" in reason and "rows for" in reason
