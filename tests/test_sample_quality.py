"""Sample-quality metrics on known cases, and against the authors' prdc package."""

from __future__ import annotations

import math

import numpy as np
import pytest

from causal.errors import ConfigError
from runs_generator.sample_quality import GaussianMixture, knn_radii, mode_coverage, prdc, sample_loglik

M = 8
RING = GaussianMixture.ring(modes=M, radius=2.0, std=0.1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prdc_equals_the_prdc_package(seed: int) -> None:
    ref = pytest.importorskip("prdc")
    rng = np.random.default_rng(seed)
    real = RING.sample(300, rng)
    fake = RING.sample(250, rng, modes=[0, 1, 2]) + rng.normal(0, 0.05, (250, 2))
    for k in (1, 3, 5):
        want = ref.compute_prdc(real, fake, nearest_k=k)
        got = prdc(real, fake, k=k)
        assert got == pytest.approx({name: float(v) for name, v in want.items()}, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_true_samples_score_near_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    real, fake = RING.sample(1000, rng), RING.sample(1000, rng)
    k = 5
    s = prdc(real, fake, k=k)
    assert s["precision"] > 0.95 and s["recall"] > 0.95
    assert abs(s["density"] - 1.0) < 0.1
    assert abs(s["coverage"] - (1 - 0.5**k)) < 0.03  # Naeem et al. 2020, lemma 2 with equal set sizes
    assert mode_coverage(fake, RING) == 1.0
    # the mean log-density of true samples is minus the mixture's entropy: well separated modes add log M
    entropy = 1 + math.log(2 * math.pi * 0.1**2) + math.log(M)  # D/2 (1 + log 2 pi s^2) with D = 2, plus log M
    assert sample_loglik(fake, RING) == pytest.approx(-entropy, abs=0.1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_collapse_onto_one_mode_gives_one_over_m(seed: int) -> None:
    rng = np.random.default_rng(seed)
    real = RING.sample(1600, rng)
    fake = RING.sample(1600, rng, modes=[seed % M])
    s = prdc(real, fake, k=5)
    assert s["precision"] > 0.95  # every sample is realistic ...
    assert abs(s["recall"] - 1 / M) < 0.04  # ... but only one mode in M is reached
    assert abs(s["coverage"] - 1 / M) < 0.04
    assert mode_coverage(fake, RING) == pytest.approx(1 / M)
    # the samples' log-density measures fidelity, not diversity: one mode's samples score as the mixture's do
    # (each has density weight x N under the mixture), which is why recall and mode coverage are needed
    assert sample_loglik(fake, RING) == pytest.approx(sample_loglik(real, RING), abs=0.1)


def test_samples_off_every_mode_cover_nothing() -> None:
    rng = np.random.default_rng(3)
    fake = rng.normal(0.0, 0.1, (500, 2))  # the ring's centre: 2 = 20 std from every mode
    assert mode_coverage(fake, RING) == 0.0
    s = prdc(RING.sample(500, rng), fake, k=5)
    assert s["precision"] == 0.0 and s["coverage"] == 0.0
    assert sample_loglik(fake, RING) < -100


def test_mode_coverage_needs_a_share_of_the_expected_count() -> None:
    rng = np.random.default_rng(4)
    fake = np.concatenate([RING.sample(990, rng, modes=[0]), RING.sample(10, rng, modes=[1])])
    assert mode_coverage(fake, RING, min_share=0.1) == pytest.approx(1 / M)  # 10 < 0.1 x 1000 / 8
    assert mode_coverage(fake, RING, min_share=0.05) == pytest.approx(2 / M)  # 10 >= 6.25


def test_log_density_equals_scipy_with_full_covariances() -> None:
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(5)
    a = rng.normal(size=(3, 4, 4))
    covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(4)
    gm = GaussianMixture(np.array([0.2, 0.3, 0.5]), rng.normal(size=(3, 4)), covs)
    x = gm.sample(50, rng)
    want = np.log(sum(w * multivariate_normal(m, c).pdf(x) for w, m, c in zip(gm.weights, gm.means, gm.covs)))
    np.testing.assert_allclose(gm.log_density(x), want, rtol=1e-10)


def test_knn_radius_excludes_the_point_itself() -> None:
    x = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    np.testing.assert_array_equal(knn_radii(x, 1), [1.0, 1.0, 2.0])
    np.testing.assert_array_equal(knn_radii(x, 2), [3.0, 2.0, 3.0])


@pytest.mark.parametrize("call,match", [
    (lambda: prdc(np.zeros((5, 2)), np.zeros((5, 3))), "same dimension"),
    (lambda: prdc(np.zeros((5, 2)), np.zeros((5, 2)), k=5), "k must be"),
    (lambda: prdc(np.zeros(5), np.zeros((5, 2))), "real must be"),
    (lambda: sample_loglik(np.full((3, 2), np.nan), RING), "non-finite"),
    (lambda: mode_coverage(np.zeros((3, 3)), RING), r"samples must be .*\(n, 2\)"),
    (lambda: GaussianMixture(np.array([0.5, 0.6]), np.zeros((2, 2)), np.stack([np.eye(2)] * 2)), "sum to 1"),
    (lambda: GaussianMixture(np.array([1.0]), np.zeros((1, 2)), -np.eye(2)[None]), "positive definite"),
])
def test_bad_input_is_refused_with_the_argument_named(call, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call()
