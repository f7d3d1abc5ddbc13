"""The training losses, each written once in its three forms.

For every loss of :data:`runs_generator.registry.LOSSES`:

* :func:`per_example` — stacked per-example losses (R, N), explicit and
  double-backward safe (Hessian-vector products, autograd training);
* :func:`per_example_and_grad` — the same losses and their gradient with
  respect to the outputs, written out (the hand-written training step);
* :func:`reference` — one model's mean loss with ``torch.nn.functional``, the
  naive engine's independent form.

A classifier's prediction is always the softmax probability vector:
cross-entropy acts on it through the log-softmax, and squared error on classes
is the Brier score ``mean_c (softmax(out)_c - onehot_c)^2``. An absolute error
on classes is refused (on one-hot targets it trains to an all-zero output).
``tests/test_fused.py`` checks the written-out gradient against autograd, and
``tests/test_engine.py`` the stacked forms against the naive ones.
"""

from __future__ import annotations

import torch

__all__ = ["per_example", "per_example_and_grad", "reference"]


def per_example(
    name: str,
    out: torch.Tensor,
    y: torch.Tensor,
    *,
    classification: bool,
    label_smoothing: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss of every example (R, N); squared and absolute errors are means over the C outputs.

    Parameters
    ----------
    out : (R, N, C) outputs (logits for classification)
    y : (R, N) int64 labels, or (R, N, C) regression targets
    label_smoothing : (R,) used by cross-entropy only
    """
    if name == "cross_entropy":
        if not classification:
            raise ValueError("cross-entropy needs class labels; got a regression target")
        logp = torch.log_softmax(class_major(out), dim=-2)  # (R, C, N)
        nll = -logp.gather(-2, y.unsqueeze(-2)).squeeze(-2)
        if label_smoothing is None:
            return nll
        eps = label_smoothing.view(-1, 1)
        return (1.0 - eps) * nll - eps * logp.mean(dim=-2)
    if classification:
        if name != "mse":
            raise ValueError(f"on classes only cross_entropy and mse (the Brier score) are defined; got {name}")
        prob = torch.softmax(class_major(out), dim=-2)
        diff = prob - torch.zeros_like(prob).scatter_(-2, y.unsqueeze(-2), 1.0)
        return (diff * diff).mean(dim=-2)
    diff = out - y
    if name == "mse":
        return (diff * diff).mean(dim=-1)
    if name == "l1":
        return diff.abs().mean(dim=-1)
    raise ValueError(f"unknown loss {name!r}")


def class_major(out: torch.Tensor) -> torch.Tensor:
    """The (R, C, N) contiguous copy of outputs (R, N, C).

    Softmax over a short last dimension (C = 10 classes) runs ~20x slower on a
    CPU than over dim 1 of the class-major layout (1.20 vs 0.06 ms for 64 x 128
    x 10 float32, ``benchmarks/RESULTS.md``), so the class losses reduce over
    classes in this layout; the copy is one small pass.
    """
    return out.transpose(-1, -2).contiguous()


def per_example_and_grad(
    name: str,
    out: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor,
    *,
    classification: bool,
    label_smoothing: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`per_example` (R, N) and its gradient d loss / d out (R, N, C), without autograd.

    Call it under ``torch.no_grad()`` (it works in place on its intermediates),
    as :meth:`runs_generator._modelset.ModelSet.objective_and_grad` does.

    ``target`` is the one-hot (R, N, C) of ``y`` for classes, ``y`` itself for
    regression. Cross-entropy with label smoothing ``eps`` has gradient
    ``softmax - (1 - eps) onehot - eps / C``; mean squared error ``2 (out - t) / C``
    (on classes it acts on ``p = softmax(out)``: with ``d = 2 (p - t) / C`` the
    gradient is the softmax Jacobian times ``d``, ``p * (d - <p, d>)``); mean
    absolute error ``sign(out - t) / C`` (regression only).
    """
    n_cls = out.shape[-1]
    if name == "cross_entropy":  # computed class-major, (R, C, N); the gradient is returned as its (R, N, C) view
        logp = torch.log_softmax(class_major(out), dim=-2)
        eps = label_smoothing.to(out.dtype).view(-1, 1)
        nll = -logp.gather(-2, y.unsqueeze(-2)).squeeze(-2)
        lk = (1.0 - eps) * nll - eps * logp.mean(dim=-2)
        gk = logp.exp_().sub_(target.transpose(-1, -2) * (1.0 - eps).unsqueeze(-1)).sub_(eps.unsqueeze(-1) / n_cls)
        return lk, gk.transpose(-1, -2)
    if classification:  # the Brier score on the softmax probabilities
        prob = torch.softmax(class_major(out), dim=-2)
        diff = prob - target.transpose(-1, -2)
        lk = (diff * diff).mean(dim=-2)
        d = diff.mul_(2.0 / n_cls)
        return lk, (prob * (d - (prob * d).sum(dim=-2, keepdim=True))).transpose(-1, -2)
    diff = out - target
    if name == "mse":
        lk = (diff * diff).mean(dim=-1)
        return lk, diff.mul_(2.0 / n_cls)
    if name == "l1":
        lk = diff.abs().mean(dim=-1)
        return lk, diff.sign_().div_(n_cls)
    raise ValueError(f"unknown loss {name!r}")


def reference(
    name: str, out: torch.Tensor, y: torch.Tensor, *, classification: bool, label_smoothing: float = 0.0
) -> torch.Tensor:
    """One model's mean loss (a scalar) with ``torch.nn.functional``: out (N, C), y (N,) or (N, C)."""
    f = torch.nn.functional
    if name == "cross_entropy":
        return f.cross_entropy(out, y, label_smoothing=label_smoothing)
    if classification:  # the Brier score on the softmax probabilities (l1 is refused for classes)
        return f.mse_loss(torch.softmax(out, dim=-1), f.one_hot(y, out.shape[-1]).to(out.dtype))
    if name == "mse":
        return f.mse_loss(out, y)
    if name == "l1":
        return f.l1_loss(out, y)
    raise ValueError(f"unknown loss {name!r}")
