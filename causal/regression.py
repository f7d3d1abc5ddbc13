"""The one regression core: OLS with robust standard errors, and p-value correction.

Every p-value this package prints comes from here, so the standard-error type
and the multiple-testing correction are stated once:

* :data:`DEFAULT_SE` — ``"hc3"``: heteroskedasticity-robust HC3 sandwich
  (MacKinnon & White 1985) on statsmodels' OLS; real mediators are
  heteroskedastic (capped values, task mixtures). ``"hc1"`` and
  ``"classical"`` are available for comparison.
* :data:`DEFAULT_CORRECTION` — ``"holm"`` across the tests of one table
  (``"fdr_bh"``, ``"bonferroni"``, ``"none"`` available). NaN p-values stay
  NaN and do not count as tests (statsmodels' BH turns every value NaN
  otherwise).

``fit_edges`` (through the DoWhy adapter), ``falsify``'s missing-edge search and
``mediation`` call :func:`ols`; the bootstrap uses :func:`weighted_ols`, the
same least squares for many resample weights at once (point estimates only).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(500, 2)); y = 2 * x[:, 0] + rng.normal(size=500)
>>> fit = ols(y, x)
>>> round(float(fit.params[0]), 1), fit.se_type
(2.0, 'hc3')
>>> adjust_pvalues([0.01, np.nan, 0.04], "holm").round(2).tolist()
[0.02, nan, 0.04]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from causal.errors import ConfigError

__all__ = ["StdErr", "Correction", "SE_TYPES", "CORRECTIONS", "DEFAULT_SE", "DEFAULT_CORRECTION", "OLSFit",
           "ols", "adjust_pvalues", "weighted_ols", "check_se", "check_correction"]

StdErr = Literal["hc3", "hc1", "classical"]
Correction = Literal["holm", "fdr_bh", "bonferroni", "none"]
SE_TYPES: tuple[str, ...] = ("hc3", "hc1", "classical")
CORRECTIONS: tuple[str, ...] = ("holm", "fdr_bh", "bonferroni", "none")
DEFAULT_SE: StdErr = "hc3"
DEFAULT_CORRECTION: Correction = "holm"
_COV = {"hc3": "HC3", "hc1": "HC1", "classical": "nonrobust"}


def check_se(se: str) -> str:
    """Return ``se`` or raise :class:`ConfigError` naming the choices."""
    if se not in SE_TYPES:
        raise ConfigError(f"se must be one of {SE_TYPES}, got {se!r}")
    return se


def check_correction(correction: str) -> str:
    """Return ``correction`` or raise :class:`ConfigError` naming the choices."""
    if correction not in CORRECTIONS:
        raise ConfigError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    return correction


@dataclass(frozen=True)
class OLSFit:
    """Slopes of one OLS fit (intercept dropped) with their standard errors.

    Attributes
    ----------
    params, std_error, ci_low, ci_high, p_value : (p,) arrays
        Per regressor (columns of ``X`` in order); t-based CIs and p-values.
    n : int
        Rows used.
    dof : int
        Residual degrees of freedom.
    se_type : str
    """

    params: np.ndarray
    std_error: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray
    n: int
    dof: int
    se_type: str


def ols(y: np.ndarray, X: np.ndarray, *, se: str = DEFAULT_SE, alpha: float = 0.05) -> OLSFit:
    """OLS of ``y`` on ``[1, X]`` with statsmodels; robust SEs by default.

    Columns are centred and unit-scaled before the fit (slopes and sandwich
    rescale exactly; columns on very different scales, ``weight_decay`` ~ 1e-3
    beside ``log_batch`` ~ 6, stay well conditioned).

    Parameters
    ----------
    y : (n,) array
    X : (n, p) array
    se : {'hc3', 'hc1', 'classical'}
    alpha : float
        1 - CI level.
    """
    import statsmodels.api as sm
    from scipy import stats
    from statsmodels.tools.sm_exceptions import SingularMatrixWarning

    check_se(se)
    y = np.asarray(y, dtype="float64")
    X = np.asarray(X, dtype="float64").reshape(len(y), -1)
    n, p = X.shape
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    A = np.column_stack([np.ones(n), (X - X.mean(axis=0)) / scale])
    # handled below: HC3 at leverage 1 divides by 0; a rank-deficient design leaves some slopes unidentified
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularMatrixWarning)
        fit = sm.OLS(y, A).fit(cov_type=_COV[se])
        params = fit.params[1:] / scale
        bse = np.asarray(fit.bse)[1:] / scale
    sv = fit.model.wexog_singular_values
    tol = sv.max() * A.shape[1] * np.finfo(float).eps  # the tolerance of statsmodels' own rank
    rank = int((sv > tol).sum())
    if rank < p + 1:
        # the pseudo-inverse's slopes and errors are right for the identified columns; the others are NaN
        lost = _unidentified(A, rank, tol)
        params, bse = np.where(lost, np.nan, params), np.where(lost, np.nan, bse)
    if se == "hc3":
        leverage = ((A @ fit.normalized_cov_params) * A).sum(axis=1)  # diag of A (A'A)^+ A'
        reduced = _without_leverage_one(y, X, leverage, params, se, alpha)
        if reduced is not None:
            return reduced
    dof = int(max(n - rank, 1))
    tcrit = float(stats.t.ppf(1 - alpha / 2, dof))
    with np.errstate(divide="ignore", invalid="ignore"):
        pv = np.where(bse > 0, 2 * stats.t.sf(np.abs(params / bse), dof), np.nan)
    return OLSFit(params, bse, params - tcrit * bse, params + tcrit * bse, pv, n, dof, se)


def _unidentified(A: np.ndarray, rank: int, tol: float) -> np.ndarray:
    """Slopes (columns of ``A`` after the intercept) that a rank-deficient design does not identify.

    A column is identified when dropping it lowers the rank (it is not a
    combination of the others). The others get NaN, not the minimum-norm value
    that the pseudo-inverse picks (which depends on the columns' scaling and
    would pass for an estimate); identified slopes and their errors are the
    same whatever the unidentified columns are.
    """
    return np.array([np.linalg.matrix_rank(np.delete(A, j, axis=1), tol=tol) == rank for j in range(1, A.shape[1])])


def _without_leverage_one(y, X, h, params, se, alpha) -> OLSFit | None:
    """HC3 where some rows have leverage 1, or None when none has.

    HC3 divides each residual by ``1 - h``. A row with leverage ``h = 1`` (a
    regressor that is non-zero in that row alone, as a rare lever level in a
    small sweep) has residual 0, so it makes every standard error infinite or
    NaN, or, with ``1 - h`` a rounding error away from 0, gives that
    regressor an arbitrary error (a spurious p of 1e-9 was seen). Such a row is
    fit exactly whatever the other slopes are, so it carries no information
    about them: their slopes and HC3 errors are those of the other rows, and
    are computed there. A regressor that is constant on the other rows keeps
    its slope and gets a NaN error and p-value: it is not identified apart from
    those rows.
    """
    keep = h < 1 - 1e-8  # h: each row's leverage
    if keep.all():
        return None
    if keep.sum() < 3:
        nan = np.full(X.shape[1], np.nan)
        return OLSFit(params, nan, nan, nan, nan, len(y), 1, se)
    Xk = X[keep]
    cols = np.flatnonzero(Xk.std(axis=0) > 0)
    sub = ols(y[keep], Xk[:, cols], se=se, alpha=alpha)
    p = X.shape[1]
    bse, lo, hi, pv = (np.full(p, np.nan) for _ in range(4))
    bse[cols], lo[cols], hi[cols], pv[cols] = sub.std_error, sub.ci_low, sub.ci_high, sub.p_value
    out_params = params.copy()
    # a slope the other rows leave unidentified (NaN there) keeps the full fit's value, with no error
    out_params[cols] = np.where(np.isfinite(sub.params), sub.params, params[cols])
    return OLSFit(out_params, bse, lo, hi, pv, sub.n, sub.dof, se)


def adjust_pvalues(p: Sequence[float] | np.ndarray, method: str = DEFAULT_CORRECTION) -> np.ndarray:
    """Corrected p-values; NaN entries stay NaN and are not counted as tests."""
    check_correction(method)
    p = np.asarray(p, dtype=float)
    if method == "none" or len(p) == 0:
        return p.copy()
    from statsmodels.stats.multitest import multipletests

    out = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method=method)[1]
    return out


def weighted_ols(X: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """OLS slopes (with intercept) for every weight row of ``counts`` at once.

    The bootstrap's workhorse: the same least squares as :func:`ols`, point
    estimates only.

    Parameters
    ----------
    X : (n, p) array
    y : (n,) or (n, q) array
    counts : (B, n) array of nonnegative weights (bootstrap counts)

    Returns
    -------
    (B, p) or (B, p, q) array of slopes (the intercept is dropped).
    """
    y2 = y[:, None] if y.ndim == 1 else y
    n, p = X.shape
    # centre on the full-data means: the intercept absorbs the shift, conditioning improves
    F = np.column_stack([np.ones(n), X - X.mean(0), y2 - y2.mean(0)])  # (n, 1+p+q)
    k = F.shape[1]
    G = (counts @ (F[:, :, None] * F[:, None, :]).reshape(n, k * k)).reshape(-1, k, k)
    XtX, Xty = G[:, : p + 1, : p + 1], G[:, : p + 1, p + 1 :]
    try:
        beta = np.linalg.solve(XtX, Xty)
    except np.linalg.LinAlgError:  # a resample without variation in some column
        beta = np.linalg.pinv(XtX) @ Xty
    slopes = beta[:, 1:, :]
    return slopes[..., 0] if y.ndim == 1 else slopes
