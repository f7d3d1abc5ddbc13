"""The naive engine: one ``nn.Module`` and one ``torch.optim`` optimizer per replica.

The reference for the batched engine and the benchmark baseline. It shares
with the batched engine only the random draws (initial weights and minibatch
indices per ``(run seed, replica)``, and the dropout masks and augmentation
noise of :mod:`runs_generator._noise`: the same generator, the same calls in the
same order) and, after training, the measurement code (run on its stacked
replicas).
"""

from __future__ import annotations

import copy
import time

import torch

from runs_generator._data import eval_steps
from runs_generator._modelset import AUG_JITTER, AUG_MAX_SHIFT, MOMENTUM, ModelSet, build_model_set
from runs_generator._results import TrainStats, finalize, full_train_loss
from runs_generator.measure import gradient_stability
from runs_generator.models import NaiveNet, init_params, stack_modules
from runs_generator.spec import RunConfig, RunMetrics, TaskData

__all__ = ["train_run_naive"]


def _loss(cfg: RunConfig, out: torch.Tensor, y: torch.Tensor, classification: bool) -> torch.Tensor:
    f = torch.nn.functional
    if cfg.loss == "cross_entropy":
        return f.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
    target = f.one_hot(y, out.shape[-1]).to(out.dtype) if classification else y
    return f.mse_loss(out, target) if cfg.loss == "mse" else f.l1_loss(out, target)


def _eval_loss(out: torch.Tensor, y: torch.Tensor, classification: bool) -> torch.Tensor:
    f = torch.nn.functional
    return f.cross_entropy(out, y) if classification else f.mse_loss(out, y)


def train_run_naive(config: RunConfig, data: TaskData, device: torch.device, dtype: torch.dtype) -> RunMetrics:
    """Train one run's K replicas one at a time and measure them."""
    t0 = time.perf_counter()
    ms: ModelSet = build_model_set([config], [data], device, dtype)
    init = init_params(ms.spec, ms.init_seeds, [config.init_scale] * ms.r, device, dtype)
    grad_stab = gradient_stability(ms, init)
    loss_init = full_train_loss(ms, init, {k: v for k, v in _fresh_running(ms).items()})
    idx_all = ms.minibatch_indices()
    nets, gsq, nonfinite = [], [], []
    for k in range(ms.r):
        gen = torch.Generator(device=device).manual_seed(ms.noise_seeds[k])  # as runs_generator._noise
        net = NaiveNet(ms.spec, {n: v[k] for n, v in init.items()}, config.residual, config.dropout, gen).to(device)
        if config.optimizer == "adam":
            opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        else:
            mom = MOMENTUM if config.optimizer == "momentum" else 0.0
            opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=mom, weight_decay=config.weight_decay)
        n, steps, b = int(ms.n_train[k]), ms.steps[k], ms.batch[k]
        x, y = ms.x[k, :n], ms.y[k, :n]
        idx = idx_all[k, :, :b]
        checkpoints = set(eval_steps(steps)) if config.early_stopping else set()
        best, best_val = None, float("inf")
        g2 = torch.zeros((), device=device, dtype=dtype)
        bad = torch.zeros((), device=device, dtype=torch.bool)
        for t in range(steps):
            net.train()
            it = idx[t % idx.shape[0]]
            xb, yb = x[it], y[it]
            if config.augmentation:
                xa = xb + AUG_JITTER * torch.randn(xb.shape, generator=gen, device=device, dtype=xb.dtype)
                if config.task == "mnist1d":
                    s = torch.randint(-AUG_MAX_SHIFT, AUG_MAX_SHIFT + 1, (xb.shape[0], 1), generator=gen, device=device)
                    xa = xa.gather(-1, (torch.arange(xb.shape[-1], device=device) - s) % xb.shape[-1])
                xb = xa
            opt.zero_grad(set_to_none=True)
            loss = _loss(config, net(xb), yb, ms.classification)
            loss.backward()
            with torch.no_grad():
                g2 += sum(p.grad.pow(2).sum() for p in net.parameters())
                bad |= ~torch.isfinite(loss)
            opt.step()
            if (t + 1) in checkpoints:
                net.eval()
                with torch.no_grad():
                    nv = int(ms.n_val[k])
                    val = float(_eval_loss(net(ms.x_val[k, :nv]), ms.y_val[k, :nv], ms.classification))
                if val < best_val:
                    best_val, best = val, copy.deepcopy(net.state_dict())
        if best is not None:
            net.load_state_dict(best)
        nets.append(net)
        gsq.append(g2 / steps)
        nonfinite.append(bad)
    params, running = stack_modules(nets)
    stats = TrainStats(
        loss_initial=loss_init,
        grad_stability=grad_stab,
        grad_sq_mean=torch.stack(gsq),
        nonfinite=torch.stack(nonfinite),
        wall_time_s=time.perf_counter() - t0,
    )
    return finalize(ms, params, running, stats, t0)[0]


def _fresh_running(ms: ModelSet) -> dict[str, torch.Tensor]:
    from runs_generator.models import init_running

    return init_running(ms.spec, ms.r, ms.device, ms.dtype)
