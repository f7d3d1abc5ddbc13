"""The ``sequence`` family: a query-count token task and a small transformer (book ch. 12).

**Task.** A sequence of ``SEQ_LEN`` tokens over a vocabulary of ``SEQ_VOCAB``;
position 0 holds the *query* token ``q`` and the label is how many of the
other ``SEQ_LEN - 1`` positions hold ``q`` (``SEQ_CLASSES`` = 4 classes:
0, 1, 2 or 3 occurrences, drawn uniformly, so chance is 1/4). Every other
position holds a uniformly drawn token different from ``q``. Inputs are
one-hot, shape (SEQ_LEN, SEQ_VOCAB).

Why it separates the architectures: the label depends on *token equality*
between the query and each position, a pairwise interaction that one
attention head computes for every position with the same weights (query·key
large when the tokens match), while an MLP on the flattened one-hot sequence
must learn the match of every (position, token) pair separately. Measured
(tests/test_sequence.py): on 2,000 examples a transformer of width 16 and depth
2 (4,708 parameters) reaches 0.88-0.97 test accuracy over seeds, an MLP of
width 32 and depth 2 (4,420 parameters) 0.42-0.45, chance 0.25.

**Minority subgroup** (``deployment_risk``): a query drawn from the last
``SEQ_RARE`` tokens of the vocabulary (rare as queries, common as fillers):
``MINORITY_TRAIN`` of training data and the in-distribution test set, half of
the group-balanced test set. Label noise as in the teacher family: a fraction
``noise`` of labels replaced by a uniformly drawn *other* class.

**Transformer** (:data:`TRANSFORMER`, ``width`` = d_model, ``depth`` blocks):
token embedding (one-hot @ ``w_emb``) plus a learned positional embedding
``w_pos``; each block is pre-norm

    h <- res * h + drop(attn(norm_a(h)))
    h <- res * h + drop(W2 relu(W1 norm_m(h) + b1) + b2)

with ``SEQ_HEADS`` heads of size width / heads (no projection biases), an MLP
of ``MLP_RATIO`` x width hidden units, the normalization lever acting on
``norm_a``/``norm_m`` (batch norm: each channel over the batch's tokens; layer
norm: each token over its channels), the residual lever on both connections
(``res`` = 0 or 1) and the dropout lever on both sublayer outputs. The head
reads the query position (it serves as the CLS token). The pre-activations for
gradient stability are each block's MLP pre-activation ``W1 norm_m(h) + b1``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from runs_generator.models import MLP, ArchSpec, StackedArch, dropout_uniform, normalize
from runs_generator.spec import RunConfig, TaskData

__all__ = ["sequence_data", "TRANSFORMER", "SEQ_LEN", "SEQ_VOCAB", "SEQ_CLASSES", "SEQ_HEADS", "MLP_RATIO"]

SEQ_LEN = 12  # tokens per sequence, the query included
SEQ_VOCAB = 8  # vocabulary size
SEQ_CLASSES = 4  # label = occurrences of the query among the other positions: 0..3
SEQ_RARE = 2  # minority queries come from the last SEQ_RARE tokens
SEQ_HEADS = 2  # attention heads (width must be a multiple)
MLP_RATIO = 2  # hidden units of a block's MLP per model dimension

_TAG_TEST, _TAG_GROUPS, _TAG_REPLICAS = 21, 22, 23


# --- data --------------------------------------------------------------------------
def _draw(rng: np.random.Generator, n: int, minority: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` sequences: one-hot inputs (n, L, V) float32, clean labels (n,) and group ids (n,)."""
    group = np.zeros(n, dtype=np.int64)
    group[: int(round(minority * n))] = 1
    rng.shuffle(group)
    common = SEQ_VOCAB - SEQ_RARE
    q = np.where(group == 1, common + rng.integers(0, SEQ_RARE, n), rng.integers(0, common, n))
    count = rng.integers(0, SEQ_CLASSES, n)
    others = (q[:, None] + rng.integers(1, SEQ_VOCAB, (n, SEQ_LEN - 1))) % SEQ_VOCAB  # never q
    # the first `count` positions of a random order of the L - 1 slots hold the query
    order = np.argsort(rng.random((n, SEQ_LEN - 1)), axis=1)
    hit = np.zeros((n, SEQ_LEN - 1), dtype=bool)
    np.put_along_axis(hit, order, np.arange(SEQ_LEN - 1)[None, :] < count[:, None], axis=1)
    tokens = np.concatenate([q[:, None], np.where(hit, q[:, None], others)], axis=1)
    return np.eye(SEQ_VOCAB, dtype=np.float32)[tokens], count.astype(np.int64), group


def _test_set(sweep_seed: int, balanced: bool):
    from runs_generator.tasks import MINORITY_GROUPS, MINORITY_TRAIN, N_TEST

    rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, _TAG_GROUPS if balanced else _TAG_TEST]))
    return _draw(rng, N_TEST, MINORITY_GROUPS if balanced else MINORITY_TRAIN)


def sequence_data(config: RunConfig, *, sweep_seed: int) -> TaskData:
    """The sequence family's data of one run (see :func:`runs_generator.tasks.make_task_data`).

    Each replica draws its own training + validation sequences from the run's
    seed; the in-distribution and group-balanced test sets depend on the sweep
    seed only. ``x`` is one-hot (SEQ_LEN, SEQ_VOCAB) per example.

    Examples
    --------
    >>> from runs_generator._toydata import toy_config
    >>> d = sequence_data(toy_config(task="sequence", n_train=32, replicas=2), sweep_seed=0)
    >>> d.x_train.shape, d.n_outputs
    ((2, 32, 12, 8), 4)
    """
    from runs_generator.tasks import MINORITY_TRAIN, N_VAL, _assemble, _label_noise

    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _TAG_REPLICAS]))
    xs, ys = [], []
    for _ in range(config.replicas):  # an independent train + validation draw per replica
        x, y, _g = _draw(rng, config.n_train + N_VAL, MINORITY_TRAIN)
        xs.append(x)
        ys.append(_label_noise(rng, y, config.noise, SEQ_CLASSES))
    x_test, y_test, _ = _test_set(sweep_seed, False)
    meta = {"task": "sequence", "input_dim": SEQ_LEN * SEQ_VOCAB}
    return _assemble(config, xs, ys, SEQ_CLASSES, (x_test, y_test), _test_set(sweep_seed, True), meta)


# --- the transformer, stacked over R models ---------------------------------------------
def _heads(spec: ArchSpec) -> int:
    if spec.width % SEQ_HEADS:
        raise ValueError(f"transformer width must be a multiple of its {SEQ_HEADS} heads; received {spec.width}")
    return SEQ_HEADS


def _softmax(s: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim; on CPU 2.5x faster forward + backward than ``torch.softmax`` on rows of ~12."""
    e = (s - s.amax(dim=-1, keepdim=True).detach()).exp()  # the shift cancels: no gradient through it
    return e * e.sum(dim=-1, keepdim=True).reciprocal()


def _residual(residual, dtype):
    return residual.to(dtype).view(-1, 1, 1) if isinstance(residual, torch.Tensor) else float(residual)


class _Transformer(StackedArch):
    """Pre-norm transformer encoder on one-hot tokens, stacked over R models (see the module docstring)."""

    name = "transformer"
    custom = True

    def length(self, spec: ArchSpec) -> int:  # token positions: each carries a width-wide hidden state
        return spec.input_shape[0]

    def param_shapes(self, spec: ArchSpec) -> dict[str, tuple[int, ...]]:
        seq, vocab = spec.input_shape
        d, m = spec.width, MLP_RATIO * spec.width
        shapes: dict[str, tuple[int, ...]] = {"w_emb": (vocab, d), "w_pos": (seq, d)}
        for i in range(spec.depth):
            if spec.normalization != "none":
                shapes[f"ga{i}"], shapes[f"bea{i}"] = (d,), (d,)
            for name in ("wq", "wk", "wv", "wa"):
                shapes[f"{name}{i}"] = (d, d)
            if spec.normalization != "none":
                shapes[f"gm{i}"], shapes[f"bem{i}"] = (d,), (d,)
            shapes[f"w1_{i}"], shapes[f"b1_{i}"] = (d, m), (m,)
            shapes[f"w2_{i}"], shapes[f"b2_{i}"] = (m, d), (d,)
        shapes["wo"], shapes["bo"] = (d, spec.n_outputs), (spec.n_outputs,)
        return shapes

    def init_running(self, spec, r, device, dtype):
        if spec.normalization != "batch":
            return {}
        out = {}
        for i in range(spec.depth):
            for key in (f"a{i}", f"m{i}"):
                out[f"rm{key}"] = torch.zeros(r, spec.width, device=device, dtype=dtype)
                out[f"rv{key}"] = torch.ones(r, spec.width, device=device, dtype=dtype)
        return out

    def hidden(self, spec, params, x, *, mode, running, residual, dropout, rowmask, active, generator, preacts):
        r, b = x.shape[0], x.shape[1]
        seq, vocab = spec.input_shape
        d, heads = spec.width, _heads(spec)
        dh = d // heads
        h = torch.bmm(x.reshape(r, b * seq, vocab), params["w_emb"]).view(r, b, seq, d)
        h = (h + params["w_pos"].unsqueeze(1)).view(r, b * seq, d)  # (R, B*L, d): one row per token
        n = m = None
        if spec.normalization == "batch" and mode != "eval":  # batch statistics over the real examples' tokens
            if rowmask is None:
                n = torch.full((r,), b * seq, device=x.device, dtype=x.dtype)
            else:
                tok = rowmask.repeat_interleave(seq, dim=1)  # (R, B*L)
                n, m = tok.sum(dim=1), tok.unsqueeze(2)
        res = _residual(residual, h.dtype)
        drop = mode == "train" and dropout is not None
        if drop:
            keep = 1.0 - dropout.to(h.dtype).view(-1, 1, 1)

        def dropped(f):  # dropout on a sublayer's output, drawn per example as (L*d) values
            if not drop:
                return f
            u = dropout_uniform(f.view(r, b, seq * d), generator, False, b).view(r, b * seq, d)
            return f * (u < keep) / keep

        def norm(key, t):
            return normalize(spec, MLP, params, key, t, b, mode=mode, running=running, n=n, m=m, active=active)[0]

        for i in range(spec.depth):
            z = norm(f"a{i}", h)
            q, k, v = (torch.bmm(z, params[f"{w}{i}"]).view(r, b, seq, heads, dh).transpose(2, 3)
                       for w in ("wq", "wk", "wv"))  # (R, B, heads, L, dh)
            att = _softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(dh)))  # (R, B, heads, L, L)
            o = (att @ v).transpose(2, 3).reshape(r, b * seq, d)
            h = dropped(torch.bmm(o, params[f"wa{i}"])) + res * h
            u = torch.baddbmm(params[f"b1_{i}"].unsqueeze(1), norm(f"m{i}", h), params[f"w1_{i}"])
            if preacts is not None:
                preacts.append(u)
            f = torch.baddbmm(params[f"b2_{i}"].unsqueeze(1), torch.relu(u), params[f"w2_{i}"])
            h = dropped(f) + res * h
        return h.view(r, b, seq, d)[:, :, 0]  # the query position: (R, B, d)

    def naive_module(self, spec, params, residual, dropout, noise=None):
        return TransformerNet(spec, params, residual, dropout, noise)

    def module_params(self, spec, net):
        d = spec.width
        p = {"w_emb": net.emb.weight.detach().t(), "w_pos": net.pos.detach()}
        running = {}
        for i, blk in enumerate(net.blocks):
            for key, nm in ((f"a{i}", blk["norm_a"]), (f"m{i}", blk["norm_m"])):
                if spec.normalization != "none":
                    p[f"g{key}"], p[f"be{key}"] = nm.weight.detach(), nm.bias.detach()
                if spec.normalization == "batch":
                    running[f"rm{key}"], running[f"rv{key}"] = nm.running_mean.detach(), nm.running_var.detach()
            w_in = blk["att"].in_proj_weight.detach()
            p[f"wq{i}"], p[f"wk{i}"], p[f"wv{i}"] = (w_in[j * d:(j + 1) * d].t() for j in range(3))
            p[f"wa{i}"] = blk["att"].out_proj.weight.detach().t()
            p[f"w1_{i}"], p[f"b1_{i}"] = blk["lin1"].weight.detach().t(), blk["lin1"].bias.detach()
            p[f"w2_{i}"], p[f"b2_{i}"] = blk["lin2"].weight.detach().t(), blk["lin2"].bias.detach()
        p["wo"], p["bo"] = net.head.weight.detach().t(), net.head.bias.detach()
        return p, running


def _linear(w: torch.Tensor, b: torch.Tensor | None) -> nn.Linear:
    """An ``nn.Linear`` holding the stacked-layout weight ``w`` (in, out) and bias ``b``."""
    lin = nn.Linear(w.shape[0], w.shape[1], bias=b is not None)
    lin.weight.data = w.detach().t().contiguous().clone()
    if b is not None:
        lin.bias.data = b.detach().clone()
    return lin


class TransformerNet(nn.Module):
    """One transformer as plain ``torch.nn`` modules (``nn.MultiheadAttention``): the naive reference."""

    def __init__(self, spec: ArchSpec, params: dict[str, torch.Tensor], residual: bool, dropout: float,
                 noise=None):
        super().__init__()
        self.spec, self.residual, self.p, self.noise = spec, bool(residual), float(dropout), noise
        d = spec.width
        self.emb = _linear(params["w_emb"], None)
        self.pos = nn.Parameter(params["w_pos"].detach().clone())
        self.blocks = nn.ModuleList()
        for i in range(spec.depth):
            att = nn.MultiheadAttention(d, _heads(spec), bias=False, batch_first=True)
            att.in_proj_weight.data = torch.cat([params[f"{w}{i}"].detach().t() for w in ("wq", "wk", "wv")]).clone()
            att.out_proj.weight.data = params[f"wa{i}"].detach().t().contiguous().clone()
            blk = nn.ModuleDict({"norm_a": self._norm(params, f"a{i}"), "att": att, "norm_m": self._norm(params, f"m{i}"),
                                 "lin1": _linear(params[f"w1_{i}"], params[f"b1_{i}"]),
                                 "lin2": _linear(params[f"w2_{i}"], params[f"b2_{i}"])})
            self.blocks.append(blk)
        self.head = _linear(params["wo"], params["bo"])
        self.to(params["wo"].dtype)

    def _norm(self, params, key: str) -> nn.Module:
        kind, d = self.spec.normalization, self.spec.width
        if kind == "none":
            return nn.Identity()
        norm = nn.BatchNorm1d(d) if kind == "batch" else nn.LayerNorm(d)
        norm.weight.data, norm.bias.data = params[f"g{key}"].detach().clone(), params[f"be{key}"].detach().clone()
        return norm

    def _apply_norm(self, norm: nn.Module, h: torch.Tensor) -> torch.Tensor:
        if isinstance(norm, nn.BatchNorm1d):  # every token of the batch is a row
            return norm(h.reshape(-1, h.shape[-1])).view_as(h)
        return norm(h)

    def _drop(self, f: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.p > 0):
            return f
        bsz = f.shape[0]
        if self.noise is None:
            u = torch.rand_like(f)
        else:  # the stacked engine's draw: (rows, L*d) per model
            u = self.noise.hidden_uniform(f.reshape(1, bsz, -1), False, bsz)[0].view_as(f)
        keep = 1.0 - self.p
        return f * (u < keep) / keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.emb(x) + self.pos  # (B, L, d)
        for blk in self.blocks:
            z = self._apply_norm(blk["norm_a"], h)
            a = blk["att"](z, z, z, need_weights=False)[0]
            h = self._drop(a) + (h if self.residual else 0.0)
            f = blk["lin2"](torch.relu(blk["lin1"](self._apply_norm(blk["norm_m"], h))))
            h = self._drop(f) + (h if self.residual else 0.0)
        return self.head(h[:, 0])


TRANSFORMER = _Transformer()
