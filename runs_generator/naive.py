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

from runs_generator._data import eval_steps, implicit_window
from runs_generator._modelset import AUG_JITTER, AUG_MAX_SHIFT, MOMENTUM, ModelSet, build_model_set
from runs_generator._noise import make_streams
from runs_generator._results import EXPLODE_FACTOR, TrainStats, finalize, full_train_loss
from runs_generator.measure import gradient_stability
from runs_generator.models import init_params, stack_modules
from runs_generator.registry import loss_entry, task_family
from runs_generator.spec import RunConfig, RunMetrics, TaskData

__all__ = ["train_run_naive"]


def _loss(cfg: RunConfig, out: torch.Tensor, y: torch.Tensor, classification: bool) -> torch.Tensor:
    """The run's training loss in its ``torch.nn.functional`` form (the registry's reference)."""
    return loss_entry(cfg.loss).reference(out, y, classification=classification, label_smoothing=cfg.label_smoothing)


def _eval_loss(out: torch.Tensor, y: torch.Tensor, classification: bool) -> torch.Tensor:
    return loss_entry("cross_entropy" if classification else "mse").reference(out, y, classification=classification)


def train_run_naive(config: RunConfig, data: TaskData, device: torch.device, dtype: torch.dtype,
                    init_state: dict[str, torch.Tensor] | None = None) -> RunMetrics:
    """Train one run's K replicas one at a time and measure them.

    ``init_state``: the hidden layers ``{name: (K, ...)}`` a pretrained run's replicas start from.
    """
    t0 = time.perf_counter()
    ms: ModelSet = build_model_set([config], [data], device, dtype, init_states=[init_state])
    init = init_params(ms.spec, ms.init_seeds, [config.init_scale] * ms.r, device, dtype)
    ms.load_pretrained(init)
    grad_stab = gradient_stability(ms, init)
    loss_init = full_train_loss(ms, init, {k: v for k, v in _fresh_running(ms).items()})
    idx_all = ms.minibatch_indices()
    nets, implicit, bad_steps = [], [], []
    for k in range(ms.r):
        noise = make_streams([ms.noise_seeds[k]], [ms.batch[k]], device)  # the batched engine's streams, R = 1
        net = ms.spec.impl.naive_module(ms.spec, {n: v[k] for n, v in init.items()}, config.residual,
                                        config.dropout, noise).to(device)
        # fused single-kernel updates: the benchmark baseline is a tuned loop, not a slow one
        if config.optimizer == "adam":
            opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
        else:
            mom = MOMENTUM if config.optimizer == "momentum" else 0.0
            opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=mom, weight_decay=config.weight_decay,
                                  fused=True)
        plist = list(net.parameters())
        n, steps, b = int(ms.n_train[k]), ms.steps[k], ms.batch[k]
        x, y = ms.x[k, :n], ms.y[k, :n]
        idx = idx_all[k, :, :b]
        checkpoints = set(eval_steps(steps)) if config.early_stopping else set()
        best, best_val = None, float("inf")
        start = implicit_window(steps)
        h_sum = torch.zeros((), device=device, dtype=dtype)
        bad_step, explode_at = -1, float(loss_init[k]) * EXPLODE_FACTOR
        net.train()
        for t in range(steps):
            it = idx[t % idx.shape[0]]
            xb, yb = x[it], y[it]
            if config.augmentation:
                xa = xb + AUG_JITTER * noise.jitter(xb.unsqueeze(0))[0]
                if task_family(config.task).shift_augment:
                    s = noise.shifts(xb.shape[0], -AUG_MAX_SHIFT, AUG_MAX_SHIFT)[0]  # (B, 1)
                    xa = xa.gather(-1, (torch.arange(xb.shape[-1], device=device) - s) % xb.shape[-1])
                xb = xa
            opt.zero_grad(set_to_none=True)
            loss = _loss(config, net(xb), yb, ms.classification)
            loss.backward()
            lv = float(loss.detach())
            if bad_step < 0 and not (lv <= explode_at):  # non-finite or exploding
                bad_step = t + 1
            opt.step()  # a fused step leaves the gradients as they were
            if t >= start:
                h_sum += _h_grad_sq(opt, config, [p.grad for p in plist], t)
            if (t + 1) in checkpoints:
                net.eval()
                with torch.no_grad():
                    nv = int(ms.n_val[k])
                    val = float(_eval_loss(net(ms.x_val[k, :nv]), ms.y_val[k, :nv], ms.classification))
                if val < best_val:
                    best_val, best = val, copy.deepcopy(net.state_dict())
                net.train()
        if best is not None:
            net.load_state_dict(best)
        nets.append(net)
        implicit.append(h_sum / (steps - start))
        bad_steps.append(bad_step)
    params, running = stack_modules(nets, ms.spec)
    stats = TrainStats(
        loss_initial=loss_init,
        grad_stability=grad_stab,
        implicit=torch.stack(implicit),
        diverged_step=torch.tensor(bad_steps, device=device),
        wall_time_s=time.perf_counter() - t0,
    )
    return finalize(ms, params, running, stats, t0)[0]


@torch.no_grad()
def _h_grad_sq(opt: torch.optim.Optimizer, config: RunConfig, grads: list[torch.Tensor], t: int) -> torch.Tensor:
    """``h ||g||^2`` of the step just taken with the loss gradients ``grads`` (one per parameter of the
    optimizer's first group, in order; see FlatOptimizer.step)."""
    params = opt.param_groups[0]["params"]
    if config.optimizer != "adam":
        h = config.lr / (1.0 - (MOMENTUM if config.optimizer == "momentum" else 0.0))
        return h * torch.stack(torch._foreach_norm(grads)).square().sum()
    b2, eps = opt.defaults["betas"][1], opt.defaults["eps"]
    denom = torch._foreach_sqrt([opt.state[p]["exp_avg_sq"] for p in params])  # torch.optim.Adam's denominator
    torch._foreach_div_(denom, (1 - b2 ** (t + 1)) ** 0.5)
    torch._foreach_add_(denom, eps)
    num = torch._foreach_mul(grads, grads)
    torch._foreach_div_(num, denom)
    return config.lr * torch.stack([n.sum() for n in num]).sum()


def _fresh_running(ms: ModelSet) -> dict[str, torch.Tensor]:
    from runs_generator.models import init_running

    return init_running(ms.spec, ms.r, ms.device, ms.dtype)
