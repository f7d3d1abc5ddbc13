"""From trained stacked models to one :class:`RunMetrics` per run (both engines)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from runs_generator import measure
from runs_generator._modelset import ModelSet
from runs_generator.models import count_params, forward
from runs_generator.spec import RunMetrics

__all__ = ["TrainStats", "full_train_loss", "finalize"]

EXPLODE_FACTOR = 1e3  # final/initial training loss above this counts as diverged


@dataclass
class TrainStats:
    """What training recorded per model, each (R,) on the device."""

    loss_initial: torch.Tensor  # training objective at init (batch statistics)
    grad_stability: torch.Tensor  # at init
    grad_sq_mean: torch.Tensor  # mean over steps of ||grad L_batch||²
    nonfinite: torch.Tensor  # bool: a non-finite minibatch loss was seen
    wall_time_s: float  # training wall time of the whole model set


@torch.no_grad()
def full_train_loss(ms: ModelSet, params, running, *, eval_mode: bool = False) -> torch.Tensor:
    """Training objective (batch statistics) or evaluation loss (running statistics), (R,)."""
    mask = ms.rowmask(ms.n_train, ms.x.shape[1])
    mode = "eval" if eval_mode else "batchstat"
    out = forward(ms.spec, params, ms.x, mode=mode, running=running, residual=ms.residual, rowmask=mask)
    return ms.eval_loss(out, ms.y, mask) if eval_mode else ms.objective(out, ms.y, mask)


def finalize(ms: ModelSet, params, running, stats: TrainStats, t_start: float) -> list[RunMetrics]:
    """Measure the trained models and reduce replicas to one RunMetrics per run."""
    import time

    loss_final = full_train_loss(ms, params, running)
    train_eval = full_train_loss(ms, params, running, eval_mode=True)
    eig = measure.top_hessian_eigenvalue(ms, params)
    with torch.no_grad():
        test_out = forward(ms.spec, params, ms.x_test, mode="eval", running=running, residual=ms.residual)
    to_np = lambda t: t.detach().to("cpu", torch.float64).numpy()  # noqa: E731
    li, lf, te = to_np(stats.loss_initial), to_np(loss_final), to_np(train_eval)
    gs, g2, eg = to_np(stats.grad_stability), to_np(stats.grad_sq_mean), to_np(eig)
    nonfinite = stats.nonfinite.cpu().numpy()
    test_np = to_np(test_out)
    lr = to_np(ms.lr)
    with np.errstate(all="ignore"):
        diverged = nonfinite | ~np.isfinite(lf) | (lf > EXPLODE_FACTOR * li) | ~np.isfinite(li)
    n_params = count_params(ms.spec)
    wall = (time.perf_counter() - t_start) / max(1, len(ms.configs))
    results = []
    run_of = np.asarray(ms.run_of_model)
    for j, (cfg, data) in enumerate(zip(ms.configs, ms.datas)):
        sel = np.flatnonzero(run_of == j)
        n_test = data.x_test.shape[0]
        tm = measure.test_metrics(test_np[sel, :n_test], data, ms.classification)
        conv = measure.convergence(li[sel], lf[sel])
        train_eval_j = np.where(np.isfinite(te[sel]), te[sel], measure.LOSS_CAP).clip(max=measure.LOSS_CAP)
        imp = measure.safe_log10(lr[sel] / 4.0 * g2[sel])
        sharp = measure.safe_log10(eg[sel])
        results.append(
            RunMetrics(
                n_params=n_params,
                gradient_stability=float(gs[sel].mean()),
                sharpness=float(sharp.mean()),
                implicit_reg=float(imp.mean()),
                bias_sq=float(measure.safe_log10(tm["bias_sq"])),
                variance=float(measure.safe_log10(tm["variance"])),
                convergence=float(conv.mean()),
                diverged=bool(diverged[sel].any()),
                generalization=float(tm["generalization"]),
                test_loss=float(tm["test_loss"]),
                test_error=float(tm["test_error"]),
                gen_gap=float(tm["test_loss"] - train_eval_j.mean()),
                deployment_risk=tm["deployment_risk"],
                ece=tm["ece"],
                train_loss_initial=float(_finite(li[sel]).mean()),
                train_loss_final=float(_finite(lf[sel]).mean()),
                wall_time_s=float(wall),
                extra={
                    "gradient_stability_std": float(gs[sel].std()),
                    "sharpness_std": float(sharp.std()),
                    "convergence_std": float(conv.std()),
                    "top_eigenvalue_lr": float(np.nan_to_num(eg[sel] * lr[sel], nan=measure.LOG_CAP, posinf=measure.LOG_CAP, neginf=-measure.LOG_CAP).mean()),
                    "train_losses_final": [float(v) for v in lf[sel]],
                },
            )
        )
    return results


def _finite(x: np.ndarray) -> np.ndarray:
    return np.clip(np.where(np.isfinite(x), x, measure.LOG_CAP), -measure.LOG_CAP, measure.LOG_CAP)
