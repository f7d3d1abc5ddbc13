"""The batched training loop: R stacked models, one forward and backward per step.

Per step: gather every model's minibatch with one ``index_select`` (R, B, *in),
forward through bmm layers, per-model losses (R,), and a hand-written backward
(:func:`runs_generator._fused.loss_and_grads`, equal to autograd through
:func:`~runs_generator.models.forward`, which architectures without one use)
that writes every model's gradient into one (R, P) buffer, then a
:class:`FlatOptimizer` step on all parameters at once: every model's
parameters live in one (R, P) tensor (the named parameters are views of it),
so SGD / momentum / Adam with per-model lr and weight decay is a dozen ops
whatever the depth. Models with fewer steps stop updating through a zero
learning rate. No ``.item()`` in the loop: the implicit-regularization sums and
the step of divergence are accumulated in tensors.

Where the time goes (width 64, depth 2, batch 128, 32 models, 1 CPU thread):
the batched GEMMs are about half of a step; the rest is elementwise passes
over (R, B, W) activations and (R, P) optimizer state, which are memory-bound.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Generator

import torch

from runs_generator._data import env_int, eval_steps, implicit_window
from runs_generator._fused import autograd_loss_and_grads, loss_and_grads
from runs_generator._modelset import AUG_JITTER, AUG_MAX_SHIFT, ModelSet
from runs_generator._noise import ModelStreams
from runs_generator._results import EXPLODE_FACTOR, TrainStats, finalize_steps, full_train_loss
from runs_generator.measure import gradient_stability, run_to_end
from runs_generator.models import forward, init_params, init_running
from runs_generator.registry import arch_entry, task_family
from runs_generator.spec import RunMetrics

__all__ = ["train_model_set", "train_steps", "run_steps", "FlatOptimizer"]

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def _col(v: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(R,) -> (R, 1, ..., 1) broadcastable against ref."""
    return v.view(-1, *([1] * (ref.dim() - 1)))


class FlatOptimizer:
    """SGD / momentum / Adam on every model's parameters flattened into one (R, P) tensor.

    torch.optim semantics per model: SGD and momentum share the heavy-ball
    buffer (coefficient 0 or 0.9); Adam uses coupled L2 weight decay like
    ``torch.optim.Adam(weight_decay=...)``. A step is a dozen ops on (R, P)
    tensors whatever the number of parameter tensors: small steps are bound
    by per-op overhead and memory passes, not FLOPs. Per-model hyperparameters
    are (R, 1) columns. The engine orders a chunk's models by optimizer, so
    the Adam models are one block of rows and the SGD / momentum models the
    other; each update then touches only its own rows (row slices of ``flat``
    are contiguous views). Otherwise every row gets both updates, one of them
    multiplied by a zero learning rate.
    """

    def __init__(self, ms: ModelSet, flat: torch.Tensor):
        col = lambda v: v.to(flat.dtype).view(-1, 1)  # noqa: E731
        is_adam = ms.is_adam.tolist()
        n_adam = sum(is_adam)
        if n_adam in (0, len(is_adam)) or is_adam == sorted(is_adam) or is_adam == sorted(is_adam, reverse=True):
            first = is_adam.index(True) if n_adam else len(is_adam)
            adam_rows = slice(first, first + n_adam)
            sgd_rows = slice(0, first) if first > 0 else slice(first + n_adam, len(is_adam))
            masked = False
        else:
            adam_rows = sgd_rows = slice(None)
            masked = True
        self.flat, self.masked = flat, masked  # flat (R, P) is updated in place
        self.lr, self.wd = col(ms.lr), col(ms.weight_decay)
        self.mom = col(ms.momentum)[sgd_rows]
        self.adam_mask = col(ms.is_adam)
        self.any_wd = bool((ms.weight_decay != 0).any())
        self.sgd_rows = sgd_rows if n_adam < len(is_adam) else None
        self.adam_rows = adam_rows if n_adam else None
        self.buf = self.m = self.v = None
        if self.sgd_rows is not None and bool((ms.momentum[sgd_rows] != 0).any()):
            self.buf = torch.zeros_like(flat[sgd_rows])
        if self.adam_rows is not None:
            self.m, self.v = torch.zeros_like(flat[adam_rows]), torch.zeros_like(flat[adam_rows])
        self.set_active(torch.ones_like(self.lr))

    def set_active(self, active: torch.Tensor) -> None:
        """Models with ``active`` 0 (R, 1) stop updating (their learning rate is 0).

        After the first call the per-model rates are written in place, so a captured CUDA graph of
        :meth:`step` sees them.
        """
        lr = -self.lr * active  # negated: updates are flat += lr_col * step
        if self.masked:
            lr_sgd, lr_adam = lr * (1 - self.adam_mask), lr * self.adam_mask
        else:
            lr_sgd = lr[self.sgd_rows] if self.sgd_rows is not None else None
            lr_adam = lr[self.adam_rows] if self.adam_rows is not None else None
        if getattr(self, "lr_sgd", None) is None and getattr(self, "lr_adam", None) is None:
            self.lr_sgd, self.lr_adam = lr_sgd, lr_adam
            return
        for mine, new in ((self.lr_sgd, lr_sgd), (self.lr_adam, lr_adam)):
            if mine is not None:
                mine.copy_(new)

    def step(self, g: torch.Tensor, t: int, track: bool = False,
             bias: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor | None:
        """Apply loss gradients ``g`` (R, P) at step ``t`` (0-based); ``g`` may be overwritten.

        With ``track``, return each model's ``h ||g||^2`` (R,) for
        ``implicit_reg``, with ``h`` the effective step on the loss gradient
        (before weight decay): ``lr`` for SGD, ``lr / (1 - momentum)`` with
        momentum, and for Adam the preconditioned form
        ``sum_i lr g_i^2 / (sqrt(v_hat_i) + eps)`` with this step's ``v_hat``.
        Inactive models (learning rate 0) give 0. ``bias``: Adam's bias corrections
        ``(1 - b1^(t+1), sqrt(1 - b2^(t+1)))`` as 0-dim device tensors, read instead of ``t``
        (the CUDA-graph loop, whose captured step must not bake ``t`` in).
        """
        q = g_sq = None
        if track:
            q = torch.zeros(self.flat.shape[0], device=g.device, dtype=g.dtype)
            if self.sgd_rows is not None:
                gs = g[self.sgd_rows]
                q[self.sgd_rows] = torch.linalg.vecdot(gs, gs) * (-self.lr_sgd.view(-1) / (1.0 - self.mom.view(-1)))
            if self.adam_rows is not None:
                g_sq = g[self.adam_rows].square()
        if self.any_wd:
            g.addcmul_(self.flat, self.wd)
        if self.sgd_rows is not None:
            p, gs = self.flat[self.sgd_rows], g[self.sgd_rows]
            upd = gs if self.buf is None else self.buf.mul_(self.mom).add_(gs)
            p.addcmul_(upd, self.lr_sgd)
        if self.adam_rows is not None:
            p, ga = self.flat[self.adam_rows], g[self.adam_rows]
            b1, b2 = ADAM_BETAS
            if bias is None:
                bc1, sqrt_bc2 = 1 - b1 ** (t + 1), (1 - b2 ** (t + 1)) ** 0.5
            else:
                bc1, sqrt_bc2 = bias
            self.m.lerp_(ga, 1 - b1)
            self.v.mul_(b2).addcmul_(ga, ga, value=1 - b2)
            denom = self.v.sqrt().div_(sqrt_bc2).add_(ADAM_EPS)  # torch.optim.Adam's rounding order
            p.addcdiv_(self.m * (self.lr_adam / bc1), denom)
            if g_sq is not None:
                q[self.adam_rows] += (g_sq / denom).sum(dim=1) * -self.lr_adam.view(-1)  # masked: SGD rows add 0
        return q


def _augment(ms: ModelSet, xb: torch.Tensor, streams: ModelStreams, shift: bool) -> torch.Tensor:
    """Gaussian jitter (+ random circular shift for signals) on models with augmentation.

    Each augmenting model draws its own noise and shifts from its own stream
    (:class:`~runs_generator._noise.ModelStreams`); the others keep their inputs.
    """
    xa = xb + streams.jitter(xb).mul_(AUG_JITTER)
    if shift:
        length = xb.shape[-1]
        s = streams.shifts(xb.shape[1], -AUG_MAX_SHIFT, AUG_MAX_SHIFT)  # (R, B, 1)
        idx = (torch.arange(length, device=xb.device) - s) % length
        xa = xa.gather(-1, idx.expand_as(xa))
    return xa


def train_model_set(ms: ModelSet, *, fused: bool | None = None,
                    state_out: dict[str, torch.Tensor] | None = None) -> list[RunMetrics]:
    """Train every model of ``ms`` as one batched computation and measure it.

    ``fused`` picks the hand-written backward (:func:`runs_generator._fused.loss_and_grads`)
    or autograd through the stacked forward; None (default) uses the hand-written
    one where the architecture's registry entry has it. ``state_out``, when given,
    is filled with the trained parameters ``{name: (R, ...)}`` (the source models
    of :mod:`runs_generator.transfer`).
    """
    return run_steps(train_steps(ms, fused=fused, state_out=state_out))


def run_steps(steps: Generator[None, None, list[RunMetrics]]) -> list[RunMetrics]:
    """Drive a :func:`train_steps` generator to its end; its metrics."""
    return run_to_end(steps)


def train_steps(ms: ModelSet, *, fused: bool | None = None,
                state_out: dict[str, torch.Tensor] | None = None) -> Generator[None, None, list[RunMetrics]]:
    """:func:`train_model_set` as a generator that yields after every training step (or replayed block of
    steps) and every Hessian-vector product of its sharpness measurement, and returns the metrics.

    Several chunks can then train interleaved, step by step, on one thread (on CUDA each on its own
    stream, so that their small kernels run concurrently; :func:`runs_generator.engine.train_runs`);
    a chunk's computation does not depend on what runs between its steps.
    """
    t0 = time.perf_counter()
    dev, dt, r = ms.device, ms.dtype, ms.r
    params = init_params(ms.spec, ms.init_seeds, [ms.configs[j].init_scale for j in ms.run_of_model], dev, dt)
    ms.load_pretrained(params)  # a pretrained run's replicas start from its source model's hidden layers
    running = init_running(ms.spec, r, dev, dt)
    streams = ms.noise_streams()
    grad_stab = gradient_stability(ms, params)
    loss_init = full_train_loss(ms, params, running)

    n_steps = max(ms.steps)
    steps_t = torch.tensor(ms.steps, device=dev)
    # every model's parameters live in one (R, P) tensor; params holds views of it
    shapes = {k: v.shape[1:] for k, v in params.items()}
    flat = torch.cat([v.reshape(r, -1) for v in params.values()], dim=1)  # (R, P)
    params = _views(flat, shapes)
    g = torch.empty_like(flat)  # every step's gradients, (R, P); grads holds views of it
    grads = _views(g, shapes)
    opt = FlatOptimizer(ms, flat)
    xb, yb, rowmask, batch_idx = _batches(ms)
    dropout = ms.dropout if bool((ms.dropout > 0).any()) else None
    residual_flags = bool(ms.residual.all()), not bool(ms.residual.any())
    any_aug = bool(ms.augment.any())
    shift = any_aug and task_family(ms.configs[0].task).shift_augment
    if fused is None:
        fused = arch_entry(ms.spec.arch).fused
    step_fn, objective = (loss_and_grads, ms.objective_and_grad) if fused else (autograd_loss_and_grads, ms.objective)
    # early stopping: per-model validation schedule, best state kept per model
    due: dict[int, torch.Tensor] = {}
    for i in range(r):
        if bool(ms.early_stop[i]):
            for s in eval_steps(ms.steps[i]):
                due.setdefault(s, torch.zeros(r, dtype=torch.bool))[i] = True
    due = {s: m.to(dev) for s, m in due.items()}
    best = [v.clone() for v in (flat, *running.values())] if due else []
    best_val = torch.full((r,), float("inf"), device=dev, dtype=dt)

    # implicit_reg: h ||g||^2 summed over each model's window (its last half of steps)
    win_start = torch.tensor([implicit_window(s) for s in ms.steps], device=dev)
    first_win = min(implicit_window(s) for s in ms.steps)
    hgsq = torch.zeros(r, device=dev, dtype=dt)
    # divergence: the first step whose minibatch loss is non-finite or explodes (-1: none)
    bad_step = torch.full((r,), -1, device=dev, dtype=torch.int64)
    explode_at = loss_init * EXPLODE_FACTOR
    stop_steps = set(ms.steps)  # the active mask only changes when some model finishes
    active = torch.ones(r, device=dev, dtype=dt)
    if _graphable(ms, fused, streams):  # the same step, captured once as a CUDA graph and replayed
        bad_step, hgsq, best_val = yield from _graphed_loop(
            ms, n_steps, stop_steps, steps_t, due, best, best_val, flat, params, grads, g, opt, streams, step_fn,
            objective, running, dropout, residual_flags, any_aug, shift, xb, yb, rowmask, batch_idx, explode_at,
            win_start, first_win, bad_step, hgsq)
        n_steps = 0
    for t in range(n_steps):
        if t in stop_steps:
            active = (steps_t > t).to(dt)
            opt.set_active(active.view(-1, 1))
        if batch_idx is not None:
            it = batch_idx[t % batch_idx.shape[0]]  # (R*B,) rows of the flattened training set
            xb = ms.x.flatten(0, 1).index_select(0, it).view(r, -1, *ms.x.shape[2:])
            yb = ms.y.flatten(0, 1).index_select(0, it).view(r, -1, *ms.y.shape[2:])
        xa = _augment(ms, xb, streams, shift) if any_aug else xb
        with torch.no_grad():
            losses = step_fn(ms.spec, params, grads, xa, yb, objective, running=running,
                                    residual=ms.residual, dropout=dropout, rowmask=rowmask, active=active,
                                    generator=streams, residual_flags=residual_flags)  # (R,); gradients into g
            bad = (~torch.isfinite(losses) | (losses > explode_at)) & (active > 0) & (bad_step < 0)
            bad_step = torch.where(bad, t + 1, bad_step)
            q = opt.step(g, t, track=t >= first_win)
            if q is not None:
                hgsq.addcmul_(active * (win_start <= t), q)
            if (t + 1) in due:
                best_val = _keep_best(ms, params, running, due[t + 1], best, best_val, flat)
        yield
    if due:
        # a model whose validation loss was never finite keeps its final state (non-finite metrics: a diverged
        # row), not the initial one, which would pass for an untrained model's
        es = ms.early_stop & torch.isfinite(best_val)
        for b, v in zip(best, (flat, *running.values())):
            v.copy_(torch.where(_col(es, v), b, v))
    stats = TrainStats(
        loss_initial=loss_init,
        grad_stability=grad_stab,
        implicit=hgsq / (steps_t - win_start).to(dt),
        diverged_step=bad_step,
        wall_time_s=time.perf_counter() - t0,
    )
    if state_out is not None:
        state_out.update({k: v.detach().clone() for k, v in params.items()})
    return (yield from finalize_steps(ms, params, running, stats, t0))


def _keep_best(ms: ModelSet, params, running, due_now: torch.Tensor, best: list, best_val: torch.Tensor,
               flat: torch.Tensor) -> torch.Tensor:
    """Early stopping at a validation step: keep each due model's state where its validation loss improved."""
    val = _val_loss(ms, params, running)
    better = due_now & (val < best_val)
    best_val = torch.where(better, val, best_val)
    for b, v in zip(best, (flat, *running.values())):
        b.copy_(torch.where(_col(better, v), v, b))
    return best_val


#: capture each chunk's training step as a CUDA graph and replay it (CUDA, architectures with the
#: hand-written backward, counter noise streams): one launch per step instead of ~150 small kernels.
#: ``UDL_CUDA_GRAPHS=0`` in the environment turns it off (benchmarks; a capture problem on some setup)
CUDA_GRAPHS = os.environ.get("UDL_CUDA_GRAPHS", "1") != "0"
#: eager steps of each captured variant (with / without implicit-regularization tracking) before its capture
GRAPH_WARMUP = 2
#: training steps per replayed graph where no event (a model finishing, a validation step, the start of
#: the implicit-regularization window) falls inside: one launch for several steps, so that the host's
#: per-launch cost and its pauses (another chunk's set-up or measurements on the same thread) are spread
#: over more device work. ``UDL_GRAPH_STEPS`` in the environment sets it; 1 replays step by step.
GRAPH_STEPS = env_int("UDL_GRAPH_STEPS", 8)


_CAPTURE_FAILED = False  # a capture failed in this process: later chunks train eagerly


def _graphable(ms: ModelSet, fused: bool, streams) -> bool:
    from runs_generator._noise import CounterStreams

    return (CUDA_GRAPHS and not _CAPTURE_FAILED and ms.device.type == "cuda" and fused
            and isinstance(streams, CounterStreams) and max(ms.steps) > 2 * GRAPH_WARMUP + 2)


def _graphed_loop(ms, n_steps, stop_steps, steps_t, due, best, best_val, flat, params, grads, g, opt, streams,
                  step_fn, objective, running, dropout, residual_flags, any_aug, shift, xb, yb, rowmask, batch_idx,
                  explode_at, win_start, first_win, bad_step, hgsq):
    """The training loop of :func:`train_model_set` with its steps replayed from captured CUDA graphs.

    Everything a step reads that changes between steps is computed on the device from a step counter
    that the step itself advances (the minibatch indices, Adam's bias corrections from a table, the
    divergence and implicit-regularization bookkeeping), or lives in a static buffer written between
    replays (the active mask and learning rates, which change only when a model finishes). So one graph
    can hold :data:`GRAPH_STEPS` consecutive steps, and the captured steps are the eager step's
    computation; they equal it up to rounding (Adam's bias corrections are divided by 0-dim device
    tensors, where an eager CUDA step divides by a Python float, which CUDA's kernel turns into a
    multiplication by its reciprocal). The first :data:`GRAPH_WARMUP` steps of each variant (with and
    without implicit-regularization tracking) run eagerly on a side stream (as CUDA graphs require); a
    failed capture warns, and the chunk and every later one in the process train with eager steps. The
    loop yields after each replay. Returns ``(bad_step, hgsq, best_val)``.
    """
    r, dev, dt = ms.r, ms.device, ms.dtype
    b1, b2 = ADAM_BETAS
    t_buf = torch.zeros((), dtype=torch.int64, device=dev)  # the step the next body runs; each body adds 1
    # Adam's bias corrections per step, rounded to dt as a fill with the Python float would be
    bc1_tab = torch.tensor([1 - b1 ** (t + 1) for t in range(n_steps)], dtype=dt, device=dev)
    sqrt_bc2_tab = torch.tensor([(1 - b2 ** (t + 1)) ** 0.5 for t in range(n_steps)], dtype=dt, device=dev)
    n_batches = batch_idx.shape[0] if batch_idx is not None else 1
    active = torch.ones(r, device=dev, dtype=dt)
    bad_step, hgsq = bad_step.clone(), hgsq.clone()

    def body(track: bool) -> None:
        t_at = t_buf.view(1)
        if batch_idx is not None:
            it = batch_idx.index_select(0, torch.remainder(t_at, n_batches)).view(-1)
            xs = ms.x.flatten(0, 1).index_select(0, it).view(r, -1, *ms.x.shape[2:])
            ys = ms.y.flatten(0, 1).index_select(0, it).view(r, -1, *ms.y.shape[2:])
        else:
            xs, ys = xb, yb
        xa = _augment(ms, xs, streams, shift) if any_aug else xs
        losses = step_fn(ms.spec, params, grads, xa, ys, objective, running=running, residual=ms.residual,
                         dropout=dropout, rowmask=rowmask, active=active, generator=streams,
                         residual_flags=residual_flags)
        bad = (~torch.isfinite(losses) | (losses > explode_at)) & (active > 0) & (bad_step < 0)
        bad_step.copy_(torch.where(bad, t_buf + 1, bad_step))
        bias = (bc1_tab.index_select(0, t_at).view(()), sqrt_bc2_tab.index_select(0, t_at).view(()))
        q = opt.step(g, 0, track=track, bias=bias)
        if q is not None:
            hgsq.addcmul_(active * (win_start <= t_buf), q)
        t_buf.add_(1)

    def steps(track: bool, k: int) -> None:
        for _ in range(k):
            body(track)

    # the first step of each stretch in which no event falls: a block of steps may not cross one
    events = sorted({s for s in stop_steps if 0 < s < n_steps} | {s for s in due if 0 < s < n_steps}
                    | ({first_win} if 0 < first_win < n_steps else set()))
    graphs: dict[tuple[bool, int], object] = {}
    eager_runs = {False: 0, True: 0}
    pool: list = []
    use_graphs = True
    t, ev = 0, 0
    while t < n_steps:
        with torch.no_grad():
            if t in stop_steps:
                active.copy_((steps_t > t).to(dt))
                opt.set_active(active.view(-1, 1))
            while ev < len(events) and events[ev] <= t:
                ev += 1
            until = events[ev] if ev < len(events) else n_steps  # the next event's step
            track = t >= first_win
            # a block only where graphs are still captured: after a failed capture every step is eager
            k = GRAPH_STEPS if use_graphs and (track, 1) in graphs and until - t >= GRAPH_STEPS > 1 else 1
            if (track, k) in graphs:
                graphs[(track, k)].replay()
            elif not use_graphs:
                body(track)
            elif eager_runs[track] < GRAPH_WARMUP:
                _on_side_stream(lambda: body(track), dev)
                eager_runs[track] += 1
            else:
                try:
                    graph = _capture(lambda: steps(track, k), pool)
                except Exception as exc:  # noqa: BLE001 - any capture failure: train on eagerly
                    global _CAPTURE_FAILED
                    _CAPTURE_FAILED = True  # and do not try again in this process
                    _warn_capture(exc)
                    use_graphs = False
                    body(track)
                    k = 1
                else:
                    graphs[(track, k)] = graph
                    graph.replay()
            t += k
            if t in due:
                best_val = _keep_best(ms, params, running, due[t], best, best_val, flat)
        yield
    return bad_step, hgsq, best_val


def _on_side_stream(fn, dev: torch.device) -> None:
    """Run ``fn`` eagerly on a side stream, ordered after and before the current stream (warm-up before capture)."""
    side = torch.cuda.Stream(device=dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream(dev).wait_stream(side)


def _capture(fn, pool: list):
    """Capture ``fn``'s kernels as a CUDA graph (not running them); graphs of one loop share one memory pool."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool[0] if pool else None):
        fn()
    if not pool:
        pool.append(graph.pool())
    return graph


def _warn_capture(exc: Exception) -> None:
    import warnings

    warnings.warn(f"CUDA graph capture of the training step failed ({type(exc).__name__}: {exc}); "
                  "training this chunk with eager steps (set runs_generator._trainer.CUDA_GRAPHS = False "
                  "to skip the attempt)", RuntimeWarning, stacklevel=2)


def _views(flat: torch.Tensor, shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Named (R, *shape) views into the columns of ``flat`` (R, P)."""
    out, o = {}, 0
    for k, shape in shapes.items():
        n = math.prod(shape)
        out[k] = flat[:, o : o + n].view(flat.shape[0], *shape)
        o += n
    return out


def _batches(ms: ModelSet) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Fixed full batches, or the per-step row indices of minibatches.

    Returns ``(x, y, rowmask, None)`` when every model trains on its whole
    unpadded training set (no gather at all), else ``(None, None, rowmask,
    idx)`` with ``idx`` (S, R*B_max) indices into ``ms.x.flatten(0, 1)``: one
    ``index_select`` per step gathers every model's minibatch (R, B_max, *in),
    ~10x faster than advanced indexing with an (R, B) index pair.
    """
    idx = ms.minibatch_indices()  # (R, S, B_max)
    r, b_max = idx.shape[0], idx.shape[2]
    rowmask = ms.rowmask(torch.tensor(ms.batch, device=ms.device), b_max)
    if idx.shape[1] == 1 and rowmask is None and bool((ms.n_train == ms.x.shape[1]).all()):
        return ms.x, ms.y, None, None
    offsets = torch.arange(r, device=idx.device).view(r, 1, 1) * ms.x.shape[1]
    flat_idx = (idx + offsets).transpose(0, 1).reshape(idx.shape[1], r * b_max)  # (S, R*B_max)
    return None, None, rowmask, flat_idx.contiguous()


@torch.no_grad()
def _val_loss(ms: ModelSet, params, running) -> torch.Tensor:
    mask = ms.rowmask(ms.n_val, ms.x_val.shape[1])
    out = forward(ms.spec, params, ms.x_val, mode="eval", running=running, residual=ms.residual, rowmask=mask)
    loss = ms.eval_loss(out, ms.y_val, mask)
    return torch.where(torch.isfinite(loss), loss, torch.full_like(loss, float("inf")))
