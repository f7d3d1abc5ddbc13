"""Sign stability: baseline files, check_signs on simulated regenerations, bootstrap stability."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from causal.edges import fit_edges
from causal.errors import BaselineError, ConfigError, SchemaError
from causal.simulate import simulate_linear_scm
from causal.stability import (
    bootstrap_sign_stability,
    check_signs,
    read_baseline,
    write_baseline,
)

# a parent-closed corner of the graph (no latent confounding), 10 column edges: fits fast
COLUMNS = ["init_quality", "residual", "normalization_batch", "normalization_layer", "loss_matched",
           "gradient_stability", "sharpness", "convergence"]
FLIP = ("residual", "sharpness")


def sim(seed: int, **kw):
    return simulate_linear_scm(1500, seed=seed, columns=COLUMNS, **kw).data


@pytest.fixture(scope="module")
def baseline_fit():
    return fit_edges(sim(0))


@pytest.fixture
def baseline(baseline_fit, tmp_path):
    return write_baseline(baseline_fit, tmp_path / "signs.json", data="sim seed 0")


def test_baseline_file_round_trip(baseline_fit, baseline):
    doc = read_baseline(baseline)
    assert doc["format"] == "udl-sign-baseline" and doc["version"] == 1
    assert doc["alpha"] == baseline_fit.config.alpha and doc["data"] == "sim seed 0"
    assert len(doc["edges"]) == len(baseline_fit.summary) == 10
    entry = next(e for e in doc["edges"] if (e["treatment"], e["outcome"]) == FLIP)
    assert entry["sign"] == -1 and entry["significant"] is True and entry["number"] == 14


@pytest.mark.slow
def test_fails_on_flipped_sign_and_passes_on_reseeded_process(baseline):
    true_coef = simulate_linear_scm(10, seed=0, columns=COLUMNS).coefficient(*FLIP)
    flipped = check_signs(fit_edges(sim(1, coefficients={FLIP: -true_coef})), baseline)
    assert not flipped.passed
    assert [tuple(r) for r in flipped.failures[["treatment", "outcome", "status"]].to_numpy()] == [
        (*FLIP, "flipped")]
    assert "flipped" in flipped.summary_text() and "sharpness" in flipped.summary_text()
    same = check_signs(fit_edges(sim(2)), baseline)
    assert same.passed, same.changes
    assert set(same.summary["status"]) == {"stable"}


def _frame(fit, **changes):
    """The baseline fit's summary with some (treatment, outcome) -> (estimate, p_adjusted) changed."""
    s = fit.summary.copy()
    for key, (est, p) in changes.items():
        t, o = key.split("__")
        mask = (s["treatment"] == t) & (s["outcome"] == o)
        s.loc[mask, ["estimate", "p_adjusted"]] = [est, p]
    return s


def test_statuses_lost_missing_newly_and_not_in_baseline(baseline_fit, baseline):
    s = _frame(baseline_fit, residual__sharpness=(-0.01, 0.6))
    check = check_signs(s, baseline)
    assert not check.passed
    assert check.failures["status"].tolist() == ["lost_significance"]
    # a missing edge fails and says so
    gone = s[~((s["treatment"] == "init_quality") & (s["outcome"] == "gradient_stability"))]
    check = check_signs(gone, baseline)
    row = check.summary.set_index(["treatment", "outcome"]).loc[("init_quality", "gradient_stability")]
    assert row["status"] == "missing" and row["failed"]
    # a baseline edge that was not significant may become significant without failing
    doc = read_baseline(baseline)
    for e in doc["edges"]:
        if (e["treatment"], e["outcome"]) == FLIP:
            e["significant"] = False
    doc["edges"] = doc["edges"][1:]  # and one edge the baseline never had
    check = check_signs(baseline_fit, doc)
    statuses = check.summary.set_index(["treatment", "outcome"])["status"]
    assert statuses[FLIP] == "newly_significant"
    assert "not_in_baseline" in set(statuses)
    assert check.passed


def test_alpha_override(baseline_fit, baseline):
    s = _frame(baseline_fit, residual__sharpness=(-0.5, 0.03))
    assert check_signs(s, baseline).passed
    check = check_signs(s, baseline, alpha=0.01)
    assert not check.passed and check.alpha == 0.01


def test_baseline_errors_name_the_file(tmp_path, baseline):
    with pytest.raises(BaselineError, match="nope.json.*does not exist"):
        read_baseline(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BaselineError, match="bad.json.*not valid JSON"):
        read_baseline(bad)
    doc = json.loads(baseline.read_text())
    for change, message in [({"format": "other"}, "format"), ({"version": 2}, "version 2"),
                            ({"edges": [{"treatment": "a"}]}, "edge #0 lacks")]:
        bad.write_text(json.dumps({**doc, **change}))
        with pytest.raises(BaselineError, match=f"bad.json.*{message}"):
            read_baseline(bad)
    bad.write_text(json.dumps({k: v for k, v in doc.items() if k != "alpha"}))
    with pytest.raises(BaselineError, match="lacks the key 'alpha'"):
        read_baseline(bad)
    bad.write_text(json.dumps({**doc, "edges": doc["edges"] + doc["edges"][:1]}))
    with pytest.raises(BaselineError, match="more than once"):
        read_baseline(bad)
    with pytest.raises(ConfigError, match="EdgeEffects"):
        check_signs("not a fit", baseline)
    with pytest.raises(SchemaError, match="p_adjusted"):
        write_baseline(pd.DataFrame({"treatment": ["a"]}), tmp_path / "x.json")


def test_bootstrap_sign_stability_matches_fit_edges(baseline_fit, baseline):
    data = sim(0)
    mine = bootstrap_sign_stability(data, n_boot=100)
    theirs = bootstrap_sign_stability(data, effects=baseline_fit, n_boot=100)
    merged = mine.summary.merge(baseline_fit.summary, on=["treatment", "outcome"], suffixes=("", "_fit"))
    assert len(merged) == 10
    np.testing.assert_allclose(merged["estimate"], merged["estimate_fit"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(mine.summary["same_sign"], theirs.summary["same_sign"])
    assert (mine.summary["same_sign"] >= 0.99).all()  # every simulated edge is strong
    check = check_signs(baseline_fit, baseline, stability=mine)
    assert check.summary["same_sign"].notna().all()


def test_bootstrap_sign_stability_is_uncertain_for_a_null_edge():
    fractions = []
    for seed in range(4):
        data = sim(10 + seed, coefficients={FLIP: 0.0})
        res = bootstrap_sign_stability(data, n_boot=100, seed=seed)
        row = res.summary.set_index(["treatment", "outcome"])
        fractions.append(row.loc[FLIP, "same_sign"])
        assert row.drop(FLIP)["same_sign"].min() >= 0.99
    assert np.mean(fractions) < 0.95, fractions
    with pytest.raises(ConfigError, match="n_boot"):
        bootstrap_sign_stability(sim(0), n_boot=2)


def test_edge2_regimes_are_part_of_the_baseline(baseline_fit, tmp_path):
    from types import SimpleNamespace

    def fit(over_sign: float):
        mod = pd.DataFrame({"regime": ["under", "over", "interaction"], "treatment": "capacity",
                            "outcome": "variance", "estimate": [0.4, 0.3 * over_sign, 0.3 * over_sign - 0.4],
                            "p_adjusted": [1e-6, 1e-5, 1e-4]})
        return SimpleNamespace(summary=baseline_fit.summary, moderation=mod,
                               config=SimpleNamespace(alpha=0.05))

    path = write_baseline(fit(-1.0), tmp_path / "regimes.json")
    regimes = [e.get("regime") for e in read_baseline(path)["edges"]]
    assert regimes.count("under") == regimes.count("over") == regimes.count("interaction") == 1
    assert check_signs(fit(-1.0), path).passed
    check = check_signs(fit(+1.0), path)  # the over-parameterized slope flipped
    assert check.failures[["regime", "status"]].values.tolist() == [["over", "flipped"]]
