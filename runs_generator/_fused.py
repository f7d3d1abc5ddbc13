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

The forward half is :func:`runs_generator.models.hidden_features` itself (the
one place normalization, dropout, residual connections and the head are
written), run with a :class:`~runs_generator.models.Tape`; only the backward
is written here, with the architecture's own gradient ops
(:class:`~runs_generator.models.StackedArch`). An architecture without them
(``fused=False`` in :data:`runs_generator.registry.ARCHS`) trains with
:func:`autograd_loss_and_grads` instead.

Per-model independence is kept: every reduction is within a model (dim >= 1).
The Hessian and gradient-stability measurements still use autograd through
:func:`~runs_generator.models.forward` (they need double backward).
"""

from __future__ import annotations

from typing import Callable

import torch

from runs_generator.models import ArchSpec, Tape, head, hidden_features, residual_flags as _residual_flags, unit_mask
from runs_generator._noise import ModelStreams

__all__ = ["loss_and_grads", "autograd_loss_and_grads"]

_threshold_backward = torch.ops.aten.threshold_backward
_threshold_backward_ = torch.ops.aten.threshold_backward.grad_input  # the out= overload, used in place


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

    Call it under ``torch.no_grad()``, as the trainer does.
    """
    r, b = x.shape[0], x.shape[1]
    arch = spec.impl
    rows = arch.rows
    norm = spec.normalization
    if residual_flags is None:
        residual_flags = _residual_flags(residual)
    res_all, res_none = residual_flags
    tape = Tape()
    hf = hidden_features(spec, params, x, mode="train", running=running, residual=residual, dropout=dropout,
                         rowmask=rowmask, active=active, generator=generator, tape=tape, flags=residual_flags)
    wo = params["wo"]
    out = head(hf, wo, params["bo"])  # (R, B, C)
    losses, dout = objective(out, y, rowmask)

    grads["wo"].copy_(torch.bmm(dout.transpose(1, 2), hf).transpose(1, 2))
    grads["bo"].copy_(dout.sum(dim=1))
    dh = arch.unflatten(spec, torch.bmm(dout, wo.transpose(1, 2)))  # (R, B, H) -> hidden-map layout
    res_flag = residual.to(dh.dtype).view(-1, 1, 1)
    for i in reversed(range(spec.depth)):
        inp, xhat, rstd, f, scale = tape.layers[i]
        df = dh * scale if scale is not None else dh
        if (scale is not None or res_none or i == 0) and df.is_contiguous():
            # df is not needed after this layer: the ReLU backward in place, with no new buffer (a strided one,
            # the CNN head's, keeps the out-of-place op, whose contiguous result the reductions below sum in order;
            # residual models carry dh past the layer)
            dz = _threshold_backward_(df, f, 0, grad_input=df)
        else:
            dz = _threshold_backward(df, f, 0)
        if norm != "none":
            grads[f"g{i}"].copy_((dz * xhat).sum(dim=rows))
            grads[f"be{i}"].copy_(dz.sum(dim=rows))
            dxhat = dz * params[f"g{i}"].unsqueeze(rows)
            if norm == "batch":  # mean over the real rows of each model (padded rows carry no gradient)
                c1 = dxhat.sum(dim=rows, keepdim=True) / tape.n
                c2 = (dxhat * xhat).sum(dim=rows, keepdim=True) / tape.n
                dz = (dxhat - c1 - xhat * c2) * rstd
                if tape.m is not None:
                    dz = dz * tape.m
            elif spec.units is None:  # mean over each example's layer-norm group (units; CNN: channels and positions)
                c1 = arch.norm_mean(dxhat, b)
                c2 = arch.norm_mean(dxhat * xhat, b)
                dz = (dxhat - c1 - xhat * c2) * rstd
            else:  # padded models: the mean over each model's own units, and no gradient to padded ones
                mask, ratio = unit_mask(spec, dxhat)
                c1 = arch.norm_mean(dxhat, b) * ratio
                c2 = arch.norm_mean(dxhat * xhat, b) * ratio
                dz = (dxhat - c1 - xhat * c2) * rstd * mask
        if norm != "batch":  # batch norm has no bias before it
            grads[f"b{i}"].copy_(dz.sum(dim=rows))
        grads[f"w{i}"].copy_(arch.weight_grad(inp, dz))
        if i == 0:
            break
        dinp = arch.input_grad(spec, params[f"w{i}"], dz, b)
        if res_none:
            dh = dinp
        elif res_all:
            dh = dinp + dh
        else:
            dh = torch.addcmul(dinp, res_flag, dh)
    return losses


def autograd_loss_and_grads(
    spec: ArchSpec,
    params: dict[str, torch.Tensor],
    grads: dict[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    objective: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
    **kwargs,
) -> torch.Tensor:
    """As :func:`loss_and_grads`, by autograd through the stacked forward.

    ``objective`` is ``(out, y, rowmask) -> losses (R,)`` (differentiable, e.g.
    :meth:`ModelSet.objective`). The path of architectures without a
    hand-written backward, and its reference in the tests.
    """
    flags = kwargs.pop("residual_flags", None)
    with torch.enable_grad():
        leaves = {k: v.detach().requires_grad_() for k, v in params.items()}
        hf = hidden_features(spec, leaves, x, mode="train", flags=flags, **kwargs)
        out = head(hf, leaves["wo"], leaves["bo"])
        losses = objective(out, y, kwargs.get("rowmask"))
        gs = torch.autograd.grad(losses.sum(), list(leaves.values()))
    with torch.no_grad():
        for k, gk in zip(leaves, gs):
            grads[k].copy_(gk)
    return losses.detach()
