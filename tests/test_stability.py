"""The regression gate: baseline files, check_signs on simulated regenerations, bootstrap stability."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from causal.edges import fit_edges
from causal.errors import BaselineError, ConfigError, SchemaError
from causal.simulate_sweep import simulate_sweep
from causal.stability import (
    SETTINGS,
    bootstrap_sign_stability,
    check_signs,
    read_baseline,
    write_baseline,
)

N = 2000


def sim(seed: int, **kw) -> pd.DataFrame:
    return simulate_sweep(N, seed=seed, **kw).data


@pytest.fixture(scope="module")
def baseline_fit():
    return fit_edges(sim(0))


@pytest.fixture
def baseline(baseline_fit, tmp_path):
    return write_baseline(baseline_fit, tmp_path / "signs.json", data="sim seed 0")


def test_baseline_records_estimates_ses_and_settings(baseline_fit, baseline):
    doc = read_baseline(baseline)
    assert doc["format"] == "udl-sign-baseline" and doc["version"] == 2
    assert doc["alpha"] == baseline_fit.config.alpha and doc["data"] == "sim seed 0"
    assert set(doc["settings"]) == set(SETTINGS)
    assert doc["settings"]["adjust"] == "design" and doc["settings"]["se"] == "hc3"
    assert doc["settings"]["diverged"] == "exclude" and doc["settings"]["correction"] == "holm"
    assert len(doc["edges"]) == len(baseline_fit.summary) + len(baseline_fit.moderation)
    entry = next(e for e in doc["edges"] if (e["treatment"], e["outcome"]) == ("capacity", "bias_sq"))
    assert entry["sign"] == -1 and entry["significant"] is True and entry["std_error"] > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_a_reseeded_sweep_passes(baseline, seed):
    check = check_signs(fit_edges(sim(seed)), baseline)
    assert check.passed, check.failures[["treatment", "outcome", "status", "diff_p_adjusted"]]
    assert not check.summary["status"].isin(["flipped", "shifted", "missing"]).any()


def test_an_altered_generator_fails(baseline):
    # capacity -> bias_sq: -0.6 becomes +0.3 (a flip); sharpness -> convergence: -0.5 becomes -0.2 (a shift)
    altered = sim(3, shift={("capacity", "bias_sq"): 0.9, ("sharpness", "convergence"): 0.3})
    check = check_signs(fit_edges(altered), baseline)
    assert not check.passed
    status = check.summary.set_index(["treatment", "outcome", "regime"])["status"]
    assert status[("capacity", "bias_sq", "")] == "flipped"
    assert status[("sharpness", "convergence", "")] == "shifted"
    assert "FAILED" in check.summary_text()


def test_an_altered_table_fails(baseline):
    d = sim(4)
    d["variance"] = d["variance"] + 0.5 * d["dropout"] / d["dropout"].std()  # a tampered column
    check = check_signs(fit_edges(d), baseline)
    assert not check.passed
    assert ("dropout", "variance") in set(zip(check.failures["treatment"], check.failures["outcome"]))


def _frame(fit, **changes):
    """The fit with some (treatment, outcome) -> {column: value} of its summary changed."""
    from types import SimpleNamespace

    s = fit.summary.copy()
    for key, values in changes.items():
        t, o = key.split("__")
        mask = (s["treatment"] == t) & (s["outcome"] == o)
        for col, v in values.items():
            s.loc[mask, col] = v
    return SimpleNamespace(summary=s, moderation=fit.moderation, config=fit.config)


def test_lost_significance_is_a_warning_with_ci_widths(baseline_fit, baseline):
    row = baseline_fit.effect("capacity", "bias_sq")
    wide = {"std_error": 10 * row["std_error"], "ci_low": row["estimate"] - 20 * row["std_error"],
            "ci_high": row["estimate"] + 20 * row["std_error"], "p_adjusted": 0.6}
    check = check_signs(_frame(baseline_fit, capacity__bias_sq=wide), baseline)
    assert check.passed
    warn = check.warnings.set_index(["treatment", "outcome"]).loc[("capacity", "bias_sq")]
    assert warn["status"] == "lost_significance" and warn["ci_width"] > 5 * warn["baseline_ci_width"]


def test_missing_edge_fails(baseline_fit, baseline):
    s = baseline_fit.summary
    gone = s[~((s["treatment"] == "init_quality") & (s["outcome"] == "gradient_stability"))]
    check = check_signs(gone, baseline)
    row = check.summary.set_index(["treatment", "outcome"]).loc[("init_quality", "gradient_stability")]
    assert row["status"] == "missing" and row["failed"] and not check.passed


def test_a_baseline_made_with_other_settings_is_refused(baseline):
    with pytest.raises(BaselineError, match=r"adjust: baseline 'design', this fit 'book'"):
        check_signs(fit_edges(sim(1), adjust="book"), baseline)
    with pytest.raises(BaselineError, match=r"correction: baseline 'holm', this fit 'fdr_bh'; diverged: baseline 'exclude', this fit 'include'"):
        check_signs(fit_edges(sim(1), diverged="include", correction="fdr_bh"), baseline)
    # one problem only: generalization stays in raw units, which do not compare with within-family sd units
    d = sim(1)
    with pytest.raises(BaselineError, match=r"units: baseline 'within-family sd: data_noise,deployment_risk,"
                                            r"generalization', this fit 'raw'") as info:
        check_signs(fit_edges(d[d["problem"] == "classification"]), baseline)
    assert "different task/problem families" in str(info.value) and "refit" not in str(info.value)
    with pytest.raises(BaselineError, match=r"refit with the baseline's settings \(adjust='design'\)"):
        check_signs(fit_edges(sim(1), adjust="book"), baseline)


def test_a_baseline_of_an_older_minor_schema_still_checks(baseline_fit, baseline, tmp_path):
    """A minor schema bump only adds columns: a baseline written under 2.0 checks a 2.x fit; another major is refused."""
    doc = json.loads(baseline.read_text())
    major = doc["settings"]["schema_version"].split(".")[0]
    for version, ok in ((f"{major}.0", True), (f"{major}.99", True), (f"{int(major) + 1}.0", False)):
        doc["settings"]["schema_version"] = version
        path = tmp_path / f"v{version}.json"
        path.write_text(json.dumps(doc))
        if ok:
            assert check_signs(baseline_fit, path).passed
        else:
            with pytest.raises(BaselineError, match=rf"schema_version: baseline '{version}'"):
                check_signs(baseline_fit, path)


def test_baseline_errors_name_the_file(tmp_path, baseline):
    with pytest.raises(BaselineError, match="nope.json.*does not exist"):
        read_baseline(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(BaselineError, match="bad.json.*not valid JSON"):
        read_baseline(bad)
    doc = json.loads(baseline.read_text())
    for change, message in [({"format": "other"}, "format"), ({"version": 1}, "version 1.*Regenerate"),
                            ({"edges": [{"treatment": "a"}]}, "edge #0 lacks")]:
        bad.write_text(json.dumps({**doc, **change}))
        with pytest.raises(BaselineError, match=f"bad.json.*{message}"):
            read_baseline(bad)
    bad.write_text(json.dumps({k: v for k, v in doc.items() if k != "settings"}))
    with pytest.raises(BaselineError, match="lacks the key 'settings'"):
        read_baseline(bad)
    with pytest.raises(ConfigError, match="EdgeEffects"):
        check_signs("not a fit", baseline)
    with pytest.raises(SchemaError, match="std_error"):
        write_baseline(pd.DataFrame({"treatment": ["a"]}), tmp_path / "x.json")


def test_bootstrap_refits_exactly_the_checked_model(baseline_fit):
    data = sim(0)
    res = bootstrap_sign_stability(data, effects=baseline_fit, n_boot=50)
    merged = res.summary.merge(baseline_fit.summary, on=["treatment", "outcome"], suffixes=("", "_fit"))
    assert len(merged) == len(baseline_fit.summary)
    np.testing.assert_allclose(merged["estimate"], merged["estimate_fit"], rtol=1e-7, atol=1e-9)
    # design columns (raw levers) are part of the refitted model
    assert "depth" in baseline_fit.effect("capacity", "bias_sq")["adjustment"].split(",")
    book = fit_edges(data, adjust="book")
    res_book = bootstrap_sign_stability(data, effects=book, n_boot=20)
    merged = res_book.summary.merge(book.summary, on=["treatment", "outcome"], suffixes=("", "_fit"))
    np.testing.assert_allclose(merged["estimate"], merged["estimate_fit"], rtol=1e-7, atol=1e-9)
    with pytest.raises(ConfigError, match="n_boot"):
        bootstrap_sign_stability(data, effects=baseline_fit, n_boot=2)
    with pytest.raises(ConfigError, match="EdgeEffects"):
        bootstrap_sign_stability(data, effects=baseline_fit.summary)


def test_edge2_regimes_are_part_of_the_baseline(baseline_fit, tmp_path):
    from types import SimpleNamespace

    def fit(over_sign: float):
        mod = pd.DataFrame({"regime": ["under", "over", "interaction"], "treatment": "capacity",
                            "outcome": "variance", "estimate": [0.4, 0.3 * over_sign, 0.3 * over_sign - 0.4],
                            "std_error": [0.05, 0.05, 0.07], "ci_low": [0.3, 0.3 * over_sign - 0.1, -1.0],
                            "ci_high": [0.5, 0.3 * over_sign + 0.1, 1.0], "p_adjusted": [1e-6, 1e-5, 1e-4]})
        return SimpleNamespace(summary=baseline_fit.summary, moderation=mod, config=baseline_fit.config)

    path = write_baseline(fit(-1.0), tmp_path / "regimes.json")
    regimes = [e.get("regime") for e in read_baseline(path)["edges"]]
    assert regimes.count("under") == regimes.count("over") == regimes.count("interaction") == 1
    assert check_signs(fit(-1.0), path).passed
    check = check_signs(fit(+1.0), path)  # the over-parameterized slope flipped
    assert ["over", "flipped"] in check.failures[["regime", "status"]].values.tolist()
