"""From trained stacked models to one :class:`RunMetrics` per run (both engines)."""

from __future__ import annotations

from collections.abc import Generator
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
    grad_stability: torch.Tensor  # at init (NaN where undefined)
    implicit: torch.Tensor  # mean over the implicit_reg window of h ||grad L_batch||^2
    diverged_step: torch.Tensor  # int64: first step (1-based) with a non-finite or exploding loss, -1 if none
    wall_time_s: float  # training wall time of the whole model set


@torch.no_grad()
def full_train_loss(ms: ModelSet, params, running, *, eval_mode: bool = False) -> torch.Tensor:
    """Training objective (batch statistics) or evaluation loss (running statistics), (R,)."""
    mask = ms.rowmask(ms.n_train, ms.x.shape[1])
    mode = "eval" if eval_mode else "batchstat"
    out = forward(ms.spec, params, ms.x, mode=mode, running=running, residual=ms.residual, rowmask=mask)
    return ms.eval_loss(out, ms.y, mask) if eval_mode else ms.objective(out, ms.y, mask)


def _mean_or_none(values: np.ndarray) -> float | None:
    """Replica mean, or None when any replica's value is undefined (NaN / non-finite)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size and np.isfinite(values).all() else None


def finalize(ms: ModelSet, params, running, stats: TrainStats, t_start: float) -> list[RunMetrics]:
    """Measure the trained models and reduce replicas to one RunMetrics per run (see :func:`finalize_steps`)."""
    return measure.run_to_end(finalize_steps(ms, params, running, stats, t_start))


def finalize_steps(ms: ModelSet, params, running, stats: TrainStats,
                   t_start: float) -> Generator[None, None, list[RunMetrics]]:
    """Measure the trained models and reduce replicas to one RunMetrics per run.

    A generator that yields after each Hessian-vector product of the sharpness measurement
    (:func:`runs_generator.measure.top_hessian_eigenvalue_steps`), so that the engine can run other
    chunks' training steps in between; it returns the metrics.

    A run is diverged when any replica saw a non-finite minibatch loss or one
    above :data:`EXPLODE_FACTOR` x its initial training loss, or ends with a
    non-finite or exploded training loss or non-finite test outputs. A
    diverged run keeps ``gradient_stability`` (measured at initialization) and
    gets ``None`` for every post-training mediator and outcome: they are not
    defined for a model whose weights or outputs blew up.
    """
    import time

    loss_final = full_train_loss(ms, params, running)
    train_eval = full_train_loss(ms, params, running, eval_mode=True)
    eig = yield from measure.top_hessian_eigenvalue_steps(ms, params)
    with torch.no_grad():
        test_out = forward(ms.spec, params, ms.x_test, mode="eval", running=running, residual=ms.residual)
        group_out = None
        if ms.x_groups is not None:
            group_out = forward(ms.spec, params, ms.x_groups, mode="eval", running=running, residual=ms.residual)
    to_np = lambda t: t.detach().to("cpu", torch.float64).numpy()  # noqa: E731
    li, lf, te = to_np(stats.loss_initial), to_np(loss_final), to_np(train_eval)
    gs, imp, eg = to_np(stats.grad_stability), to_np(stats.implicit), to_np(eig)
    bad_step = stats.diverged_step.cpu().numpy()
    test_np = to_np(test_out)
    group_np = to_np(group_out) if group_out is not None else None
    lr = to_np(ms.lr)
    with np.errstate(all="ignore"):
        finite_out = np.isfinite(test_np.reshape(ms.r, -1)).all(axis=1)
        diverged = (bad_step > 0) | ~np.isfinite(lf) | ~np.isfinite(te) | ~np.isfinite(li) | ~finite_out
        diverged |= lf > EXPLODE_FACTOR * li
    wall = (time.perf_counter() - t_start) / max(1, len(ms.configs))
    results = []
    run_of = np.asarray(ms.run_of_model)
    for j, (cfg, data) in enumerate(zip(ms.configs, ms.datas)):
        sel = np.flatnonzero(run_of == j)
        div = bool(diverged[sel].any())
        steps_bad = bad_step[sel][bad_step[sel] > 0]
        # the first step at which a replica diverged; the step count when only the final loss showed it
        div_step = int(steps_bad.min()) if steps_bad.size else (int(cfg.steps) if div else None)
        common = dict(n_params=count_params(ms.spec.alone(int(sel[0]))), gradient_stability=_mean_or_none(gs[sel]), diverged=div,
                      diverged_step=div_step, train_loss_initial=_mean_or_none(li[sel]), wall_time_s=float(wall))
        if div:
            results.append(RunMetrics(
                **common, sharpness=None, implicit_reg=None, bias_sq=None, variance=None, convergence=None,
                generalization=None, test_loss=None, test_error=None, gen_gap=None, deployment_risk=None, ece=None,
                train_loss_final=None, extra={"train_losses_final": [float(v) for v in lf[sel]]},
            ))
            continue
        n_test = data.x_test.shape[0]
        tm = measure.test_metrics(test_np[sel, :n_test], data, ms.classification)
        const = np.array([measure.constant_loss(data.y_train[k], ms.classification, data.n_outputs)
                          for k in range(len(sel))])
        conv = measure.convergence(te[sel], const)
        sharp = measure.log10_or_nan(eg[sel])
        risk = None
        if group_np is not None and data.groups is not None:
            risk = measure.group_gap(group_np[sel, : data.x_groups.shape[0]], data, ms.classification)
        results.append(RunMetrics(
            **common,
            sharpness=_mean_or_none(sharp),
            implicit_reg=_mean_or_none(measure.log10_or_nan(imp[sel] / 4.0)),
            bias_sq=_mean_or_none(measure.log10_or_nan(tm["bias_sq"])),
            variance=_mean_or_none(measure.log10_or_nan(tm["variance"])),
            convergence=_mean_or_none(conv),
            generalization=tm["generalization"],
            test_loss=tm["test_loss"],
            test_error=tm["test_error"],
            gen_gap=tm["test_loss"] - float(te[sel].mean()),
            deployment_risk=risk,
            ece=tm["ece"] if ms.classification else None,
            train_loss_final=float(lf[sel].mean()),
            extra={
                "gradient_stability_std": float(gs[sel].std()),
                "sharpness_std": float(sharp.std()),
                "convergence_std": float(conv.std()),
                "top_eigenvalue_lr": float((eg[sel] * lr[sel]).mean()),
                "train_losses_final": [float(v) for v in lf[sel]],
                "bias_sq_linear": float(tm["bias_sq"]),
            },
        ))
    return results
