"""Mediator and outcome measurements (DESIGN.md §2), batched over stacked models.

Device-side (batched over the R models of a :class:`ModelSet`):

* :func:`gradient_stability` — ``-|log10(||dL/da_1|| / ||dL/da_K||)|`` with
  ``a_k`` the pre-activations (linear outputs) of the first and last hidden
  layers, at initialization, on the training loss (batch statistics, no dropout).
* :func:`top_hessian_eigenvalue` — the top (algebraic) eigenvalue of the
  training loss's Hessian by Lanczos on Hessian-vector products (double
  backward): :data:`HESSIAN_ITERS` HVPs, one per Lanczos step, with full
  reorthogonalization, on the first :data:`HESSIAN_SUBSAMPLE` (64) training
  examples of each replica, whatever n_train (the draws are i.i.d., so this is
  a random subsample of one fixed size: the top eigenvalue of a mean over m
  examples grows as m shrinks, so a size that followed n_train would tie
  sharpness to data quantity; every n_train of the lever spaces is >= 64). The Krylov space after k HVPs contains the k-step
  power-iteration iterate, so the top Ritz value is never below the power
  iteration's Rayleigh quotient for the same start vector and HVP count, and an
  indefinite Hessian needs no shifted second pass.

Host-side (numpy, per run): :func:`bias_variance`, :func:`ece`,
:func:`test_metrics`, :func:`group_gap`, :func:`constant_loss`,
:func:`convergence`. There are no floors or caps: a value that cannot be
measured is NaN (``None`` in the row), e.g. the log of a non-positive estimate.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from runs_generator._data import model_seed
from runs_generator.models import embed_param, forward, param_shapes

__all__ = [
    "HESSIAN_ITERS",
    "HESSIAN_SUBSAMPLE",
    "HESSIAN_BASIS_BYTES",
    "GRADSTAB_SUBSAMPLE",
    "gradient_stability",
    "top_hessian_eigenvalue",
    "top_hessian_eigenvalue_steps",
    "lanczos_top_eigenvalue",
    "log10_or_nan",
    "bias_variance",
    "ece",
    "test_metrics",
    "group_gap",
    "constant_loss",
    "convergence",
]

#: Lanczos steps (one HVP each). Calibrated on 354 MLP/CNN models (mse, l1,
#: cross-entropy; init scales 0.5-2; at init and after 300 GD steps) against
#: 100-step Lanczos: median relative error 2e-7 (l1 alone 6e-3), and on no model
#: worse than the 20-step power iteration (+ shifted pass) it replaced.
HESSIAN_ITERS = 12
HESSIAN_SUBSAMPLE = 64
#: at most this many bytes of Lanczos bases at once (models x iters x parameters)
HESSIAN_BASIS_BYTES = 2**30
GRADSTAB_SUBSAMPLE = 512
STREAM_HESSIAN = 3
#: Lanczos breakdown: the reorthogonalized residual is below this many machine
#: epsilons times the largest ||H v|| seen (a model whose Krylov space is
#: exhausted has a residual of a few epsilons or less; genuine ones are far larger)
_BREAKDOWN_TOL = 64.0
ECE_BINS = 15


def log10_or_nan(x: np.ndarray | float) -> np.ndarray:
    """log10 of positive finite values; NaN (not a floor or a cap) for anything else."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x) & (x > 0)
    return np.where(ok, np.log10(np.where(ok, x, 1.0)), np.nan)


def _subsample(ms, m: int):
    n = min(m, ms.x.shape[1])
    counts = ms.n_train.clamp(max=n)
    return ms.x[:, :n], ms.y[:, :n], ms.rowmask(counts, n)


def gradient_stability(ms, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-model ``-|log10(||dL/da_1|| / ||dL/da_K||)|``, shape (R,).

    NaN when depth is 1 (the first and last hidden layers are the same layer:
    nothing to compare) or where a norm is zero or non-finite.
    """
    if ms.spec.depth == 1:
        return torch.full((ms.r,), float("nan"), device=ms.device, dtype=ms.dtype)
    x, y, mask = _subsample(ms, GRADSTAB_SUBSAMPLE)
    with torch.enable_grad():
        p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        pre: list[torch.Tensor] = []
        out = forward(ms.spec, p, x, mode="batchstat", residual=ms.residual, rowmask=mask, preacts=pre)
        loss = ms.objective(out, y, mask).sum()
        g1, gk = torch.autograd.grad(loss, [pre[0], pre[-1]])
    n1 = g1.flatten(1).norm(dim=1)
    nk = gk.flatten(1).norm(dim=1)
    gs = -torch.log10(n1 / nk).abs()
    return torch.where(torch.isfinite(gs), gs, torch.full_like(gs, float("nan")))


def top_hessian_eigenvalue(ms, params: dict[str, torch.Tensor], iters: int = HESSIAN_ITERS) -> torch.Tensor:
    """Per-model top (algebraic) Hessian eigenvalue of the training loss, shape (R,).

    Lanczos on Hessian-vector products (double backward), ``iters`` HVPs in
    all, one per step, for the R stacked models at once. Each model keeps its
    own Lanczos basis (fully reorthogonalized, classical Gram-Schmidt twice)
    and tridiagonal matrix; the estimate is the top Ritz value, the largest
    eigenvalue of that tridiagonal matrix (``eigvalsh`` in float64 on the CPU).

    After ``k`` HVPs the Krylov space ``span{v, Hv, ..., H^(k-1) v}`` contains
    the ``k``-step power-iteration iterate, so (in exact arithmetic) the top Ritz
    value is never below the power-iteration Rayleigh quotient for the same
    start vector and number of HVPs, and never above the top eigenvalue. It
    is the top *algebraic* eigenvalue also where the Hessian is indefinite and
    its largest-magnitude eigenvalue is negative (e.g. under an L1 loss), with
    no shifted second pass.

    The start vector of each model comes from its own seed and every quantity
    is per model, so a model's value does not depend on the other models it is
    stacked with. Where a model's Krylov space is exhausted (the new Lanczos
    vector vanishes: fewer parameters than ``iters``, a zero Hessian) its
    tridiagonal matrix stops growing there. A model with non-finite
    parameters or Hessian-vector products gets NaN; the other models are
    unaffected.

    Memory: each model's basis is ``iters`` copies of its parameters; models
    whose bases together would exceed :data:`HESSIAN_BASIS_BYTES` are measured
    in groups (same values, more passes).
    """
    return run_to_end(top_hessian_eigenvalue_steps(ms, params, iters))


def top_hessian_eigenvalue_steps(ms, params: dict[str, torch.Tensor],
                                 iters: int = HESSIAN_ITERS) -> Generator[None, None, torch.Tensor]:
    """:func:`top_hessian_eigenvalue` as a generator that yields after every Hessian-vector product.

    The batched engine interleaves it with other chunks' training steps
    (:func:`runs_generator._trainer.train_steps`), so that on CUDA one chunk's measurement does not
    leave the other chunks' streams without work; the values are the same.
    """
    k = max(1, int(iters))
    n_params = sum(t[0].numel() for t in params.values())
    per_model = max(1, HESSIAN_BASIS_BYTES // (k * n_params * ms.x.element_size()))
    if ms.r > per_model:  # the models are independent: measure them in groups (same values)
        parts = []
        for lo in range(0, ms.r, per_model):
            idx = list(range(lo, min(ms.r, lo + per_model)))
            sub = {n: t[lo : lo + len(idx)] for n, t in params.items()}
            parts.append((yield from _top_eigenvalue(ms.subset(idx), sub, k)))
        return torch.cat(parts)
    return (yield from _top_eigenvalue(ms, params, k))


def run_to_end(steps: Generator[None, None, Any]) -> Any:
    """Drive a generator of this module (or of the engine) to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def _top_eigenvalue(ms, params: dict[str, torch.Tensor], k: int) -> Generator[None, None, torch.Tensor]:
    x, y, mask = _subsample(ms, HESSIAN_SUBSAMPLE)
    names = list(params)
    with torch.enable_grad():
        p = [params[n].detach().requires_grad_(True) for n in names]
        out = forward(ms.spec, dict(zip(names, p)), x, mode="batchstat", residual=ms.residual, rowmask=mask)
        loss = ms.objective(out, y, mask).sum()
    return (yield from lanczos_steps(loss, p, _start_vectors(ms, p), k))


def lanczos_top_eigenvalue(loss: torch.Tensor, p: list[torch.Tensor], start: list[torch.Tensor],
                           k: int) -> torch.Tensor:
    """Top Ritz value (R,) of each model's Hessian of ``loss`` after ``k`` Lanczos steps (one HVP each).

    ``loss`` is the sum over the R stacked models of each model's objective,
    built from the leaves ``p`` (each (R, ...), ``requires_grad``); ``start``
    holds each model's unit start vector, split like ``p``. See
    :func:`top_hessian_eigenvalue` for the method.
    """
    return run_to_end(lanczos_steps(loss, p, start, k))


def lanczos_steps(loss: torch.Tensor, p: list[torch.Tensor], start: list[torch.Tensor],
                  k: int) -> Generator[None, None, torch.Tensor]:
    """:func:`lanczos_top_eigenvalue` as a generator that yields after each Hessian-vector product.

    It yields outside its ``torch.enable_grad()`` blocks, so code run between its steps sees the
    caller's grad mode.
    """
    r = p[0].shape[0]
    device, dtype = p[0].device, p[0].dtype
    with torch.enable_grad():
        grads = torch.autograd.grad(loss, p, create_graph=True)

    def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
        with torch.enable_grad():
            return list(torch.autograd.grad(grads, p, grad_outputs=v, retain_graph=True))

    # the Lanczos basis of every model, flat: basis[r, j] is model r's v_j
    shapes = [t.shape[1:] for t in p]
    sizes = [t[0].numel() for t in p]
    basis = torch.zeros(r, k, sum(sizes), device=device, dtype=dtype)
    basis[:, 0] = torch.cat([t.detach().reshape(r, -1) for t in start], dim=1)
    alpha = torch.zeros(r, k, device=device, dtype=dtype)
    beta = torch.zeros(r, k, device=device, dtype=dtype)  # beta[:, j] couples v_j and v_j+1
    steps = torch.full((r,), k, device=device, dtype=torch.int64)  # valid steps m_r of each model
    active = torch.ones(r, device=device, dtype=torch.bool)
    scale = torch.zeros(r, device=device, dtype=dtype)  # max ||H v_j||: the breakdown yardstick
    tol = _BREAKDOWN_TOL * torch.finfo(dtype).eps
    for j in range(k):
        with torch.no_grad():
            v = [part.view(r, *shape) for part, shape in zip(basis[:, j].split(sizes, dim=1), shapes)]
        w = torch.cat([h.detach().reshape(r, -1) for h in hvp(v)], dim=1)  # (R, N)
        with torch.no_grad():
            scale = torch.maximum(scale, w.norm(dim=1))
            alpha[:, j] = (basis[:, j] * w).sum(dim=1)
            if j == k - 1:
                break
            # full reorthogonalization against v_0..v_j, classical Gram-Schmidt twice
            # (it includes the three-term recurrence's alpha_j v_j + beta_j-1 v_j-1)
            vj = basis[:, : j + 1]
            w = w.unsqueeze(1)  # (R, 1, N)
            for _ in range(2):
                c = torch.bmm(w, vj.transpose(1, 2))  # (R, 1, j + 1)
                w = torch.baddbmm(w, c, vj, alpha=-1.0)
            w = w.squeeze(1)
            bj = w.norm(dim=1)
            # breakdown: the Krylov space is invariant (to rounding), so the model's
            # tridiagonal matrix ends at step j; its later Lanczos vectors are zero
            stop = active & (bj <= tol * scale)
            steps = torch.where(stop, torch.full_like(steps, j + 1), steps)
            active = active & ~stop
            bj = torch.where(active, bj, torch.zeros_like(bj))
            beta[:, j] = bj
            inv = torch.where(active, 1.0 / torch.where(active, bj, torch.ones_like(bj)), torch.zeros_like(bj))
            basis[:, j + 1] = w * inv.unsqueeze(1)
        yield
    return _top_ritz(alpha, beta, steps).to(device=device, dtype=dtype)


def _top_ritz(alpha: torch.Tensor, beta: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """Largest eigenvalue of each model's leading ``steps[r]`` x ``steps[r]`` tridiagonal block.

    ``alpha`` (R, k) diagonal, ``beta`` (R, k) off-diagonal (``beta[:, j]``
    couples steps j and j + 1). NaN for a model with a non-finite entry.
    """
    a = alpha.detach().to("cpu", torch.float64)
    b = beta.detach().to("cpu", torch.float64)[:, :-1]
    m = steps.cpu()
    valid = torch.arange(a.shape[1]).unsqueeze(0) < m.unsqueeze(1)  # (R, k): steps inside the block
    finite = (torch.isfinite(a) | ~valid).all(1) & (torch.isfinite(b) | ~valid[:, 1:]).all(1)
    a = torch.where(valid, a, torch.zeros_like(a))
    b = torch.where(valid[:, 1:], b, torch.zeros_like(b))
    t = torch.diag_embed(a) + torch.diag_embed(b, offset=1) + torch.diag_embed(b, offset=-1)
    t = torch.where(finite.view(-1, 1, 1), t, torch.zeros_like(t))
    top = torch.full((t.shape[0],), float("nan"), dtype=torch.float64)
    for mm in m.unique().tolist():
        sel = m == mm
        top[sel] = torch.linalg.eigvalsh(t[sel, :mm, :mm])[:, -1]
    return torch.where(finite, top, torch.full_like(top, float("nan")))


def _start_vectors(ms, p: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each model's unit start vector, drawn in its own shape (a padded model's extra units get 0)."""
    per = []
    names = list(param_shapes(ms.spec)) if ms.spec.units is not None else None
    for i in range(ms.r):
        c = ms.configs[ms.run_of_model[i]]
        g = torch.Generator().manual_seed(model_seed(c.seed, ms.replica[i], STREAM_HESSIAN))
        if names is None:
            per.append([torch.randn(t.shape[1:], generator=g, dtype=torch.float64) for t in p])
            continue
        own = ms.spec.alone(i)  # padded: drawn in the model's own shapes (params are in param_shapes order)
        shapes = param_shapes(own)
        per.append([embed_param(ms.spec, n, own, torch.randn(shapes[n], generator=g, dtype=torch.float64))
                    for n in names])
    v = [torch.stack([m[j] for m in per]).to(device=ms.device, dtype=ms.dtype) for j in range(len(p))]
    norm = torch.sqrt(sum(t.pow(2).flatten(1).sum(1) for t in v))
    return [t / norm.view(-1, *([1] * (t.dim() - 1))) for t in v]


def bias_variance(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Unbiased bias² and variance of K replica predictions on a shared test set.

    Parameters
    ----------
    pred : (K, n, C) predictions (class probabilities, or regression outputs)
    target : (n, C) one-hot clean labels or noise-free targets

    Returns
    -------
    bias_sq : mean over inputs of ||ensemble mean - target||² (summed over C)
        minus variance / K. The ensemble mean of K replicas carries variance / K
        of its own, so the raw squared error overstates bias² by that much; the
        corrected estimate is unbiased and can be <= 0 when the bias is below
        the replicas' noise (then ``log10`` of it is undefined and the row's
        ``bias_sq`` is null).
    variance : mean over inputs of the across-replica variance (ddof=1, summed
        over C); NaN with K = 1.
    """
    k = pred.shape[0]
    mean = pred.mean(axis=0)
    raw = float(((mean - target) ** 2).sum(axis=-1).mean())
    if k < 2:
        return float("nan"), float("nan")
    variance = float(pred.var(axis=0, ddof=1).sum(axis=-1).mean())
    return raw - variance / k, variance


def ece(prob: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of (n, C) probabilities against (n,) labels."""
    conf = prob.max(axis=1)
    correct = (prob.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(total)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def test_metrics(out: np.ndarray, data, classification: bool) -> dict[str, float]:
    """Outcomes of one run from its replicas' in-distribution test outputs ``out`` (K, n_test, C).

    The outputs must be finite (a diverged run has no outcomes). A
    classifier's prediction is its softmax probability vector (the vector its
    loss acts on, also under the Brier score): accuracy, error, ECE and bias² /
    variance against the clean labels; test loss = cross-entropy on the noisy
    labels. Regression: R² and normalized MSE (``1 - R²``) against the
    noise-free targets, bias² / variance of the outputs; test loss = MSE (mean
    over outputs) on the noisy targets. Every value is a replica mean (bias²
    and variance are across replicas).
    """
    k, n, c = out.shape
    res: dict[str, float] = {}
    if classification:
        logp = _log_softmax(out)
        prob = np.exp(logp)
        labels = np.asarray(data.y_test)
        res["bias_sq"], res["variance"] = bias_variance(prob, np.eye(c)[labels])
        err = 1.0 - (prob.argmax(-1) == labels).mean(axis=1)  # (K,)
        noisy = np.asarray(data.y_test_noisy)
        res["test_loss"] = float(-logp[:, np.arange(n), noisy].mean())
        res["test_error"] = float(err.mean())
        res["generalization"] = 1.0 - res["test_error"]
        res["ece"] = float(np.mean([ece(prob[i], labels) for i in range(k)]))
    else:
        target = np.asarray(data.y_test, dtype=np.float64).reshape(n, c)
        res["bias_sq"], res["variance"] = bias_variance(out, target)
        var_y = float(((target - target.mean(0)) ** 2).sum(-1).mean())
        nmse = ((out - target) ** 2).sum(-1).mean(axis=1) / var_y  # (K,)
        noisy = np.asarray(data.y_test_noisy, dtype=np.float64).reshape(n, c)
        res["test_loss"] = float(((out - noisy) ** 2).mean())
        res["test_error"] = float(nmse.mean())
        res["generalization"] = float((1.0 - nmse).mean())
        res["ece"] = float("nan")
    return res


def group_gap(out: np.ndarray, data, classification: bool) -> float:
    """``deployment_risk``: worst-group minus best-group test error on the group-balanced test set.

    ``out`` (K, n_groups, C) are the replicas' outputs on ``data.x_groups``;
    the error is the error rate (classes) or the MSE normalized by the
    target variance (regression); the gap is a replica mean.
    """
    groups = np.asarray(data.groups)
    if classification:
        err = (out.argmax(-1) != np.asarray(data.y_groups)).astype(np.float64)  # (K, n)
    else:
        target = np.asarray(data.y_groups, dtype=np.float64).reshape(out.shape[1], -1)
        var_y = float(((target - target.mean(0)) ** 2).sum(-1).mean())
        err = ((out - target) ** 2).sum(-1) / var_y
    gaps = []
    for e in err:
        means = [e[groups == g].mean() for g in np.unique(groups)]
        gaps.append(max(means) - min(means))
    return float(np.mean(gaps))


def constant_loss(y: np.ndarray, classification: bool, n_outputs: int) -> float:
    """Evaluation loss of the best constant predictor on training targets ``y``.

    Classes: cross-entropy of predicting the training label frequencies (their
    entropy, in nats). Regression: MSE (mean over outputs) of predicting the
    training mean (the targets' variance).
    """
    y = np.asarray(y)
    if classification:
        freq = np.bincount(y.astype(np.int64), minlength=n_outputs) / len(y)
        freq = freq[freq > 0]
        return float(-(freq * np.log(freq)).sum())
    y = y.reshape(len(y), -1).astype(np.float64)
    return float(y.var(axis=0).mean())


def convergence(final: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """``-log10(final training loss / best-constant loss)``, both in the evaluation loss; NaN if undefined."""
    with np.errstate(all="ignore"):
        return -log10_or_nan(np.asarray(final, np.float64) / np.asarray(constant, np.float64))
