"""Training and measuring generative runs: batched (stacked models) and naive (one module per replica).

:func:`train_generative` is the generative family's trainer (``TaskFamily.trainer``):
the engine hands it every generative run. Runs of one shape ``(arch, width,
depth)`` train as one computation: every model's parameters live in one (R, P)
tensor per parameter group (the named parameters are views of it), the
architecture's functions (:mod:`runs_generator.generative`) run on stacked
inputs (R, B, D) with batched matmuls, autograd differentiates the sum of the
per-model objectives, and :class:`~runs_generator._trainer.FlatOptimizer`
updates all models at once (per-model lr, weight decay, momentum / Adam).
Minibatches are padded to the chunk's largest batch and masked; models with
fewer steps stop through a zero learning rate.

Every random draw of a model comes from its own streams, seeded from ``(run
seed, replica, stream)``: initialization (STREAM_INIT), minibatch indices
(STREAM_BATCHES), per-step noise (STREAM_NOISE: the VAE's eps, the GAN's z,
diffusion's t and eps), the fixed noise of the evaluation objective
(STREAM_EVAL), the Lanczos start vector (STREAM_HESSIAN) and the samples
(STREAM_SAMPLE). Each is drawn in the model's own shape on the CPU in float64,
so a run's row does not depend on which runs share its chunk, nor on the
engine: :func:`train_run_naive_generative` makes the same calls.

Measurements (the same code for both engines, on stacked parameters):

* ``precision``, ``recall``, ``coverage``, ``density`` (k = :data:`PRDC_K`),
  ``mode_coverage`` and ``sample_loglik`` of :data:`N_HELDOUT` samples per
  replica against the held-out true samples and the true mixture
  (:mod:`runs_generator.sample_quality`); replica means;
* ``convergence`` — flow and VAE: the log10 likelihood ratio per data axis of
  the trained model (the ELBO for the VAE, a bound) over the best single
  Gaussian fitted to the training set, ``(NLL_gauss - NLL_final) / (D ln 10)``;
  diffusion: ``-log10(final denoising MSE / MSE of predicting eps = 0)``; both
  on the whole training set with fixed noise; null for the GAN (a game has no
  objective to converge);
* ``sharpness`` — log10 top Hessian eigenvalue of the training objective (fixed
  noise, first 64 training examples; Lanczos of :mod:`runs_generator.measure`);
  null for the GAN;
* ``gradient_stability`` — at init, ``-|log10(|dL/da_1| / |dL/da_K|)|`` over the
  first and last hidden pre-activations on the objective's path (VAE: encoder's
  first, decoder's last; GAN: the generator's, under the generator loss); null
  for the flow, whose couplings start as the identity (zero output weights), so
  no gradient reaches their hidden layers at initialization;
* ``implicit_reg`` — as for supervised runs (``h |grad|^2 / 4`` over the last
  half of training); null for the GAN.

Supervised outcomes (generalization, test loss/error, gen gap, ECE,
deployment risk, bias², variance) are null: they are not defined here.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from causal.errors import ConfigError
from runs_generator._data import STREAM_BATCHES, STREAM_INIT, STREAM_NOISE, batch_indices, implicit_window, model_seed
from runs_generator._trainer import FlatOptimizer
from runs_generator.generative import GEN_ARCHS, N_HELDOUT, TIMESTEPS, GenerativeArch
from runs_generator.measure import (GRADSTAB_SUBSAMPLE, HESSIAN_ITERS, HESSIAN_SUBSAMPLE, STREAM_HESSIAN,
                                    lanczos_top_eigenvalue, log10_or_nan)
from runs_generator.registry import loss_entry
from runs_generator.spec import RunConfig, RunMetrics, TaskData

__all__ = ["train_generative", "train_chunk", "train_run_naive_generative", "PRDC_K", "MAX_CHUNK"]

STREAM_EVAL, STREAM_SAMPLE = 20, 21
PRDC_K = 5
EXPLODE_FACTOR = 1e3  # a minibatch objective above this x max(1, |initial objective|) counts as diverged
MAX_CHUNK = 64  # models per chunk on CPU
CUDA_MAX_CHUNK = 4096
MOMENTUM = 0.9


# --- per-model draws -------------------------------------------------------------------
def _draw(gen: torch.Generator, spec: list, rows: int) -> dict[str, torch.Tensor]:
    """One model's draws for ``rows`` examples, in ``spec`` order (CPU; normals float64)."""
    out = {}
    for name, kind, shape in spec:
        if kind == "normal":
            out[name] = torch.randn((rows, *shape), generator=gen, dtype=torch.float64)
        else:
            out[name] = torch.randint(0, TIMESTEPS, (rows, *shape), generator=gen)
    return out


def _stack(per_model: list[dict], rows: int, device, dtype) -> dict[str, torch.Tensor]:
    """Per-model draws -> (R, rows, ...) zero-padded tensors on ``device``."""
    out = {}
    for name, first in per_model[0].items():
        t = torch.zeros((len(per_model), rows, *first.shape[1:]), dtype=first.dtype)
        for i, d in enumerate(per_model):
            t[i, : d[name].shape[0]] = d[name]
        out[name] = t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)
    return out


def _init(arch: GenerativeArch, cfg: RunConfig, dim: int, replica: int) -> dict[str, dict[str, torch.Tensor]]:
    """One model's initial parameters per group (float64 CPU): He std x init_scale, biases and scales 0."""
    g = torch.Generator().manual_seed(model_seed(cfg.seed, replica, STREAM_INIT))
    out = {}
    for group, shapes in arch.shapes(cfg.width, cfg.depth, dim).items():
        out[group] = {}
        for name, shape, fan_in in shapes:
            if fan_in and name in arch.zero_init:  # an identity start (the flow's coupling outputs, as in Glow)
                out[group][name] = torch.zeros(shape, dtype=torch.float64)
            elif fan_in:
                std = cfg.init_scale * math.sqrt(2.0 / fan_in)
                out[group][name] = torch.randn(shape, generator=g, dtype=torch.float64) * std
            else:
                out[group][name] = torch.zeros(shape, dtype=torch.float64)
    return out


# --- a chunk of stacked models ----------------------------------------------------------
@dataclass
class _Chunk:
    arch: GenerativeArch
    configs: list[RunConfig]
    datas: list[TaskData]
    run_of: list[int]
    replica: list[int]
    device: torch.device
    dtype: torch.dtype

    def __post_init__(self) -> None:
        c0 = self.configs[0]
        self.width, self.depth = c0.width, c0.depth
        self.dim = self.datas[0].x_train.shape[-1]
        self.cfg = [self.configs[j] for j in self.run_of]
        self.r = len(self.cfg)
        self.n = [c.n_train for c in self.cfg]
        self.batch = [c.effective_batch for c in self.cfg]
        self.steps = [c.steps for c in self.cfg]
        x = np.zeros((self.r, max(self.n), self.dim), dtype=np.float32)
        for i, (j, k) in enumerate(zip(self.run_of, self.replica)):
            x[i, : self.n[i]] = self.datas[j].x_train[k]
        self.x = torch.from_numpy(x).to(self.device, self.dtype)
        dev, dt = self.device, self.dtype
        self.residual = torch.tensor([float(c.residual) for c in self.cfg], device=dev, dtype=dt).view(-1, 1, 1)
        # what FlatOptimizer reads
        self.lr = torch.tensor([c.lr for c in self.cfg], device=dev, dtype=dt)
        self.weight_decay = torch.tensor([c.weight_decay for c in self.cfg], device=dev, dtype=dt)
        self.momentum = torch.tensor([MOMENTUM if c.optimizer == "momentum" else 0.0 for c in self.cfg],
                                     device=dev, dtype=dt)
        self.is_adam = torch.tensor([c.optimizer == "adam" for c in self.cfg], device=dev)

    def seed(self, i: int, stream: int) -> int:
        return model_seed(self.cfg[i].seed, self.replica[i], stream)

    def mask(self, counts: Sequence[int], rows: int) -> torch.Tensor:
        """(R, rows) 1/0 mask of each model's first ``counts[i]`` rows."""
        m = torch.arange(rows, device=self.device).unsqueeze(0) < torch.tensor(counts, device=self.device).unsqueeze(1)
        return m.to(self.dtype)

    def initial(self) -> dict[str, torch.Tensor]:
        """Stacked initial parameters, every group merged: name -> (R, ...)."""
        per = [_init(self.arch, self.cfg[i], self.dim, self.replica[i]) for i in range(self.r)]
        return {name: torch.stack([p[g][name] for p in per]).to(self.device, self.dtype)
                for g in self.arch.groups for name in per[0][g]}


def _masked_mean(per_ex: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (per_ex * mask).sum(1) / mask.sum(1)


class _Flat:
    """One parameter group of R models as one (R, P) tensor and its named views."""

    def __init__(self, params: dict[str, torch.Tensor]):
        self.names = list(params)
        self.shapes = [params[n].shape[1:] for n in self.names]
        self.sizes = [params[n][0].numel() for n in self.names]
        self.flat = torch.cat([params[n].reshape(params[n].shape[0], -1) for n in self.names], 1).contiguous()

    def views(self, flat: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        flat = self.flat if flat is None else flat
        parts = flat.split(self.sizes, dim=1)
        return {n: p.view(-1, *s) for n, p, s in zip(self.names, parts, self.shapes)}


def _group_params(arch: GenerativeArch, params: dict[str, torch.Tensor], width: int, depth: int, dim: int):
    shapes = arch.shapes(width, depth, dim)
    return {g: {name: params[name] for name, _, _ in shapes[g]} for g in arch.groups}


def _eval_noise(ch: _Chunk, rows: int) -> dict[str, torch.Tensor]:
    spec = ch.arch.train_noise(ch.dim)
    per = [_draw(torch.Generator().manual_seed(ch.seed(i, STREAM_EVAL)), spec, ch.n[i]) for i in range(ch.r)]
    full = _stack(per, max(ch.n), ch.device, ch.dtype) if spec else {}
    return {k: v[:, :rows] for k, v in full.items()}


def _objective(ch: _Chunk, p: dict, x: torch.Tensor, noise: dict, pre: list | None = None) -> torch.Tensor:
    """Per-example training objective (R, B); for the GAN the generator's loss."""
    if ch.arch.name == "gan":
        return ch.arch.g_objective(p, noise["z_g"], ch.depth, ch.residual, pre)
    return ch.arch.objective(p, x, noise, ch.depth, ch.residual, pre)


# --- batched training ---------------------------------------------------------------
@dataclass
class _Trained:
    params: dict[str, torch.Tensor]  # final stacked parameters
    implicit: torch.Tensor  # (R,) mean h |g|^2 over the window (NaN for the GAN)
    bad_step: torch.Tensor  # (R,) int64, -1 when never diverged


def _padded_indices(ch: _Chunk) -> torch.Tensor:
    per = [batch_indices(ch.seed(i, STREAM_BATCHES), ch.n[i], ch.batch[i], ch.steps[i]) for i in range(ch.r)]
    s_max = max(ch.steps) if max(p.shape[0] for p in per) > 1 else 1
    out = torch.zeros(ch.r, s_max, max(ch.batch), dtype=torch.int64)
    for i, p in enumerate(per):
        if p.shape[0] == 1:  # full batch: the same rows every step
            out[i, :, : p.shape[1]] = p
        else:
            out[i, : p.shape[0], : p.shape[1]] = p
    return out.to(ch.device)


def _train_batched(ch: _Chunk, init: dict[str, torch.Tensor], thresh: torch.Tensor) -> _Trained:
    arch, dev, dt = ch.arch, ch.device, ch.dtype
    groups = {g: _Flat(ps) for g, ps in _group_params(arch, init, ch.width, ch.depth, ch.dim).items()}
    opts = {g: FlatOptimizer(ch, f.flat) for g, f in groups.items()}
    idx = _padded_indices(ch)
    b_max = idx.shape[2]
    mask = ch.mask(ch.batch, b_max)
    spec = arch.train_noise(ch.dim)
    gens = [torch.Generator().manual_seed(ch.seed(i, STREAM_NOISE)) for i in range(ch.r)]
    steps = torch.tensor(ch.steps, device=dev)
    start = torch.tensor([implicit_window(s) for s in ch.steps], device=dev)
    h_sum = torch.zeros(ch.r, device=dev, dtype=dt)
    bad_step = torch.full((ch.r,), -1, device=dev, dtype=torch.int64)
    n_active = ch.r
    gan = arch.name == "gan"
    for t in range(max(ch.steps)):
        active_list = [i for i in range(ch.r) if t < ch.steps[i]]
        if len(active_list) != n_active:  # finished models stop: zero learning rate
            n_active = len(active_list)
            act = (t < steps).to(dt).view(-1, 1)
            for o in opts.values():
                o.set_active(act)
        it = idx[:, t % idx.shape[1]]  # (R, B)
        xb = ch.x.gather(1, it.unsqueeze(-1).expand(-1, -1, ch.dim))
        empty = {name: torch.zeros(0, *shape, dtype=torch.float64 if kind == "normal" else torch.int64)
                 for name, kind, shape in spec}
        per = [_draw(gens[i], spec, ch.batch[i]) if t < ch.steps[i] else empty for i in range(ch.r)]
        noise = _stack(per, b_max, dev, dt) if spec else {}
        window = (t >= start) & (t < steps)
        track = bool(window.any()) and not gan
        if gan:
            pg, fd = groups["gen"].views(), groups["disc"]
            with torch.no_grad():
                fake = arch.sample(pg, {"z": noise["z_d"]}, ch.depth, ch.residual)
            leaf = fd.flat.detach().requires_grad_(True)
            with torch.enable_grad():
                ld = _masked_mean(arch.d_objective(fd.views(leaf), xb, fake, ch.depth, ch.residual), mask)
                (gd,) = torch.autograd.grad(ld.sum(), leaf)
            opts["disc"].step(gd, t)
            fg = groups["gen"]
            leaf = fg.flat.detach().requires_grad_(True)
            with torch.enable_grad():
                lg = _masked_mean(arch.g_objective({**fg.views(leaf), **fd.views()}, noise["z_g"], ch.depth,
                                                   ch.residual), mask)
                (gg,) = torch.autograd.grad(lg.sum(), leaf)
            opts["gen"].step(gg, t)
            lv = torch.maximum(ld.detach(), lg.detach())
            lv = torch.where(torch.isfinite(ld.detach()) & torch.isfinite(lg.detach()), lv, torch.full_like(lv, math.nan))
        else:
            f = groups["model"]
            leaf = f.flat.detach().requires_grad_(True)
            with torch.enable_grad():
                lv = _masked_mean(arch.objective(f.views(leaf), xb, noise, ch.depth, ch.residual), mask)
                (g,) = torch.autograd.grad(lv.sum(), leaf)
            q = opts["model"].step(g, t, track=track)
            if q is not None:
                h_sum += torch.where(window, q, torch.zeros_like(q))
            lv = lv.detach()
        bad = ~(lv <= thresh) & (bad_step < 0) & (t < steps)  # non-finite or exploding
        bad_step = torch.where(bad, torch.full_like(bad_step, t + 1), bad_step)
    params = {}
    for f in groups.values():
        params.update({k: v.clone() for k, v in f.views().items()})
    implicit = h_sum / (steps - start).to(dt)
    if gan:
        implicit = torch.full_like(implicit, math.nan)
    return _Trained(params, implicit, bad_step)


# --- the naive reference ------------------------------------------------------------
def train_run_naive_generative(ch: _Chunk, init: dict[str, torch.Tensor], thresh: torch.Tensor) -> _Trained:
    """One ``nn.Module`` and ``torch.optim`` optimizer(s) per replica, trained one at a time (same draws)."""
    from runs_generator.naive import _h_grad_sq

    arch, dev, dt = ch.arch, ch.device, ch.dtype
    spec = arch.train_noise(ch.dim)
    shapes = arch.shapes(ch.width, ch.depth, ch.dim)
    finals, implicit, bad_steps = [], [], []
    for i in range(ch.r):
        cfg = ch.cfg[i]
        net = torch.nn.Module()
        net.p = torch.nn.ParameterDict({n: torch.nn.Parameter(v[i].clone()) for n, v in init.items()})
        opts = {}
        for g in arch.groups:
            params = [net.p[name] for name, _, _ in shapes[g]]
            if cfg.optimizer == "adam":
                opts[g] = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
            else:
                mom = MOMENTUM if cfg.optimizer == "momentum" else 0.0
                opts[g] = torch.optim.SGD(params, lr=cfg.lr, momentum=mom, weight_decay=cfg.weight_decay)
        gen = torch.Generator().manual_seed(ch.seed(i, STREAM_NOISE))
        idx = batch_indices(ch.seed(i, STREAM_BATCHES), ch.n[i], ch.batch[i], ch.steps[i]).to(dev)
        x = ch.x[i, : ch.n[i]]
        res = float(cfg.residual)
        start = implicit_window(cfg.steps)
        h_sum, bad_step, limit = 0.0, -1, float(thresh[i])
        for t in range(cfg.steps):
            xb = x[idx[t % idx.shape[0]]]
            noise = {k: (v.to(dev, dt) if v.is_floating_point() else v.to(dev)) for k, v in _draw(gen, spec, ch.batch[i]).items()}
            p = dict(net.p.items())
            if arch.name == "gan":
                with torch.no_grad():
                    fake = arch.sample(p, {"z": noise["z_d"]}, ch.depth, res)
                opts["disc"].zero_grad(set_to_none=True)
                ld = arch.d_objective(p, xb, fake, ch.depth, res).mean()
                ld.backward()
                opts["disc"].step()
                opts["gen"].zero_grad(set_to_none=True)
                lg = arch.g_objective(dict(net.p.items()), noise["z_g"], ch.depth, res).mean()
                lg.backward()
                opts["gen"].step()
                fd_, fg_ = float(ld.detach()), float(lg.detach())
                lv = max(fd_, fg_) if math.isfinite(fd_) and math.isfinite(fg_) else math.nan
            else:
                opts["model"].zero_grad(set_to_none=True)
                loss = arch.objective(p, xb, noise, ch.depth, res).mean()
                loss.backward()
                lv = float(loss.detach())
                grads = [q.grad.detach().clone() for q in opts["model"].param_groups[0]["params"]] if t >= start else None
                opts["model"].step()
                if grads is not None:
                    h_sum += float(_h_grad_sq(opts["model"], cfg, grads, t))
            if bad_step < 0 and not (lv <= limit):
                bad_step = t + 1
        finals.append({n: v.detach() for n, v in net.p.items()})
        implicit.append(math.nan if arch.name == "gan" else h_sum / (cfg.steps - start))
        bad_steps.append(bad_step)
    params = {n: torch.stack([f[n] for f in finals]) for n in init}
    return _Trained(params, torch.tensor(implicit, device=dev, dtype=dt), torch.tensor(bad_steps, device=dev))


# --- measurements ------------------------------------------------------------------------
def _full_objective(ch: _Chunk, params: dict, noise: dict) -> torch.Tensor:
    """Training objective on each model's whole training set with the fixed evaluation noise, (R,)."""
    with torch.no_grad():
        return _masked_mean(_objective(ch, params, ch.x, noise), ch.mask(ch.n, ch.x.shape[1]))


def _gradient_stability(ch: _Chunk, params: dict, noise: dict) -> torch.Tensor:
    if ch.depth == 1:
        return torch.full((ch.r,), math.nan, device=ch.device, dtype=ch.dtype)
    m = min(GRADSTAB_SUBSAMPLE, ch.x.shape[1])
    with torch.enable_grad():
        pre: list[torch.Tensor] = []
        sub = {k: v[:, :m] for k, v in noise.items()}
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        loss = _masked_mean(_objective(ch, params, ch.x[:, :m], sub, pre), ch.mask([min(n, m) for n in ch.n], m))
        g1, gk = torch.autograd.grad(loss.sum(), [pre[0], pre[-1]])
    gs = -torch.log10(g1.flatten(1).norm(dim=1) / gk.flatten(1).norm(dim=1)).abs()
    return torch.where(torch.isfinite(gs), gs, torch.full_like(gs, math.nan))


def _sharpness(ch: _Chunk, params: dict, noise: dict) -> torch.Tensor:
    if ch.arch.name == "gan":  # a game: no single objective whose curvature to measure
        return torch.full((ch.r,), math.nan, device=ch.device, dtype=ch.dtype)
    m = min(HESSIAN_SUBSAMPLE, ch.x.shape[1])
    names = list(params)
    p = [params[n].detach().requires_grad_(True) for n in names]
    starts = []
    for i in range(ch.r):
        g = torch.Generator().manual_seed(ch.seed(i, STREAM_HESSIAN))
        starts.append([torch.randn(t.shape[1:], generator=g, dtype=torch.float64) for t in p])
    start = [torch.stack([s[j] for s in starts]).to(ch.device, ch.dtype) for j in range(len(p))]
    norm = torch.sqrt(sum(t.pow(2).flatten(1).sum(1) for t in start))
    start = [t / norm.view(-1, *([1] * (t.dim() - 1))) for t in start]
    with torch.enable_grad():
        sub = {k: v[:, :m] for k, v in noise.items()}
        loss = _masked_mean(ch.arch.objective(dict(zip(names, p)), ch.x[:, :m], sub, ch.depth, ch.residual),
                            ch.mask([min(n, m) for n in ch.n], m)).sum()
        return lanczos_top_eigenvalue(loss, p, start, HESSIAN_ITERS)


def _samples(ch: _Chunk, params: dict) -> np.ndarray:
    spec = ch.arch.sample_noise(ch.dim)
    per = [_draw(torch.Generator().manual_seed(ch.seed(i, STREAM_SAMPLE)), spec, N_HELDOUT) for i in range(ch.r)]
    with torch.no_grad():
        out = ch.arch.sample(params, _stack(per, N_HELDOUT, ch.device, ch.dtype), ch.depth, ch.residual)
    return out.detach().to("cpu", torch.float64).numpy()  # (R, N, D)


def _baseline(ch: _Chunk, noise: dict) -> np.ndarray:
    """Per model: the no-capacity reference of ``convergence`` (see the module docstring)."""
    out = np.zeros(ch.r)
    for i in range(ch.r):
        if ch.arch.name == "diffusion":
            out[i] = float(noise["eps"][i, : ch.n[i]].pow(2).mean())
        else:  # NLL per example of the maximum-likelihood Gaussian
            x = ch.x[i, : ch.n[i]].to("cpu", torch.float64).numpy()
            cov = np.atleast_2d(np.cov(x, rowvar=False, bias=True))
            out[i] = 0.5 * (ch.dim * math.log(2 * math.pi * math.e) + np.linalg.slogdet(cov)[1])
    return out


def _mean(values) -> float | None:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()) if v.size and np.isfinite(v).all() else None


def _finalize(ch: _Chunk, trained: _Trained, gs: np.ndarray, li: np.ndarray, noise: dict, thresh: torch.Tensor,
              t0: float) -> list[RunMetrics]:
    from runs_generator.sample_quality import mode_coverage, prdc, sample_loglik

    gan = ch.arch.name == "gan"
    params = trained.params
    lf = np.full(ch.r, np.nan) if gan else _full_objective(ch, params, noise).cpu().double().numpy()
    eig = _sharpness(ch, params, noise).cpu().double().numpy()
    samples = _samples(ch, params)
    base = _baseline(ch, noise)
    with np.errstate(all="ignore"):
        if ch.arch.name == "diffusion":
            conv = -log10_or_nan(lf / base)
        else:
            conv = (base - lf) / (ch.dim * math.log(10))
    bad = trained.bad_step.cpu().numpy()
    imp = trained.implicit.cpu().double().numpy()
    finite = np.isfinite(samples.reshape(ch.r, -1)).all(1) & (np.isfinite(lf) | gan)
    with np.errstate(invalid="ignore"):  # an exploded final objective, as for a minibatch
        exploded = lf > thresh.cpu().double().numpy()
    diverged = (bad > 0) | ~finite | exploded
    n_params = sum(int(np.prod(s)) for g in ch.arch.shapes(ch.width, ch.depth, ch.dim).values() for _, s, _ in g)
    wall = (time.perf_counter() - t0) / len(ch.configs)
    run_of = np.asarray(ch.run_of)
    results = []
    for j, (cfg, data) in enumerate(zip(ch.configs, ch.datas)):
        sel = np.flatnonzero(run_of == j)
        div = bool(diverged[sel].any())
        steps_bad = bad[sel][bad[sel] > 0]
        common = dict(n_params=n_params, gradient_stability=_mean(gs[sel]), diverged=div,
                      diverged_step=int(steps_bad.min()) if steps_bad.size else (cfg.steps if div else None),
                      train_loss_initial=None if gan else _mean(li[sel]), wall_time_s=float(wall),
                      bias_sq=None, variance=None, generalization=None, test_loss=None, test_error=None,
                      gen_gap=None, deployment_risk=None, ece=None)
        if div:
            results.append(RunMetrics(**common, sharpness=None, implicit_reg=None, convergence=None,
                                      train_loss_final=None))
            continue
        mixture, real = data.meta["mixture"], np.asarray(data.x_test, np.float64)
        scores = [prdc(real, samples[i], k=PRDC_K) for i in sel]
        sharp = log10_or_nan(eig[sel])
        results.append(RunMetrics(
            **common,
            sharpness=_mean(sharp),
            implicit_reg=None if gan else _mean(log10_or_nan(imp[sel] / 4.0)),
            convergence=None if gan else _mean(conv[sel]),
            train_loss_final=None if gan else _mean(lf[sel]),
            precision=_mean([s["precision"] for s in scores]),
            recall=_mean([s["recall"] for s in scores]),
            coverage=_mean([s["coverage"] for s in scores]),
            density=_mean([s["density"] for s in scores]),
            mode_coverage=_mean([mode_coverage(samples[i], mixture) for i in sel]),
            sample_loglik=_mean([sample_loglik(samples[i], mixture) for i in sel]),
            extra={"convergence_std": float(np.std(conv[sel])) if not gan else None,
                   "precision_std": float(np.std([s["precision"] for s in scores])),
                   "recall_std": float(np.std([s["recall"] for s in scores]))},
        ))
    return results


# --- entry points ------------------------------------------------------------------------
def train_chunk(configs: Sequence[RunConfig], datas: Sequence[TaskData], *, engine: str = "batched",
                device: torch.device = torch.device("cpu"), dtype: torch.dtype = torch.float32) -> list[RunMetrics]:
    """Train the runs of one shape (arch, width, depth) as one chunk and measure them."""
    t0 = time.perf_counter()
    arch = GEN_ARCHS[configs[0].arch]
    run_of = [j for j, c in enumerate(configs) for _ in range(c.replicas)]
    replica = [k for c in configs for k in range(c.replicas)]
    ch = _Chunk(arch, list(configs), list(datas), run_of, replica, torch.device(device), dtype)
    init = ch.initial()
    noise = _eval_noise(ch, ch.x.shape[1])
    gs = _gradient_stability(ch, init, noise).cpu().double().numpy()
    if arch.name == "gan":
        li = np.full(ch.r, np.nan)
        thresh = torch.full((ch.r,), math.inf, device=ch.device, dtype=dtype)  # non-finite only
    else:
        li_t = _full_objective(ch, init, noise)
        li = li_t.cpu().double().numpy()
        thresh = EXPLODE_FACTOR * torch.clamp(li_t.abs(), min=1.0)
        thresh = torch.where(torch.isfinite(thresh), thresh, torch.full_like(thresh, math.inf))
    train = _train_batched if engine == "batched" else train_run_naive_generative
    return _finalize(ch, train(ch, init, thresh), gs, li, noise, thresh, t0)


def _check(c: RunConfig, d: TaskData) -> None:
    if c.arch not in GEN_ARCHS:
        raise ConfigError(f"run {c.run_index}: task 'generative' trains {list(GEN_ARCHS)}; received arch={c.arch!r}")
    if c.arch not in loss_entry(c.loss).archs:
        raise ConfigError(f"run {c.run_index}: arch={c.arch!r} trains with its own objective; received loss="
                          f"{c.loss!r} (the lever space resolves the loss of a generative run from its arch)")
    if d.x_train.shape[0] < c.replicas:
        raise ConfigError(f"run {c.run_index}: replicas={c.replicas} but TaskData.x_train holds "
                          f"{d.x_train.shape[0]} draws")


def train_generative(configs: Sequence[RunConfig], data: Sequence[TaskData], *, engine: str = "batched",
                     device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                     chunk_size: int | None = None) -> list[RunMetrics]:
    """The generative family's trainer: results in the order of ``configs``.

    Runs sharing ``(arch, width, depth)`` train together in chunks of at most
    ``chunk_size`` models (default :data:`MAX_CHUNK` on CPU,
    :data:`CUDA_MAX_CHUNK` on CUDA), sorted by (steps, batch) so chunks waste
    little; ``engine='naive'`` trains every replica on its own.
    """
    for c, d in zip(configs, data):
        _check(c, d)
    device = torch.device(device)
    size = chunk_size or (CUDA_MAX_CHUNK if device.type == "cuda" else MAX_CHUNK)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, c in enumerate(configs):
        groups[(c.arch, c.width, c.depth)].append(i)
    results: list[RunMetrics | None] = [None] * len(configs)
    for members in groups.values():
        if engine == "naive":
            chunks = [[i] for i in members]
        else:
            members.sort(key=lambda i: (configs[i].steps, configs[i].effective_batch, configs[i].n_train, i))
            chunks, cur, n_models = [], [], 0
            for i in members:
                if cur and n_models + configs[i].replicas > size:
                    chunks.append(cur)
                    cur, n_models = [], 0
                cur.append(i)
                n_models += configs[i].replicas
            chunks.append(cur)
        for chunk in chunks:
            chunk.sort(key=lambda j: configs[j].optimizer == "adam")  # optimizer blocks (see FlatOptimizer)
            out = train_chunk([configs[j] for j in chunk], [data[j] for j in chunk], engine=engine,
                              device=device, dtype=dtype)
            for j, m in zip(chunk, out):
                results[j] = m
    return results  # type: ignore[return-value]
