"""Per-model random streams for dropout masks and input augmentation.

Every model (one replica of one run) owns a ``torch.Generator`` seeded from
``(run seed, replica, STREAM_NOISE)``, and every draw is made in the model's own
shape (its real minibatch rows only, in one canonical per-example layout), so a
model's dropout masks and augmentation noise do not depend on which other models
share its chunk, on the chunk's padded batch size, on the shard layout or on the
engine: the naive engine makes exactly the same calls on the same generator.

Draw order per training step (both engines): augmentation jitter (``randn`` of
the model's ``(rows, *input_shape)``), then the signal shift (``randint`` of
``(rows, 1)``, signals only), then one dropout uniform per hidden layer
(``rand`` of ``(rows, width)`` for an MLP, ``(rows, channels, length)`` for a
CNN). Models without augmentation or dropout draw nothing.

Cost: one small draw per model and layer (a Python loop over the models of a
chunk). On CPU this costs the same as one big ``torch.rand`` (the Mersenne
Twister is serial either way); on CUDA it is one kernel launch per model and
layer.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["ModelStreams"]


class ModelStreams:
    """One random generator per model, for the models of a :class:`~runs_generator._modelset.ModelSet`.

    Parameters
    ----------
    seeds : one seed per model.
    rows : real minibatch rows of each model (its batch size); padded rows get no draws.
    device : where the generators and draws live.
    dropout_models, augment_models : positions of the models that use dropout /
        augmentation (default: all); only they draw.
    """

    def __init__(self, seeds: Sequence[int], rows: Sequence[int], device: torch.device,
                 dropout_models: Sequence[int] | None = None, augment_models: Sequence[int] | None = None):
        self.seeds = [int(s) for s in seeds]
        self.rows = [int(b) for b in rows]
        self.device = torch.device(device)
        every = list(range(len(self.seeds)))
        self.dropout_models = every if dropout_models is None else list(dropout_models)
        self.augment_models = every if augment_models is None else list(augment_models)
        self.gens = [torch.Generator(device=self.device).manual_seed(s) for s in self.seeds]

    def jitter(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``x`` (R, B, *in); zero for models without augmentation."""
        out = torch.zeros_like(x)
        for r in self.augment_models:
            b = self.rows[r]
            out[r, :b] = torch.randn((b, *x.shape[2:]), generator=self.gens[r], device=x.device, dtype=x.dtype)
        return out

    def shifts(self, b_max: int, low: int, high: int) -> torch.Tensor:
        """Integer shifts in ``[low, high]`` of shape (R, B_max, 1); zero for models without augmentation."""
        out = torch.zeros(len(self.seeds), b_max, 1, dtype=torch.int64, device=self.device)
        for r in self.augment_models:
            b = self.rows[r]
            out[r, :b] = torch.randint(low, high + 1, (b, 1), generator=self.gens[r], device=self.device)
        return out

    def hidden_uniform(self, f: torch.Tensor, cnn: bool, b_max: int) -> torch.Tensor:
        """Uniforms shaped like a hidden map ``f`` for models with dropout (others get 0, i.e. keep).

        MLP maps are (R, B, W) and each model draws (rows, W); CNN maps are
        channels-first (R, C, B*L) and each model draws (rows, C, L), the
        layout of an ``nn.Conv1d`` output, placed into its B*L columns.
        """
        out = torch.zeros_like(f)
        for r in self.dropout_models:
            b = self.rows[r]
            if cnn:
                c, n = f.shape[1], f.shape[2]
                length = n // b_max
                u = torch.rand((b, c, length), generator=self.gens[r], device=f.device, dtype=f.dtype)
                out[r].view(c, b_max, length)[:, :b] = u.transpose(0, 1)
            else:
                out[r, :b] = torch.rand((b, f.shape[2]), generator=self.gens[r], device=f.device, dtype=f.dtype)
        return out
