"""The supervised models, in two forms that compute the same function.

* **Stacked (functional)**: every parameter has a leading model axis ``R``
  (runs x replicas) and layers are batched matmuls, so one call trains or
  measures ``R`` independent models. Parameters are a ``dict[str, Tensor]``:
  ``w{i}`` (R, fan_in, width), ``b{i}`` (R, width) (absent before batch norm), norm affine ``g{i}``,
  ``be{i}`` (R, width) and the head ``wo`` (R, head_in, C), ``bo`` (R, C).
* **Module** (:class:`NaiveNet`): one ``torch.nn.Module`` per model, the
  reference of the naive engine.

Architectures (``depth`` hidden layers, ReLU, optional norm, dropout after the
activation, residual ``h + f(h)`` on hidden->hidden layers):

* ``mlp``: flattened input -> width -> ... -> C.
* ``cnn`` (1-D signals, input (L,)): conv k=5 stride 2 pad 2 (1 -> width
  channels, length L/2), then conv k=3 stride 1 pad 1 (width -> width), then a
  linear head on the flattened (position, channel) map. The stacked form runs a
  convolution as unfold + bmm on a channels-last (R, B*L, width) layout.

Initialization: He-normal, std = init_scale * sqrt(2 / fan_in), zero biases,
norm gains 1 and shifts 0, drawn from one CPU generator per model in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import nn

from runs_generator.spec import Arch, Normalization

__all__ = [
    "ArchSpec",
    "param_shapes",
    "count_params",
    "init_params",
    "init_running",
    "update_running",
    "forward",
    "NaiveNet",
    "stack_modules",
]

BN_EPS = 1e-5
LN_EPS = 1e-5
BN_MOMENTUM = 0.1
CNN_K0, CNN_S0, CNN_P0 = 5, 2, 2  # first conv: kernel, stride, padding
CNN_K, CNN_P = 3, 1  # later convs (stride 1, length preserved)

Mode = Literal["train", "batchstat", "eval"]


@dataclass(frozen=True)
class ArchSpec:
    """The shape of a model: what runs must share to be stacked."""

    arch: Arch
    input_shape: tuple[int, ...]  # per example, e.g. (20,) or (40,)
    n_outputs: int  # classes or regression outputs
    width: int  # hidden units / channels
    depth: int  # hidden layers
    normalization: Normalization

    @property
    def in_features(self) -> int:
        return int(math.prod(self.input_shape))

    @property
    def length(self) -> int:
        """CNN feature-map length after the first (strided) conv; 1 for an MLP."""
        if self.arch == "mlp":
            return 1
        return (self.input_shape[-1] + 2 * CNN_P0 - CNN_K0) // CNN_S0 + 1

    def fan_in(self, layer: int) -> int:
        if self.arch == "mlp":
            return self.in_features if layer == 0 else self.width
        return CNN_K0 if layer == 0 else self.width * CNN_K


def param_shapes(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """Per-model parameter shapes, in initialization order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(spec.depth):
        shapes[f"w{i}"] = (spec.fan_in(i), spec.width)
        if spec.normalization != "batch":  # batch norm removes a bias (and Adam would chase its rounding noise)
            shapes[f"b{i}"] = (spec.width,)
        if spec.normalization != "none":
            shapes[f"g{i}"] = (spec.width,)
            shapes[f"be{i}"] = (spec.width,)
    shapes["wo"] = (spec.width * spec.length, spec.n_outputs)
    shapes["bo"] = (spec.n_outputs,)
    return shapes


def count_params(spec: ArchSpec) -> int:
    """Trainable parameters of one model."""
    return int(sum(math.prod(s) for s in param_shapes(spec).values()))


def init_params(
    spec: ArchSpec,
    seeds: Sequence[int],
    init_scales: Sequence[float],
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, torch.Tensor]:
    """Stacked He-normal initialization of ``len(seeds)`` models, each (R, ...)."""
    per_model = []
    for seed, scale in zip(seeds, init_scales):
        g = torch.Generator().manual_seed(int(seed))
        p = {}
        for name, shape in param_shapes(spec).items():
            if name[0] == "w":
                fan_in = shape[0]
                p[name] = torch.randn(shape, generator=g, dtype=torch.float64) * (scale * math.sqrt(2.0 / fan_in))
            elif name[0] == "g":
                p[name] = torch.ones(shape, dtype=torch.float64)
            else:
                p[name] = torch.zeros(shape, dtype=torch.float64)
        per_model.append(p)
    return {k: torch.stack([p[k] for p in per_model]).to(device=device, dtype=dtype) for k in per_model[0]}


def init_running(spec: ArchSpec, r: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Batch-norm running statistics (empty unless normalization is 'batch')."""
    if spec.normalization != "batch":
        return {}
    out = {}
    for i in range(spec.depth):
        out[f"rm{i}"] = torch.zeros(r, spec.width, device=device, dtype=dtype)
        out[f"rv{i}"] = torch.ones(r, spec.width, device=device, dtype=dtype)
    return out


def _unfold(h: torch.Tensor, kernel: int, stride: int, pad: int) -> torch.Tensor:
    """(R, B, L, C) channels-last -> patches (R, B, L', C*kernel), index c*kernel + k."""
    h = nn.functional.pad(h, (0, 0, pad, pad))
    p = h.unfold(2, kernel, stride)  # (R, B, L', C, kernel)
    return p.reshape(*p.shape[:3], -1)


def _batchnorm(
    z: torch.Tensor,
    i: int,
    mode: Mode,
    running: dict[str, torch.Tensor],
    rowmask: torch.Tensor | None,
    active: torch.Tensor | None,
) -> torch.Tensor:
    """Batch norm over rows of z (R, N, W); rowmask (R, N) marks real rows."""
    if mode == "eval":
        mean, var = running[f"rm{i}"].unsqueeze(1), running[f"rv{i}"].unsqueeze(1)
        return (z - mean) / torch.sqrt(var + BN_EPS)
    if rowmask is None:
        mean = z.mean(dim=1, keepdim=True)
        var = ((z - mean) ** 2).mean(dim=1, keepdim=True)
        n = torch.full((z.shape[0],), z.shape[1], device=z.device, dtype=z.dtype)
    else:
        m = rowmask.unsqueeze(-1)
        n = rowmask.sum(dim=1)
        mean = (z * m).sum(dim=1, keepdim=True) / n.view(-1, 1, 1)
        var = (((z - mean) ** 2) * m).sum(dim=1, keepdim=True) / n.view(-1, 1, 1)
    if mode == "train":
        update_running(running, i, mean, var, n, active)
    return (z - mean) / torch.sqrt(var + BN_EPS)


@torch.no_grad()
def update_running(
    running: dict[str, torch.Tensor],
    i: int,
    mean: torch.Tensor,
    var: torch.Tensor,
    n: torch.Tensor,
    active: torch.Tensor | None,
) -> None:
    """Batch-norm running statistics of layer ``i`` after one training batch.

    As ``torch.nn.BatchNorm1d``: momentum 0.1 and the unbiased batch variance.
    ``mean``/``var`` (R, 1, W) are the batch statistics over ``n`` (R,) rows;
    models with ``active`` 0 keep their statistics.
    """
    rm, rv = running[f"rm{i}"], running[f"rv{i}"]
    new_m = (1 - BN_MOMENTUM) * rm + BN_MOMENTUM * mean.squeeze(1)
    new_v = (1 - BN_MOMENTUM) * rv + BN_MOMENTUM * var.squeeze(1) * (n / (n - 1)).unsqueeze(1)
    if active is not None:
        keep = active.unsqueeze(1) > 0
        new_m, new_v = torch.where(keep, new_m, rm), torch.where(keep, new_v, rv)
    rm.copy_(new_m)
    rv.copy_(new_v)


def forward(
    spec: ArchSpec,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    *,
    mode: Mode = "eval",
    running: dict[str, torch.Tensor] | None = None,
    residual: torch.Tensor | bool = False,
    dropout: torch.Tensor | None = None,
    rowmask: torch.Tensor | None = None,
    active: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    preacts: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Outputs (R, B, C) of R stacked models on inputs x (R, B, *input_shape).

    Parameters
    ----------
    mode : 'train' (batch statistics, dropout, running-stat update),
        'batchstat' (batch statistics, no dropout) or 'eval' (running statistics).
    residual : per-model 0/1 flags (R,) or one bool for all.
    dropout : per-model drop probabilities (R,), or None for no dropout.
    rowmask : (R, B) 1 for real examples, 0 for padding (batch statistics only).
    active : (R,) models whose running statistics may change (train mode).
    preacts : if a list is given, the hidden pre-activations (R, N, W) are
        appended to it (the linear outputs before norm and ReLU).
    """
    r, b = x.shape[0], x.shape[1]
    if spec.arch == "mlp":
        h = x.reshape(r, b, -1)
    else:
        h = x.reshape(r, b, -1, 1)  # (R, B, L, 1) channels-last
        h = _unfold(h, CNN_K0, CNN_S0, CNN_P0).reshape(r, -1, CNN_K0)  # (R, B*L', 5)
        if rowmask is not None:
            rowmask = rowmask.repeat_interleave(spec.length, dim=1)
    res_mixed = isinstance(residual, torch.Tensor)
    if res_mixed:
        res_all, res_none = bool(residual.all()), not bool(residual.any())
        res_flag = residual.to(h.dtype).view(-1, 1, 1)
    else:
        res_all, res_none = bool(residual), not bool(residual)
    for i in range(spec.depth):
        if spec.arch == "cnn" and i > 0:
            inp = _unfold(h.reshape(r, b, spec.length, spec.width), CNN_K, 1, CNN_P).reshape(r, -1, spec.width * CNN_K)
        else:
            inp = h
        if spec.normalization == "batch":
            z = torch.bmm(inp, params[f"w{i}"])  # (R, N, W)
        else:
            z = torch.baddbmm(params[f"b{i}"].unsqueeze(1), inp, params[f"w{i}"])
        if preacts is not None:
            preacts.append(z)
        if spec.normalization == "batch":
            z = _batchnorm(z, i, mode, running, rowmask, active)
        elif spec.normalization == "layer":
            mean = z.mean(dim=-1, keepdim=True)
            var = ((z - mean) ** 2).mean(dim=-1, keepdim=True)
            z = (z - mean) / torch.sqrt(var + LN_EPS)
        if spec.normalization != "none":
            z = z * params[f"g{i}"].unsqueeze(1) + params[f"be{i}"].unsqueeze(1)
        f = torch.relu(z)
        if mode == "train" and dropout is not None:
            keep = 1.0 - dropout.to(f.dtype).view(-1, 1, 1)
            mask = torch.rand(f.shape, generator=generator, device=f.device, dtype=f.dtype) < keep
            f = f * mask / keep
        if i == 0 or res_none:
            h = f
        elif res_all:
            h = h + f
        else:
            h = res_flag * h + f
    h = h.reshape(r, b, -1)  # (R, B, L'*W), position-major for the CNN
    return _Head.apply(h, params["wo"], params["bo"])


class _Head(torch.autograd.Function):
    """The linear head ``h @ wo + bo`` (R, B, C), computed in its fast layouts.

    The head has few outputs (C ~ 10), and batched GEMMs whose last dimension
    is that narrow run ~4x below peak on CPU, in the forward (h @ wo) and in
    autograd's weight gradient (h^T @ dout). Computing ``out^T = wo^T h^T`` and
    ``dwo^T = dout^T h`` instead keeps every GEMM wide, while ``dh = dout wo^T``
    stays contiguous for the ReLU backward (a transposed gradient makes that
    elementwise op ~10x slower). The backward is made of differentiable ops, so
    double backward (Hessian-vector products) works.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, wo: torch.Tensor, bo: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h, wo)
        out_t = torch.baddbmm(bo.unsqueeze(2), wo.transpose(1, 2), h.transpose(1, 2))  # (R, C, B)
        return out_t.transpose(1, 2).contiguous()  # (R, B, C)

    @staticmethod
    def backward(ctx, dout: torch.Tensor):
        h, wo = ctx.saved_tensors
        dh = dwo = dbo = None
        if ctx.needs_input_grad[0]:
            dh = torch.bmm(dout, wo.transpose(1, 2))  # (R, B, H)
        if ctx.needs_input_grad[1]:
            dwo = torch.bmm(dout.transpose(1, 2), h).transpose(1, 2)  # (R, H, C)
        if ctx.needs_input_grad[2]:
            dbo = dout.sum(dim=1)  # (R, C)
        return dh, dwo, dbo


class NaiveNet(nn.Module):
    """One model as a plain ``nn.Module`` (the naive engine's reference)."""

    def __init__(self, spec: ArchSpec, params: dict[str, torch.Tensor], residual: bool, dropout: float):
        super().__init__()
        self.spec, self.residual = spec, residual
        self.layers, self.norms = nn.ModuleList(), nn.ModuleList()
        has_bias = spec.normalization != "batch"
        for i in range(spec.depth):
            w = params[f"w{i}"].detach().clone()  # (fan_in, W)
            if spec.arch == "mlp":
                lin = nn.Linear(w.shape[0], spec.width, bias=has_bias)
                lin.weight.data = w.t().contiguous()
            else:
                cin, k = (1, CNN_K0) if i == 0 else (spec.width, CNN_K)
                lin = nn.Conv1d(cin, spec.width, k, stride=CNN_S0 if i == 0 else 1,
                                padding=CNN_P0 if i == 0 else CNN_P, bias=has_bias)
                lin.weight.data = w.reshape(cin, k, spec.width).permute(2, 0, 1).contiguous()
            if has_bias:
                lin.bias.data = params[f"b{i}"].detach().clone()
            self.layers.append(lin)
            if spec.normalization == "none":
                norm = nn.Identity()
            else:
                norm = nn.BatchNorm1d(spec.width) if spec.normalization == "batch" else nn.LayerNorm(spec.width)
                norm.weight.data = params[f"g{i}"].detach().clone()
                norm.bias.data = params[f"be{i}"].detach().clone()
            self.norms.append(norm)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(params["wo"].shape[0], spec.n_outputs)
        self.head.weight.data = params["wo"].detach().t().contiguous()
        self.head.bias.data = params["bo"].detach().clone()
        self.to(params["wo"].dtype)

    def _norm(self, i: int, z: torch.Tensor) -> torch.Tensor:
        norm = self.norms[i]
        if self.spec.arch == "cnn" and isinstance(norm, nn.LayerNorm):
            return norm(z.transpose(1, 2)).transpose(1, 2)  # over channels, per position
        return norm(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], -1) if self.spec.arch == "mlp" else x.reshape(x.shape[0], 1, -1)
        for i, lin in enumerate(self.layers):
            f = self.drop(torch.relu(self._norm(i, lin(h))))
            h = h + f if (self.residual and i > 0) else f
        if self.spec.arch == "cnn":
            h = h.transpose(1, 2)  # (B, L', W): position-major flatten like the stacked form
        return self.head(h.reshape(h.shape[0], -1))


def stack_modules(nets: Sequence[NaiveNet]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Stacked parameters and running statistics of modules (inverse of NaiveNet)."""
    params: dict[str, list[torch.Tensor]] = {}
    running: dict[str, list[torch.Tensor]] = {}
    for net in nets:
        spec = net.spec
        for i, lin in enumerate(net.layers):
            w = lin.weight.detach()
            w = w.t() if spec.arch == "mlp" else w.permute(1, 2, 0).reshape(-1, spec.width)
            params.setdefault(f"w{i}", []).append(w)
            if lin.bias is not None:
                params.setdefault(f"b{i}", []).append(lin.bias.detach())
            norm = net.norms[i]
            if spec.normalization != "none":
                params.setdefault(f"g{i}", []).append(norm.weight.detach())
                params.setdefault(f"be{i}", []).append(norm.bias.detach())
            if spec.normalization == "batch":
                running.setdefault(f"rm{i}", []).append(norm.running_mean.detach())
                running.setdefault(f"rv{i}", []).append(norm.running_var.detach())
        params.setdefault("wo", []).append(net.head.weight.detach().t())
        params.setdefault("bo", []).append(net.head.bias.detach())
    order = list(param_shapes(nets[0].spec))
    return (
        {k: torch.stack(params[k]).clone() for k in order},
        {k: torch.stack(v).clone() for k, v in running.items()},
    )
