"""A custom architecture (``StackedArch.custom``): its own stacked forward, parameters and naive module.

The transformer and the GNN of issue 11 are not stacks of (linear, norm, ReLU)
layers; they plug into the engine through :meth:`StackedArch.hidden`,
:meth:`StackedArch.param_shapes` and :meth:`StackedArch.naive_module`. This
test registers a small one (a two-layer "gated" network, nothing like the
shared layer stack) and checks that the batched engine, trained with autograd
through its stacked forward, equals its naive module trained one replica at a
time, and that the naive module and the stacked forward are the same function.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

import pytest
import torch
from torch import nn

from runs_generator._toydata import toy_config, toy_data
from runs_generator.engine import train_runs
from runs_generator.models import MLP, ArchSpec, StackedArch, dropout_uniform, forward, init_params, normalize, \
    stack_modules
from runs_generator.registry import ARCHS, TASKS, ArchEntry
from runs_generator.spec import RunMetrics

FLOATS = [f.name for f in fields(RunMetrics) if f.name not in ("n_params", "diverged", "diverged_step",
                                                               "wall_time_s", "extra")]


class _Gated(StackedArch):
    """h = relu(norm(x w_in)) * sigmoid(x w_gate), then ``depth - 1`` normalized ReLU layers (+ residual)."""

    name = "gated"
    custom = True

    def length(self, spec):
        return 1

    def param_shapes(self, spec):
        d, w = spec.in_features, spec.width
        shapes = {"w_in": (d, w), "w_gate": (d, w), "b_gate": (w,)}
        for i in range(spec.depth):
            if i > 0:
                shapes[f"w{i}"] = (w, w)
            if spec.normalization != "none":
                shapes[f"g{i}"], shapes[f"be{i}"] = (w,), (w,)
        shapes["wo"], shapes["bo"] = (w, spec.n_outputs), (spec.n_outputs,)
        return shapes

    def hidden(self, spec, params, x, *, mode, running, residual, dropout, rowmask, active, generator, preacts):
        x = x.reshape(x.shape[0], x.shape[1], -1)
        b = x.shape[1]
        n = m = None
        if spec.normalization == "batch" and mode != "eval":
            n = rowmask.sum(1) if rowmask is not None else torch.full((x.shape[0],), b, dtype=x.dtype)
            m = rowmask.unsqueeze(2) if rowmask is not None else None
        gate = torch.sigmoid(torch.bmm(x, params["w_gate"]) + params["b_gate"].unsqueeze(1))
        h = None
        for i in range(spec.depth):
            z = torch.bmm(x if i == 0 else h, params["w_in" if i == 0 else f"w{i}"])
            if preacts is not None:
                preacts.append(z)
            z, _, _ = normalize(spec, MLP, params, i, z, b, mode=mode, running=running, n=n, m=m, active=active)
            f = torch.relu(z) * (gate if i == 0 else 1.0)
            if mode == "train" and dropout is not None:
                keep = 1.0 - dropout.to(f.dtype).view(-1, 1, 1)
                f = f * (dropout_uniform(f, generator, False, b) < keep) / keep
            res = residual.to(f.dtype).view(-1, 1, 1) if isinstance(residual, torch.Tensor) else float(residual)
            h = f if i == 0 else f + res * h
        return h

    def naive_module(self, spec, params, residual, dropout, noise=None):
        return _GatedNet(spec, params, residual, dropout, noise)

    def module_params(self, spec, net):
        p = {k: v.detach() for k, v in net.p.items()}
        running = {}
        for i, bn in enumerate(net.bns):
            if isinstance(bn, nn.BatchNorm1d):
                p[f"g{i}"], p[f"be{i}"] = bn.weight.detach(), bn.bias.detach()
                running[f"rm{i}"], running[f"rv{i}"] = bn.running_mean.detach(), bn.running_var.detach()
            elif isinstance(bn, nn.LayerNorm):
                p[f"g{i}"], p[f"be{i}"] = bn.weight.detach(), bn.bias.detach()
        return p, running


class _GatedNet(nn.Module):
    def __init__(self, spec: ArchSpec, params, residual: bool, dropout: float, noise):
        super().__init__()
        self.spec, self.residual, self.drop, self.noise = spec, residual, float(dropout), noise
        self.p = nn.ParameterDict({k: nn.Parameter(v.detach().clone()) for k, v in params.items()
                                   if k[0] != "g" and not k.startswith("be")})
        self.bns = nn.ModuleList()
        for i in range(spec.depth):
            if spec.normalization == "none":
                self.bns.append(nn.Identity())
                continue
            bn = nn.BatchNorm1d(spec.width) if spec.normalization == "batch" else nn.LayerNorm(spec.width)
            bn.weight.data, bn.bias.data = params[f"g{i}"].detach().clone(), params[f"be{i}"].detach().clone()
            self.bns.append(bn)
        self.to(params["wo"].dtype)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        gate = torch.sigmoid(x @ self.p["w_gate"] + self.p["b_gate"])
        h = None
        for i in range(self.spec.depth):
            f = torch.relu(self.bns[i]((x if i == 0 else h) @ self.p["w_in" if i == 0 else f"w{i}"]))
            f = f * (gate if i == 0 else 1.0)
            if self.training and self.drop > 0:
                keep = 1.0 - self.drop
                u = self.noise.hidden_uniform(f.unsqueeze(0), False, f.shape[0])[0] if self.noise else torch.rand_like(f)
                f = f * (u < keep) / keep
            h = f if i == 0 else (f + h if self.residual else f)
        return h @ self.p["wo"] + self.p["bo"]


@pytest.fixture
def gated(monkeypatch):
    monkeypatch.setitem(ARCHS, "gated", ArchEntry(name="gated", impl_path=_Gated(), fused=False))
    teacher = TASKS["teacher"]
    monkeypatch.setitem(TASKS, "teacher", replace(teacher, archs=(*teacher.archs, "gated")))


@pytest.mark.parametrize("normalization", ["none", "batch", "layer"])
def test_custom_arch_batched_equals_its_naive_module(gated, normalization) -> None:
    configs = [toy_config(run_index=i, seed=90 + i, arch="gated", normalization=normalization, residual=bool(i),
                          depth=3, steps=10, optimizer=("sgd", "adam")[i], lr=0.05, dropout=0.2 * i, batch_size=16)
               for i in range(2)]
    data = [toy_data(c) for c in configs]
    batched = train_runs(configs, data, dtype=torch.float64)
    naive = train_runs(configs, data, engine="naive", dtype=torch.float64)
    for a, b in zip(batched, naive):
        assert a.n_params == b.n_params == sum(math.prod(s) for s in _Gated().param_shapes(
            ArchSpec("gated", (10,), 3, 16, 3, normalization)).values())
        assert a.generalization is not None and a.generalization > 0.3  # it trained and was measured
        for name in FLOATS:
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), name
            assert x is None or math.isclose(x, y, rel_tol=1e-7, abs_tol=1e-9), (normalization, name, x, y)


def test_custom_arch_stacked_forward_is_its_naive_module(gated) -> None:
    spec = ArchSpec("gated", (20,), 4, 16, 3, "layer")
    params = init_params(spec, [1, 2], [1.0, 0.5], torch.device("cpu"), torch.float64)
    x = torch.randn(2, 7, 20, dtype=torch.float64)
    out = forward(spec, params, x, residual=torch.tensor([True, False]))
    nets = [spec.impl.naive_module(spec, {k: v[r] for k, v in params.items()}, bool(r == 0), 0.0).eval()
            for r in range(2)]
    for r, net in enumerate(nets):
        torch.testing.assert_close(net(x[r]), out[r], rtol=1e-12, atol=1e-12)
    back, _ = stack_modules(nets, spec)
    assert list(back) == list(params) and all(torch.equal(back[k], params[k]) for k in params)
