"""`causal.compare` and `udl compare`: two fits side by side."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from causal.compare import compare
from causal.edges import fit_edges
from causal.errors import ConfigError
from causal.simulate_sweep import simulate_sweep
from causal.stability import write_baseline

N = 2400
ALTERED = ("init_quality", "gradient_stability")  # true +0.7; shifted by -1.4 to -0.7


@pytest.fixture(scope="module")
def halves():
    data = simulate_sweep(N, seed=11).data
    return fit_edges(data.iloc[::2]), fit_edges(data.iloc[1::2])


@pytest.fixture(scope="module")
def altered():
    data = simulate_sweep(N, seed=11, shift={ALTERED: -1.4}).data
    return fit_edges(data.iloc[1::2])


def test_two_halves_of_one_sweep_report_no_flip(halves):
    cmp = compare(*halves)
    assert len(cmp.summary) >= 30
    assert cmp.flips.empty, cmp.flips
    assert not cmp.settings_changed and cmp.settings.empty
    assert not cmp.summary["setting_changed"].any()
    # most edges of the simulator are strong: they stay significant with the same sign
    assert (cmp.summary["status"] == "stable").mean() > 0.8


def test_an_altered_sweep_reports_the_altered_edge(halves, altered):
    cmp = compare(halves[0], altered)
    flipped = set(zip(cmp.flips["treatment"], cmp.flips["outcome"]))
    assert flipped == {ALTERED}
    row = cmp.flips.iloc[0]
    assert row["sign_a"] == 1 and row["sign_b"] == -1 and "other side of 0" in row["explanation"]
    assert "flipped" in cmp.summary_text()


def test_a_changed_setting_is_reported_not_refused(halves):
    book = fit_edges(simulate_sweep(N, seed=11).data.iloc[1::2], adjust="book")
    cmp = compare(halves[0], book)
    assert cmp.settings_changed
    assert cmp.settings.set_index("setting").loc["adjust", ["a", "b"]].tolist() == ["design", "book"]
    assert cmp.summary["setting_changed"].all()
    assert "adjust: design -> book" in cmp.summary_text()


def _frame(rows):
    df = pd.DataFrame(rows, columns=["treatment", "outcome", "estimate", "std_error"])
    df["ci_low"] = df["estimate"] - 1.96 * df["std_error"]
    df["ci_high"] = df["estimate"] + 1.96 * df["std_error"]
    from scipy import stats

    df["p_adjusted"] = 2 * stats.norm.sf(np.abs(df["estimate"] / df["std_error"]))
    return df


def test_lost_power_is_told_apart_from_a_weakened_estimate():
    a = _frame([("x", "power", 1.0, 0.2), ("x", "weak", 0.6, 0.2), ("x", "flip", 0.6, 0.1),
                ("x", "same", 0.8, 0.1), ("x", "gain", 0.3, 0.3)])
    b = _frame([("x", "power", 1.0, 0.8), ("x", "weak", 0.3, 0.2), ("x", "flip", -0.6, 0.1),
                ("x", "same", 0.8, 0.1), ("x", "gain", 0.3, 0.1)])
    status = compare(a, b).summary.set_index("outcome")["status"]
    assert status.to_dict() == {"power": "lost_power", "weak": "weakened", "flip": "flipped",
                                "same": "stable", "gain": "gained_power"}


def test_an_edge_fitted_in_other_units_is_a_changed_setting():
    a = _frame([("x", "gen", 1.0, 0.5), ("x", "var", 0.8, 0.1)])
    b = a.assign(standardized=["gen", ""])
    cmp = compare(a, b)
    changed = cmp.summary.set_index("outcome")["setting_changed"]
    assert changed["gen"] and not changed["var"]
    assert "units differ" in cmp.summary.set_index("outcome").loc["gen", "explanation"]
    assert "1 edge(s) differ" in cmp.summary_text()


def test_bad_input_is_named(halves, tmp_path):
    with pytest.raises(ConfigError, match="got int"):
        compare(halves[0], 42)
    with pytest.raises(ConfigError, match="does not exist"):
        compare(halves[0], tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="apply only to sides given as runs tables"):
        compare(*halves, adjust="book")


def test_plot_draws_on_the_given_axes(halves, altered):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    cmp = compare(halves[0], altered, labels=("half 1", "altered half 2"))
    assert cmp.plot(ax=ax) is ax
    labels = [t.get_text() for t in ax.get_yticklabels()]
    red = [t.get_text() for t in ax.get_yticklabels() if t.get_color() != "black"]
    assert len(labels) == len(cmp.summary) and red == ["init_quality → gradient_stability"]
    plt.close(fig)
    # the drawn intervals are on the footing of each side's corrected test
    from causal.compare import _matched

    s = cmp.summary.dropna(subset=["estimate_b"])
    for side in ("a", "b"):
        lo, hi = _matched(s, side, cmp.alpha)
        assert (((lo > 0) | (hi < 0)) == s[f"significant_{side}"].to_numpy(bool)).all()


def test_udl_compare_on_baselines(halves, altered, tmp_path):
    a = write_baseline(halves[0], tmp_path / "a.json")
    b = write_baseline(altered, tmp_path / "b.json")
    same = write_baseline(halves[1], tmp_path / "same.json")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    run = lambda *args: subprocess.run([sys.executable, "-m", "causal.cli", "compare", *map(str, args)],  # noqa: E731
                                       capture_output=True, text=True, env=env)
    res = run(a, b, "--out", tmp_path / "cmp")
    assert res.returncode == 1, res.stderr
    assert "init_quality" in res.stdout and "flipped" in res.stdout
    for name in ("compare.csv", "compare.json", "compare.png"):
        assert (tmp_path / "cmp" / name).stat().st_size > 0
    res = run(a, same)
    assert res.returncode == 0, res.stdout + res.stderr
    assert run(a, tmp_path / "missing.json").returncode == 2


def test_an_edge_adjusted_for_other_columns_names_them():
    a = _frame([("x", "gen", 1.0, 0.5), ("x", "var", 0.8, 0.1)]).assign(adjustment=["depth,task_mnist1d", "depth"])
    b = a.assign(adjustment=["depth,problem_regression", "depth"])
    cmp = compare(a, b)
    row = cmp.summary.set_index("outcome").loc["gen"]
    assert row["setting_changed"] and not cmp.summary.set_index("outcome").loc["var", "setting_changed"]
    assert "adjustment set differs (only in a: task_mnist1d; only in b: problem_regression)" in row["explanation"]
