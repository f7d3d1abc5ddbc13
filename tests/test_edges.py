import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from causal import ConfigError, SchemaError
from causal.edges import EdgeEffects, fit_edges, plot_forest, verdict
from causal.simulate import simulate_linear_scm

SEEDS = (11, 12, 13, 14, 15)
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"
# edge 14 made to contradict the book (+ instead of -), edge 23 made null
OVERRIDES = {("residual", "sharpness"): 0.8, 23: 0.0}


@pytest.fixture(scope="module")
def fits():
    out = []
    for seed in SEEDS:
        sim = simulate_linear_scm(2000, seed=seed, coefficients=OVERRIDES)
        out.append((sim, fit_edges(sim.data, seed=seed)))
    return out


def _merged(sim, fx):
    return fx.summary.merge(sim.true_effects, on=["treatment", "outcome"], how="left", validate="1:1")


@pytest.mark.slow
def test_cis_cover_true_direct_effects_at_nominal_rate(fits):
    covered = []
    for sim, fx in fits:
        assert len(fx.summary) == 42 and fx.skipped.empty
        m = _merged(sim, fx)
        covered.extend((m["ci_low"] <= m["coefficient"]) & (m["coefficient"] <= m["ci_high"]))
    rate = float(np.mean(covered))
    assert 0.85 <= rate <= 1.0, rate
    assert len(covered) == 5 * 42


def test_signs_and_verdicts_match_the_truth(fits):
    zero_inconclusive = 0
    for sim, fx in fits:
        m = _merged(sim, fx)
        nonzero = m[m["coefficient"] != 0]
        assert (np.sign(nonzero["estimate"]) == np.sign(nonzero["coefficient"])).all()
        assert fx.effect("residual", "sharpness")["verdict"] == "contradicts"
        assert fx.effect("residual", "gradient_stability")["verdict"] == "supports"
        zero_inconclusive += fx.effect("data_noise", "generalization")["verdict"] == "inconclusive"
    assert zero_inconclusive >= 4


def test_summary_columns_and_standardized_effect(fits):
    sim, fx = fits[0]
    s = fx.summary
    for col in ("edge", "number", "treatment", "outcome", "estimate", "std_error", "ci_low", "ci_high",
                "p_value", "p_adjusted", "n", "expected_sign", "verdict", "std_effect", "adjustment",
                "method", "adjust"):
        assert col in s.columns
    assert (s["p_adjusted"] >= s["p_value"] - 1e-15).all()
    assert set(s["verdict"]) <= {"supports", "contradicts", "inconclusive"}
    row = fx.effect("init_quality", "gradient_stability")
    d = sim.data
    assert row["std_effect"] == pytest.approx(row["estimate"] * d["init_quality"].std() / d["gradient_stability"].std())
    assert row["edge"] == "init_quality→gradient_stability"
    # the direct effect adjusts for the outcome's other parents
    assert set(fx.effect("sharpness", "convergence")["adjustment"].split(",")) >= {"gradient_stability", "loss_matched"}
    assert (s["method"] == "linear").all() and (s["adjust"] == "design").all() and (s["se"] == "hc3").all()


def test_reproducible_for_a_seed(fits):
    sim, fx = fits[0]
    again = fit_edges(sim.data, seed=SEEDS[0])
    pd.testing.assert_frame_equal(fx.summary, again.summary)


def test_missing_mediator_is_marginalized_and_reported():
    sim = simulate_linear_scm(3000, seed=5)
    fx = fit_edges(sim.data.drop(columns=["gradient_stability"]))
    skipped = fx.skipped.set_index(["treatment", "outcome"])
    assert {9, 10, 11, 12} == set(fx.skipped["number"])
    assert "gradient_stability" in skipped.loc[("init_quality", "gradient_stability"), "reason"]
    # sharpness → convergence is still identified (gradient_stability's parents stand in for it)
    row = fx.effect("sharpness", "convergence")
    assert row["ci_low"] <= sim.coefficient("sharpness", "convergence") <= row["ci_high"]
    assert "init_quality" in row["adjustment"]


def test_latent_confounding_makes_an_edge_unidentifiable():
    sim = simulate_linear_scm(1000, seed=6)
    fx = fit_edges(sim.data.drop(columns=["sharpness"]))
    reasons = fx.skipped.set_index(["treatment", "outcome"])["reason"]
    assert "not identifiable" in reasons[("convergence", "generalization")]
    assert ("residual", "gradient_stability") in set(zip(fx.summary["treatment"], fx.summary["outcome"]))


def test_all_null_and_absent_columns_are_skipped_not_errors():
    d = simulate_linear_scm(500, seed=0).data
    d["precision"] = np.nan
    d = d.drop(columns=["recall", "coverage", "density", "pretrained"])
    fx = fit_edges(d)
    reasons = dict(zip(zip(fx.skipped["treatment"], fx.skipped["outcome"]), fx.skipped["reason"]))
    assert "entirely null" in reasons[("capacity", "precision")]
    assert "not in the table" in reasons[("pretrained", "variance")]
    assert len(fx.summary) + len(fx.skipped) == 42


def test_design_and_book_adjustment_are_reported_and_consistent_on_the_book_scm():
    sim = simulate_linear_scm(2000, seed=3)
    g = fit_edges(sim.data, adjust="book")
    a = fit_edges(sim.data)
    assert (a.summary["adjust"] == "design").all() and (g.summary["adjust"] == "book").all()
    # the book's SCM has no raw levers: the design graph adds lever -> mediator edges only
    assert any("raw lever task" in k for k in a.notes)
    row = a.effect("init_quality", "gradient_stability")
    assert {"capacity", "log_lr", "data_noise"} <= set(row["adjustment"].split(","))
    assert "init_quality" not in row["adjustment"].split(",")
    diff = (a.summary["estimate"] - g.summary["estimate"]).abs() / g.summary["std_error"]
    assert diff.max() < 3


def test_moderation_of_edge_2_by_regime():
    sim = simulate_linear_scm(4000, seed=4, regime_coefficients=(0.8, -0.8))
    mod = fit_edges(sim.data).moderation.set_index("regime")
    assert mod.loc["under", "ci_low"] <= 0.8 <= mod.loc["under", "ci_high"]
    assert mod.loc["over", "ci_low"] <= -0.8 <= mod.loc["over", "ci_high"]
    assert mod.loc["interaction", "estimate"] < 0
    assert (mod["verdict"] == "supports").all()
    assert list(mod["expected_sign"]) == ["+", "-", "-"]
    no_regime = fit_edges(sim.data.drop(columns=["overparam", "overparameterized"]))
    assert no_regime.moderation.empty
    assert fit_edges(sim.data).moderation_skipped == {}
    # almost every run over-parameterized: the under regime is not estimated, and the summary says why
    d = sim.data
    under = d.index[d["overparameterized"] == 0]
    few = fit_edges(d.drop(index=under[3:]))
    assert "under" not in set(few.moderation["regime"]) and "under" in few.moderation_skipped
    assert "under-parameterized regime not estimated: 3 under-parameterized runs" in few.summary_text()
    assert len(few.skipped) == len(fit_edges(d).skipped)  # not counted among the column edges


def test_dml_recovers_effects_and_is_reproducible():
    sim = simulate_linear_scm(1500, seed=9, columns=[
        "init_quality", "residual", "normalization_batch", "normalization_layer", "gradient_stability"])
    fx = fit_edges(sim.data, method="dml", seed=1)
    assert len(fx.summary) == 4
    m = _merged(sim, fx)
    assert ((m["ci_low"] - 0.1 <= m["coefficient"]) & (m["coefficient"] <= m["ci_high"] + 0.1)).all()
    pd.testing.assert_frame_equal(fx.summary, fit_edges(sim.data, method="dml", seed=1).summary)
    assert {"linear_estimate", "linear_p_adjusted", "disagree_sign", "disagree_significance", "overlap"} <= set(
        fx.summary.columns)
    header = fx.summary_text().split("\n\n")[1].splitlines()[0]  # the printed table shows the linear fit too
    assert "linear_estimate" in header and "disagree_sign" in header and "placebo_p" not in header


def test_refuters_are_printed_when_asked_for():
    sim = simulate_linear_scm(400, seed=3, columns=["init_quality", "residual", "gradient_stability"])
    plain = fit_edges(sim.data, seed=0).summary_text()
    fx = fit_edges(sim.data, seed=0, refute=True)
    header = fx.summary_text().split("\n\n")[1].splitlines()[0]
    assert "placebo_p" in header and "subset_effect" in header and "placebo_p" not in plain
    assert fx.summary["placebo_p"].notna().all()


@pytest.mark.slow
def test_dml_recovers_a_nonlinearly_confounded_edge_that_linear_misses_and_flags_it():
    """sharpness and convergence share a U-shaped learning-rate effect: linear adjustment for
    log_lr is badly biased (it even flips the sign); DML through DoWhy is not."""
    from causal.simulate_sweep import simulate_sweep

    sim = simulate_sweep(3000, seed=1, nonlinear_confounding=True)
    truth = sim.coefficient("sharpness", "convergence")
    fx = fit_edges(sim.data, method="dml", seed=0)
    row = fx.effect("sharpness", "convergence")
    assert row["ci_low"] - 0.03 <= truth <= row["ci_high"] + 0.03
    assert not row["linear_ci_low"] <= truth <= row["linear_ci_high"]
    assert row["disagree_sign"]
    # a computed column that its adjustment set nearly determines (arch given capacity, depth, task)
    assert fx.effect("inductive_bias", "variance")["overlap"] < 0.05


def test_verdict_rules():
    assert verdict("+", 1.0, 0.01, 0.05) == "supports"
    assert verdict("+", -1.0, 0.01, 0.05) == "contradicts"
    assert verdict("-", -1.0, 0.2, 0.05) == "inconclusive"
    assert verdict("?", -1.0, 0.01, 0.05) == "supports"
    assert verdict("?", 1.0, 0.5, 0.05) == "inconclusive"
    assert verdict("+", 1.0, float("nan"), 0.05) == "inconclusive"


def test_views_and_files(fits, tmp_path, capsys):
    _, fx = fits[0]
    fx.print_summary()
    out = capsys.readouterr().out
    assert "contradicts" in out and "Edge 2 by overparameterization regime" in out
    assert "residual" in fx._repr_html_()
    data = json.loads(fx.to_json())
    assert len(data["summary"]) == 42 and data["config"]["method"] == "linear"
    assert len(pd.read_csv(fx.write(tmp_path / "e.csv"))) == 42
    assert len(pd.read_parquet(fx.write(tmp_path / "e.parquet"))) == 42
    with pytest.raises(ConfigError, match=".txt"):
        fx.write(tmp_path / "e.txt")


def test_plots_draw_on_given_axes(fits):
    (_, a), (_, b) = fits[0], fits[1]
    fig, axes = plt.subplots(1, 2)
    assert a.plot_forest(ax=axes[0]) is axes[0]
    assert plot_forest([a, b], ax=axes[1], labels=["a", "b"]) is axes[1]
    assert len(axes[1].get_yticks()) == 42
    fig2, ax = plt.subplots()
    assert a.plot_graph(ax=ax) is ax
    plt.close("all")


def test_bad_input():
    with pytest.raises(SchemaError, match="empty"):
        fit_edges(pd.DataFrame({"capacity": []}))
    with pytest.raises(ConfigError, match="method"):
        fit_edges(pd.DataFrame({"capacity": [1.0]}), method="magic")
    assert isinstance(fit_edges(pd.DataFrame({"x": [1.0, 2.0]})), EdgeEffects)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_design_adjusts_for_randomized_levers_outside_the_graph(seed):
    """`depth` is randomized but not a book node; when it drives both sharpness and
    convergence, only the design graph recovers the true sharpness -> convergence edge."""
    from causal.simulate import simulate_linear_scm

    sim = simulate_linear_scm(4000, seed=seed)
    df = sim.data.copy()
    rng = np.random.default_rng(seed)
    depth = rng.integers(1, 5, len(df)).astype(float)
    df["depth"] = depth
    df["task"] = np.where(rng.random(len(df)) < 0.5, "teacher", "mnist1d")
    df["sharpness"] += 0.8 * depth
    df["convergence"] += 0.8 * depth  # a confounding path the book's graph lacks
    truth = sim.coefficient("sharpness", "convergence")
    graph_fit = fit_edges(df, adjust="book").effect("sharpness", "convergence")
    all_fit = fit_edges(df).effect("sharpness", "convergence")
    assert not graph_fit["ci_low"] <= truth <= graph_fit["ci_high"]
    assert all_fit["ci_low"] - 0.02 <= truth <= all_fit["ci_high"] + 0.02
    assert "depth" in all_fit["adjustment"].split(",") and "task_mnist1d" in all_fit["adjustment"].split(",")


@pytest.mark.parametrize("seed", [0, 1])
def test_design_adjusts_book_levers_for_the_task_that_sets_their_distribution(seed):
    """A family drawn on its own data sizes (the 'all' space's graph and transfer families) makes the task a
    confounder of data_quantity when the family also shifts variance: the total effect, which adjusts for every
    randomized column that the lever does not move (the task among them), recovers the unconfounded one."""
    from causal.totals import total_effects

    sim = simulate_linear_scm(3000, seed=seed)
    df = sim.data.copy()
    rng = np.random.default_rng(seed)
    graph = rng.random(len(df)) < 0.5
    df["task"] = np.where(graph, "graph", "teacher")
    unconfounded = total_effects(df, levers=["data_quantity"], outcomes=["variance"], n_boot=50,
                                 by_family=False).effect("data_quantity", "variance")
    df.loc[graph, "data_quantity"] -= 1.0  # one decade fewer examples on that family, through its total effect,
    df.loc[graph, "variance"] -= unconfounded["estimate"] * 1.0 - 1.5  # and the family's own variance level
    fx = total_effects(df, levers=["data_quantity"], outcomes=["variance"], n_boot=50,
                       by_family=False).effect("data_quantity", "variance")
    assert abs(fx["estimate"] - unconfounded["estimate"]) < 0.05, (fx["estimate"], unconfounded["estimate"])
    naive = np.polyfit(df["data_quantity"], df["variance"], 1)[0]
    assert abs(naive - unconfounded["estimate"]) > 0.3  # without the task the estimate is far off


def test_constant_outcome_is_skipped_and_nan_p_values_do_not_poison_bh():
    from causal.regression import adjust_pvalues as _adjust_p

    df = simulate_linear_scm(800, seed=0).data
    df["sharpness"] = 1.0
    fx = fit_edges(df, correction="fdr_bh")
    assert not (fx.summary["outcome"] == "sharpness").any()
    reasons = fx.skipped.loc[fx.skipped["outcome"] == "sharpness", "reason"]
    assert len(reasons) == 3 and reasons.str.contains("does not vary").all()
    assert fx.summary["p_adjusted"].notna().all()
    adj = _adjust_p(np.array([0.001, np.nan, 0.02]), "fdr_bh")
    assert np.isnan(adj[1]) and adj[0] == pytest.approx(0.002) and adj[2] == pytest.approx(0.02)


def test_hc3_with_a_leverage_one_row_uses_the_other_rows_and_no_spurious_error():
    """A regressor non-zero in one row alone gives that row leverage 1: HC3 then divides by 0 (every error
    infinite) or by a rounding error (an arbitrary error for that regressor). The other slopes and errors
    are those of the other rows; the lone regressor's error is NaN, never a p-value."""
    import warnings

    from causal.regression import ols

    rng = np.random.default_rng(0)
    n_inf = n_spurious = 0
    for j in range(40):
        n = 45
        lone = (np.arange(n) == j).astype(float)
        x = rng.normal(size=(n, 2))
        y = 0.5 * x[:, 0] + rng.normal(size=n)
        X = np.column_stack([x, lone])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no divide-by-zero warning reaches the user
            fit = ols(y, X)
        rest = ols(np.delete(y, j), np.delete(x, j, axis=0))
        np.testing.assert_allclose(fit.params[:2], rest.params, rtol=1e-9)
        np.testing.assert_allclose(fit.std_error[:2], rest.std_error, rtol=1e-9)
        assert np.isnan(fit.std_error[2]) and np.isnan(fit.p_value[2]) and fit.n == n - 1
        import statsmodels.api as sm  # what HC3 alone gives on these rows

        A = np.column_stack([np.ones(n), (X - X.mean(0)) / X.std(0)])
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = np.asarray(sm.OLS(y, A).fit(cov_type="HC3").bse)
        n_inf += not np.isfinite(raw).all()
        n_spurious += bool(np.isfinite(raw[3]))
    assert n_inf > 0 and n_spurious > 0, (n_inf, n_spurious)  # both failure modes occur among these draws


def test_a_treatment_that_only_a_leverage_one_run_separates_keeps_its_estimate_without_an_error():
    """Every transfer run pretrained but one: `pretrained` is told apart from the task only by that run,
    whose leverage is 1. The estimate is DoWhy's; the error is undefined, so the edge has no finite CI and
    the summary says why (the fit used to stop on DoWhy and the core disagreeing)."""
    import causal

    d = causal.load_runs(REFERENCE)
    transfer = d["task"] == "transfer"
    d["pretrained"] = transfer.astype(d["pretrained"].dtype)
    d.loc[d.index[transfer & d["variance"].notna() & (d["diverged"] == 0)][0], "pretrained"] = 0
    fx = fit_edges(d)
    row = fx.effect("pretrained", "variance")
    assert np.isfinite(row["estimate"]) and np.isnan(row["std_error"]) and row["verdict"] == "inconclusive"
    assert "No finite CI: 22 (pretrained -> variance" in fx.summary_text()


def test_an_edge_without_a_finite_ci_is_explained_in_the_summary(fits):
    from dataclasses import replace as _replace

    fx = fits[0][1]
    assert "No finite CI" not in fx.summary_text()
    s = fx.summary.copy()
    s.loc[s.index[0], ["ci_low", "ci_high"]] = [-np.inf, np.inf]
    s.loc[s.index[1], ["estimate", "ci_low", "ci_high"]] = np.nan
    text = _replace(fx, summary=s).summary_text()
    r, q = s.iloc[0], s.iloc[1]
    assert f"No finite CI: {r['number']} ({r['treatment']} -> {r['outcome']}" in text and "inconclusive" in text
    assert f"Not identified: {q['number']} ({q['treatment']} -> {q['outcome']}" in text


def test_tables_concatenated_with_a_duplicate_index_are_analysed_as_their_rows():
    from causal.simulate_sweep import simulate_sweep

    a, b = simulate_sweep(600, seed=1).data, simulate_sweep(600, seed=2).data
    both = pd.concat([a, b])  # index 0..599 twice, as pd.concat of two loaded sweeps gives
    assert not both.index.is_unique and {"task", "problem"} <= set(both.columns)  # units are standardized
    fx = fit_edges(both, seed=0)
    ref = fit_edges(both.reset_index(drop=True), seed=0)
    pd.testing.assert_frame_equal(fx.summary, ref.summary)
    assert fx.summary["n"].max() > 1000  # the rows of both tables


def test_a_collinear_regressor_is_not_identified_and_the_others_keep_their_fit():
    import warnings

    from causal.regression import ols

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = 0.5 * x[:, 0] + x[:, 1] + rng.normal(size=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # statsmodels' SingularMatrixWarning is handled, not printed
        fit = ols(y, np.column_stack([x, x[:, 1] + x[:, 2]]))
    full = ols(y, x)
    assert fit.params[0] == pytest.approx(full.params[0], rel=1e-9)
    assert fit.std_error[0] == pytest.approx(full.std_error[0], rel=1e-9) and fit.dof == full.dof
    assert np.isnan(fit.params[1:]).all() and np.isnan(fit.p_value[1:]).all()


# ---- the design: recovery on sweep-like data ---------------------------------------------
DESIGN_SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def sweep_fits():
    from causal.simulate_sweep import simulate_sweep

    out = []
    for seed in DESIGN_SEEDS:
        sim = simulate_sweep(3000, seed=seed)
        out.append((sim, fit_edges(sim.data), fit_edges(sim.data, adjust="book")))
    return out


def _coverage(sim, fx):
    m = fx.summary.merge(sim.true_effects, on=["treatment", "outcome"], how="inner", validate="1:1")
    # generalization, data_noise and deployment_risk mix problems: the truth in within-family sd units
    truth = [sim.in_fit_units(t, o, fx.units, fit=fx) if s else b
             for t, o, s, b in zip(m["treatment"], m["outcome"], m["standardized"], m["coefficient"])]
    return ((m["ci_low"] <= truth) & (truth <= m["ci_high"])).to_numpy()


def test_design_default_covers_true_direct_effects_and_book_adjustment_fails(sweep_fits):
    design, book = [], []
    for sim, fx, fb in sweep_fits:
        assert len(fx.summary) == 37 and len(fb.summary) == 37
        design.extend(_coverage(sim, fx))
        book.extend(_coverage(sim, fb))
    assert np.mean(design) >= 0.85, np.mean(design)
    assert np.mean(book) < 0.75, np.mean(book)
    # the edges the audit named: capacity is confounded by depth/task/problem under the book's graph
    missed = 0
    for sim, fx, fb in sweep_fits:
        truth = sim.coefficient("capacity", "bias_sq")
        row = fb.effect("capacity", "bias_sq")
        missed += not row["ci_low"] <= truth <= row["ci_high"]
        assert "depth" in fx.effect("capacity", "bias_sq")["adjustment"].split(",")
    assert missed >= 3


def test_design_adjustment_sets_follow_the_declared_interventions(sweep_fits):
    from causal.design import COMPUTED

    _, fx, _ = sweep_fits[0]
    cap = fx.effect("capacity", "variance")["adjustment"].split(",")
    assert {"depth", "task_mnist1d", "problem_regression"} <= set(cap)
    assert "log2_width" not in cap  # width is capacity's intervention
    lm = fx.effect("loss_matched", "convergence")["adjustment"].split(",")
    assert "problem_regression" in lm and "noise_dist_laplace" in lm
    assert not any(c.startswith("loss_") for c in lm)  # loss is the intervention
    # a mediator -> mediator edge adjusts for every raw lever, interventions included
    gc = set(fx.effect("gradient_stability", "convergence")["adjustment"].split(","))
    assert {"log2_init_scale", "loss_mse", "loss_l1", "depth", "log2_epochs", "init_quality"} <= gc
    assert "log2_steps" not in gc  # computed from epochs, n_train and batch: the epoch budget stands for it
    assert COMPUTED["init_quality"].intervention == ("init_scale",)


def test_diverged_rows_are_excluded_by_default_and_counted(sweep_fits):
    sim, fx, _ = sweep_fits[0]
    n_div = int(sim.data["diverged"].sum())
    assert fx.n_diverged == n_div and fx.config.diverged == "exclude"
    assert f"{n_div} diverged excluded" in fx.summary_text()
    assert (fx.summary["n"] <= len(sim.data) - n_div).all()
    inc = fit_edges(sim.data, diverged="include")
    assert inc.n_diverged == 0
    # capped placeholders (implicit_reg 4 at high learning rates) bias the included fit
    truth = sim.coefficient("log_lr", "implicit_reg")
    row = inc.effect("log_lr", "implicit_reg")
    assert not row["ci_low"] <= truth <= row["ci_high"]
    row = fx.effect("log_lr", "implicit_reg")
    assert row["ci_low"] - 0.02 <= truth <= row["ci_high"] + 0.02
    # nulls (variance of diverged runs) are dropped per edge and counted
    assert (inc.summary.set_index(["treatment", "outcome"]).loc[("capacity", "variance"), "n_null_dropped"]
            == n_div)


def test_a_computed_column_determined_by_its_adjustment_set_is_skipped():
    from causal.simulate_sweep import simulate_sweep

    d = simulate_sweep(1500, seed=5).data
    d = d[d["width"] == 32]  # width fixed: capacity is a function of depth, arch, task and problem
    fx = fit_edges(d)
    reasons = fx.skipped.set_index(["treatment", "outcome"])["reason"]
    assert "deterministic function" in reasons[("capacity", "bias_sq")]
    assert not ((fx.summary["treatment"] == "capacity")).any()
    assert "constant" in fx.notes["raw lever width"]


def test_missing_raw_levers_are_noted_and_dropped_from_the_design():
    from causal.simulate_sweep import simulate_sweep

    d = simulate_sweep(800, seed=6).data.drop(columns=["depth", "loss"])
    fx = fit_edges(d)
    assert "absent" in fx.notes["raw lever depth"] and "absent" in fx.notes["raw lever loss"]
    assert "depth" not in fx.effect("gradient_stability", "convergence")["adjustment"].split(",")


def test_by_task_gives_per_stratum_effects_pooled_without_mixing_units_and_flags_sign_changes():
    from causal.simulate_sweep import simulate_sweep

    sim = simulate_sweep(4000, seed=8)
    fx = fit_edges(sim.data, by="task")
    assert fx.by == "task" and set(fx.strata["stratum"]) == {"teacher", "mnist1d"}
    s = fx.strata.set_index(["stratum", "treatment", "outcome"])
    for task in ("teacher", "mnist1d"):
        for edge in (("residual", "gradient_stability"), ("normalization_batch", "sharpness")):
            row = s.loc[(task, *edge)]
            assert row["ci_low"] <= sim.coefficient(*edge, task=task) <= row["ci_high"]
    het = fx.heterogeneity.set_index(["treatment", "outcome"])
    assert het.loc[("normalization_batch", "sharpness"), "sign_differs"]
    assert not het.loc[("capacity", "bias_sq"), "sign_differs"]
    assert het.loc[("residual", "gradient_stability"), "q_p"] < 1e-6
    # pooled on within-task standardized columns: generalization's units never mix
    pooled = fx.effect("variance", "generalization")
    assert -1 < pooled["estimate"] < 0 and pooled["std_effect"] == pytest.approx(pooled["estimate"], rel=0.05)
    assert "heterogeneity" in fx.to_dict() and len(fx.to_dict()["strata"]) == len(fx.strata)
    with pytest.raises(SchemaError, match="by='nope'"):
        fit_edges(sim.data, by="nope")


# ---- units: never pooled raw across problems ------------------------------------------------
def _two_units_table(n=2000, seed=0):
    """data_noise -> generalization in two problems: accuracy (b = +0.3, narrow spread) and an
    R²-like column (b = -2, wide spread). Raw pooling is dominated by the wide unit."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 0.5, 2 * n)
    reg = np.repeat([0, 1], n)
    gen = np.where(reg == 0, 0.8 + 0.3 * noise + rng.normal(0, 0.03, 2 * n),
                   0.5 - 2.0 * noise + rng.normal(0, 1.0, 2 * n))
    return pd.DataFrame({"task": "teacher", "problem": np.where(reg == 1, "regression", "classification"),
                         "data_noise": noise, "generalization": gen, "diverged": 0})


def test_convergence_is_standardized_only_where_generative_rows_join_the_supervised_ones():
    """Classes and regression share convergence's unit (decades of loss reduction); generative runs have
    their own (decades of likelihood ratio, unbounded below): only a table that mixes them z-scores it."""
    from causal.units import mixed_units, standardize_units

    sup = pd.DataFrame({"task": ["teacher"] * 4, "problem": ["classification"] * 2 + ["regression"] * 2,
                        "convergence": [0.5, 1.0, 0.2, 0.4], "generalization": [0.7, 0.9, 0.1, 0.5]})
    assert mixed_units(sup, ["convergence", "generalization"]) == ["generalization"]
    gen = pd.DataFrame({"task": ["generative"] * 3, "problem": ["generation"] * 3,
                        "convergence": [-1666.0, 0.1, 0.3], "generalization": [np.nan] * 3})
    both = pd.concat([sup, gen], ignore_index=True)
    assert mixed_units(both, ["convergence"]) == ["convergence"]
    out, table = standardize_units(both, ["convergence"])
    z = out.loc[both["task"] == "generative", "convergence"]
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12  # within its family, not pooled raw
    assert set(table["units"]) == {"decades of loss reduction", "decades of likelihood (or denoising-error) ratio"}


def test_outcomes_in_different_units_are_standardized_within_family_not_pooled_raw():
    from causal.regression import ols

    df = _two_units_table()
    fx = fit_edges(df)
    row = fx.effect("data_noise", "generalization")
    assert row["standardized"] == "data_noise,generalization"
    assert set(fx.units["family"]) == {"teacher/classification", "teacher/regression"}
    assert set(fx.units["units"]) >= {"accuracy", "R²"}
    # the truth in within-family sd units: the average of b * sd(t) / sd(o) over the two families
    fams = [g for _, g in df.groupby("problem")]
    b = {"classification": 0.3, "regression": -2.0}
    truth = np.mean([b[g["problem"].iloc[0]] * g["data_noise"].std() / g["generalization"].std() for g in fams])
    assert truth > 0.2 and row["ci_low"] <= truth <= row["ci_high"] and row["verdict"] == "contradicts"
    # raw pooling (what the default must never do) gives the opposite, significant sign
    x = np.column_stack([df["data_noise"], df["problem"] == "regression"]).astype(float)
    raw = ols(df["generalization"].to_numpy(), x)
    assert raw.ci_high[0] < 0 < row["ci_low"]
    # each family in its own raw units
    per = fit_edges(df, by=["task", "problem"]).strata.set_index(["stratum", "treatment", "outcome"])
    for fam, coef in (("teacher/classification", 0.3), ("teacher/regression", -2.0)):
        r = per.loc[(fam, "data_noise", "generalization")]
        assert r["standardized"] == "" and r["ci_low"] <= coef <= r["ci_high"]
    # one problem only: nothing mixes, raw units kept
    one = fit_edges(df[df["problem"] == "classification"])
    assert one.units.empty and one.effect("data_noise", "generalization")["standardized"] == ""
