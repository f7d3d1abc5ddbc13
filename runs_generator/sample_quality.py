"""Sample quality of a generative model against a known Gaussian mixture (DESIGN.md §2, issue 11 point 4).

Pure numpy (and scikit-learn's pairwise distances); no torch, no training code.

* :func:`prdc` — k-NN manifold estimates of **precision** and **recall**
  (Kynkäänniemi et al. 2019) and **density** and **coverage** (Naeem et al.
  2020), exactly as the authors' ``prdc`` package (``compute_prdc``, v0.2)
  defines them; ``tests/test_sample_quality.py`` checks the numbers against it:

  - the k-NN radius of a point is the distance to its k-th nearest neighbour
    in its own set (itself excluded);
  - precision: the share of generated samples inside some real sample's ball;
  - recall: the share of real samples inside some generated sample's ball;
  - density: the mean, over generated samples, of the number of real balls
    containing it, divided by k (≈ 1 when the distributions agree; can exceed 1);
  - coverage: the share of real samples whose ball contains a generated sample.

* :func:`mode_coverage` — the share of the mixture's modes that the samples
  reach: a sample counts for the mode with the highest posterior
  responsibility when it lies within ``radius`` standard deviations
  (Mahalanobis) of that mode's mean; a mode is covered when it receives at
  least ``min_share`` of the samples it would receive from the true mixture
  (``n x weight``).
* :func:`sample_loglik` — the mean log-density of the samples under the true
  mixture (nats per sample).

Examples
--------
>>> import numpy as np
>>> gm = GaussianMixture.ring(modes=8, radius=2.0, std=0.05)
>>> rng = np.random.default_rng(0)
>>> real, fake = gm.sample(500, rng), gm.sample(500, rng)
>>> s = prdc(real, fake, k=5)
>>> bool(s["precision"] > 0.9 and s["recall"] > 0.9), mode_coverage(fake, gm)
(True, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causal.errors import ConfigError

__all__ = ["GaussianMixture", "prdc", "mode_coverage", "sample_loglik", "knn_radii"]


@dataclass(frozen=True)
class GaussianMixture:
    """A Gaussian mixture with known modes: ``weights`` (M,), ``means`` (M, D), ``covs`` (M, D, D)."""

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray

    def __post_init__(self) -> None:
        w, mu, cov = (np.asarray(a, dtype=np.float64) for a in (self.weights, self.means, self.covs))
        if mu.ndim != 2 or w.shape != (mu.shape[0],) or cov.shape != (mu.shape[0], mu.shape[1], mu.shape[1]):
            raise ConfigError(f"GaussianMixture needs weights (M,), means (M, D) and covs (M, D, D); received "
                              f"{w.shape}, {mu.shape} and {cov.shape}")
        if (w < 0).any() or not np.isclose(w.sum(), 1.0):
            raise ConfigError(f"GaussianMixture weights must be non-negative and sum to 1; received {w.tolist()}")
        try:
            np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ConfigError("GaussianMixture covs must be symmetric positive definite") from None
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "means", mu)
        object.__setattr__(self, "covs", cov)

    @classmethod
    def ring(cls, modes: int = 8, radius: float = 2.0, std: float = 0.05, dim: int = 2) -> "GaussianMixture":
        """``modes`` equal-weight isotropic modes evenly on a circle in the first two of ``dim`` axes."""
        if modes < 1 or dim < 2 or radius < 0 or std <= 0:
            raise ConfigError(f"ring needs modes >= 1, dim >= 2, radius >= 0, std > 0; received modes={modes}, "
                              f"dim={dim}, radius={radius}, std={std}")
        angle = 2 * np.pi * np.arange(modes) / modes
        means = np.zeros((modes, dim))
        means[:, 0], means[:, 1] = radius * np.cos(angle), radius * np.sin(angle)
        return cls(np.full(modes, 1.0 / modes), means, np.broadcast_to(std**2 * np.eye(dim), (modes, dim, dim)).copy())

    @property
    def n_modes(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, rng: np.random.Generator, modes: np.ndarray | None = None) -> np.ndarray:
        """``n`` samples (n, D); ``modes`` (indices) restricts them to those modes, reweighted."""
        w = self.weights.copy()
        if modes is not None:
            keep = np.zeros_like(w, dtype=bool)
            keep[np.asarray(modes)] = True
            w = np.where(keep, w, 0.0) / w[keep].sum()
        comp = rng.choice(self.n_modes, size=n, p=w)
        chol = np.linalg.cholesky(self.covs)  # (M, D, D)
        z = rng.standard_normal((n, self.dim))
        return self.means[comp] + np.einsum("nij,nj->ni", chol[comp], z)

    def component_logpdf(self, x: np.ndarray) -> np.ndarray:
        """log N(x | mean_m, cov_m) for every sample and mode, (n, M)."""
        x = _points(x, "x", self.dim)
        chol = np.linalg.cholesky(self.covs)
        diff = x[:, None, :] - self.means[None]  # (n, M, D)
        sol = np.stack([np.linalg.solve(chol[m], diff[:, m].T).T for m in range(self.n_modes)], axis=1)
        maha = (sol**2).sum(-1)  # squared Mahalanobis distances (n, M)
        logdet = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)  # (M,)
        return -0.5 * (maha + logdet + self.dim * np.log(2 * np.pi))

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log p(x) under the mixture, (n,)."""
        with np.errstate(divide="ignore"):
            joint = self.component_logpdf(x) + np.log(self.weights)
        top = joint.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(joint - top).sum(axis=1, keepdims=True)))[:, 0]


def _points(x: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or (dim is not None and a.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, D)"
        raise ConfigError(f"{name} must be a non-empty array of shape {want}; received shape {a.shape}")
    if not np.isfinite(a).all():
        raise ConfigError(f"{name} holds non-finite values; sample quality is undefined for them (a diverged "
                          "model's samples give null columns, not a score)")
    return a


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from sklearn.metrics import pairwise_distances

    return pairwise_distances(a, b, metric="euclidean")


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of every point to its k-th nearest neighbour in ``x`` (itself excluded), (n,)."""
    x = _points(x, "x")
    if not 1 <= k < x.shape[0]:
        raise ConfigError(f"k must be in [1, n - 1] = [1, {x.shape[0] - 1}]; received k={k}")
    return np.partition(_distances(x, x), k, axis=1)[:, k]  # index k: the self-distance 0 is index 0


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` (n_f, D) against ``real`` (n_r, D).

    The definitions of ``prdc.compute_prdc`` (see the module docstring), with
    strict ``<`` comparisons as there. Both sets need more than ``k`` points.
    """
    real, fake = _points(real, "real"), _points(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ConfigError(f"real and fake samples need the same dimension; received {real.shape[1]} and "
                          f"{fake.shape[1]}")
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    d = _distances(real, fake)  # (n_r, n_f)
    in_real = d < r_real[:, None]  # fake j inside real i's ball
    return {
        "precision": float(in_real.any(axis=0).mean()),
        "recall": float((d < r_fake[None, :]).any(axis=1).mean()),
        "density": float(in_real.sum(axis=0).mean() / k),
        "coverage": float((d.min(axis=1) < r_real).mean()),
    }


def mode_coverage(samples: np.ndarray, mixture: GaussianMixture, *, radius: float = 3.0,
                  min_share: float = 0.1) -> float:
    """The share of ``mixture``'s modes that ``samples`` cover (see the module docstring), in [0, 1]."""
    x = _points(samples, "samples", mixture.dim)
    if radius <= 0 or not 0 < min_share <= 1:
        raise ConfigError(f"mode_coverage needs radius > 0 and min_share in (0, 1]; received radius={radius}, "
                          f"min_share={min_share}")
    logp = mixture.component_logpdf(x)  # (n, M)
    with np.errstate(divide="ignore"):
        owner = (logp + np.log(mixture.weights)).argmax(axis=1)
    # squared Mahalanobis distance to the owning mode, recovered from its log-density
    chol = np.linalg.cholesky(mixture.covs)
    logdet = 2 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)
    maha = -2 * logp[np.arange(len(x)), owner] - logdet[owner] - mixture.dim * np.log(2 * np.pi)
    near = maha <= radius**2
    counts = np.bincount(owner[near], minlength=mixture.n_modes)
    expected = len(x) * mixture.weights
    covered = (counts >= np.maximum(1.0, min_share * expected)) & (mixture.weights > 0)
    return float(covered.sum() / (mixture.weights > 0).sum())


def sample_loglik(samples: np.ndarray, mixture: GaussianMixture) -> float:
    """Mean log-density (nats) of ``samples`` under the true ``mixture``."""
    return float(mixture.log_density(_points(samples, "samples", mixture.dim)).mean())
