"""Seeds, minibatch indices, padded stacking and the per-model loss codes.

Shared by the batched and the naive engine so that both see the same random
draws: a model's initialization and its minibatch indices depend only on
``(run seed, replica)``, never on which other runs share its chunk.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from runs_generator.losses import per_example
from runs_generator.registry import LOSSES

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

LOSS_CODES = {name: entry.code for name, entry in LOSSES.items()}  # the batched engine's per-model loss codes
_LOSS_NAMES = {code: name for name, code in LOSS_CODES.items()}


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
    # one randperm per epoch (Fisher-Yates, O(n)): 7x faster than argsort of uniforms, which the batched
    # engine paid ~1.6 ms per model for (benchmarks/RESULTS.md, "Engine ratio: the CPU profile")
    perms = torch.stack([torch.randperm(n, generator=g) for _ in range(epochs)])  # (epochs, n)
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
    """Loss of every example (R, N) for loss code ``kind`` (:func:`runs_generator.losses.per_example`)."""
    return per_example(_LOSS_NAMES[kind], out, y, classification=classification, label_smoothing=label_smoothing)


def env_int(name: str, default: int, low: int = 1) -> int:
    """The integer setting ``name`` from the environment (``default`` when unset), at least ``low``."""
    import os

    from causal.errors import ConfigError

    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < low:
        raise ConfigError(f"environment variable {name} must be an integer >= {low}; received {raw!r} "
                          f"(unset it for the default, {default})")
    return value
