"""The supervised models, in two forms that compute the same function.

* **Stacked (functional)**: every parameter has a leading model axis ``R``
  (runs x replicas) and layers are batched matmuls, so one call trains or
  measures ``R`` independent models. Parameters are a ``dict[str, Tensor]``:
  ``w{i}`` (R, fan_in, width), ``b{i}`` (R, width) (absent before batch norm), norm affine ``g{i}``,
  ``be{i}`` (R, width) and the head ``wo`` (R, head_in, C), ``bo`` (R, C).
* **Module** (:class:`NaiveNet`): one ``torch.nn.Module`` per model, the
  reference of the naive engine.

What differs between architectures is a :class:`StackedArch` (:data:`MLP`,
:data:`CNN1D`), registered in :data:`runs_generator.registry.ARCHS`: the
layout of its hidden maps, its first and hidden layers' inputs, its linear
maps and their gradients, the flattening before the head, the layer-norm
group, and its naive module's layers. Everything else — normalization,
ReLU, dropout, residual connections and the head — is written once, in
:func:`hidden_features` and :func:`head`, which the training step's
hand-written backward (:mod:`runs_generator._fused`) also runs, recording a
:class:`Tape` of what its backward needs.

Architectures (``depth`` hidden layers, ReLU, optional norm, dropout after the
activation, residual ``h + f(h)`` on hidden->hidden layers). Batch norm
normalizes each unit / channel over the batch (and positions); layer norm
normalizes each example over its units, or for the CNN over all its channels
and positions (``nn.GroupNorm(1, C)``):

* ``mlp``: flattened input -> width -> ... -> C.
* ``cnn`` (1-D signals, input (L,)): conv k=5 stride 2 pad 2 (1 -> width
  channels, length L/2), then conv k=3 stride 1 pad 1 (width -> width), then a
  linear head on the flattened (position, channel) map. The stacked form runs a
  convolution as one bmm ``w^T @ patches`` on a channels-first (R, width, B*L)
  layout (patches (R, width*k, B*L) stacked from shifted slices): with few
  channels (4-16) every GEMM then has the long B*L axis as its wide output
  dimension, 2-5x faster on CPU than channels-last (R, B*L, width) GEMMs whose
  output is only ``width`` wide.

Initialization: He-normal, std = init_scale * sqrt(2 / fan_in), zero biases,
norm gains 1 and shifts 0, drawn from one CPU generator per model in float64.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

import torch
from torch import nn

from runs_generator.spec import Arch, Normalization

__all__ = [
    "ArchSpec",
    "StackedArch",
    "MLP",
    "CNN1D",
    "Tape",
    "param_shapes",
    "count_params",
    "init_params",
    "init_running",
    "update_running",
    "hidden_features",
    "head",
    "forward",
    "NaiveNet",
    "stack_modules",
    "normalize",
    "dropout_uniform",
    "layer_param_shapes",
    "padded_spec",
    "embed_param",
    "unit_mask",
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
    #: per model, its own width when the stacked models are padded up to ``width`` (None: every model has
    #: ``width``); see :func:`padded_spec`. A padded model's extra units start at zero and stay zero.
    units: tuple[int, ...] | None = None

    def alone(self, model: int) -> "ArchSpec":
        """The unpadded shape of model ``model`` (this spec itself when nothing is padded)."""
        if self.units is None:
            return self
        return replace(self, width=int(self.units[model]), units=None)

    @property
    def impl(self) -> "StackedArch":
        """The architecture's stacked implementation (from the registry)."""
        from runs_generator.registry import arch_entry

        return arch_entry(self.arch).impl()

    @property
    def in_features(self) -> int:
        return int(math.prod(self.input_shape))

    @property
    def length(self) -> int:
        """Hidden positions per example (the CNN's feature-map length after its strided conv; 1 for an MLP)."""
        return self.impl.length(self)

    def fan_in(self, layer: int) -> int:
        return self.impl.fan_in(self, layer)


def param_shapes(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """Per-model parameter shapes, in initialization order (the architecture's :meth:`StackedArch.param_shapes`)."""
    return spec.impl.param_shapes(spec)


def layer_param_shapes(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """The shapes of the shared layer stack: ``w{i}``, ``b{i}`` (absent before batch norm), ``g{i}``, ``be{i}``, head."""
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


def padded_spec(specs: Sequence[ArchSpec]) -> ArchSpec:
    """One stacked shape for models that differ only in width: the widest, with each model's ``units``.

    Padding is exact: a padded model's extra units have zero incoming and outgoing weights, biases,
    norm gains and shifts, so their activations are 0 (ReLU(0) = 0, and its derivative at 0 is 0), their
    gradients are 0 under every optimizer and weight decay, and layer norm averages over the model's own
    units only (:func:`normalize`). Initialization, dropout masks and Hessian start vectors are drawn in
    each model's own shape (:meth:`ArchSpec.alone`) and embedded (:func:`embed_param`), so a model's
    training and measurements are those of the model alone, up to float rounding
    (``tests/test_engine.py::test_padded_width_equals_alone``). Only architectures with
    ``pads_width`` (the MLP and the CNN) can be padded.
    """
    first = specs[0]
    if any(replace(s, width=first.width) != first for s in specs):
        raise ValueError("padded_spec: the specs differ in more than their width")
    widths = tuple(int(s.width) for s in specs)
    if len(set(widths)) == 1:
        return first
    if not first.impl.pads_width:
        raise ValueError(f"arch {first.arch!r} cannot pad widths (its StackedArch has pads_width=False)")
    return replace(first, width=max(widths), units=widths)


def embed_param(spec: ArchSpec, name: str, alone: ArchSpec, value: torch.Tensor) -> torch.Tensor:
    """One model's parameter ``name`` of shape ``alone`` placed into the padded shape ``spec`` (zeros elsewhere).

    The width axes are found from the architecture's :meth:`StackedArch.factored_shape` of both specs;
    ``value`` may carry leading dims (e.g. a model axis).
    """
    if alone.width == spec.width:
        return value
    impl = spec.impl
    shape = param_shapes(spec)[name]
    small, big = impl.factored_shape(alone, name), impl.factored_shape(spec, name)
    lead = tuple(value.shape[: value.dim() - len(param_shapes(alone)[name])])
    out = value.new_zeros(*lead, *big)
    out[(Ellipsis, *(slice(0, n) for n in small))] = value.reshape(*lead, *small)
    return out.view(*lead, *shape)


def init_params(
    spec: ArchSpec,
    seeds: Sequence[int],
    init_scales: Sequence[float],
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, torch.Tensor]:
    """Stacked He-normal initialization of ``len(seeds)`` models, each (R, ...).

    A padded spec (``spec.units``) draws each model in its own shape and embeds it (:func:`padded_spec`).
    """
    per_model = []
    impl = spec.impl
    for m, (seed, scale) in enumerate(zip(seeds, init_scales)):
        g = torch.Generator().manual_seed(int(seed))
        own = spec.alone(m)
        p = {}
        for name, shape in param_shapes(own).items():
            p[name] = embed_param(spec, name, own, impl.init_param(name, shape, g, scale))
        per_model.append(p)
    return {k: torch.stack([p[k] for p in per_model]).to(device=device, dtype=dtype) for k in per_model[0]}


def init_running(spec: ArchSpec, r: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Batch-norm running statistics (empty unless normalization is 'batch'), one pair per normalized layer."""
    return spec.impl.init_running(spec, r, device, dtype)


def layer_running(spec: ArchSpec, r: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``rm{i}``, ``rv{i}`` (R, width) for each of the ``depth`` layers under batch norm (else empty)."""
    if spec.normalization != "batch":
        return {}
    out = {}
    for i in range(spec.depth):
        out[f"rm{i}"] = torch.zeros(r, spec.width, device=device, dtype=dtype)
        out[f"rv{i}"] = torch.ones(r, spec.width, device=device, dtype=dtype)
    return out


# --- the CNN's patches and layouts ----------------------------------------------
def _patches(h: torch.Tensor, kernel: int, stride: int, pad: int) -> torch.Tensor:
    """(R, C, B, L) channels-first -> patches (R, C*kernel, B*L'), row c*kernel + k.

    Patch row ``c*kernel + k`` at output position ``l`` holds input position
    ``l*stride + k - pad`` of channel ``c`` (zero outside), i.e. the rows of a
    conv weight (C_out, C, kernel) flattened and transposed. One strided slice
    per tap is copied into an empty tensor and the border is zeroed (no padded
    copy). It is differentiable, but every slice assignment records a
    full-size copy: only the first layer (whose input, the data, needs no
    gradient) uses it; hidden layers use :func:`_cnn_hidden`.
    """
    r, c, b, length = h.shape
    n_out = (length + 2 * pad - kernel) // stride + 1
    p = h.new_empty(r, c, kernel, b, n_out)
    for k in range(kernel):
        lo = max(0, -((k - pad) // stride))  # first output position whose input l*stride + k - pad >= 0
        hi = min(n_out, (length - 1 + pad - k) // stride + 1)  # one past the last one < length
        src = lo * stride + k - pad
        p[:, :, k, :, lo:hi] = h[..., src : src + stride * (hi - lo - 1) + 1 : stride]
        if lo > 0:
            p[:, :, k, :, :lo] = 0
        if hi < n_out:
            p[:, :, k, :, hi:] = 0
    return p.view(r, c * kernel, b * n_out)


def _cnn_input(x: torch.Tensor) -> torch.Tensor:
    """Signals (R, B, L) -> first-layer patches (R, CNN_K0, B*L')."""
    return _patches(x.reshape(x.shape[0], 1, x.shape[1], -1), CNN_K0, CNN_S0, CNN_P0)


def _cnn_hidden(h: torch.Tensor, b: int) -> torch.Tensor:
    """Hidden map (R, C, B*L) -> patches (R, C*3, B*L) of the stride-1, pad-1 conv.

    As :func:`_patches`. Each side tap is one contiguous copy of the
    flattened map shifted by one position (which crosses into the
    neighbouring example at the borders) and then those border positions are
    zeroed: ~2x faster than copying length-L strided slices. Under autograd
    it is :class:`_HiddenPatches`, whose backward is the adjoint
    :func:`_hidden_fold` (and vice versa, so double backward works).
    """
    if h.requires_grad and torch.is_grad_enabled():
        return _HiddenPatches.apply(h, b)
    r, c, n = h.shape
    p = h.new_empty(r, c, CNN_K, n)
    p[:, :, 1] = h
    p[:, :, 0, 1:] = h[..., :-1]  # tap 0 at position l reads l - 1
    p[:, :, 2, :-1] = h[..., 1:]  # tap 2 reads l + 1
    p4 = p.view(r, c, CNN_K, b, -1)
    p4[:, :, 0, :, 0] = 0
    p4[:, :, 2, :, -1] = 0
    return p.view(r, c * CNN_K, n)


def _hidden_fold(g: torch.Tensor, b: int) -> torch.Tensor:
    """Adjoint of :func:`_cnn_hidden`: patch gradients (R, C*3, B*L) -> (R, C, B*L)."""
    if g.requires_grad and torch.is_grad_enabled():
        return _HiddenFold.apply(g, b)
    r, n = g.shape[0], g.shape[-1]
    g5 = g.view(r, -1, CNN_K, b, n // b)
    out = g5[:, :, 1].clone()
    out[..., :-1] += g5[:, :, 0, :, 1:]  # tap 0 at position l read input l - 1
    out[..., 1:] += g5[:, :, 2, :, :-1]  # tap 2 read l + 1
    return out.view(r, -1, n)


class _HiddenPatches(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, b: int) -> torch.Tensor:
        ctx.b = b
        return _cnn_hidden(h, b)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return _hidden_fold(g, ctx.b), None


class _HiddenFold(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g: torch.Tensor, b: int) -> torch.Tensor:
        ctx.b = b
        return _hidden_fold(g, b)

    @staticmethod
    def backward(ctx, gg: torch.Tensor):
        return _cnn_hidden(gg, ctx.b), None


def _cnn_flatten(h: torch.Tensor, b: int) -> torch.Tensor:
    """Hidden map (R, C, B*L) -> head input (R, B, L*C), position-major."""
    r, c = h.shape[0], h.shape[1]
    return h.reshape(r, c, b, -1).permute(0, 2, 3, 1).reshape(r, b, -1)


def _cnn_unflatten(dh: torch.Tensor) -> torch.Tensor:
    """Adjoint layout of :func:`_cnn_flatten`: (R, B, L, C) -> (R, C, B*L)."""
    r, c = dh.shape[0], dh.shape[-1]
    return dh.permute(0, 3, 1, 2).reshape(r, c, -1)


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
    ``mean``/``var`` (R, 1, W) or (R, W, 1) are the batch statistics over
    ``n`` (R,) rows; models with ``active`` 0 keep their statistics.
    """
    rm, rv = running[f"rm{i}"], running[f"rv{i}"]
    r = rm.shape[0]
    new_m, new_v = mean.reshape(r, -1), var.reshape(r, -1) * (n / (n - 1)).unsqueeze(1)
    if active is not None:
        keep = active.view(r, 1) > 0
        # lerp, then keep: an inactive model's statistics stay exactly as they
        # were, also where they are non-finite (lerp(inf, inf) would be NaN)
        rm.copy_(torch.where(keep, rm.lerp(new_m, BN_MOMENTUM), rm))
        rv.copy_(torch.where(keep, rv.lerp(new_v, BN_MOMENTUM), rv))
        return
    rm.lerp_(new_m, BN_MOMENTUM)  # (1 - momentum) * running + momentum * batch, in place
    rv.lerp_(new_v, BN_MOMENTUM)



# --- architectures: what differs between them ------------------------------------
class StackedArch:
    """The layer ops of one architecture, stacked over R models, and its naive module's layers.

    Hidden maps are (R, B, W) (``channels_first`` False) or channels-first
    (R, C, B*L). Subclasses define the methods below; :func:`hidden_features`,
    :func:`head` and the hand-written backward do the rest.
    """

    name: str = ""
    channels_first: bool = False
    #: True: the architecture is not a stack of ``depth`` (linear, norm, ReLU, dropout, residual) layers; it
    #: writes its whole stacked forward in :meth:`hidden` (and its parameters, running statistics and naive
    #: module in the methods below), and trains with autograd (``fused=False`` in its registry entry)
    custom: bool = False
    #: True: models of different widths may be stacked padded to the widest (:func:`padded_spec`); the
    #: architecture's :meth:`factored_shape` then names the width axes of every parameter
    pads_width: bool = False
    #: True: :meth:`linear` takes ``bias=False`` and :meth:`bias_term` gives the bias, so that without
    #: normalization the CPU forward adds the bias and applies the ReLU in one pass (:func:`hidden_features`)
    fuses_bias_relu: bool = False

    # --- parameters (every architecture) ----------------------------------------
    def param_shapes(self, spec: ArchSpec) -> dict[str, tuple[int, ...]]:
        """Per-model parameter shapes in initialization order; the head is ``wo`` (H, C) and ``bo`` (C,)."""
        return layer_param_shapes(spec)

    def factored_shape(self, spec: ArchSpec, name: str) -> tuple[int, ...]:
        """Parameter ``name``'s shape with every width-sized axis on its own (same element order).

        The default is the parameter's shape (each of its axes is either a width or not).
        """
        return param_shapes(spec)[name]

    def init_param(self, name: str, shape: tuple[int, ...], generator: torch.Generator, scale: float) -> torch.Tensor:
        """One model's initial value of parameter ``name`` (float64, drawn from ``generator``).

        Weights (names starting with ``w``) are He-normal, std = scale * sqrt(2 / shape[0]); gains
        (``g``) are 1; everything else (biases, norm shifts) is 0.
        """
        if name[0] == "w":
            return torch.randn(shape, generator=generator, dtype=torch.float64) * (scale * math.sqrt(2.0 / shape[0]))
        if name[0] == "g":
            return torch.ones(shape, dtype=torch.float64)
        return torch.zeros(shape, dtype=torch.float64)

    def init_running(self, spec: ArchSpec, r: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Batch-norm running statistics ``rm{key}``, ``rv{key}`` (R, units) of every batch-normalized layer."""
        return layer_running(spec, r, device, dtype)

    # --- a custom architecture's forward and naive module ----------------------------
    def hidden(self, spec: ArchSpec, params: dict[str, torch.Tensor], x: torch.Tensor, *, mode: Mode,
               running: dict[str, torch.Tensor] | None, residual: torch.Tensor | bool, dropout: torch.Tensor | None,
               rowmask: torch.Tensor | None, active: torch.Tensor | None, generator,
               preacts: list[torch.Tensor] | None) -> torch.Tensor:
        """A custom architecture's head input (R, B, H) (arguments as :func:`forward`).

        It appends to ``preacts`` (when given) each block's pre-activation, first to last (gradient
        stability compares the first and the last), normalizes with :func:`normalize`, updates batch
        statistics only in ``mode='train'`` and only for ``active`` models, and draws dropout masks
        with :func:`dropout_uniform` from ``generator``.
        """
        raise NotImplementedError

    def naive_module(self, spec: ArchSpec, params: dict[str, torch.Tensor], residual: bool, dropout: float,
                     noise=None) -> nn.Module:
        """One model as an ``nn.Module`` from its parameters (the naive engine's reference)."""
        return NaiveNet(spec, params, residual, dropout, noise)

    def module_params(self, spec: ArchSpec, net: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Inverse of :meth:`naive_module`: the module's parameters and running statistics by stacked name."""
        return _naive_net_params(net)

    @property
    def rows(self) -> int:
        """The dim of a hidden map that runs over examples (and positions)."""
        return 2 if self.channels_first else 1

    @property
    def feat(self) -> int:
        """The dim of a hidden map that runs over units / channels."""
        return 1 if self.channels_first else 2

    def length(self, spec: ArchSpec) -> int:  # hidden positions per example
        raise NotImplementedError

    def fan_in(self, spec: ArchSpec, layer: int) -> int:
        raise NotImplementedError

    def first_input(self, spec: ArchSpec, x: torch.Tensor) -> torch.Tensor:
        """Inputs (R, B, *in) -> what hidden layer 0's linear map acts on."""
        raise NotImplementedError

    def layer_input(self, h: torch.Tensor, b: int) -> torch.Tensor:
        """Hidden map -> what hidden layer i > 0's linear map acts on."""
        return h

    def expand_rows(self, spec: ArchSpec, rowmask: torch.Tensor) -> torch.Tensor:
        """(R, B) real-example mask -> a mask over the rows dim of the hidden maps."""
        return rowmask

    def linear(self, spec: ArchSpec, params: dict[str, torch.Tensor], i: int, inp: torch.Tensor,
               bias: bool = True) -> torch.Tensor:
        """Hidden layer ``i``'s affine map (no bias before batch norm; none with ``bias=False``, which only
        architectures with :attr:`fuses_bias_relu` are asked for)."""
        raise NotImplementedError

    def bias_term(self, params: dict[str, torch.Tensor], i: int) -> torch.Tensor:
        """Layer ``i``'s bias, broadcastable against its pre-activation (:attr:`fuses_bias_relu`)."""
        raise NotImplementedError

    def weight_grad(self, inp: torch.Tensor, dz: torch.Tensor) -> torch.Tensor:
        """d loss / d w (R, fan_in, W) from the layer input and d loss / d z."""
        raise NotImplementedError

    def input_grad(self, spec: ArchSpec, w: torch.Tensor, dz: torch.Tensor, b: int) -> torch.Tensor:
        """d loss / d h (the hidden map before layer i > 0) from d loss / d z."""
        raise NotImplementedError

    def norm_mean(self, t: torch.Tensor, b: int) -> torch.Tensor:
        """Mean over each example's layer-norm group, broadcastable against ``t``."""
        raise NotImplementedError

    def flatten(self, h: torch.Tensor, b: int) -> torch.Tensor:
        """Last hidden map -> head input (R, B, H)."""
        return h

    def unflatten(self, spec: ArchSpec, dh: torch.Tensor) -> torch.Tensor:
        """Adjoint layout of :meth:`flatten`: head-input gradient (R, B, H) -> hidden-map layout."""
        return dh

    # naive module (one model)
    def naive_layer(self, spec: ArchSpec, i: int, w: torch.Tensor, has_bias: bool) -> nn.Module:
        """Hidden layer ``i`` as an ``nn.Module`` holding the stacked-layout weight ``w`` (fan_in, W)."""
        raise NotImplementedError

    def naive_weight(self, spec: ArchSpec, layer: nn.Module) -> torch.Tensor:
        """Inverse of :meth:`naive_layer`: the module's weight in the stacked layout (fan_in, W)."""
        raise NotImplementedError

    def naive_layer_norm(self, spec: ArchSpec) -> nn.Module:
        return nn.LayerNorm(spec.width, eps=LN_EPS)

    def naive_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    def naive_flatten(self, h: torch.Tensor) -> torch.Tensor:
        """One model's last hidden map -> (B, H), in the stacked head's order."""
        return h.reshape(h.shape[0], -1)

    def naive_dropout_uniform(self, noise, f: torch.Tensor) -> torch.Tensor:
        """Uniforms for one model's hidden map ``f``, drawn as the stacked engine draws them."""
        return noise.hidden_uniform(f.unsqueeze(0), False, f.shape[0])[0]


class _MLP(StackedArch):
    """Fully connected: flattened input -> width -> ... -> C; hidden maps (R, B, W)."""

    name = "mlp"
    channels_first = False
    pads_width = True
    fuses_bias_relu = True

    def length(self, spec: ArchSpec) -> int:
        return 1

    def fan_in(self, spec: ArchSpec, layer: int) -> int:
        return spec.in_features if layer == 0 else spec.width

    def first_input(self, spec: ArchSpec, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], -1)

    def linear(self, spec, params, i, inp, bias=True):
        """(R, B, in) @ w -> (R, B, W)."""
        w = params[f"w{i}"]
        if bias and spec.normalization != "batch":
            return torch.baddbmm(params[f"b{i}"].unsqueeze(1), inp, w)
        return torch.bmm(inp, w)

    def bias_term(self, params, i):
        return params[f"b{i}"].unsqueeze(1)

    def weight_grad(self, inp, dz):
        return torch.bmm(inp.transpose(1, 2), dz)

    def input_grad(self, spec, w, dz, b):
        return torch.bmm(dz, w.transpose(1, 2))

    def norm_mean(self, t, b):
        return t.mean(dim=2, keepdim=True)

    def naive_layer(self, spec, i, w, has_bias):
        lin = nn.Linear(w.shape[0], spec.width, bias=has_bias)
        lin.weight.data = w.t().contiguous()
        return lin

    def naive_weight(self, spec, layer):
        return layer.weight.detach().t()


class _CNN1D(StackedArch):
    """1-D convolutions on channels-first (R, C, B*L) maps (see the module docstring)."""

    name = "cnn"
    channels_first = True
    pads_width = True
    fuses_bias_relu = True

    def factored_shape(self, spec: ArchSpec, name: str) -> tuple[int, ...]:
        """Hidden conv weights (C_in, k, C_out) (row ``c_in*k + tap``); the head (L', C, outputs), position-major."""
        if name[0] == "w" and name not in ("w0", "wo"):
            return (spec.width, CNN_K, spec.width)
        if name == "wo":
            return (self.length(spec), spec.width, spec.n_outputs)
        return param_shapes(spec)[name]

    def length(self, spec: ArchSpec) -> int:
        return (spec.input_shape[-1] + 2 * CNN_P0 - CNN_K0) // CNN_S0 + 1

    def fan_in(self, spec: ArchSpec, layer: int) -> int:
        return CNN_K0 if layer == 0 else spec.width * CNN_K

    def first_input(self, spec: ArchSpec, x: torch.Tensor) -> torch.Tensor:
        return _cnn_input(x)  # first-layer patches (R, 5, B*L')

    def layer_input(self, h, b):
        return _cnn_hidden(h, b)

    def expand_rows(self, spec, rowmask):
        return rowmask.repeat_interleave(self.length(spec), dim=1)

    def linear(self, spec, params, i, inp, bias=True):
        """w^T (R, C, k*C_in) @ patches (R, k*C_in, B*L) -> (R, C, B*L)."""
        wt = params[f"w{i}"].transpose(1, 2)
        if bias and spec.normalization != "batch":
            return torch.baddbmm(params[f"b{i}"].unsqueeze(2), wt, inp)
        return torch.bmm(wt, inp)

    def bias_term(self, params, i):
        return params[f"b{i}"].unsqueeze(2)

    def weight_grad(self, inp, dz):
        return torch.bmm(inp, dz.transpose(1, 2))  # (R, k*C_in, C)

    def input_grad(self, spec, w, dz, b):
        """The transposed conv: the patches of dz times the tap-flipped weights (R, C_in, C_out*k)."""
        r = w.shape[0]
        w_t = w.view(r, spec.width, CNN_K, spec.width).flip(2).transpose(2, 3).reshape(r, spec.width, -1)
        return torch.bmm(w_t, _cnn_hidden(dz, b))

    def norm_mean(self, t, b):
        """Over all C channels and L positions of an example (``nn.GroupNorm(1, C)``).

        A norm over the channels of each position alone would erase the
        signal's amplitude at that position (CNN runs with it trained to chance).
        """
        r, c, n = t.shape
        m = t.view(r, c, b, n // b).mean(dim=(1, 3), keepdim=True)  # (R, 1, B, 1)
        return m.expand(r, 1, b, n // b).reshape(r, 1, n)

    def flatten(self, h, b):
        return _cnn_flatten(h, b)  # (R, B, L'*W), position-major

    def unflatten(self, spec, dh):
        return _cnn_unflatten(dh.view(dh.shape[0], dh.shape[1], self.length(spec), spec.width))

    def naive_layer(self, spec, i, w, has_bias):
        cin, k = (1, CNN_K0) if i == 0 else (spec.width, CNN_K)
        lin = nn.Conv1d(cin, spec.width, k, stride=CNN_S0 if i == 0 else 1, padding=CNN_P0 if i == 0 else CNN_P,
                        bias=has_bias)
        lin.weight.data = w.reshape(cin, k, spec.width).permute(2, 0, 1).contiguous()
        return lin

    def naive_weight(self, spec, layer):
        return layer.weight.detach().permute(1, 2, 0).reshape(-1, spec.width)

    def naive_layer_norm(self, spec):  # over all channels and positions of an example
        return nn.GroupNorm(1, spec.width, eps=LN_EPS)

    def naive_input(self, x):
        return x.reshape(x.shape[0], 1, -1)

    def naive_flatten(self, h):
        h = h.transpose(1, 2)  # (B, L', W): position-major flatten like the stacked form
        return h.reshape(h.shape[0], -1)

    def naive_dropout_uniform(self, noise, f):
        b, c, length = f.shape
        u = noise.hidden_uniform(f.transpose(0, 1).reshape(1, c, b * length), True, b)  # channels-first
        return u[0].view(c, b, length).transpose(0, 1)


MLP = _MLP()
CNN1D = _CNN1D()


def dropout_uniform(f: torch.Tensor, generator, channels_first: bool, b: int) -> torch.Tensor:
    """Uniforms for a dropout mask over hidden map ``f``.

    ``generator`` is a :class:`~runs_generator._noise.ModelStreams` (each model
    draws its own, in its own shape: independent of the chunk), or one
    ``torch.Generator`` (or None) drawing the whole tensor at once.
    """
    if hasattr(generator, "hidden_uniform"):
        return generator.hidden_uniform(f, channels_first, b)
    return torch.rand(f.shape, generator=generator, device=f.device, dtype=f.dtype)


# --- the layers every architecture shares ----------------------------------------
@dataclass
class Tape:
    """What the hand-written backward needs from :func:`hidden_features` (train mode).

    ``layers[i]`` is ``(inp, xhat, rstd, f, scale)``: layer i's linear input,
    normalized pre-activation and its 1/std (None without norm), post-ReLU map
    and dropout scale (1/keep or 0; None without dropout). ``n``, ``m``: batch
    norm's real rows per model (R, 1, 1) and row mask (or None).
    """

    layers: list = field(default_factory=list)
    n: torch.Tensor | None = None
    m: torch.Tensor | None = None


def residual_flags(residual: torch.Tensor | bool) -> tuple[bool, bool]:
    """``(every model residual, no model residual)``: two host syncs on a GPU, so loops compute them once."""
    if isinstance(residual, torch.Tensor):
        return bool(residual.all()), not bool(residual.any())
    return bool(residual), not bool(residual)


#: least recently used last; a captured CUDA graph reads its chunk's entry, the most recently used one
_UNIT_MASKS: "OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]]" = OrderedDict()
_UNIT_MASKS_MAX = 256


def unit_mask(spec: ArchSpec, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For a padded spec: the 1/0 mask of each model's own units, broadcastable against a hidden map
    like ``like``, and ``width / own width`` (R, 1, 1), which turns a mean over all units into one over
    the model's own (cached per spec, device and dtype)."""
    key = (spec.units, spec.width, spec.impl.channels_first, like.device, like.dtype)
    hit = _UNIT_MASKS.get(key)
    if hit is not None:
        _UNIT_MASKS.move_to_end(key)
    else:
        own = torch.tensor(spec.units, dtype=like.dtype)
        mask = (torch.arange(spec.width, dtype=like.dtype).unsqueeze(0) < own.unsqueeze(1)).to(like.dtype)
        mask = mask.unsqueeze(2) if spec.impl.channels_first else mask.unsqueeze(1)  # (R, W, 1) or (R, 1, W)
        hit = (mask.to(like.device), (spec.width / own).view(-1, 1, 1).to(like.device))
        _UNIT_MASKS[key] = hit
        while len(_UNIT_MASKS) > _UNIT_MASKS_MAX:
            _UNIT_MASKS.popitem(last=False)
    return hit


def _row_stats(arch: StackedArch, h: torch.Tensor, rowmask: torch.Tensor | None):
    """Batch norm's real rows per model (R,) and the row mask broadcastable against a hidden map."""
    if rowmask is None:
        return torch.full((h.shape[0],), h.shape[arch.rows], device=h.device, dtype=h.dtype), None
    return rowmask.sum(dim=1), rowmask.unsqueeze(arch.feat)


def normalize(
    spec: ArchSpec,
    arch: "StackedArch",
    params: dict[str, torch.Tensor],
    i: int | str,
    z: torch.Tensor,
    b: int,
    *,
    mode: Mode,
    running: dict[str, torch.Tensor] | None,
    n: torch.Tensor | None,
    m: torch.Tensor | None,
    active: torch.Tensor | None,
    fma: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Normalize pre-activation ``z`` of layer ``i`` as ``spec.normalization`` says: ``(out, xhat, rstd)``.

    ``arch`` gives the hidden map's layout (its rows dim and layer-norm group,
    :meth:`StackedArch.norm_mean`); parameters ``g{i}``, ``be{i}`` and batch
    statistics ``rm{i}``, ``rv{i}`` are looked up by ``i`` (an architecture with
    several norms per block passes its own keys). ``n``, ``m``: batch norm's real
    rows per model (R,) and row mask (:func:`_row_stats`), needed outside eval
    mode. Without normalization ``z`` is returned unchanged. ``fma``: one fused
    multiply-add for the affine (the training step's rounding).
    """
    rows = arch.rows
    norm = spec.normalization
    xhat = rstd = None
    if norm == "batch":
        if mode == "eval":
            mean, var = running[f"rm{i}"].unsqueeze(rows), running[f"rv{i}"].unsqueeze(rows)
            xhat = (z - mean) * torch.rsqrt(var + BN_EPS)
        else:
            n_col = n.view(-1, 1, 1)
            if m is None:
                mean = z.mean(dim=rows, keepdim=True)
                zc = z - mean
                var = zc.square().mean(dim=rows, keepdim=True)
            else:
                mean = (z * m).sum(dim=rows, keepdim=True) / n_col
                zc = z - mean
                var = (zc.square() * m).sum(dim=rows, keepdim=True) / n_col
            if mode == "train":
                update_running(running, i, mean, var, n, active)
            # multiply by rsqrt rather than divide by sqrt: the same value to rounding, and a
            # much cheaper double backward (Hessian-vector products)
            rstd = torch.rsqrt(var + BN_EPS)
            xhat = zc * rstd
    elif norm == "layer" and spec.units is None:
        zc = z - arch.norm_mean(z, b)
        rstd = torch.rsqrt(arch.norm_mean(zc.square(), b) + LN_EPS)
        xhat = zc * rstd
    elif norm == "layer":  # padded models: statistics over each model's own units, blind to padded ones
        mask, ratio = unit_mask(spec, z)
        z = z * mask  # (padded z is 0 already; the mask keeps it out of autograd's graph, e.g. HVPs)
        zc = (z - arch.norm_mean(z, b) * ratio) * mask
        rstd = torch.rsqrt(arch.norm_mean(zc.square(), b) * ratio + LN_EPS)
        xhat = zc * rstd
    if norm != "none":
        g, be = params[f"g{i}"].unsqueeze(rows), params[f"be{i}"].unsqueeze(rows)
        # the training step (fma) uses one fused multiply-add, every other caller multiply-then-add: they
        # round differently in float32, and both are kept so that rows stay bit-identical to the engine
        # before the registry (tests/test_golden_rows.py)
        z = torch.addcmul(be, xhat, g) if fma else xhat * g + be
    return z, xhat, rstd


_add_relu_ = torch.ops.aten._add_relu_


def hidden_features(
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
    generator=None,
    preacts: list[torch.Tensor] | None = None,
    tape: Tape | None = None,
    flags: tuple[bool, bool] | None = None,
) -> torch.Tensor:
    """The head's input (R, B, H) of R stacked models on inputs x (R, B, *input_shape).

    Arguments as :func:`forward`; ``tape`` (train mode) records what the
    hand-written backward needs, ``flags`` are :func:`residual_flags` when
    already known.
    """
    arch = spec.impl
    if arch.custom:  # the architecture writes its own stacked forward (trained with autograd)
        if tape is not None:
            raise ValueError(f"arch {arch.name!r} has no hand-written backward (its registry entry needs fused=False)")
        return arch.hidden(spec, params, x, mode=mode, running=running, residual=residual, dropout=dropout,
                           rowmask=rowmask, active=active, generator=generator, preacts=preacts)
    b = x.shape[1]
    norm = spec.normalization
    h = arch.first_input(spec, x)
    if rowmask is not None:
        rowmask = arch.expand_rows(spec, rowmask)
    res_all, res_none = flags if flags is not None else residual_flags(residual)
    res_flag = residual.to(h.dtype).view(-1, 1, 1) if isinstance(residual, torch.Tensor) else None
    inplace = not torch.is_grad_enabled() and preacts is None  # preacts keep z
    # without normalization on a CPU: the bias add and the ReLU in one pass (aten::_add_relu_, a CPU kernel),
    # bit-identical to baddbmm then relu_ (the GEMM's beta=1 adds the bias after the product, as add_ does)
    add_relu = arch.fuses_bias_relu and inplace and norm == "none" and h.device.type == "cpu"
    n = m = None
    if norm == "batch" and mode != "eval":  # real rows per model, shared by every layer's batch statistics
        n, m = _row_stats(arch, h, rowmask)
        if tape is not None:
            tape.n, tape.m = n.view(-1, 1, 1), m
    if mode == "train" and dropout is not None:
        keep = 1.0 - dropout.to(h.dtype).view(-1, 1, 1)
        inv_keep = keep.reciprocal()
    for i in range(spec.depth):
        inp = arch.layer_input(h, b) if i > 0 else h
        if add_relu:
            f = _add_relu_(arch.linear(spec, params, i, inp, bias=False), arch.bias_term(params, i))
            xhat = rstd = None
        else:
            z = arch.linear(spec, params, i, inp)
            if preacts is not None:
                preacts.append(z)
            z, xhat, rstd = normalize(spec, arch, params, i, z, b, mode=mode, running=running, n=n, m=m,
                                      active=active, fma=tape is not None)
            f = torch.relu_(z) if inplace else torch.relu(z)
        scale = None
        if mode == "train" and dropout is not None:
            scale = dropout_uniform(f, generator, arch.channels_first, b)
            scale.lt_(keep).mul_(inv_keep)  # 1/keep where kept, else 0; in place
            fd = f * scale
        else:
            fd = f
        if i == 0 or res_none:
            h = fd
        elif res_all:
            h = h + fd
        else:
            h = torch.addcmul(fd, res_flag, h)
        if tape is not None:
            tape.layers.append((inp, xhat, rstd, f, scale))
    return arch.flatten(h, b)


def head(h: torch.Tensor, wo: torch.Tensor, bo: torch.Tensor) -> torch.Tensor:
    """The linear head ``h @ wo + bo`` (R, B, C) in its fast layout (:class:`_Head` under autograd)."""
    if torch.is_grad_enabled() and (h.requires_grad or wo.requires_grad or bo.requires_grad):
        return _Head.apply(h, wo, bo)
    return _head_forward(h, wo, bo)


def _head_forward(h: torch.Tensor, wo: torch.Tensor, bo: torch.Tensor) -> torch.Tensor:
    out_t = torch.baddbmm(bo.unsqueeze(2), wo.transpose(1, 2), h.transpose(1, 2))  # (R, C, B)
    return out_t.transpose(1, 2)  # (R, B, C), class-major in memory as the class losses want it (losses.class_major)


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
    generator=None,
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
    preacts : if a list is given, the hidden pre-activations are appended to
        it (the linear outputs before norm and ReLU): (R, B, W) for an MLP,
        channels-first (R, W, B*L) for a CNN.
    """
    h = hidden_features(spec, params, x, mode=mode, running=running, residual=residual, dropout=dropout,
                        rowmask=rowmask, active=active, generator=generator, preacts=preacts)
    return head(h, params["wo"], params["bo"])


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
        return _head_forward(h, wo, bo)

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

    def __init__(self, spec: ArchSpec, params: dict[str, torch.Tensor], residual: bool, dropout: float,
                 noise=None):
        super().__init__()
        self.spec, self.residual, self.arch = spec, residual, spec.impl
        # dropout masks: this model's own stream (runs_generator._noise, one model), or torch's global RNG
        self.p, self.noise = float(dropout), noise
        self.layers, self.norms = nn.ModuleList(), nn.ModuleList()
        has_bias = spec.normalization != "batch"
        for i in range(spec.depth):
            lin = self.arch.naive_layer(spec, i, params[f"w{i}"].detach().clone(), has_bias)
            if has_bias:
                lin.bias.data = params[f"b{i}"].detach().clone()
            self.layers.append(lin)
            if spec.normalization == "none":
                norm = nn.Identity()
            else:
                if spec.normalization == "batch":
                    norm = nn.BatchNorm1d(spec.width)
                else:
                    norm = self.arch.naive_layer_norm(spec)
                norm.weight.data = params[f"g{i}"].detach().clone()
                norm.bias.data = params[f"be{i}"].detach().clone()
            self.norms.append(norm)
        self.head = nn.Linear(params["wo"].shape[0], spec.n_outputs)
        self.head.weight.data = params["wo"].detach().t().contiguous()
        self.head.bias.data = params["bo"].detach().clone()
        self.to(params["wo"].dtype)

    def _dropout_uniform(self, f: torch.Tensor) -> torch.Tensor:
        """Uniforms for (B, W) or (B, C, L) activations, drawn as the stacked engine draws them."""
        if self.noise is None:
            return torch.rand_like(f)
        return self.arch.naive_dropout_uniform(self.noise, f)

    def _norm(self, i: int, z: torch.Tensor) -> torch.Tensor:
        return self.norms[i](z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.arch.naive_input(x)
        for i, lin in enumerate(self.layers):
            f = torch.relu(self._norm(i, lin(h)))
            if self.training and self.p > 0:
                keep = 1.0 - self.p
                f = f * (self._dropout_uniform(f) < keep) / keep
            h = h + f if (self.residual and i > 0) else f
        return self.head(self.arch.naive_flatten(h))


def _naive_net_params(net: NaiveNet) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A :class:`NaiveNet`'s parameters and running statistics in the stacked names and layouts."""
    spec = net.spec
    params: dict[str, torch.Tensor] = {}
    running: dict[str, torch.Tensor] = {}
    for i, lin in enumerate(net.layers):
        params[f"w{i}"] = net.arch.naive_weight(spec, lin)
        if lin.bias is not None:
            params[f"b{i}"] = lin.bias.detach()
        norm = net.norms[i]
        if spec.normalization != "none":
            params[f"g{i}"] = norm.weight.detach()
            params[f"be{i}"] = norm.bias.detach()
        if spec.normalization == "batch":
            running[f"rm{i}"] = norm.running_mean.detach()
            running[f"rv{i}"] = norm.running_var.detach()
    params["wo"] = net.head.weight.detach().t()
    params["bo"] = net.head.bias.detach()
    return params, running


def stack_modules(nets: Sequence[nn.Module], spec: ArchSpec | None = None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Stacked parameters and running statistics of naive modules (inverse of :meth:`StackedArch.naive_module`).

    ``spec`` defaults to the modules' own ``spec`` attribute (a :class:`NaiveNet` has one).
    """
    spec = spec if spec is not None else nets[0].spec
    per = [spec.impl.module_params(spec, net) for net in nets]
    order = list(param_shapes(spec))
    missing = [k for k in order if k not in per[0][0]]
    if missing:
        raise ValueError(f"arch {spec.arch!r}: module_params() lacks parameters {missing}")
    return (
        {k: torch.stack([p[k] for p, _ in per]).clone() for k in order},
        {k: torch.stack([r[k] for _, r in per]).clone() for k in per[0][1]},
    )
