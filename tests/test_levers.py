"""The lever space: deterministic, independent draws; overrides validated and applied."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from causal.errors import ConfigError
from runs_generator.levers import (
    DEFAULT_SPACE,
    LARGE_SPACE,
    LEVER_FIELDS,
    SMALL_SPACE,
    SPACES,
    Choice,
    LogUniform,
    get_space,
    parse_assignment,
)

S = LARGE_SPACE


def _frame(configs, space=S) -> pd.DataFrame:
    rows = []
    for c in configs:
        rows.append({
            "task": c.task == "mnist1d",
            # the width lever's own draw: its position among the arch's choices (width depends on arch by design
            # in the large space, as log_lr depends on the optimizer)
            "width": space.width_choices(c.arch).index(c.width) / max(1, len(space.width_choices(c.arch)) - 1),
            "depth": c.depth,
            "init_scale": np.log2(c.init_scale),
            "optimizer_adam": c.optimizer == "adam",
            "optimizer_momentum": c.optimizer == "momentum",
            # the lr lever's own draw: its position in the optimizer's range (log_lr itself depends on the
            # optimizer by design)
            "lr": np.log10(c.lr / space.lr_range(c.optimizer)[0]) / np.log10(np.divide(*space.lr_range(c.optimizer)[::-1])),
            "batch": np.log2(c.batch_size) if c.batch_size else 8.0,
            "full_batch": c.batch_size is None,
            "weight_decay": c.weight_decay > 0,
            "dropout": c.dropout,
            "augmentation": c.augmentation,
            "early_stopping": c.early_stopping,
            "norm_batch": c.normalization == "batch",
            "norm_layer": c.normalization == "layer",
            "residual": c.residual,
            "n_train": np.log2(c.n_train),
            "noise": c.noise,
            "epochs": c.epochs,
        })
    return pd.DataFrame(rows).astype(float)


@pytest.mark.parametrize("seed", [0, 7, 2026])
def test_same_seed_same_configs_and_different_seed_differs(seed):
    a = S.draw_all(seed, 50)
    assert a == S.draw_all(seed, 50)
    assert a != S.draw_all(seed + 1, 50)
    assert len({c.seed for c in a}) == 50  # every run has its own seed
    assert [c.run_index for c in a] == list(range(50))


@pytest.mark.parametrize("space", ["small", "large"])
@pytest.mark.parametrize("seed", [1, 99])
def test_levers_are_pairwise_uncorrelated(seed, space):
    n = 3000
    df = _frame(get_space(space).draw_all(seed, n), get_space(space))
    if space == "large":  # no full-batch option there
        df = df.drop(columns=["full_batch"])
    corr = df.corr().to_numpy()
    bound = 4 / np.sqrt(n)
    off = [(df.columns[i], df.columns[j], corr[i, j]) for i, j in itertools.combinations(range(len(df.columns)), 2)
           if not {df.columns[i], df.columns[j]} <= {"optimizer_adam", "optimizer_momentum"}
           and not {df.columns[i], df.columns[j]} <= {"norm_batch", "norm_layer"}
           and not {df.columns[i], df.columns[j]} <= {"batch", "full_batch"}]
    bad = [o for o in off if abs(o[2]) > bound]
    assert not bad, f"lever pairs correlated beyond chance (|r| > {bound:.3f}): {bad}"
    # and every lever actually varies
    assert (df.std() > 0).all()


def test_resolved_levers_are_independent_within_their_stratum():
    cfgs = S.draw_all(3, 3000)
    teacher = [c for c in cfgs if c.task == "teacher"]
    assert all(c.arch == "mlp" for c in teacher)
    assert all(c.problem == "classification" for c in cfgs if c.task == "mnist1d")
    reg = [c for c in teacher if c.problem == "regression"]
    cls = [c for c in cfgs if c.problem == "classification"]
    assert {c.loss for c in reg} == {"mse", "l1"} and all(c.label_smoothing == 0 for c in reg)
    # l1 is not offered for classes (it trains one-hot targets to an all-zero output)
    assert {c.loss for c in cls} == {"cross_entropy", "mse"} and {c.noise_dist for c in cls} == {"gaussian"}
    assert all(c.label_smoothing == 0 for c in cls if c.loss == "mse")  # smoothing acts on cross-entropy only
    assert {c.label_smoothing for c in cls if c.loss == "cross_entropy"} == {0.0, 0.1}
    # within regression runs, loss and noise_dist are independent draws
    x = np.array([c.loss == "mse" for c in reg], float)
    y = np.array([c.noise_dist == "laplace" for c in reg], float)
    assert abs(np.corrcoef(x, y)[0, 1]) < 4 / np.sqrt(len(reg))
    # mnist1d: cnn and mlp both drawn, roughly half each, each over its own declared widths (all of them)
    arch = [c.arch == "cnn" for c in cfgs if c.task == "mnist1d"]
    assert 0.4 < np.mean(arch) < 0.6
    for a in ("cnn", "mlp"):
        assert {c.width for c in cfgs if c.arch == a} == set(S.width_choices(a))
    assert S.width_choices("cnn") != S.width_choices("mlp")  # the large space sets widths per arch
    # every optimizer's lr stays in its own range; steps follow the budget rule
    for c in cfgs:
        low, high = S.lr_range(c.optimizer)
        assert low <= c.lr <= high
        assert c.steps == max(S.min_steps, int(np.ceil(c.epochs * c.n_train / c.effective_batch)))
        assert c.depth >= 2
    fixed = S.draw(3, 0, S.overrides(fix={"task": "mnist1d", "arch": "cnn", "width": 32}))
    assert fixed.width == 32  # a fixed width is used as given


def test_fix_holds_a_lever_and_leaves_the_others_unchanged():
    base = S.draw_all(11, 40)
    fixed = S.draw_all(11, 40, S.overrides(fix={"lr": 0.01, "optimizer": "adam"}))
    assert all(c.lr == 0.01 and c.optimizer == "adam" for c in fixed)
    for a, b in zip(base, fixed):
        assert (a.width, a.depth, a.init_scale, a.n_train, a.seed) == (b.width, b.depth, b.init_scale, b.n_train, b.seed)


def test_vary_cycles_values_evenly_and_factorially():
    o = S.overrides(vary={"depth": ["1", "4"], "optimizer": ["sgd", "momentum", "adam"]})
    cfgs = S.draw_all(5, 60, o)
    assert [c.depth for c in cfgs[:4]] == [1, 4, 1, 4]
    assert [c.optimizer for c in cfgs[:6]] == ["sgd"] * 2 + ["momentum"] * 2 + ["adam"] * 2
    counts = pd.crosstab([c.depth for c in cfgs], [c.optimizer for c in cfgs]).to_numpy()
    assert (counts == 10).all()  # orthogonal: every combination equally often


def test_cli_strings_are_typed_per_lever():
    o = S.overrides(fix={"width": "64", "lr": "3e-2", "residual": "true", "batch_size": "full", "dropout": "0.1"})
    c = S.draw(0, 0, o)
    assert (c.width, c.lr, c.residual, c.batch_size, c.dropout) == (64, 0.03, True, None, 0.1)
    assert c.effective_batch == c.n_train
    c = S.draw(0, 0, S.overrides(fix={"steps": "300", "batch_size": "32", "n_train": "64"}))
    assert c.steps == 300 and c.epochs == 150.0  # a fixed step count overrides the budget rule
    assert parse_assignment("depth=1,2, 3", multi=True) == ("depth", ["1", "2", "3"])
    assert parse_assignment("optimizer=adam", multi=False) == ("optimizer", "adam")


@pytest.mark.parametrize(
    ("fix", "vary", "names"),
    [
        ({"widht": 64}, None, ["widht", "width"]),  # unknown lever: lists the known ones
        ({"lr": 50.0}, None, ["'lr'", "50", "[1e-06, 10]"]),
        ({"optimizer": "rmsprop"}, None, ["'optimizer'", "rmsprop", "adam"]),
        ({"width": "wide"}, None, ["'width'", "wide", "not a number"]),
        ({"depth": 2.5}, None, ["'depth'", "2.5", "integer"]),
        ({"residual": "maybe"}, None, ["'residual'", "maybe", "0/1"]),
        (None, {"n_train": [64, 100000]}, ["'n_train'", "100000", "4096"]),
        (None, {"depth": []}, ["'depth'", "at least one"]),
        ({"depth": 2}, {"depth": [1, 2]}, ["depth", "both fixed and varied"]),
    ],
)
def test_bad_overrides_name_the_lever_the_value_and_the_range(fix, vary, names):
    with pytest.raises(ConfigError) as info:
        S.overrides(fix, vary)
    for name in names:
        assert name in str(info.value)


def test_inapplicable_overrides_say_what_to_fix():
    o = S.overrides(fix={"arch": "cnn", "task": "teacher"})
    with pytest.raises(ConfigError, match="task=mnist1d"):
        S.draw(0, 0, o)
    o = S.overrides(fix={"loss": "cross_entropy", "task": "teacher", "problem": "regression"})
    with pytest.raises(ConfigError, match="problem=classification"):
        S.draw(0, 0, o)
    o = S.overrides(fix={"loss": "mse", "task": "mnist1d", "label_smoothing": 0.1})
    with pytest.raises(ConfigError, match="loss=cross_entropy"):
        S.draw(0, 0, o)
    with pytest.raises(ConfigError, match="malformed"):
        parse_assignment("lr", multi=False)


def test_distributions_cover_their_declared_support():
    u = np.linspace(0, 1, 1001, endpoint=False)
    lu = np.array([LogUniform(0.25, 4.0).sample(x) for x in u])
    assert lu.min() == pytest.approx(0.25) and lu.max() < 4.0
    assert np.median(lu) == pytest.approx(1.0, rel=0.01)  # symmetric in log2
    ch = Choice(("a", "b"), (3.0, 1.0))
    assert np.mean([ch.sample(x) == "a" for x in u]) == pytest.approx(0.75, abs=0.002)
    assert set(LEVER_FIELDS) == set(S.names)


def test_spaces_by_name_and_their_ranges():
    assert get_space("small") is SMALL_SPACE and get_space("large") is LARGE_SPACE and DEFAULT_SPACE is SMALL_SPACE
    with pytest.raises(ConfigError, match="small"):
        get_space("huge")
    small, large = SMALL_SPACE.draw_all(0, 400), LARGE_SPACE.draw_all(0, 400)
    assert max(c.n_train for c in small) <= 256 and max(c.n_train for c in large) == 4000
    assert min(c.n_train for c in small + large) >= 64  # every run's Hessian subsample has the same size (64)
    assert {sp.name for sp in SPACES.values()} == {"small", "large", "generative", "transfer", "all"}


def test_the_all_space_draws_every_family_with_its_own_architectures_and_ranges():
    """arch_per_task: each family's architectures share its runs; task_levers: its own sizes; overrides still win."""
    from collections import Counter

    from runs_generator.levers import ALL_SPACE
    from runs_generator.registry import TASKS

    cfgs = ALL_SPACE.draw_all(7, 1200)
    pairs = Counter((c.task, c.arch) for c in cfgs)
    for task in ALL_SPACE.lever("task").choices:
        per_task = sum(n for (t, _), n in pairs.items() if t == task)
        assert per_task > 1200 / 6 * 0.7, (task, per_task)
        for arch in TASKS[task].archs:  # every architecture of the family, near its equal share
            assert pairs[(task, arch)] > per_task / len(TASKS[task].archs) * 0.6, (task, arch, pairs)
    assert not {a for (t, a) in pairs if a not in TASKS[t].archs}
    own = dict(ALL_SPACE.task_levers)
    for c in cfgs:
        for name, dist in own.get(c.task, ()):
            if hasattr(dist, "values") and name != "batch_size":
                assert getattr(c, name) in dist.values, (c.task, name, getattr(c, name))
        assert ALL_SPACE.width_choices(c.arch) and c.width in ALL_SPACE.width_choices(c.arch)
        low, high = ALL_SPACE.lr_range(c.optimizer, c.task)
        assert low <= c.lr <= high
        if c.task == "generative":  # Adam only, at the rates that taught every architecture (RESULTS.md)
            assert c.optimizer == "adam" and (low, high) == (1e-3, 5e-3) and 0.5 <= c.init_scale <= 1.5
            assert c.steps >= 1000 and c.effective_batch == 128
        if c.task == "transfer":  # below the large space's rates, where mse regression diverged
            assert high < ALL_SPACE.lr_range(c.optimizer)[1]
        if c.task in ("sequence", "mnist1d"):
            assert c.n_train >= 2048
        if c.task == "transfer":
            assert c.source_similarity in (0.5, 0.8, 1.0)  # related sources only (DESIGN.md: pretrained)
    assert {c.n_train for c in cfgs if c.task == "graph"} == {256, 512, 1024, 2048}
    assert {c.n_train for c in cfgs if c.task == "teacher"} == {1024, 2048, 4000}
    fixed = ALL_SPACE.draw_all(7, 40, overrides=ALL_SPACE.overrides(fix={"task": "graph", "n_train": 4000,
                                                                        "arch": "gnn"}))
    assert {(c.task, c.arch, c.n_train) for c in fixed} == {("graph", "gnn", 4000)}


def test_per_task_levers_are_checked_when_the_space_is_made():
    from runs_generator.levers import LeverSpace, _levers

    base = _levers(width=(8,), depth=(2,), batch=(32,), batch_w=(1.0,), n_train=(64,), epochs=(20,))
    with pytest.raises(ConfigError, match="unknown lever 'n_trian'"):
        LeverSpace(levers=base, task_levers=(("teacher", (("n_trian", Choice((64,))),)),))
    with pytest.raises(ConfigError, match="task 'cifar'"):
        LeverSpace(levers=base, task_levers=(("cifar", (("n_train", Choice((64,))),)),))
    with pytest.raises(ConfigError, match="n_train"):
        LeverSpace(levers=base, task_levers=(("teacher", (("n_train", Choice((3,))),)),))


@pytest.mark.parametrize("space", ["small", "large"])
def test_capacity_crosses_the_interpolation_threshold_for_every_arch_and_task(space):
    """Both regimes (params below and above n_train x outputs) occur for every (task, arch)."""
    from runs_generator._modelset import arch_spec
    from runs_generator.models import count_params
    from runs_generator import tasks
    from runs_generator.spec import TaskData

    sp = get_space(space)
    seen: dict[tuple, set] = {}
    for c in sp.draw_all(1, 2000):
        n_out = 10 if c.task == "mnist1d" else (4 if c.problem == "classification" else 1)
        shape = (40,) if c.task == "mnist1d" else (tasks.TEACHER_DIM,)
        x = np.zeros((1, *shape), np.float32)
        data = TaskData(c.problem, n_out, x[None], x[None], x[None], x[None], x, x, x)
        over = count_params(arch_spec(c, data)) > c.n_train * n_out
        seen.setdefault((c.task, c.arch, c.problem), set()).add(over)
    assert all(v == {True, False} for v in seen.values()), seen
