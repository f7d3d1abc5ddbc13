"""Figures that do not mislead: intervals on the verdict's footing, readable graph, added-variable plots."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from causal.edges import fit_edges  # noqa: E402
from causal.errors import ConfigError  # noqa: E402
from causal.mediate import mediation_paths  # noqa: E402
from causal.plots import (  # noqa: E402
    _added_variable,
    effects_graph,
    forest,
    forest_facets,
    matched_interval,
    mediation_forest,
    plot_edge,
    standardize_paths,
)
from causal.prepare import prepare  # noqa: E402
from causal.simulate_sweep import simulate_sweep  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return simulate_sweep(900, seed=4).data


@pytest.fixture(scope="module")
def fx(data):
    return fit_edges(data)


@pytest.fixture(scope="module")
def by_task(data):
    return fit_edges(data, by="task")


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("ci", ["matched", "bonferroni"])
def test_intervals_clear_zero_exactly_when_the_verdict_is_significant(fx, ci):
    s = fx.summary
    lo, hi = matched_interval(s, value="estimate", low="ci_low", high="ci_high", alpha=fx.config.alpha, ci=ci)
    clear = (lo > 0) | (hi < 0)
    assert (lo <= s["estimate"]).all() and (hi >= s["estimate"]).all()
    if ci == "matched":
        assert (clear == s["significant"]).all()
    else:  # simultaneous intervals are at least as wide as Holm's: never clear when Holm is not
        assert not (clear & ~s["significant"]).any()


def test_forest_has_title_legend_and_expected_signs(fx):
    fig, ax = plt.subplots()
    assert forest([fx.summary], ax) is ax
    assert "matched" in ax.get_title() and ax.get_legend() is not None
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "supports" in texts and "book expects +" in texts
    assert len(ax.get_yticklabels()) == len(fx.summary)
    assert fx.plot_forest(ax=plt.subplots()[1]) is not None  # the fit's own method still draws


def test_facets_one_panel_per_stratum(by_task):
    by = by_task
    fig = forest_facets(by)
    assert len(fig.axes) == 1 + by.strata["stratum"].nunique()


def test_graph_hides_nodes_without_data_and_boxes_do_not_overlap(fx):
    ax = effects_graph(fx)
    fig = ax.figure
    fig.canvas.draw()
    labels = {t.get_text(): t for t in ax.texts}
    assert "precision" not in labels and "capacity" in labels  # sample quality has no data here
    boxes = [t.get_bbox_patch().get_window_extent() for t in labels.values() if t.get_bbox_patch()]
    assert len(boxes) >= 15
    overlaps = [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
    assert not overlaps
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("standardized effect" in t for t in legend) and "negative estimate" in legend


def test_added_variable_slope_is_the_estimate(data, fx):
    prep = prepare(data, fx.graph)
    for t, o in [("log_lr", "implicit_reg"), ("capacity", "bias_sq"), ("sharpness", "convergence")]:
        row = fx.effect(t, o)
        av = _added_variable(prep.numeric, prep.data, t, o, row["adjustment"].split(","))
        slope = av["rt"] @ av["ro"] / (av["rt"] @ av["rt"])
        assert slope == pytest.approx(row["estimate"], rel=1e-6)
        assert len(av["rt"]) == row["n"]
    ax = plot_edge(fx, data, "log_lr", "implicit_reg")
    assert "log_lr → implicit_reg" in ax.get_title()
    with pytest.raises(ConfigError, match="optimizer_adam"):
        plot_edge(fx, data, "optimizer", "implicit_reg")


def test_plot_edge_per_stratum(data, by_task):
    by = by_task
    axes = plot_edge(by, data, "residual", "gradient_stability")
    assert len(axes) == by.strata["stratum"].nunique()
    # the simulator's residual effect is 1.0 on teacher and 0.4 on mnist1d: the panels show different slopes
    slopes = {ax.get_title().split("\n")[0]: float(ax.get_title().split("estimate ")[1].split(" ")[0]) for ax in axes}
    assert slopes["task = teacher"] > slopes["task = mnist1d"]


def test_mediation_in_standardized_units(data):
    med = mediation_paths(data, n_boot=30, seed=0)
    std = standardize_paths(med.summary, data)
    prep = prepare(data, fx_graph()).numeric
    r = std.iloc[0]
    both = prep[[r["source"], r["target"]]].dropna()
    assert r["std_estimate"] == pytest.approx(r["estimate"] * both[r["source"]].std() / both[r["target"]].std())
    ax = mediation_forest(med, data)
    assert len(ax.get_yticklabels()) == len(med.summary) and "→" in ax.get_yticklabels()[0].get_text()
    assert np.isfinite(std["std_estimate"]).all()


def fx_graph():
    from causal.graph import BOOK_DAG

    return BOOK_DAG


def test_effects_methods_delegate(data, fx):
    # EdgeEffects.effect on a categorical lever gives its contrasts; tiny p-values print; plot_edge/plot_graph
    contrasts = fx.effect("optimizer", "implicit_reg")
    assert sorted(contrasts["treatment"]) == ["optimizer_adam", "optimizer_momentum"]
    row = fx.effect("log_lr", "implicit_reg")
    assert "e-" in repr(row).split("p_adjusted")[1].split("\n")[0] or row["p_adjusted"] >= 1e-3
    with pytest.raises(KeyError, match="edges into implicit_reg"):
        fx.effect("nope", "implicit_reg")
    assert "log_lr → implicit_reg" in fx.plot_edge("log_lr", "implicit_reg", data).get_title()
    labels = {t.get_text() for t in fx.plot_graph().texts}
    assert "precision" not in labels and "capacity" in labels


def test_mediation_table_plots_standardized_given_the_data(data):
    med = mediation_paths(data, n_boot=20, seed=0)
    ax = med.plot(data=data)
    assert "standardized" in ax.get_xlabel() and len(ax.get_yticklabels()) == len(med.summary)
    assert "raw units" in med.plot().get_title()
