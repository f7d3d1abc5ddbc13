"""One training step of R stacked models with a hand-written backward pass.

:func:`loss_and_grads` computes the same per-model training losses and
parameter gradients as ``torch.autograd.grad`` through
:func:`runs_generator.models.forward` in ``mode='train'`` (tests check this to
float64 rounding for every architecture, normalization, residual, dropout and
row-mask variant), but:

* the gradients are written straight into the rows of one (R, P) buffer (the
  layout of the optimizer's flat parameters), with no ``torch.cat``;
* every GEMM runs in its fast layout (the narrow head as ``wo^T h^T``, CNN
  layers channels-first with the long B*L axis as the output width, the conv
  input gradient as a forward-shaped GEMM on the patches of ``dz`` with
  tap-flipped weights, the ReLU backward as one ``threshold_backward`` on the
  saved activation);
* no autograd at all: the loss and ``dL/dout`` come from
  :meth:`~runs_generator._modelset.ModelSet.objective_and_grad`, written out
  for each model's own loss kind.

Per-model independence is kept: every reduction is within a model (dim >= 1).
The Hessian and gradient-stability measurements still use autograd through
:func:`~runs_generator.models.forward` (they need double backward).
"""

from __future__ import annotations

from typing import Callable

import torch

from runs_generator.models import (
    BN_EPS,
    CNN_K,
    LN_EPS,
    ArchSpec,
    _cnn_flatten,
    _cnn_hidden,
    _cnn_input,
    _cnn_unflatten,
    _linear,
    dropout_uniform,
    layer_norm_mean,
    update_running,
)
from runs_generator._noise import ModelStreams

__all__ = ["loss_and_grads"]

_threshold_backward = torch.ops.aten.threshold_backward


def loss_and_grads(
    spec: ArchSpec,
    params: dict[str, torch.Tensor],
    grads: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    objective: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]],
    *,
    running: dict[str, torch.Tensor],
    residual: torch.Tensor,
    dropout: torch.Tensor | None = None,
    rowmask: torch.Tensor | None = None,
    active: torch.Tensor | None = None,
    generator: "torch.Generator | ModelStreams | None" = None,
    residual_flags: tuple[bool, bool] | None = None,
) -> torch.Tensor:
    """Training losses (R,) of the stacked models; gradients are written into ``grads``.

    Parameters
    ----------
    params : named (R, ...) parameters, as for ``forward``.
    grads : named (R, ...) tensors of the same shapes (e.g. views of an (R, P)
        buffer), overwritten with ``d(sum of losses)/d param``.
    objective : ``(out, y, rowmask) -> (losses (R,), d(sum of losses)/d out)``, e.g.
        :meth:`ModelSet.objective_and_grad`.
    Other arguments as :func:`runs_generator.models.forward` in train mode;
    random draws (dropout masks) happen in the same order, so the same
    ``generator`` state gives the same masks. ``generator`` is a
    :class:`~runs_generator._noise.ModelStreams` in training (per-model
    masks), or one ``torch.Generator`` for the whole tensor.
    residual_flags : ``(all models residual, no model residual)``; computed
        from ``residual`` when None (two host syncs on a GPU, so a training
        loop computes them once).
    """
    r, b = x.shape[0], x.shape[1]
    cnn = spec.arch == "cnn"
    rows, feat = (2, 1) if cnn else (1, 2)  # hidden maps: CNN (R, C, B*L), MLP (R, B, W)
    norm = spec.normalization
    rows_mask = rowmask
    if cnn:
        h = _cnn_input(x)
        if rowmask is not None:
            rows_mask = rowmask.repeat_interleave(spec.length, dim=1)
    else:
        h = x.reshape(r, b, -1)
    if residual_flags is None:
        residual_flags = bool(residual.all()), not bool(residual.any())  # host syncs: pass them in a loop
    res_all, res_none = residual_flags
    res_flag = residual.to(h.dtype).view(-1, 1, 1)
    if norm == "batch":  # real rows per model, shared by every layer's batch statistics
        n = rows_mask.sum(dim=1) if rows_mask is not None else torch.full((r,), h.shape[rows], device=h.device, dtype=h.dtype)
        n_col = n.view(-1, 1, 1)
        m = rows_mask.unsqueeze(feat) if rows_mask is not None else None
    if dropout is not None:
        keep = 1.0 - dropout.to(h.dtype).view(-1, 1, 1)
        inv_keep = keep.reciprocal()
    saved = []  # per layer: (inp, xhat, rstd, f, drop_scale)
    for i in range(spec.depth):
        inp = _cnn_hidden(h, b) if cnn and i > 0 else h
        z = _linear(spec, params, i, inp)
        xhat = rstd = None
        if norm == "batch":
            if m is None:
                mean = z.mean(dim=rows, keepdim=True)
                zc = z - mean
                var = zc.square().mean(dim=rows, keepdim=True)
            else:
                mean = (z * m).sum(dim=rows, keepdim=True) / n_col
                zc = z - mean
                var = (zc.square() * m).sum(dim=rows, keepdim=True) / n_col
            update_running(running, i, mean, var, n, active)
            rstd = torch.rsqrt(var + BN_EPS)
            xhat = zc * rstd
        elif norm == "layer":
            zc = z - layer_norm_mean(z, cnn, b)
            rstd = torch.rsqrt(layer_norm_mean(zc.square(), cnn, b) + LN_EPS)
            xhat = zc * rstd
        if norm != "none":
            z = torch.addcmul(params[f"be{i}"].unsqueeze(rows), xhat, params[f"g{i}"].unsqueeze(rows))
        f = torch.relu_(z)
        scale = None
        if dropout is not None:
            scale = dropout_uniform(f, generator, cnn, b)  # the same draw as forward
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
        saved.append((inp, xhat, rstd, f, scale))

    hf = _cnn_flatten(h, b) if cnn else h  # (R, B, H)
    wo = params["wo"]
    out = torch.baddbmm(params["bo"].unsqueeze(2), wo.transpose(1, 2), hf.transpose(1, 2)).transpose(1, 2).contiguous()
    losses, dout = objective(out, y, rowmask)

    grads["wo"].copy_(torch.bmm(dout.transpose(1, 2), hf).transpose(1, 2))
    grads["bo"].copy_(dout.sum(dim=1))
    dh = torch.bmm(dout, wo.transpose(1, 2))  # (R, B, H)
    dh = _cnn_unflatten(dh.view(r, b, spec.length, spec.width)) if cnn else dh
    for i in reversed(range(spec.depth)):
        inp, xhat, rstd, f, scale = saved[i]
        df = dh * scale if scale is not None else dh
        dz = _threshold_backward(df, f, 0)
        if norm != "none":
            grads[f"g{i}"].copy_((dz * xhat).sum(dim=rows))
            grads[f"be{i}"].copy_(dz.sum(dim=rows))
            dxhat = dz * params[f"g{i}"].unsqueeze(rows)
            if norm == "batch":  # mean over the real rows of each model (padded rows carry no gradient)
                c1 = dxhat.sum(dim=rows, keepdim=True) / n_col
                c2 = (dxhat * xhat).sum(dim=rows, keepdim=True) / n_col
                dz = (dxhat - c1 - xhat * c2) * rstd
                if m is not None:
                    dz = dz * m
            else:  # mean over each example's layer-norm group (units; CNN: channels and positions)
                c1 = layer_norm_mean(dxhat, cnn, b)
                c2 = layer_norm_mean(dxhat * xhat, cnn, b)
                dz = (dxhat - c1 - xhat * c2) * rstd
        if norm != "batch":  # batch norm has no bias before it
            grads[f"b{i}"].copy_(dz.sum(dim=rows))
        w = params[f"w{i}"]
        if cnn:
            grads[f"w{i}"].copy_(torch.bmm(inp, dz.transpose(1, 2)))  # (R, k*C_in, C)
        else:
            grads[f"w{i}"].copy_(torch.bmm(inp.transpose(1, 2), dz))
        if i == 0:
            break
        if cnn:  # transposed conv: the patches of dz times the tap-flipped weights (R, C_in, C_out*k)
            w_t = w.view(r, spec.width, CNN_K, spec.width).flip(2).transpose(2, 3).reshape(r, spec.width, -1)
            dinp = torch.bmm(w_t, _cnn_hidden(dz, b))
        else:
            dinp = torch.bmm(dz, w.transpose(1, 2))
        if res_none:
            dh = dinp
        elif res_all:
            dh = dinp + dh
        else:
            dh = torch.addcmul(dinp, res_flag, dh)
    return losses
