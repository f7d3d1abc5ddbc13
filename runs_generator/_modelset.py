"""A set of R models (runs x replicas) as stacked tensors: data and hyperparameters.

Both engines build one: the batched engine for a chunk of runs, the naive
engine for one run (its K replicas), so measurements run on the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import torch

from runs_generator._data import (
    LOSS_CODES,
    STREAM_BATCHES,
    STREAM_INIT,
    STREAM_NOISE,
    batch_indices,
    model_seed,
    _LOSS_NAMES,
    per_example_loss,
    stack_padded,
)
from runs_generator.losses import per_example_and_grad
from runs_generator.models import ArchSpec, embed_param, padded_spec
from runs_generator.spec import RunConfig, TaskData

__all__ = ["ModelSet", "build_model_set", "arch_spec"]

MOMENTUM = 0.9
AUG_JITTER = 0.1  # std of Gaussian input jitter (inputs are standardized)
AUG_MAX_SHIFT = 4  # mnist1d: random circular shift in [-4, 4]


def arch_spec(config: RunConfig, data: TaskData) -> ArchSpec:
    """The model shape of a run."""
    from runs_generator.registry import arch_entry

    arch_entry(config.arch)  # an unknown architecture is refused here, naming the registered ones
    return ArchSpec(
        arch=config.arch,
        input_shape=tuple(int(s) for s in data.input_shape),
        n_outputs=int(data.n_outputs),
        width=int(config.width),
        depth=int(config.depth),
        normalization=config.normalization,
    )


@dataclass
class ModelSet:
    """R stacked models of one :class:`ArchSpec`; tensors are (R, ...) on one device."""

    spec: ArchSpec
    configs: list[RunConfig]  # one per run
    datas: list[TaskData]
    run_of_model: list[int]  # index into configs for each model
    replica: list[int]
    classification: bool
    x: torch.Tensor  # (R, n_max, *in) training inputs, zero padded
    y: torch.Tensor  # (R, n_max) labels or (R, n_max, C) targets
    n_train: torch.Tensor  # (R,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_val: torch.Tensor
    x_test: torch.Tensor  # (R, n_test_max, *in): the in-distribution test set
    n_test: torch.Tensor
    x_groups: torch.Tensor | None  # (R, n_groups_max, *in): the group-balanced test set, if any run has one
    # per-model hyperparameters, shape (R,)
    lr: torch.Tensor
    weight_decay: torch.Tensor
    dropout: torch.Tensor
    label_smoothing: torch.Tensor
    residual: torch.Tensor
    momentum: torch.Tensor
    is_adam: torch.Tensor  # bool
    loss_code: torch.Tensor  # int64
    augment: torch.Tensor  # 0/1 float
    early_stop: torch.Tensor  # bool
    steps: list[int]
    batch: list[int]
    init_seeds: list[int]
    batch_seeds: list[int]
    noise_seeds: list[int]  # dropout and augmentation streams
    #: per model: the hidden-layer parameters it starts from (a pretrained transfer run's source model,
    #: :mod:`runs_generator.transfer`), or None to keep its own initialization; None when no model has one
    init_states: list[dict[str, torch.Tensor] | None] | None = None
    #: :meth:`rowmask`'s masks, made once per (counts tensor, n): its test of whether any row is padding
    #: waits for the device, which on CUDA would stall every chunk interleaved with this one at each
    #: validation step (not copied by ``dataclasses.replace`` or :meth:`subset`)
    _masks: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def r(self) -> int:
        return len(self.run_of_model)

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def dtype(self) -> torch.dtype:
        return self.x.dtype

    @property
    def loss_kinds(self) -> list[int]:
        return sorted({LOSS_CODES[c.loss] for c in self.configs})

    def subset(self, models: Sequence[int]) -> "ModelSet":
        """The models at positions ``models`` as a ModelSet of their own (configs and data shared)."""
        idx = list(models)
        sel = torch.tensor(idx, device=self.device, dtype=torch.int64)
        changes = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("spec", "configs", "datas", "classification", "_masks") or v is None:
                continue
            if isinstance(v, torch.Tensor):
                changes[f.name] = v.index_select(0, sel)
            else:
                changes[f.name] = [v[i] for i in idx]
        if self.spec.units is not None:
            changes["spec"] = replace(self.spec, units=tuple(self.spec.units[i] for i in idx))
        return replace(self, **changes)

    @torch.no_grad()
    def load_pretrained(self, params: dict[str, torch.Tensor]) -> None:
        """Overwrite, in place, the initial parameters of models that start from a source model.

        ``params`` are the stacked initial parameters (R, ...); a model's entries
        named in its ``init_states`` dict (its hidden layers) are replaced, the
        rest (the head) keep the model's own initialization.
        """
        if self.init_states is None:
            return
        for i, state in enumerate(self.init_states):
            for name, value in (state or {}).items():
                params[name][i].copy_(embed_param(self.spec, name, self.spec.alone(i), value))

    def noise_streams(self):
        """Fresh per-model dropout / augmentation streams (:func:`runs_generator._noise.make_streams`)."""
        from runs_generator._noise import make_streams

        drop = [i for i, c in enumerate(self.run_of_model) if self.configs[c].dropout > 0]
        aug = [i for i, c in enumerate(self.run_of_model) if self.configs[c].augmentation]
        return make_streams(self.noise_seeds, self.batch, self.device, drop, aug, units=self.spec.units)

    def rowmask(self, counts: torch.Tensor, n: int) -> torch.Tensor | None:
        """(R, n) 1/0 mask of real rows, or None when every model fills all n rows (made once per counts and n)."""
        key = (id(counts), n)
        if key not in self._masks:  # the cache holds counts, so its id stays its own
            full = bool((counts == n).all())
            mask = None if full else (torch.arange(n, device=counts.device).unsqueeze(0) < counts.unsqueeze(1)).to(self.dtype)
            self._masks[key] = (counts, mask)
        return self._masks[key][1]

    def objective(self, out: torch.Tensor, y: torch.Tensor, rowmask: torch.Tensor | None) -> torch.Tensor:
        """Each model's training loss (its own loss kind and label smoothing), shape (R,)."""
        kinds = self.loss_kinds
        per_ex = None
        for k in kinds:
            ls = self.label_smoothing if k == LOSS_CODES["cross_entropy"] else None
            lk = per_example_loss(out, y, k, classification=self.classification, label_smoothing=ls)
            if len(kinds) > 1:
                lk = lk * (self.loss_code == k).to(lk.dtype).unsqueeze(1)
            per_ex = lk if per_ex is None else per_ex + lk
        return _reduce(per_ex, rowmask)

    @torch.no_grad()
    def objective_and_grad(
        self, out: torch.Tensor, y: torch.Tensor, rowmask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`objective` (R,) and its gradient ``d(sum of losses)/d out`` (R, N, C), written out.

        The training step's loss without autograd: on the small (R, N, C)
        outputs autograd's per-op overhead cost more than the arithmetic. Each
        model's own loss (:func:`runs_generator.losses.per_example_and_grad`),
        per example, times the example's weight in its model's mean.
        ``tests/test_fused.py`` checks this against autograd through :meth:`objective`.
        """
        kinds = self.loss_kinds
        if self.classification:  # one-hot by scatter (F.one_hot syncs with the host on CPU), class-major as the losses
            target = out.new_zeros(out.shape[0], out.shape[2], out.shape[1]).scatter_(1, y.unsqueeze(1), 1.0)
            target = target.transpose(1, 2)
        else:
            target = y
        loss_ex = grad = None
        for k in kinds:
            lk, gk = per_example_and_grad(_LOSS_NAMES[k], out, y, target, classification=self.classification,
                                          label_smoothing=self.label_smoothing)
            if len(kinds) > 1:
                sel = (self.loss_code == k).to(out.dtype).unsqueeze(1)
                lk, gk = lk * sel, gk * sel.unsqueeze(-1)
            loss_ex, grad = (lk, gk) if loss_ex is None else (loss_ex + lk, grad + gk)
        if rowmask is None:
            return loss_ex.mean(dim=1), grad.div_(out.shape[1])
        weight = rowmask / rowmask.sum(dim=1, keepdim=True)  # each example's weight in its model's mean
        return (loss_ex * rowmask).sum(dim=1) / rowmask.sum(dim=1), grad.mul_(weight.unsqueeze(-1))

    def eval_loss(self, out: torch.Tensor, y: torch.Tensor, rowmask: torch.Tensor | None) -> torch.Tensor:
        """The common evaluation loss (cross-entropy for classes, MSE otherwise), (R,)."""
        kind = LOSS_CODES["cross_entropy"] if self.classification else LOSS_CODES["mse"]
        return _reduce(per_example_loss(out, y, kind, classification=self.classification), rowmask)

    def minibatch_indices(self) -> torch.Tensor:
        """(R, S, B_max) indices; S = 1 when every model trains full batch."""
        per = [batch_indices(s, int(n), b, st) for s, n, b, st in zip(self.batch_seeds, self.n_train.tolist(), self.batch, self.steps)]
        s_max = max(p.shape[0] for p in per)
        s_max = 1 if s_max == 1 else max(self.steps)
        b_max = max(self.batch)
        out = torch.zeros(self.r, s_max, b_max, dtype=torch.int64)
        for i, p in enumerate(per):
            if p.shape[0] == 1:
                out[i, :, : p.shape[1]] = p
            else:
                out[i, : p.shape[0], : p.shape[1]] = p
        return out.to(self.device)


def _reduce(per_ex: torch.Tensor, rowmask: torch.Tensor | None) -> torch.Tensor:
    if rowmask is None:
        return per_ex.mean(dim=1)
    return (per_ex * rowmask).sum(dim=1) / rowmask.sum(dim=1)


def build_model_set(
    configs: Sequence[RunConfig], datas: Sequence[TaskData], device: torch.device, dtype: torch.dtype,
    init_states: Sequence[dict[str, torch.Tensor] | None] | None = None,
) -> ModelSet:
    """Stack the replicas of ``configs`` (one ArchSpec) into a :class:`ModelSet`.

    ``init_states``, one per run (or None): the hidden-layer parameters ``{name: (K, ...)}``
    that the run's K replicas start from (:func:`runs_generator.transfer.source_states`).
    Runs of different widths are stacked padded to the widest (:func:`runs_generator.models.padded_spec`;
    only architectures with ``pads_width``).
    """
    specs = [arch_spec(c, d) for c, d in zip(configs, datas)]
    run_of, rep, cfg_of = [], [], []
    xs, ys, xv, yv, xt = [], [], [], [], []
    for j, (c, d) in enumerate(zip(configs, datas)):
        for k in range(c.replicas):
            run_of.append(j)
            rep.append(k)
            cfg_of.append(c)
            xs.append(d.x_train[k])
            ys.append(d.y_train[k])
            xv.append(d.x_val[k])
            yv.append(d.y_val[k])
            xt.append(d.x_test)
    spec = padded_spec([specs[j] for j in run_of])
    classification = datas[0].problem == "classification"
    ydt = None if classification else dtype
    x, n_train = stack_padded(xs, device, dtype)
    y, _ = stack_padded(ys, device, ydt)
    x_val, n_val = stack_padded(xv, device, dtype)
    y_val, _ = stack_padded(yv, device, ydt)
    x_test, n_test = stack_padded(xt, device, dtype)
    x_groups = None
    if any(d.x_groups is not None for d in datas):  # runs without a group set get one placeholder row
        xg = [datas[j].x_groups if datas[j].x_groups is not None else datas[j].x_test[:1] for j in run_of]
        x_groups, _ = stack_padded(xg, device, dtype)

    def vec(values, dt=dtype):
        return torch.tensor(values, device=device, dtype=dt)

    return ModelSet(
        spec=spec,
        configs=list(configs),
        datas=list(datas),
        run_of_model=run_of,
        replica=rep,
        classification=classification,
        x=x,
        y=y,
        n_train=n_train,
        x_val=x_val,
        y_val=y_val,
        n_val=n_val,
        x_test=x_test,
        n_test=n_test,
        x_groups=x_groups,
        lr=vec([c.lr for c in cfg_of]),
        weight_decay=vec([c.weight_decay for c in cfg_of]),
        dropout=vec([c.dropout for c in cfg_of]),
        label_smoothing=vec([c.label_smoothing for c in cfg_of]),
        residual=vec([float(c.residual) for c in cfg_of]),
        momentum=vec([MOMENTUM if c.optimizer == "momentum" else 0.0 for c in cfg_of]),
        is_adam=vec([c.optimizer == "adam" for c in cfg_of], torch.bool),
        loss_code=vec([LOSS_CODES[c.loss] for c in cfg_of], torch.int64),
        augment=vec([float(c.augmentation) for c in cfg_of]),
        early_stop=vec([c.early_stopping for c in cfg_of], torch.bool),
        steps=[int(c.steps) for c in cfg_of],
        batch=[int(min(c.effective_batch, xs[i].shape[0])) for i, c in enumerate(cfg_of)],
        init_seeds=[model_seed(c.seed, k, STREAM_INIT) for c, k in zip(cfg_of, rep)],
        batch_seeds=[model_seed(c.seed, k, STREAM_BATCHES) for c, k in zip(cfg_of, rep)],
        noise_seeds=[model_seed(c.seed, k, STREAM_NOISE) for c, k in zip(cfg_of, rep)],
        init_states=_per_model_states(init_states, run_of, rep, device, dtype),
    )


def _per_model_states(states, run_of: list[int], rep: list[int], device, dtype):
    """Per-run states {name: (K, ...)} -> per-model {name: (...)} on ``device`` (None when there are none)."""
    if states is None or all(s is None for s in states):
        return None
    return [None if states[j] is None else {n: v[k].to(device=device, dtype=dtype) for n, v in states[j].items()}
            for j, k in zip(run_of, rep)]
