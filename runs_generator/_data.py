"""Seeds, minibatch indices, padded stacking and the explicit per-model losses.

Shared by the batched and the naive engine so that both see the same random
draws: a model's initialization and its minibatch indices depend only on
``(run seed, replica)``, never on which other runs share its chunk.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

__all__ = [
    "STREAM_INIT",
    "STREAM_BATCHES",
    "STREAM_NOISE",
    "model_seed",
    "batch_indices",
    "stack_padded",
    "eval_steps",
    "implicit_window",
    "LOSS_CODES",
    "per_example_loss",
]

STREAM_INIT = 0
STREAM_BATCHES = 1
STREAM_NOISE = 2  # dropout masks and augmentation noise

LOSS_CODES = {"cross_entropy": 0, "mse": 1, "l1": 2}


def model_seed(run_seed: int, replica: int, stream: int) -> int:
    """A 63-bit seed for one replica's random stream (init, minibatches, ...)."""
    ss = np.random.SeedSequence([int(run_seed) & 0xFFFFFFFF, int(run_seed) >> 32, replica, stream])
    return int(ss.generate_state(2, dtype=np.uint32).astype(np.uint64).view(np.uint64)[0] >> 1)


def batch_indices(seed: int, n: int, batch: int, steps: int) -> torch.Tensor:
    """Minibatch indices of one replica, epoch-wise sampling without replacement.

    Returns a CPU ``int64`` tensor of shape (steps, batch); full batch
    (``batch >= n``) gives ``arange(n)`` every step, shape (1, n).
    """
    if batch >= n:
        return torch.arange(n).unsqueeze(0)
    g = torch.Generator().manual_seed(seed)
    epochs = math.ceil(steps * batch / n)
    perms = torch.rand(epochs, n, generator=g).argsort(dim=1)  # (epochs, n)
    return perms.reshape(-1)[: steps * batch].view(steps, batch)


def stack_padded(
    arrays: Sequence[np.ndarray], device: torch.device, dtype: torch.dtype | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack arrays of shape (n_i, ...) into (R, max n_i, ...), zero padded.

    Returns the stacked tensor and the counts ``n_i`` (int64, shape (R,)).
    """
    n_max = max(a.shape[0] for a in arrays)
    out = np.zeros((len(arrays), n_max, *arrays[0].shape[1:]), dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    t = torch.from_numpy(out)
    t = t.to(device=device, dtype=dtype) if dtype is not None else t.to(device)
    counts = torch.tensor([a.shape[0] for a in arrays], device=device)
    return t, counts


def implicit_window(steps: int) -> int:
    """First step (0-based) of the ``implicit_reg`` window: the last half of training.

    The window leaves out the first half, where the loss and gradients of a
    badly scaled initialization are largest and would dominate a mean over
    all steps.
    """
    return steps // 2


def eval_steps(steps: int) -> list[int]:
    """Steps (1-based, after the update) at which early stopping validates."""
    every = max(1, steps // 10)
    return sorted(set(range(every, steps + 1, every)) | {steps})


def per_example_loss(
    out: torch.Tensor,
    y: torch.Tensor,
    kind: int,
    *,
    classification: bool,
    label_smoothing: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss of every example, written out explicitly (double-backward safe).

    A classifier's prediction is always the softmax probability vector:
    cross-entropy acts on it through the log-softmax, and squared error on
    classes is the Brier score ``mean_c (softmax(out)_c - onehot_c)^2``. An
    absolute error on classes is refused (on one-hot targets it trains to an
    all-zero output; it is a regression loss here).

    Parameters
    ----------
    out : (R, N, C) outputs (logits for classification)
    y : (R, N) int64 labels, or (R, N, C) regression targets
    kind : a value of :data:`LOSS_CODES`
    label_smoothing : (R,) used by cross-entropy only

    Returns
    -------
    (R, N) losses; squared and absolute errors are means over the C outputs.
    """
    if kind == LOSS_CODES["cross_entropy"]:
        if not classification:
            raise ValueError("cross-entropy needs class labels; got a regression target")
        logp = torch.log_softmax(out, dim=-1)
        nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        if label_smoothing is None:
            return nll
        eps = label_smoothing.view(-1, 1)
        return (1.0 - eps) * nll - eps * logp.mean(dim=-1)
    if classification:
        if kind != LOSS_CODES["mse"]:
            raise ValueError("on classes only cross_entropy and mse (the Brier score) are defined; got l1")
        diff = torch.softmax(out, dim=-1) - torch.nn.functional.one_hot(y, out.shape[-1]).to(out.dtype)
    else:
        diff = out - y
    if kind == LOSS_CODES["mse"]:
        return (diff * diff).mean(dim=-1)
    return diff.abs().mean(dim=-1)
