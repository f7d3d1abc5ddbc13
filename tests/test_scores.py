"""`causal.measure_scores`: mediators scored as generalization measures (Jiang et al.; Dziugaite et al.)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causal.errors import ConfigError, SchemaError
from causal.scores import measure_scores


def hand_table() -> pd.DataFrame:
    # a 2 x 2 grid in each of two groups g; m orders the gap right except between
    # (a=1, b=0) and (a=1, b=1) in group x, and (a=0, b=1) vs (a=1, b=0) (which differ in two levers)
    return pd.DataFrame({
        "g": ["x"] * 4 + ["y"] * 4,
        "a": [0, 1, 0, 1] * 2,
        "b": [0, 0, 1, 1] * 2,
        "gen_gap": [1.0, 2.0, 3.0, 4.0, 10.0, 11.0, 12.0, 13.0],
        "m": [1.0, 3.0, 2.0, 2.5, 10.0, 11.0, 12.0, 13.0],
    })


def scores(df, **kw):
    kw = {"measures": ["m"], "levers": ["a", "b"], "hold": ("g",), "exact": True, "min_pairs": 1,
          "orientation": {"m": 1}, "effects": None, **kw}
    return measure_scores(df, **kw)


def test_hand_computed_scores():
    res = scores(hand_table())
    row = res.summary.iloc[0]
    # Kendall tau over all 28 pairs: only (a1b0, a0b1) and (a1b0, a1b1) in group x are discordant
    assert row["kendall_tau"] == pytest.approx((26 - 2) / 28)
    # psi_a: every a-pair agrees (4 cells, tau 1); psi_b: cells (x, a=0) 1, (x, a=1) -1, (y, .) 1, 1
    lev = res.by_lever.set_index("lever")
    assert lev.loc["a", "psi_lever"] == 1.0 and lev.loc["b", "psi_lever"] == 0.5
    assert row["psi"] == pytest.approx(0.75)
    # 8 environments (lever, group, other lever's value), one pair each; one wrong
    assert row["n_environments"] == 8 and row["n_pairs"] == 8
    assert row["mean_sign_error"] == pytest.approx(1 / 8) and row["worst_sign_error"] == 1.0
    assert row["worst_environment"].startswith("b 0→1 | g=x")


def test_orientation_reverses_every_score():
    up, down = scores(hand_table()).summary.iloc[0], scores(hand_table(), orientation={"m": -1}).summary.iloc[0]
    assert down["kendall_tau"] == pytest.approx(-up["kendall_tau"]) and down["psi"] == pytest.approx(-up["psi"])
    assert down["mean_sign_error"] == pytest.approx(1 - up["mean_sign_error"])
    assert down["worst_sign_error"] == 1.0  # every environment but one is now wrong


def test_ties_count_half_and_coupling_matters():
    df = hand_table()
    df["m"] = 0.0  # a constant measure: every pair is a tie
    row = scores(df).summary.iloc[0]
    assert row["mean_sign_error"] == 0.5 and row["worst_sign_error"] == 0.5 and row["psi"] == 0.0
    # not exact: pairs need only share g, so b may differ within an a-pair (the discordant cross pair enters)
    loose = scores(hand_table(), exact=False).summary.iloc[0]
    assert loose["n_pairs"] == 16 and loose["mean_other_diff"] == 0.5
    assert loose["worst_sign_error"] == 0.5  # group x, lever b: pairs (a0b0,a0b1) ok, (a1b0,a1b1) wrong, ...


def test_a_noisy_copy_of_the_gap_scores_near_perfect_and_noise_near_chance():
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({"task": rng.choice(["t1", "t2"], n), "lr": 10 ** rng.uniform(-3, 0, n),
                       "depth": rng.choice([1, 2, 3], n), "diverged": 0})
    df["gen_gap"] = np.log10(df["lr"]) + 0.3 * df["depth"] + rng.normal(0, 0.2, n)
    df["good"] = df["gen_gap"] + rng.normal(0, 0.05, n)
    df["noise"] = rng.normal(size=n)
    s = measure_scores(df, measures=["good", "noise"], levers=["lr", "depth"], hold=("task",),
                       effects=None).summary.set_index("measure")
    assert s.loc["good", "kendall_tau"] > 0.9 and s.loc["good", "mean_sign_error"] < 0.05
    assert abs(s.loc["noise", "kendall_tau"]) < 0.1 and abs(s.loc["noise", "mean_sign_error"] - 0.5) < 0.05
    assert s.loc["good", "dag_verdict"] == "not fitted"


def test_bad_input_names_the_column_and_the_fix():
    df = hand_table()
    with pytest.raises(SchemaError, match="target column 'gap'"):
        scores(df, target="gap")
    with pytest.raises(SchemaError, match=r"\['nope'\]"):
        scores(df, measures=["nope"])
    with pytest.raises(ConfigError, match="both held and varied"):
        scores(df, hold=("a",))
    with pytest.raises(ConfigError, match="no environment has 5 or more"):
        scores(df, min_pairs=5)
    with pytest.raises(ConfigError, match=r"\+1 or -1"):
        scores(df, orientation={"m": 2})
