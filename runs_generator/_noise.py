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
CNN; the model's own width when hidden maps are padded to a wider one, so padding
changes no draw). Models without augmentation or dropout draw nothing.

Two implementations with the same interface and the same guarantees:

* :class:`ModelStreams` (the CPU default): one ``torch.Generator`` per model
  and one small draw per model and layer (a Python loop over the models of a
  chunk). On CPU this costs the same as one big ``torch.rand`` (the Mersenne
  Twister is serial either way).
* :class:`CounterStreams` (the CUDA default): a counter-based generator, the
  splitmix64 hash of (model seed, position in the model's stream), computed
  for every model at once in integer tensor arithmetic: no per-model kernel
  launch (thousands of models share a chunk on a GPU), and the same values on
  every device.

:func:`make_streams` picks one (``kind='auto'``: counter on CUDA, generator
on CPU); the naive engine uses the same kind as the batched one, so the two
agree draw for draw.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["ModelStreams", "CounterStreams", "make_streams", "NOISE_KIND"]

#: 'auto' (counter streams on CUDA, torch generators on CPU), 'generator' or 'counter'
NOISE_KIND = "auto"


def make_streams(seeds: Sequence[int], rows: Sequence[int], device: torch.device,
                 dropout_models: Sequence[int] | None = None, augment_models: Sequence[int] | None = None,
                 kind: str | None = None, units: Sequence[int] | None = None):
    """Per-model noise streams of the configured kind (:data:`NOISE_KIND` unless ``kind`` is given)."""
    kind = kind or NOISE_KIND
    if kind == "auto":
        kind = "counter" if torch.device(device).type == "cuda" else "generator"
    cls = {"generator": ModelStreams, "counter": CounterStreams}.get(kind)
    if cls is None:
        raise ValueError(f"noise stream kind must be 'auto', 'generator' or 'counter'; got {kind!r}")
    return cls(seeds, rows, device, dropout_models, augment_models, units)


class ModelStreams:
    """One random generator per model, for the models of a :class:`~runs_generator._modelset.ModelSet`.

    Parameters
    ----------
    seeds : one seed per model.
    rows : real minibatch rows of each model (its batch size); padded rows get no draws.
    device : where the generators and draws live.
    dropout_models, augment_models : positions of the models that use dropout /
        augmentation (default: all); only they draw.
    units : each model's own width when the hidden maps are padded to a wider one
        (:func:`runs_generator.models.padded_spec`); a model draws dropout uniforms for its
        own units only. None: every model has the map's width.
    """

    def __init__(self, seeds: Sequence[int], rows: Sequence[int], device: torch.device,
                 dropout_models: Sequence[int] | None = None, augment_models: Sequence[int] | None = None,
                 units: Sequence[int] | None = None):
        self.units = None if units is None else [int(u) for u in units]
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

    def hidden_uniform(self, f: torch.Tensor, channels_first: bool, b_max: int) -> torch.Tensor:
        """Uniforms shaped like a hidden map ``f`` for models with dropout (others get 0, i.e. keep).

        MLP maps are (R, B, W) and each model draws (rows, W); CNN maps are
        channels-first (R, C, B*L) and each model draws (rows, C, L), the
        layout of an ``nn.Conv1d`` output, placed into its B*L columns.
        """
        out = torch.zeros_like(f)
        for r in self.dropout_models:
            b = self.rows[r]
            if channels_first:
                c, n = f.shape[1], f.shape[2]
                length = n // b_max
                w = c if self.units is None else self.units[r]
                u = torch.rand((b, w, length), generator=self.gens[r], device=f.device, dtype=f.dtype)
                out[r].view(c, b_max, length)[:w, :b] = u.transpose(0, 1)
            else:
                w = f.shape[2] if self.units is None else self.units[r]
                out[r, :b, :w] = torch.rand((b, w), generator=self.gens[r], device=f.device, dtype=f.dtype)
        return out


_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed int64 (splitmix64's increment)
_M1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_M2 = -7723592293110705685  # 0x94D049BB133111EB


def _splitmix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finalizer on int64 tensors (wrapping multiplication; logical shifts by masking)."""
    x = x ^ ((x >> 30) & ((1 << 34) - 1))
    x = x * _M1
    x = x ^ ((x >> 27) & ((1 << 37) - 1))
    x = x * _M2
    return x ^ ((x >> 31) & ((1 << 33) - 1))


class CounterStreams:
    """Counter-based per-model streams: uniform = hash(model seed, position in the model's stream).

    Each model's stream position advances by the number of values it draws,
    in its own canonical per-example layout (as :class:`ModelStreams`), so the
    values depend only on the model's seed and its own draws. 24-bit uniforms
    in (0, 1); normals by Box-Muller from two uniforms per value.
    """

    def __init__(self, seeds: Sequence[int], rows: Sequence[int], device: torch.device,
                 dropout_models: Sequence[int] | None = None, augment_models: Sequence[int] | None = None,
                 units: Sequence[int] | None = None):
        self.device = torch.device(device)
        self.rows = [int(b) for b in rows]
        r = len(self.rows)
        self.units = None if units is None else torch.tensor([int(u) for u in units], dtype=torch.int64,
                                                             device=self.device)
        self.seed = torch.tensor([int(s) & ((1 << 63) - 1) for s in seeds], dtype=torch.int64, device=self.device)
        self.rows_t = torch.tensor(self.rows, dtype=torch.int64, device=self.device)
        self.offset = torch.zeros(r, dtype=torch.int64, device=self.device)
        every = list(range(r))
        self.dropout_models = every if dropout_models is None else list(dropout_models)
        self.augment_models = every if augment_models is None else list(augment_models)
        self._drop = self._mask(self.dropout_models)
        self._aug = self._mask(self.augment_models)

    def _mask(self, models: Sequence[int]) -> torch.Tensor:
        m = torch.zeros(len(self.rows), dtype=torch.bool)
        m[list(models)] = True
        return m.to(self.device)

    def _uniform(self, b_max: int, per_example: tuple[int, ...], who: torch.Tensor, dtype: torch.dtype,
                 own: torch.Tensor | None = None):
        """Uniforms (R, B_max, *per_example) and the mask of drawn entries (R, B_max, 1...).

        ``own`` (R,): each model's own size of the first per-example axis (its width, when hidden
        maps are padded); a model's entries are then numbered in its own layout and only its own
        units are drawn (the mask is then (R, B_max, *per_example)).
        """
        r, s = len(self.rows), 1
        for d in per_example:
            s *= d
        lead = (r,) + (1,) * (len(per_example) + 1)
        if own is None:
            idx = torch.arange(b_max * s, device=self.device, dtype=torch.int64).view(1, b_max, *per_example)
            per_row = self.rows_t * s
        else:  # row-major in the model's own layout: the width axis leads, so a unit's place in a row is the same
            size = own * (s // per_example[0])  # (R,) values per example
            within = torch.arange(s, device=self.device, dtype=torch.int64).view(1, 1, *per_example)
            rows = torch.arange(b_max, device=self.device, dtype=torch.int64).view(1, b_max, *([1] * len(per_example)))
            idx = rows * size.view(lead) + within
            per_row = self.rows_t * size
        x = _splitmix(self.seed.view(lead) + (self.offset.view(lead) + idx) * _GOLDEN)
        u = (((x >> 40) & 0xFFFFFF).to(dtype) + 0.5) * 2.0**-24
        valid = torch.arange(b_max, device=self.device).view(1, b_max) < self.rows_t.view(r, 1)
        valid = (valid & who.view(r, 1)).view(r, b_max, *([1] * len(per_example)))
        if own is not None:
            unit = torch.arange(per_example[0], device=self.device).view(1, 1, per_example[0],
                                                                         *([1] * (len(per_example) - 1)))
            valid = valid & (unit < own.view(lead))
        self.offset += torch.where(who, per_row, torch.zeros_like(self.rows_t))
        return u, valid

    def jitter(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``x`` (R, B, *in); zero for models without augmentation."""
        u, valid = self._uniform(x.shape[1], (2, *x.shape[2:]), self._aug, x.dtype)
        z = torch.sqrt(-2.0 * torch.log(u[:, :, 0])) * torch.cos(2.0 * torch.pi * u[:, :, 1])
        return torch.where(valid.squeeze(2), z, torch.zeros_like(z))

    def shifts(self, b_max: int, low: int, high: int) -> torch.Tensor:
        """Integer shifts in ``[low, high]`` of shape (R, B_max, 1); zero for models without augmentation."""
        u, valid = self._uniform(b_max, (1,), self._aug, torch.float64)
        s = (u * (high - low + 1)).floor().to(torch.int64) + low
        return torch.where(valid, s, torch.zeros_like(s))

    def hidden_uniform(self, f: torch.Tensor, channels_first: bool, b_max: int) -> torch.Tensor:
        """Uniforms shaped like a hidden map ``f`` for models with dropout (others get 0, i.e. keep)."""
        if channels_first:
            r, c, n = f.shape
            u, valid = self._uniform(b_max, (c, n // b_max), self._drop, f.dtype, self.units)  # (R, B, C, L)
            u = torch.where(valid, u, torch.zeros_like(u))
            return u.permute(0, 2, 1, 3).reshape(r, c, n)
        u, valid = self._uniform(b_max, (f.shape[2],), self._drop, f.dtype, self.units)
        return torch.where(valid, u, torch.zeros_like(u))
