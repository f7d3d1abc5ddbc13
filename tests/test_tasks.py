"""Task data: shapes, determinism, independent replicas, noise levels, subgroups."""

from __future__ import annotations

import numpy as np
import pytest

from runs_generator import tasks
from runs_generator.levers import DEFAULT_SPACE as S
from runs_generator.tasks import N_VAL, make_task_data


def _cfg(seed=0, index=0, **fix):
    return S.draw(seed, index, S.overrides(fix=fix))


@pytest.mark.parametrize("seed", [0, 3])
def test_teacher_regression_noise_is_relative_to_signal_std(seed):
    for dist in ("gaussian", "laplace"):
        c = _cfg(seed, task="teacher", problem="regression", noise=0.3, noise_dist=dist, n_train=1024)
        d = make_task_data(c, sweep_seed=seed)
        assert d.x_train.shape == (4, 1024, 16) and d.y_train.shape == (4, 1024, 1)
        assert d.x_val.shape == (4, N_VAL, 16) and d.x_train.dtype == np.float32
        resid = (d.y_test_noisy - d.y_test).ravel()
        assert resid.std() == pytest.approx(0.3, rel=0.1)
        kurt = np.mean(resid**4) / np.mean(resid**2) ** 2
        assert (kurt > 4.5) == (dist == "laplace")  # Laplace kurtosis 6, Gaussian 3
        # majority inputs: unit signal std (teacher scaled on the majority distribution)
        assert d.y_test[d.group_test == 0].std() == pytest.approx(1.0, rel=0.15)


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
    c = _cfg(2, task="teacher", problem="regression")
    d = make_task_data(c, sweep_seed=2)
    assert d.group_test.mean() == pytest.approx(tasks.MINORITY_TEST)
    shift = d.x_test[d.group_test == 1].mean(0) - d.x_test[d.group_test == 0].mean(0)
    assert np.linalg.norm(shift) == pytest.approx(tasks.TEACHER_SHIFT, rel=0.2)


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
    offset = d.x_test[d.group_test == 1].mean() - d.x_test[d.group_test == 0].mean()
    assert offset == pytest.approx(tasks.MNIST1D_SHIFT, abs=0.15)
