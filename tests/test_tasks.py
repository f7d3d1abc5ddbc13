"""Task data: shapes, determinism, independent replicas, noise levels, subgroups."""

from __future__ import annotations

import numpy as np
import pytest

from runs_generator import tasks
from runs_generator.levers import LARGE_SPACE as S
from runs_generator.tasks import N_VAL, make_task_data


def _cfg(seed=0, index=0, **fix):
    return S.draw(seed, index, S.overrides(fix=fix))


@pytest.mark.parametrize("seed", [0, 3])
def test_teacher_regression_noise_is_relative_to_signal_std(seed):
    for dist in ("gaussian", "laplace"):
        c = _cfg(seed, task="teacher", problem="regression", noise=0.3, noise_dist=dist, n_train=1024)
        d = make_task_data(c, sweep_seed=seed)
        assert d.x_train.shape == (4, 1024, tasks.TEACHER_DIM) and d.y_train.shape == (4, 1024, 1)
        assert d.x_val.shape == (4, N_VAL, tasks.TEACHER_DIM) and d.x_train.dtype == np.float32
        resid = (d.y_test_noisy - d.y_test).ravel()
        assert resid.std() == pytest.approx(0.3, rel=0.1)
        kurt = np.mean(resid**4) / np.mean(resid**2) ** 2
        assert (kurt > 4.5) == (dist == "laplace")  # Laplace kurtosis 6, Gaussian 3
        # majority inputs: unit signal std (teacher scaled on the majority distribution)
        assert d.y_groups[d.groups == 0].std() == pytest.approx(1.0, rel=0.15)


@pytest.mark.parametrize("seed", [1, 8])
def test_classification_label_noise_fraction_and_clean_test_labels(seed):
    c = _cfg(seed, task="teacher", problem="classification", noise=0.2, n_train=512)
    d = make_task_data(c, sweep_seed=seed)
    assert d.n_outputs == 4 and d.y_train.dtype == np.int64 and d.y_train.shape == (4, 512)
    assert np.mean(d.y_test != d.y_test_noisy) == pytest.approx(0.2, abs=0.002)
    assert set(np.unique(d.y_test)) == {0, 1, 2, 3}
    clean = make_task_data(_cfg(seed, task="teacher", problem="classification", noise=0.0, n_train=512), sweep_seed=seed)
    assert np.array_equal(clean.y_test, d.y_test)  # the test set is shared across runs of a sweep
    assert np.array_equal(clean.y_test, clean.y_test_noisy)


def test_subgroups_minority_share_and_shift():
    """The in-distribution test set has the training mixture; a separate balanced set serves deployment_risk."""
    c = _cfg(2, task="teacher", problem="regression")
    d = make_task_data(c, sweep_seed=2)
    assert d.groups.mean() == pytest.approx(tasks.MINORITY_GROUPS)
    shift = d.x_groups[d.groups == 1].mean(0) - d.x_groups[d.groups == 0].mean(0)
    assert np.linalg.norm(shift) == pytest.approx(tasks.TEACHER_SHIFT, rel=0.2)
    # in-distribution: the minority share of training; train and test inputs have the same mean shift
    direction = tasks._teacher(2, "regression")["shift"] / tasks.TEACHER_SHIFT
    frac_test = float((d.x_test @ direction).mean()) / tasks.TEACHER_SHIFT
    frac_train = float((d.x_train.reshape(-1, tasks.TEACHER_DIM) @ direction).mean()) / tasks.TEACHER_SHIFT
    assert frac_test == pytest.approx(tasks.MINORITY_TRAIN, abs=0.05)
    assert frac_train == pytest.approx(tasks.MINORITY_TRAIN, abs=0.05)
    assert not any(np.array_equal(d.x_test[0], row) for row in d.x_groups)  # two different sets


def test_deterministic_and_replicas_independent():
    c = _cfg(4, 7, task="teacher", problem="classification")
    a, b = make_task_data(c, sweep_seed=4), make_task_data(c, sweep_seed=4)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_train, b.y_train)
    assert not np.allclose(a.x_train[0], a.x_train[1])  # independent draws per replica
    other = make_task_data(_cfg(4, 8, task="teacher", problem="classification"), sweep_seed=4)
    assert not np.array_equal(a.x_train[0][:10], other.x_train[0][:10])


@pytest.mark.slow
def test_mnist1d_generated_in_process_with_label_noise():
    state = np.random.get_state()
    c = _cfg(0, task="mnist1d", noise=0.1, n_train=256)
    d = make_task_data(c, sweep_seed=0)
    assert np.array_equal(np.random.get_state()[1], state[1])  # global numpy RNG untouched
    assert d.problem == "classification" and d.n_outputs == 10
    assert d.x_train.shape == (4, 256, 40) and d.x_test.shape == (1000, 40)
    assert np.mean(d.y_test != d.y_test_noisy) == pytest.approx(0.1, abs=0.002)
    assert len(np.unique(d.y_test)) == 10
    # replicas draw different subsets of the pool
    assert not np.allclose(d.x_train[0], d.x_train[1])
    offset = d.x_groups[d.groups == 1].mean() - d.x_groups[d.groups == 0].mean()
    assert offset == pytest.approx(tasks.MNIST1D_SHIFT, abs=0.15)


@pytest.mark.slow
def test_mnist1d_replicas_get_disjoint_training_sets_up_to_4000():
    c = _cfg(0, task="mnist1d", noise=0.0, n_train=4000)
    d = make_task_data(c, sweep_seed=0)
    assert d.x_train.shape == (4, 4000, 40)
    pool = tasks._mnist1d_pool()
    signals = [{row.tobytes() for row in (np.concatenate([d.x_train[k], d.x_val[k]]) - 0.0)} for k in range(4)]
    # shifted minority rows differ from the pool, so compare indices through the unshifted majority rows
    raw = {row.tobytes() for row in pool["x"].astype(np.float32)}
    majority = [s & raw for s in signals]
    assert all(len(m) > 3000 for m in majority)
    assert all(not (majority[a] & majority[b]) for a in range(4) for b in range(a + 1, 4))
    test_rows = {row.tobytes() for row in d.x_test}
    assert not any(s & test_rows for s in signals)
