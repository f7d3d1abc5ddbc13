"""Mediation: path-specific effects recovered from a simulated linear SCM."""

from __future__ import annotations


import networkx as nx
import numpy as np
import pandas as pd
import pytest

from causal.errors import ConfigError, GraphError, SchemaError
from causal.mediate import default_paths, mediation, mediation_paths, parse_path
from causal.simulate import simulate_linear_scm

CHAIN = "residual -> gradient_stability -> convergence -> generalization"


@pytest.fixture(scope="module")
def sim():
    return simulate_linear_scm(3000, seed=11)


def test_default_paths_are_directed_chains_through_mediators(sim):
    paths = default_paths(sim.data)
    assert len(paths) > 20
    assert tuple(CHAIN.split(" -> ")) in paths
    g = sim.graph
    for p in paths:
        assert p[-1] == "generalization" and len(p) >= 3
        assert g.nodes[p[0]]["kind"] in ("lever", "context")
        assert all(g.has_edge(a, b) for a, b in zip(p[:-1], p[1:]))
    # restricted to present columns
    no_sharp = default_paths(sim.data.drop(columns=["sharpness"]))
    assert no_sharp and all("sharpness" not in p for p in no_sharp)
    assert default_paths(sim.data.drop(columns=["generalization"])) == []


def test_recovers_path_specific_effects_over_seeds():
    covered = {"path_specific": [], "total": []}
    for seed in range(5):
        s = simulate_linear_scm(3000, seed=100 + seed)
        table = mediation_paths(s.data, n_boot=200, seed=seed)
        for key, res in table.results.items():
            path = key.split(" -> ")
            truth = {"path_specific": s.path_effect(path), "total": s.total_effect(path[0], path[-1])}
            summ = res.summary.set_index("effect")
            for effect, true in truth.items():
                row = summ.loc[effect]
                covered[effect].append(row["ci_low"] <= true <= row["ci_high"])
                # estimate within 5 bootstrap sd of the truth (scale-free closeness)
                assert abs(row["estimate"] - true) < 5 * row["std_error"] + 1e-9, (key, effect)
    for effect, hits in covered.items():
        rate = float(np.mean(hits))
        assert 0.85 <= rate <= 1.0, (effect, rate, len(hits))


def test_decomposition_adds_up_and_direct_edge_is_reported(sim):
    res = mediation(sim.data, "sharpness -> convergence -> generalization", n_boot=100)
    s = res.summary.set_index("effect")["estimate"]
    assert s["path_specific"] + s["direct"] + s["other_indirect"] == pytest.approx(s["total"])
    true_direct = sim.coefficient("sharpness", "generalization")
    row = res.summary.set_index("effect").loc["direct"]
    assert row["method"] == "edge"
    assert abs(row["estimate"] - true_direct) < 5 * row["std_error"]
    # without a direct edge the direct effect is 0 by the graph
    chain = mediation(sim.data, CHAIN, n_boot=100).summary.set_index("effect").loc["direct"]
    assert chain["estimate"] == 0.0 and chain["method"] == "none"
    # CI and p-value come from one bootstrap and agree
    for r in res.summary.itertuples():
        assert (r.p_value < 0.05) == (r.ci_low > 0 or r.ci_high < 0)


def test_single_mediator_matches_statsmodels(sim):
    import statsmodels.api as sm
    from statsmodels.stats.mediation import Mediation

    d = sim.data
    res = mediation(d, "pretrained -> variance -> generalization", n_boot=200, adjust="book")
    ours = res.estimate
    med_parents = [p for p in sim.graph.predecessors("variance")]
    out_parents = [p for p in sim.graph.predecessors("generalization")] + ["pretrained"]
    med_model = sm.OLS(d["variance"], sm.add_constant(d[med_parents].astype(float)))
    out_model = sm.OLS(d["generalization"], sm.add_constant(d[out_parents].astype(float)))
    fit = Mediation(out_model, med_model, "pretrained", "variance").fit(
        n_rep=400, rng=np.random.default_rng(0))
    acme = float(fit.summary().loc["ACME (average)", "Estimate"])
    se = res.summary.set_index("effect").loc["path_specific", "std_error"]
    # same linear model, up to statsmodels' simulation error and the pretrained term it adds
    assert abs(acme - ours) < 0.5 * se + 0.01
    # our bootstrap interval and statsmodels' agree in width roughly
    lo, hi = fit.summary().loc["ACME (average)", ["Lower CI bound", "Upper CI bound"]]
    row = res.summary.set_index("effect").loc["path_specific"]
    assert (hi - lo) == pytest.approx(row["ci_high"] - row["ci_low"], rel=0.35)


def test_mediation_equals_its_row_in_mediation_paths_and_is_seeded(sim):
    one = mediation(sim.data, CHAIN, n_boot=100, seed=3)
    again = mediation(sim.data, list(CHAIN.split(" -> ")), n_boot=100, seed=3)
    many = mediation_paths(sim.data, [CHAIN, "capacity -> bias_sq -> generalization"], n_boot=100, seed=3)
    pd.testing.assert_frame_equal(one.summary, again.summary)
    pd.testing.assert_frame_equal(one.summary, many.results[CHAIN].summary)
    other = mediation(sim.data, CHAIN, n_boot=100, seed=4)
    assert not np.allclose(one.summary["ci_low"], other.summary["ci_low"])
    assert list(many.summary["path"]) == [CHAIN, "capacity -> bias_sq -> generalization"]
    assert {"p_adjusted", "direct", "total", "share"} <= set(many.summary.columns)
    assert len(many.decomposition()) == 12


def test_bad_paths_name_the_problem(sim):
    with pytest.raises(GraphError, match=r"'residual' -> 'convergence'.*children of 'residual'.*gradient_stability"):
        mediation(sim.data, "residual -> convergence -> generalization")
    with pytest.raises(SchemaError, match="'convergence'"):
        mediation(sim.data.drop(columns=["convergence"]), CHAIN)
    with pytest.raises(GraphError, match="'nonsense'"):
        mediation(sim.data, "nonsense -> generalization")
    with pytest.raises(GraphError, match="at least two"):
        parse_path("residual")
    with pytest.raises(ConfigError, match="n_boot"):
        mediation(sim.data, CHAIN, n_boot=1)
    assert parse_path("a → b -> c") == ("a", "b", "c")


def test_missing_rows_are_dropped_and_views_work(sim):
    d = sim.data.copy()
    d.loc[:99, "bias_sq"] = np.nan
    res = mediation(d, CHAIN, n_boot=50)
    assert res.n == len(d) - 100
    assert CHAIN in res._repr_html_() or "residual" in res._repr_html_()
    assert "path_specific" in res.summary_text()


def test_plots_draw_on_the_given_axes(sim):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert mediation(sim.data, CHAIN, n_boot=50).plot(ax=ax) is ax
    table = mediation_paths(sim.data, n_boot=50)
    assert table.plot(ax=ax) is ax
    assert table.plot() is not None
    plt.close("all")


def test_default_paths_cover_every_book_chain():
    # the speed of this on 10k rows is a benchmark (benchmarks/bench_causal.py), not a timed test
    d = simulate_linear_scm(2_000, seed=2).data
    table = mediation_paths(d, n_boot=200)
    assert len(table.summary) > 20
    assert table.summary["estimate"].notna().all()


@pytest.mark.slow
def test_single_mediator_matches_dowhy_two_stage_regression(sim):
    from causal._dowhy import quiet

    d = sim.data[["pretrained", "variance", "generalization"]].astype(float)  # one mediator: no hash-order choice
    with quiet():
        import dowhy
        from dowhy.causal_estimators.linear_regression_estimator import LinearRegressionEstimator

        model = dowhy.CausalModel(data=d, treatment="pretrained", outcome="generalization",
                                  graph=nx.DiGraph([("pretrained", "variance"), ("variance", "generalization"),
                                                    ("pretrained", "generalization")]))
        estimand = model.identify_effect(estimand_type="nonparametric-nie")
        est = model.estimate_effect(
            estimand, method_name="mediation.two_stage_regression",
            method_params={"first_stage_model": LinearRegressionEstimator,
                           "second_stage_model": LinearRegressionEstimator})
    # the design makes every lever a possible direct cause of the outcome: DoWhy gets that edge too
    ours = mediation(d, "pretrained -> variance -> generalization", n_boot=50).estimate
    assert ours == pytest.approx(est.value, rel=1e-9)


def test_on_sweep_like_data_totals_and_paths_match_the_truth():
    """Design-adjusted mediation on simulate_sweep: path-specific effects and the randomized
    totals of sources whose every path to generalization is a book path cover the truth."""
    from causal.simulate_sweep import simulate_sweep

    covered = {"path_specific": [], "total": []}
    for seed in range(3):
        sim = simulate_sweep(3000, seed=20 + seed)
        table = mediation_paths(sim.data, n_boot=200, seed=seed)
        truth = {(t, o): b for t, o, b in sim.true_effects[["treatment", "outcome", "coefficient"]].itertuples(
            index=False)}
        # generalization mixes accuracy-like and R²-like problems: fitted in within-family sd units
        assert set(table.units["column"]) == {"generalization"}
        for key, res in table.results.items():
            path = key.split(" -> ")
            summ = res.summary.set_index("effect")
            last = sim.in_fit_units(path[-2], path[-1], table.units)
            true_path = float(np.prod([truth[(a, b)] for a, b in zip(path[:-2], path[1:-1])])) * last
            row = summ.loc["path_specific"]
            covered["path_specific"].append(row["ci_low"] <= true_path <= row["ci_high"])
            if path[0] != "log_lr":  # the learning rate also acts through paths the book lacks
                row = summ.loc["total"]
                assert row["method"] == "randomized"
                total = sim.in_fit_units(path[0], path[-1], table.units, total=True)
                covered["total"].append(row["ci_low"] <= total <= row["ci_high"])
        # the learning rate's paths the book lacks show up as an unexplained remainder
        lr = table.summary.set_index("source").loc["log_lr"]
        assert lr["unexplained"] < 0 and lr["unexplained_p"] < 1e-3
        assert (table.summary["n"] <= len(sim.data) - sim.data["diverged"].sum()).all()
    for effect, hits in covered.items():
        assert np.mean(hits) >= 0.85, (effect, np.mean(hits), len(hits))


def test_missing_columns_are_marginalized_like_fit_edges():
    d = simulate_linear_scm(2000, seed=3).data.drop(columns=["sharpness"])
    with pytest.raises(SchemaError, match="convergence -> generalization is not identifiable"):
        mediation(d, CHAIN, n_boot=20)
    table = mediation_paths(d, [CHAIN, "capacity -> bias_sq -> generalization"], n_boot=20)
    assert list(table.results) == ["capacity -> bias_sq -> generalization"] and CHAIN in table.skipped


def test_independent_columns_of_an_empty_stratum_are_none_and_warn_nothing():
    """A family with no usable rows (the generative stratum of a by-task fit) printed 'Mean of empty slice'."""
    import warnings

    from causal.sem import independent_columns

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert independent_columns(pd.DataFrame({"a": [], "b": []}, dtype=float), ["a", "b"]) == []
    assert independent_columns(pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [2.0, 4.0, 6.0]}), ["a", "b"]) == ["a"]


def test_an_effect_that_is_zero_by_the_graph_has_p_1_and_a_ci_holding_0():
    """Rounding of an identically-0 effect (the CI failure of 2026-11-30: estimate 3.3e-16, sd 1.6e-16)."""
    from causal.sem import boot_stats

    rng = np.random.default_rng(0)
    draws = np.stack([3e-16 + 1.6e-16 * rng.standard_normal(100), 0.5 + 0.05 * rng.standard_normal(100)], axis=1)
    st = boot_stats(np.array([3.3306690738754696e-16, 0.5]), draws, 0.05)
    assert st["p_value"][0] == 1.0 and st["ci_low"][0] <= 0.0 <= st["ci_high"][0]
    assert st["p_value"][1] < 0.05 and st["ci_low"][1] > 0.0  # a real effect is untouched
    assert st["ci_high"][1] - st["ci_low"][1] == pytest.approx(2 * 1.959964 * st["std_error"][1])


def test_too_few_rows_skip_default_paths_with_the_reason_but_refuse_named_ones():
    """Below 3 rows per regressor the bootstrap CIs come from near-singular resamples: the default paths
    are listed as skipped (a report still renders), a path the user named is an error."""
    from causal.simulate_sweep import simulate_sweep

    small = simulate_sweep(60, seed=2).data
    table = mediation_paths(small, n_boot=50)
    assert table.summary.empty and table.skipped
    assert all("per regressor" in r or "rows" in r for r in table.skipped.values())
    assert "Skipped paths" in table.summary_text()
    named = next(iter(table.skipped))
    with pytest.raises(SchemaError, match="per regressor|rows"):
        mediation_paths(small, [named], n_boot=50)
    with pytest.raises(SchemaError, match="per regressor|rows"):
        mediation(small, named, n_boot=50)
