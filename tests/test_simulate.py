import numpy as np
import pandas as pd
import pytest

from causal import BOOK_DAG, ConfigError, GraphError
from causal.simulate import default_coefficients, simulate_linear_scm


def test_same_seed_same_table_other_seed_differs():
    a = simulate_linear_scm(300, seed=7)
    b = simulate_linear_scm(300, seed=7)
    c = simulate_linear_scm(300, seed=8)
    pd.testing.assert_frame_equal(a.data, b.data)
    assert not np.allclose(a.data["generalization"], c.data["generalization"])


def test_levers_look_like_a_randomized_runs_table():
    d = simulate_linear_scm(3000, seed=1).data
    assert set(d["optimizer"]) == {"sgd", "momentum", "adam"}
    assert ((d["optimizer_momentum"] + d["optimizer_adam"]) <= 1).all()
    assert (d["optimizer_adam"].to_numpy() == (d["optimizer"] == "adam").to_numpy(dtype=float)).all()
    assert (d["normalization_batch"].to_numpy() == (d["normalization"] == "batch").to_numpy(dtype=float)).all()
    assert (d["normalized"].to_numpy() == (d["normalization"] != "none").to_numpy(dtype=int)).all()
    assert d["residual"].dtype == "int64" and set(d["residual"]) == {0, 1}
    assert (d["init_quality"] <= 0).all()
    assert (d["overparameterized"] == (d["overparam"] > 0)).all()
    # independent levers: no pairwise correlation beyond chance among continuous levers
    levers = ["capacity", "log_lr", "log_batch", "dropout", "data_quantity", "init_quality", "residual"]
    corr = d[levers].astype(float).corr().to_numpy()
    assert np.abs(corr[np.triu_indices(len(levers), 1)]).max() < 0.08


def test_true_effects_cover_every_column_edge_with_book_signs():
    sim = simulate_linear_scm(50, seed=0)
    t = sim.true_effects
    assert len(t) == len(BOOK_DAG.column_edges())
    for ce in BOOK_DAG.column_edges():
        coef = sim.coefficient(ce.treatment, ce.outcome)
        assert coef == default_coefficients()[(ce.treatment, ce.outcome)]
        if ce.expected_sign.value == "-":
            assert coef < 0
        else:
            assert coef > 0


def test_overrides_drops_and_additions():
    sim = simulate_linear_scm(
        50, seed=0,
        coefficients={("residual", "sharpness"): 0.8, 23: 0.0},
        drop_edges=[("capacity", "bias_sq")],
        add_edges={("log_lr", "sharpness"): -0.4},
    )
    assert sim.coefficient("residual", "sharpness") == 0.8
    assert sim.coefficient("data_noise", "generalization") == 0.0
    assert not sim.graph.has_edge("capacity", "bias_sq") and sim.coefficient("capacity", "bias_sq") == 0.0
    row = sim.true_effects.query("treatment == 'log_lr' and outcome == 'sharpness'").iloc[0]
    assert row["coefficient"] == -0.4 and not row["in_book"]


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"coefficients": {("residual", "variance"): 1.0}}, ConfigError),
        ({"coefficients": {99: 1.0}}, ConfigError),
        ({"drop_edges": [("residual", "variance")]}, ConfigError),
        ({"add_edges": {("generalization", "capacity"): 1.0}}, GraphError),
        ({"add_edges": {("nope", "capacity"): 1.0}}, GraphError),
        ({"columns": ["capacity", "nope"]}, ConfigError),
    ],
)
def test_bad_arguments_are_refused(kwargs, error):
    with pytest.raises(error):
        simulate_linear_scm(20, seed=0, **kwargs)


def test_structural_equation_is_recovered_by_regression_on_parents():
    sim = simulate_linear_scm(20000, seed=3)
    d = sim.data
    parents = list(sim.graph.predecessors("variance"))
    x = np.column_stack([np.ones(len(d))] + [d[p].astype(float) for p in parents])
    beta = np.linalg.lstsq(x, d["variance"].to_numpy(), rcond=None)[0][1:]
    resid_sd = np.std(d["variance"].to_numpy() - x @ np.r_[0, beta] - np.mean(d["variance"] - x[:, 1:] @ beta))
    for p, b in zip(parents, beta):
        true = sim.coefficient(p, "variance")
        assert abs(b - true) < 0.1 * max(1.0, abs(true)), (p, b, true)
    assert 0.95 < resid_sd < 1.05  # unit noise


def test_path_and_total_effects():
    sim = simulate_linear_scm(10, seed=0)
    path = ["residual", "gradient_stability", "convergence", "generalization"]
    expected = (
        sim.coefficient("residual", "gradient_stability")
        * sim.coefficient("gradient_stability", "convergence")
        * sim.coefficient("convergence", "generalization")
    )
    assert sim.path_effect(path) == pytest.approx(expected)
    # residual reaches generalization via gradient_stability and via sharpness (two routes)
    total = sim.total_effect("residual", "generalization")
    via_sharp = sim.path_effect(["residual", "sharpness", "generalization"]) + sim.path_effect(
        ["residual", "sharpness", "convergence", "generalization"]
    )
    assert total == pytest.approx(expected + via_sharp)
    with pytest.raises(GraphError, match="not an edge"):
        sim.path_effect(["residual", "convergence"])


def test_columns_subset_and_latent_nodes():
    d = simulate_linear_scm(100, seed=0, columns=["init_quality", "gradient_stability"]).data
    assert "gradient_stability" in d and "convergence" not in d and "capacity" not in d


def test_regime_coefficients_give_opposite_slopes():
    sim = simulate_linear_scm(20000, seed=2, regime_coefficients=(0.8, -0.8))
    assert np.isnan(sim.coefficient("capacity", "variance"))
    d = sim.data
    for flag, sign in ((0, 1), (1, -1)):
        part = d[d["overparameterized"] == flag]
        slope = np.polyfit(part["capacity"], part["variance"], 1)[0]
        assert np.sign(slope) == sign


# ---- the sweep-like simulator ---------------------------------------------------------
def test_sweep_simulator_computes_levers_like_the_generator():
    from causal.simulate_sweep import simulate_sweep

    a = simulate_sweep(2000, seed=3)
    pd.testing.assert_frame_equal(a.data, simulate_sweep(2000, seed=3).data)
    d = a.data
    assert (d["init_quality"] == -np.abs(np.log2(d["init_scale"]))).all()
    assert (d.loc[d["problem"] == "regression", "label_smoothing"] == 0).all()
    assert (d.loc[d["task"] == "mnist1d", "problem"] == "classification").all()
    assert (d.loc[d["arch"] == "cnn", "task"] == "mnist1d").all()
    assert (d["batch_size"] <= d["n_train"]).all() and (d["log_batch"] == np.log2(d["batch_size"])).all()
    assert (d["inductive_bias"].to_numpy() == ((d["arch"] == "cnn") & (d["task"] == "mnist1d")).to_numpy(int)).all()
    # computed columns are confounded by raw levers: capacity grows with depth
    assert d["capacity"].corr(d["depth"].astype(float)) > 0.3
    # diverged runs: a few percent, more at high learning rate, null or capped mediators
    div = d["diverged"] == 1
    assert 0.03 < div.mean() < 0.1
    assert d.loc[div, "log_lr"].mean() > d.loc[~div, "log_lr"].mean()
    assert d.loc[div, "variance"].isna().all() and (d.loc[div, "convergence"] == -3.0).all()
    assert d.loc[~div, ["variance", "convergence", "sharpness"]].notna().all().all()
    assert d.loc[d["task"] == "mnist1d", "deployment_risk"].isna().all()


def test_sweep_simulator_truth_and_options():
    from causal.simulate_sweep import simulate_sweep

    sim = simulate_sweep(200, seed=0, placeholders=False, shift={("capacity", "bias_sq"): 1.0})
    assert sim.coefficient("capacity", "bias_sq") == pytest.approx(0.4)
    assert sim.coefficient("residual", "gradient_stability", task="teacher") == 1.0
    assert sim.coefficient("residual", "gradient_stability") == pytest.approx(0.7)
    assert sim.data.loc[sim.data["diverged"] == 1, "convergence"].isna().all()
    assert sim.total_effect("gradient_stability", "generalization") == pytest.approx(0.5 * 0.4)
    with pytest.raises(ConfigError, match="unknown edge"):
        simulate_sweep(100, shift={("a", "b"): 1.0})
    with pytest.raises(ConfigError, match="diverged_fraction"):
        simulate_sweep(100, diverged_fraction=0.7)
