"""One training step of R stacked models with a hand-written backward pass.

:func:`loss_and_grads` computes the same per-model training losses and
parameter gradients as ``torch.autograd.grad`` through
:func:`runs_generator.models.forward` in ``mode='train'`` (tests check this to
float64 rounding for every architecture, normalization, residual, dropout and
row-mask variant), but:

* the gradients are written straight into the rows of one (R, P) buffer (the
  layout of the optimizer's flat parameters), with no ``torch.cat``;
* every GEMM runs in its fast layout (the narrow head as ``wo^T h^T``, the
  ReLU backward as one ``threshold_backward`` on the saved activation);
* no autograd graph is built for the network, only for the loss on the
  (R, B, C) outputs, which gives ``dL/dout`` for each model's own loss kind.

Per-model independence is kept: every reduction is within a model (dim >= 1).
The Hessian and gradient-stability measurements still use autograd through
:func:`~runs_generator.models.forward` (they need double backward).
"""

from __future__ import annotations

from typing import Callable

import torch

from runs_generator.models import (
    CNN_K,
    CNN_K0,
    CNN_P,
    CNN_P0,
    CNN_S0,
    BN_EPS,
    LN_EPS,
    ArchSpec,
    _unfold,
    update_running,
)

__all__ = ["loss_and_grads"]

_threshold_backward = torch.ops.aten.threshold_backward


def loss_and_grads(
    spec: ArchSpec,
    params: dict[str, torch.Tensor],
    grads: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    objective: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
    *,
    running: dict[str, torch.Tensor],
    residual: torch.Tensor,
    dropout: torch.Tensor | None = None,
    rowmask: torch.Tensor | None = None,
    active: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Training losses (R,) of the stacked models; gradients are written into ``grads``.

    Parameters
    ----------
    params : named (R, ...) parameters, as for ``forward``.
    grads : named (R, ...) tensors of the same shapes (e.g. views of an (R, P)
        buffer), overwritten with ``d(sum of losses)/d param``.
    objective : ``(out, y, rowmask) -> (R,)`` losses (the model set's objective).
    Other arguments as :func:`runs_generator.models.forward` in train mode;
    random draws (dropout masks) happen in the same order, so the same
    ``generator`` state gives the same masks.
    """
    r, b = x.shape[0], x.shape[1]
    cnn = spec.arch == "cnn"
    norm = spec.normalization
    rows_mask = rowmask
    if cnn:
        h = _unfold(x.reshape(r, b, -1, 1), CNN_K0, CNN_S0, CNN_P0).reshape(r, -1, CNN_K0)
        if rowmask is not None:
            rows_mask = rowmask.repeat_interleave(spec.length, dim=1)
    else:
        h = x.reshape(r, b, -1)
    res_all, res_none = bool(residual.all()), not bool(residual.any())
    res_flag = residual.to(h.dtype).view(-1, 1, 1)
    if norm == "batch":  # real rows per model, shared by every layer's batch statistics
        n = rows_mask.sum(dim=1) if rows_mask is not None else torch.full((r,), h.shape[1], device=h.device, dtype=h.dtype)
        n_col = n.view(-1, 1, 1)
    saved = []  # per layer: (inp, xhat, rstd, f, drop_scale)
    for i in range(spec.depth):
        inp = h
        if cnn and i > 0:
            inp = _unfold(h.reshape(r, b, spec.length, spec.width), CNN_K, 1, CNN_P).reshape(r, -1, spec.width * CNN_K)
        if norm == "batch":
            z = torch.bmm(inp, params[f"w{i}"])
        else:
            z = torch.baddbmm(params[f"b{i}"].unsqueeze(1), inp, params[f"w{i}"])
        xhat = rstd = None
        if norm == "batch":
            if rows_mask is None:
                mean = z.mean(dim=1, keepdim=True)
                zc = z - mean
                var = zc.square().mean(dim=1, keepdim=True)
            else:
                m = rows_mask.unsqueeze(-1)
                mean = (z * m).sum(dim=1, keepdim=True) / n_col
                zc = z - mean
                var = (zc.square() * m).sum(dim=1, keepdim=True) / n_col
            update_running(running, i, mean, var, n, active)
            rstd = torch.rsqrt(var + BN_EPS)
            xhat = zc * rstd
        elif norm == "layer":
            mean = z.mean(dim=-1, keepdim=True)
            zc = z - mean
            rstd = torch.rsqrt(zc.square().mean(dim=-1, keepdim=True) + LN_EPS)
            xhat = zc * rstd
        if norm != "none":
            z = torch.addcmul(params[f"be{i}"].unsqueeze(1), xhat, params[f"g{i}"].unsqueeze(1))
        f = torch.relu_(z)
        scale = None
        if dropout is not None:
            keep = 1.0 - dropout.to(f.dtype).view(-1, 1, 1)
            keep_mask = torch.rand(f.shape, generator=generator, device=f.device, dtype=f.dtype) < keep
            scale = keep_mask / keep
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

    hf = h.reshape(r, b, -1)
    wo = params["wo"]
    out = torch.baddbmm(params["bo"].unsqueeze(2), wo.transpose(1, 2), hf.transpose(1, 2)).transpose(1, 2).contiguous()
    with torch.enable_grad():
        leaf = out.detach().requires_grad_(True)
        losses = objective(leaf, y, rowmask)
        (dout,) = torch.autograd.grad(losses.sum(), leaf)

    grads["wo"].copy_(torch.bmm(dout.transpose(1, 2), hf).transpose(1, 2))
    grads["bo"].copy_(dout.sum(dim=1))
    dh = torch.bmm(dout, wo.transpose(1, 2)).view(h.shape)
    for i in reversed(range(spec.depth)):
        inp, xhat, rstd, f, scale = saved[i]
        df = dh * scale if scale is not None else dh
        dz = _threshold_backward(df, f, 0)
        if norm != "none":
            grads[f"g{i}"].copy_((dz * xhat).sum(dim=1))
            grads[f"be{i}"].copy_(dz.sum(dim=1))
            dxhat = dz * params[f"g{i}"].unsqueeze(1)
            if norm == "batch":  # mean over the real rows of each model (padded rows carry no gradient)
                c1 = dxhat.sum(dim=1, keepdim=True) / n_col
                c2 = (dxhat * xhat).sum(dim=1, keepdim=True) / n_col
                dz = (dxhat - c1 - xhat * c2) * rstd
                if rows_mask is not None:
                    dz = dz * rows_mask.unsqueeze(-1)
            else:
                c1 = dxhat.mean(dim=-1, keepdim=True)
                c2 = (dxhat * xhat).mean(dim=-1, keepdim=True)
                dz = (dxhat - c1 - xhat * c2) * rstd
        if norm != "batch":  # batch norm has no bias before it
            grads[f"b{i}"].copy_(dz.sum(dim=1))
        grads[f"w{i}"].copy_(torch.bmm(inp.transpose(1, 2), dz))
        if i == 0:
            break
        dinp = torch.bmm(dz, params[f"w{i}"].transpose(1, 2))
        if cnn:
            dinp = _fold3(dinp.view(r, b, spec.length, spec.width, CNN_K)).view(r, -1, spec.width)
        if res_none:
            dh = dinp
        elif res_all:
            dh = dinp + dh
        else:
            dh = torch.addcmul(dinp, res_flag, dh)
    return losses.detach()


def _fold3(dp: torch.Tensor) -> torch.Tensor:
    """Adjoint of the stride-1, pad-1, kernel-3 unfold: (R, B, L, C, 3) -> (R, B, L, C)."""
    length = dp.shape[2]
    out = dp[..., 1].clone()  # tap k reads position l + k - 1
    out[:, :, : length - 1] += dp[:, :, 1:, :, 0]
    out[:, :, 1:] += dp[:, :, : length - 1, :, 2]
    return out
