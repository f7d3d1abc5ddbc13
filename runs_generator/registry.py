"""The family registry: one entry per task family, architecture and loss.

Every rule that depends on *which* task, architecture or loss a run uses lives
in its entry here, and the rest of the generator consults the entry instead of
branching on names:

===============  ============================================================
consumer         what it reads
===============  ============================================================
``levers``       the choices of the ``task``, ``arch`` and ``loss`` levers;
                 which problems and architectures a task allows (and the
                 fallback when a drawn one does not apply); which losses a
                 problem (and an architecture, :attr:`LossEntry.archs`)
                 allows; the levers that do not act on a family and their
                 neutral values (:attr:`TaskFamily.neutral`)
``tasks``        the family's data builder (:attr:`TaskFamily.make_data`)
``engine``       the architecture's cost per position (batch bucket), the
                 loss/problem refusal, and a family's own trainer
                 (:attr:`TaskFamily.trainer`: the generative family's runs
                 train in :mod:`runs_generator._gen_trainer`)
``table``        ``inductive_bias`` (:attr:`TaskFamily.matched_archs`) and
                 ``loss_matched`` (:meth:`LossEntry.matched`)
``_trainer`` /   the augmentation (:attr:`TaskFamily.shift_augment`), whether the
``naive``        hand-written backward exists (:attr:`ArchEntry.fused`), the
                 losses (:attr:`LossEntry.reference` for the naive engine)
``models`` /     the stacked layer ops and the naive module
``_fused``       (:meth:`ArchEntry.impl`, a :class:`runs_generator.models.StackedArch`)
===============  ============================================================

Adding a family is adding entries: a :class:`TaskFamily` (its data builder,
problems, architectures and which of them match its structure), and for a new
architecture an :class:`ArchEntry` whose ``impl`` is a
:class:`~runs_generator.models.StackedArch` (the stacked forward and the naive
reference module). It may leave ``fused`` False and train with autograd through
its stacked forward. An architecture that is not a stack of (linear, norm,
ReLU) layers — a transformer, a GNN — sets ``StackedArch.custom`` and writes its
whole stacked forward, parameter shapes and naive module itself
(``tests/test_custom_arch.py`` is a worked example). Entry order is part of the lever space: the ``task``,
``arch`` and ``loss`` levers draw in registry order, so append new entries at
the end to keep old sweeps' draws.

This module imports neither torch nor the data builders' dependencies until an
entry's data or implementation is used.

Examples
--------
>>> task_family("mnist1d").matched_archs
frozenset({'cnn'})
>>> allowed_losses("regression")
('mse', 'l1')
>>> loss_entry("l1").matched("regression", "laplace")
True
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, Callable

from causal.errors import ConfigError

__all__ = [
    "TaskFamily",
    "ArchEntry",
    "LossEntry",
    "TASKS",
    "ARCHS",
    "LOSSES",
    "task_family",
    "arch_entry",
    "loss_entry",
    "allowed_losses",
    "inductive_bias",
]


@functools.lru_cache(maxsize=None)
def _load(path: str) -> Any:
    """``'package.module:attribute'`` -> the attribute (imported on first use)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class TaskFamily:
    """One task family: its data, problems, architectures and inductive-bias match.

    Attributes
    ----------
    name : str
        The ``task`` lever's value.
    problems : tuple of str
        Problems the family poses; with one problem, a drawn ``problem`` is
        resolved to it (and a fixed other one refused).
    archs : tuple of str
        Architectures that apply; a drawn one that does not is resolved to
        ``archs[0]`` (a fixed one is refused).
    matched_archs : frozenset of str
        Architectures whose structure matches the data: ``inductive_bias = 1``.
    data : str
        ``'module:function'`` of the data builder ``(config, *, sweep_seed) ->
        TaskData`` (loaded on first use).
    shift_augment : bool
        Augmentation adds a random circular shift (signals) to the input jitter.
    doc : str
        One line for ``--help`` and the docs.
    trainer : str
        ``'module:function'`` of the family's own trainer ``(configs, data, *,
        engine, device, dtype, chunk_size) -> list[RunMetrics]`` (batched and
        naive); empty for supervised families, which train through
        :func:`runs_generator._trainer.train_model_set`.
    neutral : tuple of (lever, value)
        Levers that do not act on the family and the neutral value a draw
        resolves them to (a fixed other value is refused).
    source_task : str
        The related source task a run of this family may be pre-trained on
        (the ``source_task`` column); empty when the family has none, and then
        the ``pretrained``, ``source_similarity`` and ``source_steps`` levers do
        not apply (see :mod:`runs_generator.transfer`).
    """

    name: str
    problems: tuple[str, ...]
    archs: tuple[str, ...]
    matched_archs: frozenset[str]
    data: str
    shift_augment: bool = False
    doc: str = ""
    trainer: str = ""
    neutral: tuple[tuple[str, Any], ...] = ()
    source_task: str = ""

    @property
    def make_data(self) -> Callable[..., Any]:
        """The data builder ``(config, *, sweep_seed) -> TaskData``."""
        return _load(self.data)


@dataclass(frozen=True)
class ArchEntry:
    """One architecture: its stacked implementation and what the engine needs to know.

    Attributes
    ----------
    name : str
        The ``arch`` lever's value.
    impl_path : str or StackedArch
        ``'module:attribute'`` of its :class:`runs_generator.models.StackedArch`
        (the stacked forward's layer ops and the naive reference module),
        imported on first use, or the object itself.
    positions : int
        Hidden positions per example the engine assumes when it sizes batch
        buckets before the data is known (1 for an MLP; the CNN's feature map on
        40-sample MNIST-1D signals has 20).
    fused : bool
        A hand-written backward (:func:`runs_generator._fused.loss_and_grads`)
        exists; otherwise the trainer differentiates the stacked forward with autograd.
    doc : str
        One line for ``--help`` and the docs.
    """

    name: str
    impl_path: Any
    positions: int = 1
    fused: bool = False
    doc: str = ""

    def impl(self) -> Any:
        """The :class:`runs_generator.models.StackedArch` (imports torch)."""
        return _load(self.impl_path) if isinstance(self.impl_path, str) else self.impl_path


@dataclass(frozen=True)
class LossEntry:
    """One training loss, written once: stacked, with its gradient, and as the naive reference.

    Attributes
    ----------
    name : str
        The ``loss`` lever's value.
    code : int
        The per-model loss code of the batched engine.
    problems : tuple of str
        Problems it may train; others are refused with ``refusal``.
    matched_noise : frozenset of (problem, noise_dist)
        Where it is the negative log-likelihood of the output distribution
        (``loss_matched = 1``, DESIGN.md §2). ``noise_dist`` is None for classes.
    refusal : dict of problem -> str
        Why it does not apply to that problem and what to use instead.
    archs : tuple of str
        The architectures it trains (empty: any); a generative objective
        belongs to one architecture (the VAE's ELBO, the GAN's game).
    """

    name: str
    code: int
    problems: tuple[str, ...]
    matched_noise: frozenset[tuple[str, str | None]]
    refusal: tuple[tuple[str, str], ...] = ()
    archs: tuple[str, ...] = ()

    def matched(self, problem: str, noise_dist: str) -> bool:
        """``loss_matched``: this loss is the NLL of ``problem``'s output distribution."""
        key = (problem, noise_dist if problem == "regression" else None)
        return key in self.matched_noise

    def check(self, problem: str, where: str = "") -> None:
        """Raise :class:`ConfigError` when this loss cannot train ``problem``."""
        if problem not in self.problems:
            why = dict(self.refusal).get(problem, f"loss={self.name!r} does not apply to a {problem} problem")
            raise ConfigError(f"{where}{why}")

    def per_example(self, out, y, *, classification: bool, label_smoothing=None):
        """Stacked per-example losses (R, N), differentiable (see :mod:`runs_generator.losses`)."""
        from runs_generator.losses import per_example

        return per_example(self.name, out, y, classification=classification, label_smoothing=label_smoothing)

    def per_example_and_grad(self, out, y, target, *, classification: bool, label_smoothing):
        """Stacked per-example losses (R, N) and d loss / d out (R, N, C), written out."""
        from runs_generator.losses import per_example_and_grad

        return per_example_and_grad(self.name, out, y, target, classification=classification,
                                    label_smoothing=label_smoothing)

    def reference(self, out, y, *, classification: bool, label_smoothing: float = 0.0):
        """One model's mean loss with ``torch.nn.functional`` (the naive engine's independent form)."""
        from runs_generator.losses import reference

        return reference(self.name, out, y, classification=classification, label_smoothing=label_smoothing)


# --- the entries (order = lever order: append only) ------------------------------
TASKS: dict[str, TaskFamily] = {
    f.name: f
    for f in (
        TaskFamily(
            name="teacher", problems=("classification", "regression"), archs=("mlp",), matched_archs=frozenset(),
            data="runs_generator.tasks:teacher_data",
            doc="Gaussian inputs and a random teacher network (classes or regression, minority subgroup)",
        ),
        TaskFamily(
            name="mnist1d", problems=("classification",), archs=("mlp", "cnn"), matched_archs=frozenset({"cnn"}),
            data="runs_generator.tasks:mnist1d_data", shift_augment=True,
            doc="the book's MNIST-1D signals (10 classes); a 1-D CNN matches their translation structure",
        ),
        TaskFamily(
            name="generative", problems=("generation",), archs=("vae", "gan", "flow", "diffusion"),
            matched_archs=frozenset(), data="runs_generator.generative:generative_data",
            trainer="runs_generator._gen_trainer:train_generative",
            neutral=(("label_smoothing", 0.0), ("dropout", 0.0), ("augmentation", False),
                     ("early_stopping", False), ("normalization", "none"), ("noise", 0.0),
                     ("noise_dist", "gaussian")),
            doc="samples of a 2-D Gaussian mixture with known modes (ring of 8); VAE, GAN, flow and diffusion",
        ),
        TaskFamily(
            name="transfer", problems=("classification", "regression"), archs=("mlp",), matched_archs=frozenset(),
            data="runs_generator.transfer:transfer_data", source_task="subspace_regression",
            doc="few labels on a target that shares (by a similarity) a low-dimensional input subspace with a "
                "source task; the pretrained lever starts from a model trained on the source",
        ),
        TaskFamily(
            name="graph", problems=("classification",), archs=("mlp", "gnn"), matched_archs=frozenset({"gnn"}),
            data="runs_generator.graphs:graph_data",
            doc="small coloured random graphs; the label is the colour class with the most internal edges "
                "(a GNN's message passing matches the graph structure)",
        ),
        TaskFamily(
            name="sequence", problems=("classification",), archs=("mlp", "transformer"),
            matched_archs=frozenset({"transformer"}), data="runs_generator.sequence:sequence_data",
            doc="one-hot token sequences; the label counts the query token's occurrences (attention matches "
                "tokens with the same weights at every position)",
        ),
    )
}

ARCHS: dict[str, ArchEntry] = {
    a.name: a
    for a in (
        ArchEntry(name="mlp", impl_path="runs_generator.models:MLP", positions=1, fused=True,
                  doc="fully connected ReLU network on the flattened input"),
        ArchEntry(name="cnn", impl_path="runs_generator.models:CNN1D", positions=20, fused=True,
                  doc="1-D convolutions (k=5 stride 2, then k=3) and a linear head"),
        # generative architectures (runs_generator.generative); impl is their stacked definition
        ArchEntry(name="vae", impl_path="runs_generator.generative:VAE",
                  doc="variational autoencoder: MLP encoder and decoder, Gaussian decoder, 2-D latent"),
        ArchEntry(name="gan", impl_path="runs_generator.generative:GAN",
                  doc="MLP generator and discriminator, non-saturating loss, alternating updates"),
        ArchEntry(name="flow", impl_path="runs_generator.generative:FLOW",
                  doc="RealNVP: affine coupling layers with MLP conditioners, exact likelihood"),
        ArchEntry(name="diffusion", impl_path="runs_generator.generative:DIFFUSION",
                  doc="DDPM with few timesteps: an MLP predicts the noise (epsilon) from x_t and t"),
        ArchEntry(name="gnn", impl_path="runs_generator.graphs:GNN", positions=12,
                  doc="GraphConv message passing (self + neighbour-sum weights) on node features, mean readout"),
        ArchEntry(name="transformer", impl_path="runs_generator.sequence:TRANSFORMER", positions=12,
                  doc="pre-norm transformer encoder (2-head self-attention + ReLU MLP per block) on one-hot tokens, "
                      "read at the query position"),
    )
}

_CLS, _REG, _GEN = "classification", "regression", "generation"
LOSSES: dict[str, LossEntry] = {
    entry.name: entry
    for entry in (
        LossEntry(
            name="cross_entropy", code=0, problems=(_CLS,), matched_noise=frozenset({(_CLS, None)}),
            refusal=((_REG, "loss='cross_entropy' needs a classification task; this is a regression problem. "
                            "Draw loss from {'mse', 'l1'} for regression runs"),),
        ),
        LossEntry(name="mse", code=1, problems=(_CLS, _REG), matched_noise=frozenset({(_REG, "gaussian")})),
        LossEntry(
            name="l1", code=2, problems=(_REG,), matched_noise=frozenset({(_REG, "laplace")}),
            refusal=((_CLS, "loss='l1' is a regression loss here; on one-hot classes it trains to an all-zero "
                            "output. Use loss='cross_entropy' or 'mse' (the Brier score on softmax probabilities) "
                            "for classes"),),
        ),
        # the generative objectives, one per architecture; matched = a likelihood objective (DESIGN.md §2:
        # the NLL of the data or its bound / reweighting), the GAN's game is not one
        *(LossEntry(name=name, code=code, problems=(_GEN,), archs=(arch,),
                    matched_noise=frozenset({(_GEN, None)}) if nll else frozenset(),
                    refusal=((_CLS, f"loss={name!r} is the {arch}'s generative objective; use task=generative"),
                             (_REG, f"loss={name!r} is the {arch}'s generative objective; use task=generative")))
          for name, code, arch, nll in (("elbo", 3, "vae", True), ("adversarial", 4, "gan", False),
                                        ("nll", 5, "flow", True), ("denoising", 6, "diffusion", True))),
    )
}


def _lookup(table: dict, kind: str, name: str, table_name: str):
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown {kind} {name!r}; registered: {', '.join(table)} "
                          f"(add an entry to runs_generator.registry.{table_name})") from None


def task_family(name: str) -> TaskFamily:
    """The registered task family ``name`` (a :class:`ConfigError` lists the known ones)."""
    return _lookup(TASKS, "task", name, "TASKS")


def arch_entry(name: str) -> ArchEntry:
    """The registered architecture ``name``."""
    return _lookup(ARCHS, "arch", name, "ARCHS")


def loss_entry(name: str) -> LossEntry:
    """The registered loss ``name``."""
    return _lookup(LOSSES, "loss", name, "LOSSES")


def allowed_losses(problem: str, arch: str | None = None) -> tuple[str, ...]:
    """The losses that can train ``problem`` (with ``arch``, when given), in registry (lever) order."""
    return tuple(name for name, entry in LOSSES.items()
                 if problem in entry.problems and (arch is None or not entry.archs or arch in entry.archs))


def inductive_bias(task: str, arch: str) -> int:
    """1 when ``arch``'s structure matches ``task``'s data (DESIGN.md §2), else 0."""
    return int(arch in task_family(task).matched_archs)


def loss_code(name: str) -> int:
    """The batched engine's code of loss ``name``."""
    return loss_entry(name).code
