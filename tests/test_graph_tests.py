"""Graph tests: implied independences and the search for missing edges on simulated data."""

from __future__ import annotations

import numpy as np
import pytest

from causal.errors import ConfigError, SchemaError
from causal.graph_tests import falsify, implications
from causal.graph import BOOK_DAG, CausalGraph
from causal.simulate import simulate_linear_scm


def without_edge(number: int) -> CausalGraph:
    """The book's graph minus one (single-column) edge."""
    return CausalGraph(BOOK_DAG.concepts.values(), [e for e in BOOK_DAG.edges.values() if e.number != number])


def test_implications_cover_each_nonadjacent_pair_once():
    g = BOOK_DAG.column_graph()
    tests = [(x, y) for x, ys, _ in implications(g) for y in ys]
    pairs = {frozenset(t) for t in tests}
    assert len(pairs) == len(tests)  # no pair twice
    assert not any(g.has_edge(x, y) or g.has_edge(y, x) for x, y in tests)
    assert frozenset(("optimizer_momentum", "optimizer_adam")) not in pairs  # same categorical
    n = g.number_of_nodes()
    assert len(pairs) == n * (n - 1) // 2 - g.number_of_edges() - 2  # minus the 2 contrast pairs
    for x, ys, given in implications(g):
        assert set(given) == set(g.predecessors(x))


@pytest.mark.parametrize(("number", "pair"), [(9, ("init_quality", "gradient_stability")),
                                              (16, ("convergence", "generalization"))])
def test_flags_graph_with_a_true_edge_removed(number, pair):
    """Under the design every lever may act on every mediator, so a lever edge the book lacks is a
    missing edge, not a violated independence; a mediator edge it lacks is a violation."""
    for seed in (0, 1, 2):
        data = simulate_linear_scm(2000, seed=seed).data
        res = falsify(data, graph=without_edge(number))
        hits = {frozenset((x, y)) for x, y in res.violations[["x", "y"]].itertuples(index=False)}
        found = {frozenset(p) for p in res.missing_edges[["source", "target"]].itertuples(index=False)}
        assert frozenset(pair) in (found if number == 9 else hits), (seed, res.violations, res.missing_edges)
        assert not res.passed
        book = falsify(data, graph=without_edge(number), adjust="book")  # the book alone tests it directly
        assert frozenset(pair) in {frozenset((x, y)) for x, y in book.violations[["x", "y"]].itertuples(index=False)}


def test_true_graph_passes_at_about_the_nominal_rate():
    rates, clean = [], 0
    for seed in range(5):
        res = falsify(simulate_linear_scm(2000, seed=20 + seed).data, alpha=0.05)
        assert len(res.summary) > 40 and res.summary["p_value"].notna().all()
        assert len(res.randomization) > 100 and not res.randomization["violated"].any()
        rates.append(res.rejection_rate)
        clean += res.violations.empty
    assert 0.025 <= float(np.mean(rates)) <= 0.08, rates
    assert max(rates) <= 0.11, rates
    assert clean >= 4  # Holm keeps the family-wise error at 5% per seed


def test_missing_edges_finds_strong_extra_edges():
    for seed in (0, 1):
        sim = simulate_linear_scm(3000, seed=seed,
                                  add_edges={("log_lr", "sharpness"): -0.5, ("capacity", "generalization"): 0.6})
        res = falsify(sim.data)
        found = list(res.missing_edges[["source", "target"]].itertuples(index=False, name=None))
        assert set(found) == {("log_lr", "sharpness"), ("capacity", "generalization")}, found
        row = res.missing_edges.set_index(["source", "target"]).loc[("capacity", "generalization")]
        assert row["method"] == "direct" and not row["in_book"]
        assert abs(row["estimate"] - 0.6) < 5 * row["std_error"]
        assert np.sign(res.missing_edges.set_index("source").loc["log_lr", "std_effect"]) == -1
        # the true graph shows none
        assert falsify(simulate_linear_scm(3000, seed=seed).data).missing_edges.empty


@pytest.mark.slow
def test_kernel_option_flags_the_removed_edge_and_is_calibrated():
    data = simulate_linear_scm(1500, seed=4).data
    bad = falsify(data, graph=without_edge(16), test="kernel", kernel_rows=300)
    hits = {frozenset((x, y)) for x, y in bad.violations[["x", "y"]].itertuples(index=False)}
    assert frozenset(("convergence", "generalization")) in hits
    good = falsify(data, test="kernel", kernel_rows=300)
    assert good.rejection_rate < 0.12
    assert (good.summary["n"] == 300).all()
    again = falsify(data, test="kernel", kernel_rows=300)
    np.testing.assert_array_equal(good.summary["p_value"], again.summary["p_value"])


def test_kernel_test_given_a_discrete_parent_is_calibrated_where_the_plain_gamma_null_is_not():
    """X independent of Y given a 3-level task whose levels differ in Y's spread (as tasks do): linear
    residualization leaves a dependence the unconditional gamma null rejects; permuting within the task's
    levels keeps the test at its level, and it still finds a real dependence."""
    from causal.graph_tests import _hsic_gamma, _rbf, _residualize, _test_node

    rng = np.random.default_rng(0)

    def sim(n, dep):
        task = rng.integers(0, 3, n)
        x = rng.integers(0, 2, n).astype(float)
        scale = np.array([0.2, 1.0, 5.0])[task]
        y = np.array([0.0, 1.0, 3.0])[task] + scale * rng.normal(size=n) + dep * x * scale
        return np.column_stack([x, y, np.eye(3)[task][:, 1:]])

    col = {"x": 0, "y": 1, "t1": 2, "t2": 3}
    fixed, plain, power = [], [], []
    for _ in range(150):
        v = sim(48, 0.0)
        fixed.append(_test_node(v, col, "x", ["y"], ["t1", "t2"], "kernel", 500, rng)[0]["p_value"])
        R = _residualize(v[:, 2:], v[:, :2])
        plain.append(_hsic_gamma(_rbf(R[:, 0]), _rbf(R[:, 1]))[1])
        power.append(_test_node(sim(48, 1.0), col, "x", ["y"], ["t1", "t2"], "kernel", 500, rng)[0]["p_value"])
    fixed, plain, power = (np.array(a) for a in (fixed, plain, power))
    assert (plain < 0.05).mean() > 0.12, (plain < 0.05).mean()  # the problem is real on these data
    assert (fixed < 0.05).mean() <= 0.09, (fixed < 0.05).mean()
    assert (power < 0.05).mean() > 0.3, (power < 0.05).mean()


def test_absent_columns_max_conditioning_and_errors():
    data = simulate_linear_scm(800, seed=3).data.drop(columns=["sharpness", "precision"])
    data["pretrained"] = 0  # constant: left out
    res = falsify(data, max_conditioning=3, adjust="book")
    cols = set(res.summary["x"]) | set(res.summary["y"])
    assert not {"sharpness", "precision", "pretrained"} & cols
    assert res.skipped["sharpness"] == "absent" and res.skipped["pretrained"] == "constant"
    assert res.summary["n_given"].max() <= 3
    assert any("conditioning set larger than 3" in v for v in res.skipped.values())
    with pytest.raises(ConfigError, match="test"):
        falsify(data, test="kci")
    with pytest.raises(ConfigError, match="correction"):
        falsify(data, correction="bh")
    with pytest.raises(SchemaError, match="usable column"):
        falsify(data[["capacity"]])


def test_a_missing_mediator_is_marginalized_not_dropped():
    """Dropping sharpness from the true model must not create violations or missing edges."""
    for seed in (0, 1):
        data = simulate_linear_scm(3000, seed=seed).data.drop(columns=["sharpness"])
        for adjust in ("design", "book"):
            res = falsify(data, adjust=adjust)
            assert res.violations.empty and res.missing_edges.empty, (adjust, res.violations, res.missing_edges)


def test_design_missing_edges_on_sweep_like_data_are_the_true_ones():
    from causal.simulate_sweep import simulate_sweep

    res = falsify(simulate_sweep(4000, seed=0).data)
    found = set(res.missing_edges[["source", "target"]].itertuples(index=False, name=None))
    assert found == {("log_lr", "sharpness"), ("log_lr", "variance")}  # the learning rate's paths the book lacks
    assert res.violations.empty
    assert res.n_diverged > 0 and "diverged excluded" in res.summary_text()


def test_missing_values_are_handled_per_test():
    data = simulate_linear_scm(1000, seed=5).data
    data.loc[:199, "deployment_risk"] = np.nan
    res = falsify(data)
    dr = res.summary[(res.summary["x"] == "deployment_risk") | (res.summary["y"] == "deployment_risk")]
    assert (dr["n"] == 800).all() and len(dr) > 0
    assert (res.summary.loc[~res.summary.index.isin(dr.index), "n"] == 1000).all()


def test_views_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = falsify(simulate_linear_scm(1000, seed=6, add_edges={("log_lr", "sharpness"): -0.6}).data)
    text = res.summary_text()
    assert "log_lr" in text and "Strong effects missing" in text
    assert "<table" in res._repr_html_()
    fig, ax = plt.subplots()
    assert res.plot_pvalues(ax=ax) is ax
    assert res.plot_missing_edges(ax=ax) is ax
    plt.close("all")
