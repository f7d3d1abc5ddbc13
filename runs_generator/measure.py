"""Mediator and outcome measurements (DESIGN.md §2), batched over stacked models.

Device-side (batched over the R models of a :class:`ModelSet`):

* :func:`gradient_stability` — ``-|log10(||dL/da_1|| / ||dL/da_K||)|`` with
  ``a_k`` the pre-activations (linear outputs) of the first and last hidden
  layers, at initialization, on the training loss (batch statistics, no dropout).
* :func:`top_hessian_eigenvalue` — power iteration on Hessian-vector products
  (double backward) of the training loss, :data:`HESSIAN_ITERS` iterations on
  the first :data:`HESSIAN_SUBSAMPLE` training examples of each replica (the
  draws are i.i.d., so this is a random subsample; documented cost control).

Host-side (numpy, per run): :func:`bias_variance`, :func:`ece`,
:func:`test_metrics`. Metric floors and caps (:data:`LOG_FLOOR`,
:data:`CONVERGENCE_RANGE`, ...) keep diverged runs finite.
"""

from __future__ import annotations

import numpy as np
import torch

from runs_generator._data import model_seed
from runs_generator.models import forward

__all__ = [
    "HESSIAN_ITERS",
    "HESSIAN_SUBSAMPLE",
    "GRADSTAB_SUBSAMPLE",
    "LOG_FLOOR",
    "LOSS_CAP",
    "gradient_stability",
    "top_hessian_eigenvalue",
    "safe_log10",
    "bias_variance",
    "ece",
    "test_metrics",
]

HESSIAN_ITERS = 20
HESSIAN_SUBSAMPLE = 256
GRADSTAB_SUBSAMPLE = 512
STREAM_HESSIAN = 3
LOG_FLOOR = 1e-8  # floor of every log10'd quantity
LOG_CAP = 1e8
#: cap of every loss-scale outcome (test loss, test error, train loss in gen_gap,
#: deployment risk) so that diverged runs stay finite *and* moderate: a 1e8 cap made
#: gen_gap of a diverged run -1e8, which dominates any regression on the column.
LOSS_CAP = 100.0
CONVERGENCE_RANGE = (-3.0, 6.0)
GRADSTAB_FLOOR = -6.0
ECE_BINS = 15


def safe_log10(x: np.ndarray | float) -> np.ndarray:
    """log10 with the floor/cap applied and non-finite values sent to the cap."""
    x = np.asarray(x, dtype=np.float64)
    x = np.where(np.isfinite(x), x, LOG_CAP)
    return np.log10(np.clip(x, LOG_FLOOR, LOG_CAP))


def _subsample(ms, m: int):
    n = min(m, ms.x.shape[1])
    counts = ms.n_train.clamp(max=n)
    return ms.x[:, :n], ms.y[:, :n], ms.rowmask(counts, n)


def gradient_stability(ms, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-model ``-|log10(||dL/da_1|| / ||dL/da_K||)|``, shape (R,); 0 when depth is 1."""
    if ms.spec.depth == 1:
        return torch.zeros(ms.r, device=ms.device, dtype=ms.dtype)
    x, y, mask = _subsample(ms, GRADSTAB_SUBSAMPLE)
    with torch.enable_grad():
        p = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        pre: list[torch.Tensor] = []
        out = forward(ms.spec, p, x, mode="batchstat", residual=ms.residual, rowmask=mask, preacts=pre)
        loss = ms.objective(out, y, mask).sum()
        g1, gk = torch.autograd.grad(loss, [pre[0], pre[-1]])
    n1 = g1.flatten(1).norm(dim=1)
    nk = gk.flatten(1).norm(dim=1)
    ratio = torch.log10(n1.clamp_min(1e-30) / nk.clamp_min(1e-30))
    gs = -ratio.abs()
    return torch.where(torch.isfinite(gs), gs, torch.full_like(gs, GRADSTAB_FLOOR)).clamp_min(GRADSTAB_FLOOR)


def top_hessian_eigenvalue(ms, params: dict[str, torch.Tensor], iters: int = HESSIAN_ITERS) -> torch.Tensor:
    """Per-model top Hessian eigenvalue of the training loss (power iteration), (R,).

    The start vector of each model comes from its own seed, so a model's value
    does not depend on the other models it is stacked with.
    """
    x, y, mask = _subsample(ms, HESSIAN_SUBSAMPLE)
    names = list(params)
    with torch.enable_grad():
        p = [params[k].detach().requires_grad_(True) for k in names]
        out = forward(ms.spec, dict(zip(names, p)), x, mode="batchstat", residual=ms.residual, rowmask=mask)
        loss = ms.objective(out, y, mask).sum()
        grads = torch.autograd.grad(loss, p, create_graph=True)

        def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
            return list(torch.autograd.grad(grads, p, grad_outputs=v, retain_graph=True))

        def power(v: list[torch.Tensor], shift: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
            # power iteration on (H - shift I); returns the Rayleigh quotient of H itself
            lam = torch.zeros(ms.r, device=ms.device, dtype=ms.dtype)
            for _ in range(iters):
                hv = hvp(v)
                lam = sum((a * b).flatten(1).sum(1) for a, b in zip(v, hv))  # v^T H v, v unit
                hv = [h - _bcast(shift, h) * a for h, a in zip(hv, v)]
                norm = torch.sqrt(sum(h.pow(2).flatten(1).sum(1) for h in hv)).clamp_min(1e-30)
                v = [h.detach() / _bcast(norm, h) for h in hv]
            return lam, v

        zero = torch.zeros(ms.r, device=ms.device, dtype=ms.dtype)
        lam, _ = power(_start_vectors(ms, p), zero)
        # Power iteration finds the eigenvalue of largest |value|. Where that one is
        # negative (an indefinite Hessian, e.g. under an L1 loss), a second pass on
        # H - lam I (positive semi-definite there) finds the top *algebraic* eigenvalue.
        neg = lam < 0
        if bool(neg.any()):
            lam2, _ = power(_start_vectors(ms, p), torch.where(neg, lam, zero))
            lam = torch.where(neg, lam2, lam)
    return lam.detach()


def _bcast(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-model values (R,) shaped to broadcast against a stacked tensor (R, ...)."""
    return x.view(-1, *([1] * (like.dim() - 1)))


def _start_vectors(ms, p: list[torch.Tensor]) -> list[torch.Tensor]:
    per = []
    for i in range(ms.r):
        c = ms.configs[ms.run_of_model[i]]
        g = torch.Generator().manual_seed(model_seed(c.seed, ms.replica[i], STREAM_HESSIAN))
        per.append([torch.randn(t.shape[1:], generator=g, dtype=torch.float64) for t in p])
    v = [torch.stack([m[j] for m in per]).to(device=ms.device, dtype=ms.dtype) for j in range(len(p))]
    norm = torch.sqrt(sum(t.pow(2).flatten(1).sum(1) for t in v))
    return [t / norm.view(-1, *([1] * (t.dim() - 1))) for t in v]


def bias_variance(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Bias² and variance of K replica predictions on a shared test set.

    Parameters
    ----------
    pred : (K, n, C) predictions (class probabilities, or regression outputs)
    target : (n, C) one-hot clean labels or noise-free targets

    Returns
    -------
    bias_sq : mean over inputs of ||ensemble mean - target||² (summed over C)
    variance : mean over inputs of the across-replica variance (ddof=1, summed
        over C); with K = 1 the variance is 0.
    """
    mean = pred.mean(axis=0)
    bias_sq = float(((mean - target) ** 2).sum(axis=-1).mean())
    k = pred.shape[0]
    variance = float(pred.var(axis=0, ddof=1).sum(axis=-1).mean()) if k > 1 else 0.0
    return bias_sq, variance


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


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def test_metrics(out: np.ndarray, data, classification: bool) -> dict[str, float | None]:
    """Outcomes of one run from its replicas' test outputs ``out`` (K, n_test, C).

    Non-finite outputs (diverged replicas) count as uninformative predictions
    (uniform probabilities; zero regression output). Classification: accuracy,
    error and ECE against the clean labels, loss = cross-entropy on the noisy
    labels. Regression: R² and normalized MSE (``1 - R²``) against the
    noise-free targets, loss = MSE on the noisy targets.
    """
    k, n, c = out.shape
    groups = data.group_test
    res: dict[str, float | None] = {}
    if classification:
        out = np.where(np.isfinite(out), out, 0.0)
        prob = _softmax(out)
        labels = np.asarray(data.y_test)
        onehot = np.eye(c)[labels]
        res["bias_sq"], res["variance"] = bias_variance(prob, onehot)
        correct = prob.argmax(-1) == labels  # (K, n)
        err = 1.0 - correct.mean(axis=1)
        noisy = np.asarray(data.y_test_noisy)
        logp = np.log(np.clip(prob[:, np.arange(n), noisy], 1e-12, None))
        res["test_loss"] = float(min(-logp.mean(), LOSS_CAP))
        res["test_error"] = float(err.mean())
        res["generalization"] = 1.0 - res["test_error"]
        res["ece"] = float(np.mean([ece(prob[i], labels) for i in range(k)]))
        if groups is not None:
            risk = [_group_gap(1.0 - correct[i], groups) for i in range(k)]
            res["deployment_risk"] = float(np.mean(risk))
        else:
            res["deployment_risk"] = None
    else:
        out = np.clip(np.where(np.isfinite(out), out, 0.0), -LOG_CAP, LOG_CAP)
        target = np.asarray(data.y_test, dtype=np.float64).reshape(n, c)
        res["bias_sq"], res["variance"] = bias_variance(out, target)
        var_y = float(((target - target.mean(0)) ** 2).sum(-1).mean()) or 1.0
        se = ((out - target) ** 2).sum(-1)  # (K, n)
        nmse = se.mean(axis=1) / var_y
        noisy = np.asarray(data.y_test_noisy, dtype=np.float64).reshape(n, c)
        res["test_loss"] = float(min(((out - noisy) ** 2).mean(), LOSS_CAP))
        res["test_error"] = float(min(nmse.mean(), LOSS_CAP))
        res["generalization"] = float(np.clip(1.0 - nmse, -1.0, 1.0).mean())
        res["ece"] = None
        if groups is not None:
            risk = [_group_gap(se[i] / var_y, groups) for i in range(k)]
            res["deployment_risk"] = float(min(np.mean(risk), LOSS_CAP))
        else:
            res["deployment_risk"] = None
    return res


def _group_gap(err: np.ndarray, groups: np.ndarray) -> float:
    means = [err[groups == g].mean() for g in np.unique(groups)]
    return float(max(means) - min(means)) if len(means) > 1 else 0.0


def convergence(initial: np.ndarray, final: np.ndarray) -> np.ndarray:
    """``-log10(final / initial)``, non-finite or out-of-range values capped."""
    with np.errstate(all="ignore"):
        c = -np.log10(np.asarray(final, np.float64) / np.asarray(initial, np.float64))
    c = np.where(np.isfinite(c), c, CONVERGENCE_RANGE[0])
    return np.clip(c, *CONVERGENCE_RANGE)

