"""The linear SEM behind mediation, and the bootstrap every bootstrap analysis shares.

* :func:`bootstrap_counts` — resamples as count weights, in memory-bounded
  blocks; :func:`causal.regression.weighted_ols` refits every resample of a
  block at once. Mediation, :func:`causal.total_effects` and the sign
  stability bootstrap all draw from it, so the same ``(rows, n_boot, seed)``
  give the same resamples everywhere.
* :func:`boot_stats` — CIs and p-values from one set of draws, consistent by
  construction (estimate ± z·sd and the matching z-test).
* :func:`independent_columns` — drop regression columns that are exact
  linear combinations of earlier ones.
* :class:`LinearSEM` — one regression per node on its parents, with bootstrap
  draws of every coefficient.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from causal.regression import DEFAULT_SE, ols, weighted_ols

__all__ = ["LinearSEM", "bootstrap_counts", "boot_stats", "independent_columns"]

#: rows of a resample-count block are limited to this many cells (memory bound)
_BLOCK_CELLS = 4_000_000


def bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator) -> Iterable[np.ndarray]:
    """Yield blocks of resample counts, shape ``(block, n)`` float64, ``n_boot`` rows in all.

    Row ``b`` holds how often each of the ``n`` rows appears in resample ``b``
    (a nonparametric bootstrap draw of ``n`` rows with replacement). Blocks
    bound memory; the draws depend only on ``(n, n_boot, rng)``.
    """
    block = max(1, min(n_boot, _BLOCK_CELLS // max(n, 1)))
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b)[:, None] * n)
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype("float64")
        done += b


def boot_stats(est: np.ndarray, draws: np.ndarray, alpha: float) -> dict[str, np.ndarray]:
    """CIs and p-values from one set of bootstrap draws, consistent by construction.

    ``ci_low``/``ci_high`` = estimate ± z·sd and ``p_value`` the matching z-test
    (the CI excludes 0 exactly when p < alpha); the percentile interval is
    reported beside them (``pct_low``/``pct_high``).
    """
    sd = draws.std(0, ddof=1)
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * stats.norm.sf(np.abs(est / sd))
    zero = sd <= 1e-12 * (np.abs(est) + 1.0)  # identically 0 by the graph
    p[zero] = np.where(np.abs(est[zero]) > 1e-12, 0.0, 1.0)
    ci_low, ci_high = est - z * sd, est + z * sd
    # an effect that is 0 by the graph comes out as rounding (e.g. 3e-16 with sd 2e-16): its p-value is 1,
    # so its CI must hold 0 too, whatever the rounding of the draws
    null = zero & (np.abs(est) <= 1e-12)
    ci_low[null], ci_high[null] = np.minimum(ci_low[null], 0.0), np.maximum(ci_high[null], 0.0)
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2], axis=0)
    return {"std_error": sd, "ci_low": ci_low, "ci_high": ci_high, "p_value": p, "pct_low": lo, "pct_high": hi}


def independent_columns(frame: pd.DataFrame, cols: list[str]) -> list[str]:
    """``cols`` without those that are exact linear combinations of earlier ones (kept order; none without rows)."""
    if not cols or len(frame) == 0:
        return []
    x = frame[cols].to_numpy(dtype="float64")
    x = x - x.mean(0)
    sd = x.std(0)
    sd[sd == 0] = 1.0
    gram = (x / sd).T @ (x / sd) / len(x)
    keep: list[int] = []
    for j in range(len(cols)):
        r = gram[j, j] - (gram[j, keep] @ np.linalg.solve(gram[np.ix_(keep, keep)], gram[keep, j]) if keep else 0.0)
        if r > 1e-9:
            keep.append(j)
    return [cols[j] for j in keep]


@dataclass(frozen=True)
class LinearSEM:
    """A linear SEM fitted to a table, with bootstrap draws of every coefficient.

    Attributes
    ----------
    nodes : tuple of str
        Regression columns, the index order of the matrices.
    coef : (k, k) array
        ``coef[i, j]`` is the coefficient of ``nodes[i]`` in the equation of
        ``nodes[j]`` (0 if it is not a regressor there).
    std_error : (k, k) array
        HC3 standard errors of ``coef`` from :func:`causal.regression.ols` (NaN where none).
    boot : (n_boot, k, k) array
        The same coefficients in each bootstrap resample.
    totals : dict of (str, str) -> (float, (n_boot,) array)
        Directly estimated total effects (:func:`causal.totals.randomized_totals`)
        on the same resamples.
    n : int
        Complete rows used.
    """

    nodes: tuple[str, ...]
    coef: np.ndarray
    std_error: np.ndarray
    boot: np.ndarray
    totals: dict
    n: int

    def index(self, node: str) -> int:
        return self.nodes.index(node)

    def total(self) -> tuple[np.ndarray, np.ndarray]:
        """Total-effect matrices ``(I - B)^-1 - I`` for the fit and every resample."""
        eye = np.eye(len(self.nodes))
        return np.linalg.inv(eye - self.coef) - eye, np.linalg.inv(eye - self.boot) - eye

    @classmethod
    def fit(cls, data: pd.DataFrame, equations: dict[str, list[tuple[list[str], list[str]]]], *, n_boot: int,
            seed: int, totals: dict[tuple[str, str], tuple[float, np.ndarray]] | None = None,
            universe: tuple[int, np.ndarray] | None = None) -> LinearSEM:
        """Fit each node's regressions; ``data`` must be complete and numeric.

        ``equations`` maps a column to its regressions, each ``(regressors,
        kept)``: the coefficients of ``kept`` (a subset of ``regressors``) are
        taken from that regression. ``totals`` maps ``(source, target)`` to its
        randomized total effect and bootstrap draws
        (:func:`causal.totals.randomized_totals`). ``universe`` = ``(m,
        positions)``: the resamples are drawn over ``m`` rows, of which
        ``data`` holds those at ``positions``, so they are the very resamples
        of the totals (default: drawn over ``data``'s rows).
        """
        totals = dict(totals or {})
        cols = [c for regs in equations.values() for r, _ in regs for c in r]
        nodes = tuple(dict.fromkeys([*equations, *cols]))
        k, n = len(nodes), len(data)
        pos = {v: i for i, v in enumerate(nodes)}
        values = data[list(nodes)].to_numpy(dtype="float64")
        coef = np.zeros((k, k))
        se = np.full((k, k), np.nan)
        # (target index, regressor indices, positions kept within them, their node indices)
        fits = []
        for v, regs in equations.items():
            for r, kept in regs:
                if r and kept:
                    idx = [pos[u] for u in r]
                    at = [r.index(u) for u in kept]
                    fits.append((pos[v], idx, at, [pos[u] for u in kept]))
        for j, idx, at, dst in fits:
            fit = ols(values[:, j], values[:, idx], se=DEFAULT_SE)
            coef[dst, j] = fit.params[at]
            se[dst, j] = fit.std_error[at]
        m, where = universe if universe is not None else (n, np.arange(n))
        boot = np.zeros((n_boot, k, k))
        rng = np.random.default_rng(seed)  # seeded right before the stochastic step
        start = 0
        for counts in bootstrap_counts(m, n_boot, rng):
            counts = counts[:, where]
            stop = start + counts.shape[0]
            for j, idx, at, dst in fits:
                boot[start:stop, dst, j] = weighted_ols(values[:, idx], values[:, j], counts)[:, at]
            start = stop
        return cls(nodes, coef, se, boot, totals, n)
