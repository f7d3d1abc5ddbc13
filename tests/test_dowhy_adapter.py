import networkx as nx
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from causal import BOOK_DAG
from causal import _dowhy as A
from causal.simulate import simulate_linear_scm

FULL = BOOK_DAG.column_graph()


def _independent_single_door(g, t, o, z):
    """The single-door criterion written directly with networkx d-separation."""
    cut = g.copy()
    cut.remove_edge(t, o)
    return not (set(z) & nx.descendants(g, o)) and nx.is_d_separator(cut, {t}, {o}, set(z))


def test_dowhy_sets_are_valid_direct_effect_adjustment_sets():
    gid = A.identification_graph(FULL, FULL.nodes)
    nonempty = 0
    for ce in BOOK_DAG.column_edges():
        ident = A.identify_direct(gid, ce.treatment, ce.outcome)
        assert ident.valid and ident.dowhy_set is not None
        assert _independent_single_door(gid, ce.treatment, ce.outcome, ident.dowhy_set)
        assert _independent_single_door(gid, ce.treatment, ce.outcome, ident.adjustment)
        if ident.dowhy_set:
            nonempty += 1
            # DoWhy's set is minimal: the empty set would not do
            assert not _independent_single_door(gid, ce.treatment, ce.outcome, ())
        # the final set contains every other parent of the outcome
        assert set(FULL.predecessors(ce.outcome)) - {ce.treatment} <= set(ident.adjustment)
    assert nonempty >= 10


def test_invalid_sets_are_rejected():
    gid = A.identification_graph(FULL, FULL.nodes)
    # adjusting for a descendant of the outcome, or not blocking a backdoor, is refused
    assert not A.is_valid_direct_adjustment(gid, "sharpness", "convergence", ["generalization"])
    assert not A.is_valid_direct_adjustment(gid, "sharpness", "convergence", [])
    assert not A.is_valid_direct_adjustment(gid, "sharpness", "convergence", ["residual"])  # normalization path open
    assert A.is_valid_direct_adjustment(gid, "sharpness", "convergence", ["gradient_stability"])


def test_latent_projection():
    observed = [n for n in FULL.nodes if n not in ("gradient_stability", "sharpness")]
    gid = A.identification_graph(FULL, observed)
    assert gid.has_edge("init_quality", "convergence")  # through the missing gradient_stability
    assert gid.has_edge("residual", "generalization")  # through the missing sharpness
    assert gid.has_node("U[convergence|generalization]")  # sharpness was their common cause
    assert gid.has_node("U[optimizer_adam|optimizer_momentum]")  # one categorical draw
    assert nx.is_directed_acyclic_graph(gid)
    ident = A.identify_direct(gid, "convergence", "generalization")
    assert not ident.valid and "not identifiable" in ident.reason


def test_linear_estimates_match_statsmodels():
    sim = simulate_linear_scm(800, seed=2)
    gid = A.identification_graph(FULL, FULL.nodes)
    ident = A.identify_direct(gid, "sharpness", "convergence")
    d = sim.data.astype({c: float for c in ident.adjustment})
    x = sm.add_constant(d[["sharpness", *ident.adjustment]].astype(float))
    classical = A.estimate_linear(d, ident, se="classical")
    ref = sm.OLS(d["convergence"], x).fit()
    assert classical.estimate == pytest.approx(ref.params["sharpness"])
    assert classical.std_error == pytest.approx(ref.bse["sharpness"], rel=1e-6)
    robust = A.estimate_linear(d, ident, se="hc3")
    ref3 = sm.OLS(d["convergence"], x).fit(cov_type="HC3")
    assert robust.estimate == pytest.approx(classical.estimate)
    assert robust.std_error == pytest.approx(ref3.bse["sharpness"], rel=1e-6)
    assert robust.ci_low < robust.estimate < robust.ci_high and robust.n == 800


def test_dml_removes_nonlinear_confounding_that_ols_misses():
    rng = np.random.default_rng(0)
    n = 2000
    z = rng.uniform(-2, 2, n)
    t = z**2 + rng.normal(size=n)
    y = 0.5 * t + z**2 + rng.normal(size=n)
    df = pd.DataFrame({"t": t, "y": y, "z": z})
    import networkx as nx

    g = nx.DiGraph([("z", "t"), ("z", "y"), ("t", "y")])
    for n in g:
        g.nodes[n]["kind"] = "mediator"
    ident = A.identify_direct(g, "t", "y")
    assert ident.adjustment == ("z",)
    with A.single_threaded():
        dml = A.estimate_dml(df, ident, seed=0)  # a DoWhy CausalEstimator on the identified estimand
        again = A.estimate_dml(df, ident, seed=0)
    assert dml == again
    assert dml.ci_low < 0.5 < dml.ci_high
    ols = sm.OLS(y, sm.add_constant(np.column_stack([t, z]))).fit()
    assert abs(ols.params[1] - 0.5) > 0.3  # linear adjustment is badly biased here


@pytest.mark.slow
def test_refuters_are_seeded_and_sensible():
    sim = simulate_linear_scm(600, seed=4)
    gid = A.identification_graph(FULL, FULL.nodes)
    ident = A.identify_direct(gid, "residual", "gradient_stability")
    a = A.refute(sim.data, gid, ident, seed=3, simulations=5)
    b = A.refute(sim.data, gid, ident, seed=3, simulations=5)
    assert a == b
    est = A.estimate_linear(sim.data, ident).estimate
    assert abs(a["placebo_effect"]) < 0.3 * abs(est)
    assert a["random_cause_effect"] == pytest.approx(est, rel=0.05)
    assert a["subset_effect"] == pytest.approx(est, rel=0.2)
