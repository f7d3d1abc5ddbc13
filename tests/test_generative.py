"""The generative family (issue 11 point 4): VAE, GAN, flow and diffusion on a 2-D Gaussian mixture.

The sample-quality metrics themselves (true samples score near 1, samples collapsed
onto one of M modes give recall and mode coverage near 1/M, prdc = the ``prdc``
package) are tested in ``tests/test_sample_quality.py``.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from causal.errors import ConfigError
from causal.schema import RUNS_SCHEMA, Scope
from runs_generator._toydata import toy_config, toy_data
from runs_generator.engine import train_runs
from runs_generator.generative import MIXTURE, generative_data
from runs_generator.levers import GENERATIVE_SPACE
from runs_generator.registry import LOSSES
from runs_generator.sample_quality import mode_coverage, prdc, sample_loglik
from runs_generator.spec import RunMetrics
from runs_generator.table import Provenance, make_row

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ARCHS = ("vae", "gan", "flow", "diffusion")
OBJECTIVE = {"vae": "elbo", "gan": "adversarial", "flow": "nll", "diffusion": "denoising"}
FLOATS = [f.name for f in fields(RunMetrics) if f.name not in ("n_params", "diverged", "diverged_step",
                                                               "wall_time_s", "extra")]
SUPERVISED_OUTCOMES = ("generalization", "test_loss", "test_error", "gen_gap", "deployment_risk", "ece", "bias_sq",
                       "variance")
SAMPLE_COLUMNS = ("precision", "recall", "coverage", "density", "mode_coverage", "sample_loglik")


def gen_config(arch: str, **kw):
    base = dict(task="generative", problem="generation", arch=arch, loss=OBJECTIVE[arch], width=8, depth=2,
                n_train=48, batch_size=16, steps=12, optimizer="adam", lr=3e-3, replicas=2)
    return toy_config(**{**base, **kw})


# --- the lever space ------------------------------------------------------------------
def test_generative_draws_resolve_neutral_levers_and_the_archs_objective() -> None:
    cfgs = GENERATIVE_SPACE.draw_all(seed=0, runs=200)
    assert {c.arch for c in cfgs} == set(ARCHS)
    for c in cfgs:
        assert c.problem == "generation" and c.loss == OBJECTIVE[c.arch]
        assert (c.dropout, c.label_smoothing, c.noise, c.augmentation, c.early_stopping, c.normalization) == \
            (0.0, 0.0, 0.0, False, False, "none")
    assert LOSSES["nll"].matched("generation", "gaussian") and not LOSSES["adversarial"].matched("generation", "gaussian")
    with pytest.raises(ConfigError, match="dropout=0.3 does not act on task 'generative'"):
        GENERATIVE_SPACE.draw(0, 0, GENERATIVE_SPACE.overrides(fix={"dropout": 0.3}))


def test_data_gives_each_replica_its_own_draw_and_shares_the_heldout_set() -> None:
    a, b = gen_config("flow", seed=1), gen_config("flow", seed=2)
    da, db = generative_data(a, sweep_seed=0), generative_data(b, sweep_seed=0)
    assert da.x_train.shape == (2, 48, 2) and da.y_train.shape == (2, 48, 0)
    assert not np.allclose(da.x_train[0], da.x_train[1]) and not np.allclose(da.x_train, db.x_train)
    np.testing.assert_array_equal(da.x_test, db.x_test)  # one held-out set per sweep
    assert not np.array_equal(da.x_test, generative_data(a, sweep_seed=1).x_test)


# --- batched = naive ------------------------------------------------------------------------
def _close(a: RunMetrics, b: RunMetrics, rel: float, what: str) -> None:
    assert a.n_params == b.n_params and a.diverged == b.diverged and a.diverged_step == b.diverged_step, what
    for name in FLOATS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), (what, name, x, y)
        if x is not None:
            assert math.isclose(x, y, rel_tol=rel, abs_tol=1e-10), (what, name, x, y)


@pytest.mark.parametrize("arch", ARCHS)
def test_batched_equals_naive_in_float64(arch: str) -> None:
    """Mixed optimizers, batch sizes (one full batch), n_train, steps, residual and weight decay in one chunk."""
    cfgs = [gen_config(arch, run_index=0, seed=11, optimizer="sgd", lr=0.01, residual=False),
            gen_config(arch, run_index=1, seed=12, optimizer="adam", batch_size=None, n_train=40, residual=True,
                       weight_decay=1e-3, steps=9),
            gen_config(arch, run_index=2, seed=13, optimizer="momentum", lr=3e-3, batch_size=24, init_scale=0.7)]
    data = [generative_data(c, sweep_seed=3) for c in cfgs]
    batched = train_runs(cfgs, data, engine="batched", dtype=torch.float64)
    naive = train_runs(cfgs, data, engine="naive", dtype=torch.float64)
    for c, a, b in zip(cfgs, batched, naive):
        assert not a.diverged and a.precision is not None
        _close(a, b, 1e-8, f"{arch} run {c.run_index}")
    alone = train_runs(cfgs[2:], data[2:], engine="batched", dtype=torch.float64)[0]  # its own chunk
    _close(alone, batched[2], 1e-9, f"{arch}: a run's metrics depend on its chunk")


def test_the_engine_dispatches_generative_runs_beside_supervised_ones() -> None:
    sup = toy_config(run_index=0, seed=5, steps=5)
    gen = gen_config("diffusion", run_index=1, seed=6, steps=5)
    both = train_runs([sup, gen], [toy_data(sup), generative_data(gen, sweep_seed=0)])
    alone = train_runs([sup], [toy_data(sup)])
    assert both[0].generalization == alone[0].generalization and both[0].precision is None
    assert both[1].generalization is None and both[1].precision is not None


# --- learning ---------------------------------------------------------------------------
#: a fixed config per arch (width 64, depth 2, 512 examples, batch 128, Adam) and its training budget
LEARN = {"vae": (1500, 3e-3), "gan": (1500, 3e-3), "flow": (800, 3e-3), "diffusion": (1000, 3e-3)}


@pytest.fixture(scope="module")
def learned() -> dict[str, RunMetrics]:
    torch.set_num_threads(1)
    cfgs = [gen_config(a, run_index=i, seed=2, width=64, n_train=512, batch_size=128, steps=LEARN[a][0],
                       lr=LEARN[a][1], replicas=1) for i, a in enumerate(ARCHS)]
    small = gen_config("diffusion", run_index=9, seed=2, width=4, n_train=512, batch_size=128, steps=1000,
                       lr=3e-3, replicas=1)  # too little capacity for 8 modes
    cfgs.append(small)
    out = train_runs(cfgs, [generative_data(c, sweep_seed=0) for c in cfgs])
    return {**dict(zip(ARCHS, out)), "diffusion_w4": out[-1]}


def _gaussian_baseline() -> dict[str, float]:
    """The trivial generator: a Gaussian with the training set's mean and covariance."""
    rng = np.random.default_rng(0)
    x = generative_data(gen_config("vae", seed=2, n_train=512, replicas=1), sweep_seed=0).x_train[0].astype(float)
    fake = rng.multivariate_normal(x.mean(0), np.cov(x.T), size=1000)
    real = generative_data(gen_config("vae"), sweep_seed=0).x_test
    return {**prdc(real, fake, k=5), "mode_coverage": mode_coverage(fake, MIXTURE),
            "sample_loglik": sample_loglik(fake, MIXTURE)}


@pytest.mark.parametrize("arch", ARCHS)
def test_each_arch_learns_the_mixture_well_beyond_a_gaussian(arch: str, learned) -> None:
    m, base = learned[arch], _gaussian_baseline()
    assert base["precision"] < 0.3 and base["density"] < 0.2 and base["sample_loglik"] < -20  # ~0.23, 0.12, -25
    assert not m.diverged
    assert m.precision > 0.5 and m.precision > base["precision"] + 0.25, (arch, m.precision)
    assert m.density > 0.3 and m.sample_loglik > -10 and m.mode_coverage >= 0.75, (arch, m)
    assert m.recall > 0.75  # a GAN may drop a mode or two


def test_enough_capacity_beats_too_little(learned) -> None:
    big, small = learned["diffusion"], learned["diffusion_w4"]
    assert big.n_params > 10 * small.n_params
    assert big.precision > small.precision + 0.3 and big.density > small.density + 0.2
    assert big.sample_loglik > small.sample_loglik and big.convergence > small.convergence


# --- the row ------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_a_generative_row_validates_with_supervised_outcomes_null(arch: str, learned, tmp_path) -> None:
    from causal import load_runs
    from runs_generator.storage import write_shard

    c = gen_config(arch, seed=2, width=64, n_train=512, batch_size=128, replicas=1)
    row = make_row(c, generative_data(c, sweep_seed=0), learned[arch], Provenance("batched", "cpu", "0", "0", 0))
    assert set(row) == {col.name for col in RUNS_SCHEMA}
    assert all(row[k] is None for k in SUPERVISED_OUTCOMES)
    assert all(row[k] is not None for k in SAMPLE_COLUMNS)
    gan = arch == "gan"  # a game: no objective to converge, no curvature, no implicit-regularization step
    for k in ("convergence", "sharpness", "implicit_reg"):
        assert (row[k] is None) == gan, (arch, k, row[k])
    # the flow's couplings start as the identity (zero output weights): no gradient reaches a hidden layer at init
    assert (row["gradient_stability"] is None) == (arch == "flow") and row["loss_matched"] == int(not gan)
    assert row["problem"] == "generation" and row["inductive_bias"] == 0
    assert [c.name for c in RUNS_SCHEMA if c.scope is Scope.GENERATIVE and row[c.name] is None] == []
    write_shard(tmp_path, 0, [row], {})  # the sweep's own path: the arrow schema, then the reader's validation
    df = load_runs(tmp_path)
    assert len(df) == 1 and df["precision"].notna().all() and df["generalization"].isna().all()


def test_a_diverged_run_has_null_outcomes() -> None:
    c = gen_config("vae", optimizer="sgd", lr=50.0, init_scale=4.0, steps=30, seed=4)
    m = train_runs([c], [generative_data(c, sweep_seed=0)])[0]
    assert m.diverged and m.diverged_step is not None
    assert all(getattr(m, k) is None for k in SAMPLE_COLUMNS + ("convergence", "sharpness", "implicit_reg"))


# --- the analysis reads generative rows -----------------------------------------------------
def test_fit_edges_estimates_edge_24_on_generative_rows(tmp_path) -> None:
    """Rows as the sweep writes them, with a known capacity effect on precision: edge 24 is estimated, not skipped.

    The metrics are simulated (training 80 runs would take minutes); the rows, the storage and the analysis are real.
    """
    from causal import fit_edges, load_runs
    from runs_generator.generative import GEN_ARCHS
    from runs_generator.storage import write_shard

    rng = np.random.default_rng(0)
    rows = []
    for c in GENERATIVE_SPACE.draw_all(seed=1, runs=80, replicas=2):
        data = generative_data(replace(c, n_train=8), sweep_seed=1)  # only n_outputs is read
        n_params = sum(int(np.prod(s)) for g in GEN_ARCHS[c.arch].shapes(c.width, c.depth, 2).values() for _, s, _ in g)
        cap = math.log10(n_params)
        q = lambda: float(np.clip(0.1 + 0.15 * cap + rng.normal(0, 0.05), 0, 1))  # noqa: E731
        m = RunMetrics(n_params=n_params, gradient_stability=-0.2, sharpness=None, implicit_reg=None, bias_sq=None,
                       variance=None, convergence=None, diverged=False, diverged_step=None, generalization=None,
                       test_loss=None, test_error=None, gen_gap=None, deployment_risk=None, ece=None,
                       train_loss_initial=None, train_loss_final=None, wall_time_s=1.0, precision=q(), recall=q(),
                       coverage=q(), density=q(), mode_coverage=1.0, sample_loglik=-3.0)
        rows.append(make_row(c, data, m, Provenance("batched", "cpu", "0", "0", 1)))
    write_shard(tmp_path, 0, rows, {})
    fit = fit_edges(load_runs(tmp_path))
    e24 = fit.summary[fit.summary["number"] == 24].set_index("outcome")
    assert set(e24.index) == {"precision", "recall", "coverage", "density"}
    assert not (fit.skipped["number"] == 24).any()
    assert (e24["ci_low"] > 0).all() and (abs(e24["estimate"] - 0.15) < 0.05).all(), e24[["estimate", "ci_low"]]
