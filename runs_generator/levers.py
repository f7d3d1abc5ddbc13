"""The lever space: every design lever as typed data, drawn as a randomized trial.

Each :class:`Lever` declares a sampling distribution (what a sweep draws) and a
domain (what an override may set). :class:`LeverSpace` draws every lever of a run
**independently** from one seeded stream per run, derived from
``(sweep seed, run index)``: the stream yields one uniform number per lever, in
the declared lever order, and each lever maps its own uniform through its
inverse CDF. So the same seed always yields the same configurations, and holding
one lever fixed (``fix``) or cycling it (``vary``) leaves every other lever's
draw unchanged. New levers must be appended at the end of :func:`_levers`
to keep old sweeps reproducible.

The spaces (:data:`SPACES`, picked with ``--space`` / ``generate(space=...)``):

* ``small`` (the default of ``udl generate`` and ``generate()``, so a command
  with nothing else given finishes in minutes on a laptop) — fast, for tests
  and the CPU demo: widths 8-64, depth 2-3, n_train 64-256, 20-50 epochs.
* ``large`` — the reference atlas and GPU sweeps: widths per architecture
  (MLP 32-256 hidden units, CNN 16-64 channels), depth 2-4, n_train 1,024-4,000,
  batch 32-256 (no full batch: 200 full-batch steps on 4,000 examples cost more
  than the rest of a run; full-batch GD is in the small space), 25-100 epochs,
  init scale 0.25-2 x He. Its capacity range crosses the interpolation threshold
  (parameters = n_train x outputs) for every architecture and task. The ranges
  were set so that runs learn (measured on the 400-run schema-2.0 reference,
  where MNIST-1D median test accuracy was 0.29): accuracy there rose with
  n_train (+0.09 per doubling for the CNN), fell with init scale above 2, and the
  MLPs were width-limited, so n_train starts at 1,024 (256 and 512 are in reach
  of ``fix``), init scale stops at 2 and MLPs reach 256 units.
* ``transfer`` — the transfer family beside the teacher one (MLPs, small-space
  ranges): ``pretrained`` 0/1, ``source_similarity`` 0 / 0.5 / 0.8 / 1 and
  ``source_steps`` 250 / 1,000 vary within the transfer family
  (:mod:`runs_generator.transfer`), as they would in a space of every family.

Levers that do not apply to a run, or whose range depends on another lever, are
resolved deterministically (the draw itself stays independent of the other
levers: each lever still maps only its own uniform). The ``task``, ``arch`` and
``loss`` choices, the problems and architectures each task offers, and the
losses each problem allows come from :mod:`runs_generator.registry`:

========================  ==========================================================
lever                     resolution
========================  ==========================================================
``problem``               ``classification`` on ``mnist1d`` (drawn on ``teacher``)
``arch``                  ``mlp`` on ``teacher`` (a 1-D CNN needs the mnist1d signal)
``loss``                  the lever's uniform picks among the losses the problem
                          allows: classification {cross_entropy, mse} (halves; mse
                          is the Brier score on softmax probabilities; ``l1`` on
                          one-hot classes trains to an all-zero output and is not
                          offered), regression {mse, l1} (halves)
``lr``                    the lever's uniform maps log-uniformly onto the
                          optimizer's own range (:attr:`LeverSpace.lr_ranges`):
                          each range spans from slow training through the edge of
                          stability to divergence for that optimizer, so
                          ``log_lr`` depends on ``optimizer`` by design
``steps``                 the budget rule: ``max(min_steps, ceil(epochs x n_train /
                          batch))``; epochs are drawn, so training length is tied
                          to passes over the data, not to n_train
``width``                 the lever's uniform picks among the architecture's own
                          widths (:attr:`LeverSpace.arch_widths`; the large space
                          only), so ``width`` depends on ``arch`` by design
``label_smoothing``       0 unless the loss is cross-entropy (regression has no
                          classes; the Brier score is trained on hard targets)
``noise_dist``            ``gaussian`` for classification (label noise has no
                          distribution; kept constant so the column is not noise)
neutral levers            a family's levers that do not act on it resolve to
                          their neutral values (``TaskFamily.neutral``); the
                          generative family: ``dropout`` 0, ``label_smoothing``
                          0, ``augmentation`` and ``early_stopping`` off,
                          ``normalization`` none, ``noise`` 0, ``noise_dist``
                          gaussian; a fixed other value is refused
``problem``, ``loss``     generative runs: ``generation`` and the arch's own
                          objective (vae ``elbo``, gan ``adversarial``, flow
                          ``nll``, diffusion ``denoising``)
``pretrained``            0 on a task without a source task (every family but
                          ``transfer``: they start from scratch); a fixed 1 there
                          is refused
``source_similarity``     null on a task without a source task
``source_steps``          null unless ``pretrained`` (a scratch run trains no
                          source model)
========================  ==========================================================

Width is the hidden units (MLP) or channels (CNN) as drawn (no divisor ties
it to ``inductive_bias``; the large space draws each architecture's width from
its own choices). Depth is >= 2
everywhere, so residual connections and gradient stability always have a
hidden->hidden layer to act on.

An override that cannot apply (``arch=cnn`` on ``teacher``, ``loss=cross_entropy``
on a regression run) is refused with a :class:`~causal.errors.ConfigError` that
says which other lever to fix. Fixing ``steps`` overrides the budget rule
(``epochs`` is then the realized ``steps x batch / n_train``); fixing ``lr`` uses
that rate for every optimizer.

For the analysis: ``log_lr`` depends on ``optimizer``, ``label_smoothing`` on
``loss`` and ``problem``, and ``steps`` on ``epochs``, ``n_train`` and the batch
size by construction; the randomized roots are ``optimizer``, the lr lever's
own uniform, ``loss``, ``epochs``, ``n_train`` and ``batch_size``; in the large
space ``width`` also depends on ``arch`` (its own uniform is the randomized root).

``vary`` lays the varied levers out as a full factorial over run indices: the
first varied lever (in lever order) cycles fastest, ``values[i % n1]``, the next
over blocks of ``n1`` runs, and so on, so several varied levers stay orthogonal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Union

import numpy as np

from causal.errors import ConfigError
from runs_generator.registry import ARCHS, LOSSES, TASKS, allowed_losses, loss_entry, task_family
from runs_generator.spec import RunConfig

__all__ = [
    "Choice",
    "Resolved",
    "LogUniform",
    "ZeroOrLogUniform",
    "Distribution",
    "Lever",
    "Overrides",
    "LeverSpace",
    "DEFAULT_SPACE",
    "SMALL_SPACE",
    "LARGE_SPACE",
    "GENERATIVE_SPACE",
    "TRANSFER_SPACE",
    "SPACES",
    "SpaceName",
    "get_space",
    "parse_assignment",
    "run_seed",
]


# --- distributions: each maps one uniform u in [0, 1) to a value -----------------
@dataclass(frozen=True)
class Choice:
    """A discrete choice among ``values`` with optional ``weights`` (default equal)."""

    values: tuple[Any, ...]
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.values:
            raise ConfigError("Choice needs at least one value; received an empty tuple")
        if self.weights is not None and (
            len(self.weights) != len(self.values) or min(self.weights) < 0 or sum(self.weights) <= 0
        ):
            raise ConfigError(
                f"Choice weights {self.weights} must be non-negative, sum > 0 and match "
                f"the {len(self.values)} values {self.values}"
            )

    def sample(self, u: float) -> Any:
        w = np.ones(len(self.values)) if self.weights is None else np.asarray(self.weights, float)
        cdf = np.cumsum(w) / w.sum()
        return self.values[min(int(np.searchsorted(cdf, u, side="right")), len(self.values) - 1)]

    def describe(self) -> str:
        if self.weights is None:
            return f"one of {list(self.values)} (equal weights)"
        return f"one of {list(self.values)} with weights {list(self.weights)}"


@dataclass(frozen=True)
class LogUniform:
    """Log-uniform on ``[low, high]`` (uniform in log space)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.high:
            raise ConfigError(f"LogUniform needs 0 < low <= high; received low={self.low}, high={self.high}")

    def sample(self, u: float) -> float:
        return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))

    def describe(self) -> str:
        return f"log-uniform on [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class ZeroOrLogUniform:
    """0 with probability ``p_zero``, else log-uniform on ``[low, high]``."""

    p_zero: float
    low: float
    high: float

    def sample(self, u: float) -> float:
        if u < self.p_zero:
            return 0.0
        return LogUniform(self.low, self.high).sample((u - self.p_zero) / (1.0 - self.p_zero))

    def describe(self) -> str:
        return f"0 with probability {self.p_zero:g}, else log-uniform on [{self.low:g}, {self.high:g}]"


@dataclass(frozen=True)
class Resolved:
    """Not drawn: resolved from other levers (see the module docstring); an override may still set it."""

    rule: str

    def sample(self, u: float) -> None:
        return None

    def describe(self) -> str:
        return f"resolved: {self.rule}"


Distribution = Union[Choice, LogUniform, ZeroOrLogUniform, Resolved]
Kind = Literal["str", "int", "float", "bool", "batch"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Lever:
    """One design lever: how a sweep draws it and what an override may set it to.

    Attributes
    ----------
    name : str
        The raw lever name, also its column in the runs table.
    dist : Distribution
        What a sweep draws (the lever's distribution in the randomized trial).
    kind : {"str", "int", "float", "bool", "batch"}
        Value type; ``batch`` is an int or the string ``"full"``.
    low, high : float, optional
        Inclusive bounds an override may take (numeric kinds).
    choices : tuple of str, optional
        Allowed values of a ``str`` lever.
    doc : str
        What the lever means.
    """

    name: str
    dist: Distribution
    kind: Kind
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    doc: str = ""

    def allowed(self) -> str:
        """Human-readable domain, used in error messages."""
        if self.kind == "str":
            return f"one of {list(self.choices or ())}"
        if self.kind == "bool":
            return "a flag: 0/1 or true/false"
        rng = f"{'an integer' if self.kind in ('int', 'batch') else 'a number'} in [{self.low:g}, {self.high:g}]"
        return rng + (" or 'full'" if self.kind == "batch" else "")

    def _refuse(self, value: Any, why: str = "") -> ConfigError:
        return ConfigError(
            f"lever {self.name!r}: value {value!r} is not allowed{why}; expected {self.allowed()}"
            f" (the sweep draws {self.dist.describe()})"
        )

    def parse(self, text: str) -> Any:
        """Convert a command-line string to this lever's type and validate it."""
        text = text.strip()
        if self.kind == "str":
            return self.validate(text)
        if self.kind == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise self._refuse(text)
        if self.kind == "batch" and text.lower() == "full":
            return "full"
        try:
            number = float(text)
        except ValueError:
            raise self._refuse(text, " (not a number)") from None
        return self.validate(number)

    def validate(self, value: Any) -> Any:
        """Return ``value`` in canonical type, or raise :class:`ConfigError`."""
        if self.kind == "str":
            if not isinstance(value, str) or value not in (self.choices or ()):
                raise self._refuse(value)
            return value
        if self.kind == "bool":
            if isinstance(value, (bool, np.bool_)) or value in (0, 1):
                return bool(value)
            raise self._refuse(value)
        if self.kind == "batch" and value == "full":
            return "full"
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise self._refuse(value, " (wrong type)")
        number = float(value)
        if self.kind in ("int", "batch"):
            if not number.is_integer():
                raise self._refuse(value, " (not an integer)")
            number = int(number)
        if not (self.low <= number <= self.high):  # type: ignore[operator]
            raise self._refuse(value, " (out of range)")
        return number

    def draw(self, u: float) -> Any:
        value = self.dist.sample(u)
        return None if value is None else self.validate(value)


@dataclass(frozen=True)
class Overrides:
    """Validated overrides: ``fix`` holds levers constant, ``vary`` cycles them.

    Build with :meth:`LeverSpace.overrides`; both are tuples of pairs so the
    object is hashable and its order canonical (lever order).
    """

    fix: tuple[tuple[str, Any], ...] = ()
    vary: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"fix": dict(self.fix), "vary": {k: list(v) for k, v in self.vary}}


def run_seed(sweep_seed: int, index: int) -> int:
    """The run's own seed (tasks and initialization), derived from sweep seed and run index."""
    return int(np.random.SeedSequence([sweep_seed, index, 1]).generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True)
class LeverSpace:
    """An ordered collection of levers and the rules that resolve them into a :class:`RunConfig`.

    Examples
    --------
    >>> cfgs = DEFAULT_SPACE.draw_all(seed=1, runs=3)
    >>> [c.run_index for c in cfgs]
    [0, 1, 2]
    >>> cfgs == DEFAULT_SPACE.draw_all(seed=1, runs=3)
    True
    """

    levers: tuple[Lever, ...]
    version: str = "1"  # bump when a distribution changes: sweep manifests compare it
    name: str = "custom"
    #: optimizer -> (low, high) of its log-uniform learning-rate range
    #: (an lr grid on MNIST-1D MLP and CNN, n_train 1,024, 50 epochs: each range starts where training
    #: barely moves in the budget and ends past divergence / collapse: SGD diverged at lr >= 1 (CNN),
    #: momentum collapsed at 0.3, Adam still trained at 0.03; raising the low ends 2.5x and the large
    #: space's min_steps 200 -> 400 took a 40-run MNIST-1D MLP sample's median accuracy 0.25 -> 0.27)
    lr_ranges: tuple[tuple[str, float, float], ...] = (("sgd", 5e-2, 3.0), ("momentum", 5e-3, 0.5),
                                                      ("adam", 5e-4, 0.1))
    min_steps: int = 100  # the budget rule's floor (full-batch runs make one step per epoch)
    #: arch -> the width choices its width lever's uniform maps onto (empty: the width lever's own choices for
    #: every architecture). An MLP's hidden layer and a CNN's channel count are not the same unit of capacity;
    #: per-arch ranges let each cross the interpolation threshold, so ``width`` depends on ``arch`` by design.
    arch_widths: tuple[tuple[str, tuple[int, ...]], ...] = ()
    #: task -> ((lever, distribution), ...): levers whose own uniform maps onto a distribution of that family's
    #: (a space of several families needs per-family data sizes and budgets: a GNN is at its ceiling from 1,024
    #: graphs, transfer is about few labels, a transformer costs 10x an MLP per step). A lever not listed for
    #: the drawn task keeps the space's own distribution; an override still wins.
    task_levers: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    #: task -> lr ranges (as ``lr_ranges``) that replace the space's for that family
    task_lr_ranges: tuple[tuple[str, tuple[tuple[str, float, float], ...]], ...] = ()
    #: True: the arch lever's own uniform picks among the drawn task's architectures (equal weights). False (the
    #: two-family spaces): a drawn arch that the task offers is kept and any other resolves to the task's first,
    #: which in a space of many architectures would make nearly every run its family's first architecture
    arch_per_task: bool = False
    _by_name: dict[str, Lever] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {lv.name: lv for lv in self.levers})
        for task, dists in self.task_levers:  # a typo here would silently draw from the space's distribution
            for name, dist in dists:
                lever = self.lever(name)
                for value in getattr(dist, "values", ()):
                    lever.validate(value)
            if task not in TASKS:
                raise ConfigError(f"space {self.name!r}: task_levers names task {task!r}, which is not registered "
                                  f"({', '.join(TASKS)})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(lv.name for lv in self.levers)

    def lever(self, name: str) -> Lever:
        """Return the lever called ``name`` or raise a :class:`ConfigError` listing the known ones."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(f"unknown lever {name!r}; known levers: {', '.join(self.names)}") from None

    def overrides(
        self,
        fix: Mapping[str, Any] | None = None,
        vary: Mapping[str, Sequence[Any]] | None = None,
    ) -> Overrides:
        """Validate ``fix`` and ``vary`` mappings (values already typed, or CLI strings)."""
        fix = dict(fix or {})
        vary = dict(vary or {})
        both = sorted(set(fix) & set(vary))
        if both:
            raise ConfigError(f"lever(s) {both} are both fixed and varied; use either fix or vary for each lever")

        def conv(lv: Lever, v: Any) -> Any:
            return lv.parse(v) if isinstance(v, str) and lv.kind != "str" else lv.validate(v)

        fixed: dict[str, Any] = {}
        for name, value in fix.items():
            fixed[name] = conv(self.lever(name), value)
        varied: dict[str, tuple[Any, ...]] = {}
        for name, values in vary.items():
            lv = self.lever(name)
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                raise ConfigError(f"vary {name!r}: expected a list of values, received {values!r}")
            vals = tuple(conv(lv, v) for v in values)
            if not vals:
                raise ConfigError(f"vary {name!r}: expected at least one value, received an empty list")
            varied[name] = vals
        order = {n: i for i, n in enumerate(self.names)}
        return Overrides(
            fix=tuple(sorted(fixed.items(), key=lambda kv: order[kv[0]])),
            vary=tuple(sorted(varied.items(), key=lambda kv: order[kv[0]])),
        )

    # --- drawing --------------------------------------------------------------------
    def uniforms(self, seed: int, index: int) -> np.ndarray:
        """Run ``index``'s stream: one uniform in [0, 1) per lever, in lever order."""
        return np.random.default_rng(np.random.SeedSequence([seed, index, 0])).random(len(self.levers))

    def raw_draw(self, seed: int, index: int, overrides: Overrides = Overrides()) -> dict[str, Any]:
        """The lever values of run ``index`` before resolution (one uniform per lever)."""
        u = self.uniforms(seed, index)
        values = {lv.name: lv.draw(float(ui)) for lv, ui in zip(self.levers, u)}
        values.update(dict(overrides.fix))
        block = 1
        for name, vals in overrides.vary:
            values[name] = vals[(index // block) % len(vals)]
            block *= len(vals)
        return values

    def draw(self, seed: int, index: int, overrides: Overrides = Overrides(), replicas: int = 4) -> RunConfig:
        """Draw and resolve the configuration of run ``index`` of sweep ``seed``."""
        v = self.raw_draw(seed, index, overrides)
        u = self.uniforms(seed, index)  # each resolved lever maps its own uniform
        forced = {n for n, _ in overrides.fix} | {n for n, _ in overrides.vary}
        family = task_family(v["task"])
        if v["problem"] not in family.problems:
            if "problem" in forced:
                posing = [t for t, f in TASKS.items() if v["problem"] in f.problems]
                raise ConfigError(
                    f"run {index}: problem={v['problem']!r} does not apply to task {v['task']!r} (a "
                    f"{' / '.join(family.problems)} task); fix task={' or task='.join(posing)} or "
                    f"problem={family.problems[0]}"
                )
            v["problem"] = family.problems[0]
        offered = [a for a in family.archs if a in self.lever("arch").choices]  # (registry order)
        if not offered:
            raise ConfigError(f"run {index}: space {self.name!r} offers none of task {v['task']!r}'s architectures "
                              f"{list(family.archs)}; add one to the space's arch choices")
        if self.arch_per_task and "arch" not in forced:
            v["arch"] = Choice(tuple(offered)).sample(float(u[self.names.index("arch")]))
        elif v["arch"] not in offered:
            if "arch" in forced:
                hosts = [t for t, f in TASKS.items() if v["arch"] in f.archs]
                raise ConfigError(
                    f"run {index}: arch={v['arch']!r} does not apply to task {v['task']!r} (its architectures: "
                    f"{list(family.archs)}), which was drawn; add fix task={' or task='.join(hosts)} (or vary arch "
                    f"only with such a task)"
                )
            v["arch"] = offered[0]
        for name, dist in self.task_dists(v["task"]):  # the family's own distribution, on the lever's uniform
            if name not in forced:
                v[name] = dist.sample(float(u[self.names.index(name)]))
        allowed = allowed_losses(v["problem"], v["arch"])  # a generative objective belongs to its arch
        losses = tuple(name for name in allowed if name in self.lever("loss").choices)
        if not losses:
            raise ConfigError(f"run {index}: space {self.name!r} offers no loss for a {v['problem']} run with "
                              f"arch={v['arch']!r} (its losses: {list(self.lever('loss').choices)}); add one of "
                              f"{list(allowed)}")
        if "loss" in forced:
            if v["loss"] not in losses:
                fits = loss_entry(v["loss"]).problems
                raise ConfigError(
                    f"run {index}: loss={v['loss']!r} does not apply to a {v['problem']} run (allowed: "
                    f"{list(losses)}); add fix problem={' or problem='.join(fits)}"
                )
        else:  # the loss lever's own uniform picks among the allowed losses
            u_loss = float(u[self.names.index("loss")])
            v["loss"] = losses[min(int(u_loss * len(losses)), len(losses) - 1)]
        if v["loss"] != "cross_entropy":  # only cross-entropy smooths its targets
            if "label_smoothing" in forced and v["label_smoothing"] != 0:
                raise ConfigError(
                    f"run {index}: label_smoothing={v['label_smoothing']} only acts on loss='cross_entropy', but "
                    f"loss={v['loss']!r}; add fix loss=cross_entropy"
                )
            v["label_smoothing"] = 0.0
        for name, value in family.neutral:  # levers that do not act on this family: their neutral value
            if name in forced and v[name] != value:
                raise ConfigError(f"run {index}: {name}={v[name]!r} does not act on task {v['task']!r} (it resolves "
                                  f"to {value!r} there); drop the override or fix another task")
            v[name] = value
        if v["problem"] == "classification":
            v["noise_dist"] = "gaussian"
        if self.arch_widths and "width" not in forced:  # the width lever's own uniform, on the arch's choices
            v["width"] = Choice(self.width_choices(v["arch"])).sample(float(u[self.names.index("width")]))
        if "lr" not in forced:  # the lr lever's own uniform, on the optimizer's range
            low, high = self.lr_range(v["optimizer"], v["task"])
            v["lr"] = LogUniform(low, high).sample(float(u[self.names.index("lr")]))
        batch = v["batch_size"]
        eff_batch = v["n_train"] if batch == "full" else min(int(batch), int(v["n_train"]))
        if "steps" in forced:
            v["epochs"] = v["steps"] * eff_batch / v["n_train"]
        else:
            v["steps"] = max(self.min_steps, math.ceil(v["epochs"] * v["n_train"] / eff_batch))
        if family.source_task:  # transfer: the source levers apply; a scratch run trains no source model
            if not v["pretrained"]:
                v["source_steps"] = None
        else:  # no source task: every run starts from scratch
            if "pretrained" in forced and v["pretrained"]:
                hosts = [t for t, f in TASKS.items() if f.source_task]
                raise ConfigError(f"run {index}: pretrained=1 needs a task with a source task ({', '.join(hosts)}), "
                                  f"but task {v['task']!r} was drawn; add fix task={' or task='.join(hosts)}")
            v["pretrained"], v["source_similarity"], v["source_steps"] = False, None, None
        return RunConfig(
            run_index=index,
            seed=run_seed(seed, index),
            task=v["task"],
            problem=v["problem"],
            arch=v["arch"],
            width=v["width"],
            depth=v["depth"],
            loss=v["loss"],
            init_scale=float(v["init_scale"]),
            optimizer=v["optimizer"],
            lr=float(v["lr"]),
            batch_size=None if batch == "full" else int(batch),
            weight_decay=float(v["weight_decay"]),
            dropout=float(v["dropout"]),
            label_smoothing=float(v["label_smoothing"]),
            augmentation=bool(v["augmentation"]),
            early_stopping=bool(v["early_stopping"]),
            normalization=v["normalization"],
            residual=bool(v["residual"]),
            n_train=int(v["n_train"]),
            noise=float(v["noise"]),
            noise_dist=v["noise_dist"],
            steps=int(v["steps"]),
            epochs=float(v["epochs"]),
            replicas=replicas,
            pretrained=bool(v["pretrained"]),
            source_similarity=None if v["source_similarity"] is None else float(v["source_similarity"]),
            source_steps=None if v["source_steps"] is None else int(v["source_steps"]),
        )

    def draw_all(
        self, seed: int, runs: int, overrides: Overrides = Overrides(), replicas: int = 4
    ) -> list[RunConfig]:
        """Draw runs ``0 .. runs-1`` of sweep ``seed``."""
        return [self.draw(seed, i, overrides, replicas) for i in range(runs)]

    def task_dists(self, task: str) -> tuple[tuple[str, Any], ...]:
        """The (lever, distribution) pairs that task ``task`` draws from instead of the space's own."""
        return dict(self.task_levers).get(task, ())

    def lr_range(self, optimizer: str, task: str | None = None) -> tuple[float, float]:
        """The (low, high) learning-rate range of ``optimizer`` in this space (for ``task``, when it has its own)."""
        ranges = dict(self.task_lr_ranges).get(task, self.lr_ranges) if task is not None else self.lr_ranges
        for name, low, high in ranges:
            if name == optimizer:
                return low, high
        raise ConfigError(f"space {self.name!r} has no learning-rate range for optimizer {optimizer!r}")

    def width_choices(self, arch: str) -> tuple[int, ...]:
        """The width choices of ``arch`` in this space (the width lever's own when not set per arch)."""
        for name, choices in self.arch_widths:
            if name == arch:
                return choices
        if self.arch_widths:
            raise ConfigError(f"space {self.name!r} has no width choices for arch {arch!r}")
        return tuple(self.lever("width").dist.values)  # type: ignore[union-attr]

    def describe(self) -> dict[str, str]:
        """Lever name -> its sampling distribution, for manifests and ``--help``."""
        out = {lv.name: lv.dist.describe() for lv in self.levers}
        out["lr"] = "log-uniform per optimizer: " + ", ".join(f"{n} [{lo:g}, {hi:g}]" for n, lo, hi in self.lr_ranges)
        out["steps"] += f" (min_steps {self.min_steps})"
        if self.arch_widths:
            out["width"] = "per arch, equal weights: " + ", ".join(f"{a} {list(w)}" for a, w in self.arch_widths)
        if self.arch_per_task:
            out["arch"] = "among the drawn task's architectures, equal weights: " + ", ".join(
                f"{t} {list(task_family(t).archs)}" for t in self.lever("task").choices)
        for task, dists in self.task_levers:
            for name, dist in dists:
                out[name] += f"; on {task}: {dist.describe()}"
        for task, ranges in self.task_lr_ranges:
            out["lr"] += f"; on {task}: " + ", ".join(f"{n} [{lo:g}, {hi:g}]" for n, lo, hi in ranges)
        return out


def parse_assignment(text: str, *, multi: bool) -> tuple[str, Any]:
    """Split ``LEVER=VALUE`` (or ``LEVER=V1,V2`` when ``multi``) into name and string value(s).

    Type conversion happens in :meth:`LeverSpace.overrides`, which knows each lever.
    """
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        form = "LEVER=V1,V2,..." if multi else "LEVER=VALUE"
        raise ConfigError(f"override {text!r} is malformed; expected {form}, e.g. 'optimizer=adam'")
    if multi:
        return name, [v for v in (p.strip() for p in value.split(",")) if v]
    return name, value


_C = Choice


def _registered(kind: str, names: tuple[str, ...], table: dict) -> tuple[str, ...]:
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        raise ConfigError(f"a lever space's {kind} choices {list(names)} must be non-empty and registered in "
                          f"runs_generator.registry (registered: {list(table)}); unknown: {unknown}")
    return names


def _levers(width: tuple[int, ...], depth: tuple[int, ...], batch: tuple, batch_w: tuple[float, ...],
            n_train: tuple[int, ...], epochs: tuple[float, ...], init: tuple[float, float] = (0.25, 4.0),
            tasks: tuple[str, ...] = ("teacher", "mnist1d"), archs: tuple[str, ...] = ("mlp", "cnn"),
            losses: tuple[str, ...] = ("cross_entropy", "mse", "l1"), pretrained: tuple[bool, ...] = (False,),
            similarity: tuple[float, ...] = (1.0,), source_steps: tuple[int, ...] = (1000,)) -> tuple[Lever, ...]:
    """The levers of a space; only capacity, data size, batch and budget differ between spaces.

    ``pretrained``, ``similarity`` and ``source_steps`` are the transfer family's choices; a space without
    the family keeps the one-value defaults (its draws do not depend on them: each lever maps its own uniform).

    ``tasks``, ``archs`` and ``losses`` are the registry entries the space draws from, named explicitly: a
    family added to the registry joins a space only when the space lists it (and bumps its version), so
    registering one never changes an existing space's draws.
    """
    tasks = _registered("task", tasks, TASKS)
    archs = _registered("arch", archs, ARCHS)
    losses = _registered("loss", losses, LOSSES)
    return (
        Lever("task", _C(tasks), "str", choices=tasks, doc="task family (runs_generator.registry.TASKS)"),
        Lever("problem", _C(("classification", "regression")), "str", choices=("classification", "regression"),
              doc="teacher problem; mnist1d is always classification"),
        Lever("arch", _C(archs), "str", choices=archs,
              doc="architecture (runs_generator.registry.ARCHS); one its task does not offer resolves to the "
                  "task's first (a cnn drawn on teacher is an mlp)"),
        Lever("width", _C(width), "int", 1, 1024, doc="hidden units (mlp) or channels (cnn) per hidden layer"),
        Lever("depth", _C(depth), "int", 1, 16, doc="hidden layers (the spaces draw >= 2)"),
        Lever("loss", _C(losses), "str", choices=losses,
              doc="training loss; picked among the losses the problem allows"),
        Lever("init_scale", LogUniform(*init), "float", 1e-3, 100.0, doc="initial weight std / He std"),
        Lever("optimizer", _C(("sgd", "momentum", "adam")), "str", choices=("sgd", "momentum", "adam"),
              doc="optimizer (momentum = SGD with momentum 0.9)"),
        Lever("lr", LogUniform(1e-4, 3.0), "float", 1e-6, 10.0, doc="learning rate (range per optimizer)"),
        Lever("batch_size", _C(batch, batch_w), "batch", 1, 1_000_000,
              doc="minibatch size, or 'full' for full-batch training (capped at n_train)"),
        Lever("weight_decay", ZeroOrLogUniform(0.5, 1e-5, 1e-3), "float", 0.0, 1.0, doc="L2 weight decay"),
        Lever("dropout", _C((0.0, 0.1, 0.3)), "float", 0.0, 0.9, doc="dropout on hidden activations"),
        Lever("label_smoothing", _C((0.0, 0.1)), "float", 0.0, 0.5, doc="label smoothing (0 unless loss is cross_entropy)"),
        Lever("augmentation", _C((False, True)), "bool", doc="augment training inputs"),
        Lever("early_stopping", _C((False, True)), "bool", doc="keep the best-validation checkpoint"),
        Lever("normalization", _C(("none", "batch", "layer")), "str", choices=("none", "batch", "layer"),
              doc="normalization layers"),
        Lever("residual", _C((False, True)), "bool", doc="residual connections"),
        Lever("n_train", _C(n_train), "int", 8, 4096, doc="training examples per replica"),
        Lever("noise", _C((0.0, 0.1, 0.2, 0.3)), "float", 0.0, 0.9,
              doc="label-noise fraction (classes) or noise std / signal std (regression)"),
        Lever("noise_dist", _C(("gaussian", "laplace")), "str", choices=("gaussian", "laplace"),
              doc="regression noise distribution (gaussian for classification)"),
        Lever("steps", Resolved("max(min_steps, ceil(epochs x n_train / batch))"), "int", 1, 1_000_000,
              doc="optimizer steps per replica (the budget rule, or fixed)"),
        Lever("epochs", _C(epochs), "float", 0.01, 10_000.0, doc="training budget: passes over the training set"),
        Lever("pretrained", _C(pretrained), "bool",
              doc="start from a model trained on the task's source task (transfer only; 0 elsewhere)"),
        Lever("source_similarity", _C(similarity), "float", 0.0, 1.0,
              doc="cosine between the target's and the source's label subspaces (transfer only; null elsewhere)"),
        Lever("source_steps", _C(source_steps), "int", 1, 1_000_000,
              doc="the source model's training steps (pretrained transfer runs only; null elsewhere)"),
    )


#: fast: tests and the CPU demo (README command 1)
SMALL_SPACE = LeverSpace(
    levers=_levers(width=(8, 16, 32, 64), depth=(2, 3), batch=(32, 64, "full"), batch_w=(1.0, 1.0, 1.0),
                   n_train=(64, 128, 256), epochs=(20, 50)),
    version="2-small", name="small", min_steps=100,
)
#: the reference atlas and GPU sweeps (``--space large``)
LARGE_SPACE = LeverSpace(
    levers=_levers(width=(16, 32, 64, 128, 256), depth=(2, 3, 4), batch=(32, 64, 128, 256),
                   batch_w=(1.0, 1.0, 1.0, 1.0), n_train=(1024, 2048, 4000), epochs=(25, 50, 100),
                   init=(0.25, 2.0)),
    version="3-large", name="large", min_steps=400,
    arch_widths=(("mlp", (32, 64, 128, 256)), ("cnn", (16, 32, 64))),
)
#: the transfer family beside the teacher one, small-space ranges (issue 11 point 3; ``--space transfer``):
#: ``pretrained`` varies within the transfer family only, as it would in a space of every family
TRANSFER_SPACE = LeverSpace(
    levers=_levers(width=(8, 16, 32, 64), depth=(2, 3), batch=(32, 64, "full"), batch_w=(1.0, 1.0, 1.0),
                   n_train=(64, 128, 256), epochs=(20, 50), tasks=("teacher", "transfer"), archs=("mlp",),
                   pretrained=(False, True), similarity=(0.0, 0.5, 0.8, 1.0), source_steps=(250, 1000)),
    version="1-transfer", name="transfer", min_steps=100,
)
#: the generative family alone (issue 11 point 4): VAE, GAN, flow and diffusion on the 2-D mixture; the levers
#: that do not act on it resolve to their neutral values (``TaskFamily.neutral``), the loss to the arch's objective
GENERATIVE_SPACE = LeverSpace(
    levers=_levers(width=(8, 16, 32, 64, 128), depth=(2, 3), batch=(64, 128, 256), batch_w=(1.0, 1.0, 1.0),
                   n_train=(256, 512, 1024), epochs=(50, 100), init=(0.5, 2.0), tasks=("generative",),
                   archs=("vae", "gan", "flow", "diffusion"), losses=("elbo", "adversarial", "nll", "denoising")),
    version="3-generative", name="generative", min_steps=400,
    # plain SGD and momentum on likelihood objectives in nats diverge within a few steps far below the supervised
    # ranges (200-run sweep: 70-85% of VAE and flow SGD runs at lr 0.002-0.09, 30-64% of momentum at 0.0003-0.006)
    lr_ranges=(("sgd", 1e-4, 3e-2), ("momentum", 1e-5, 3e-3), ("adam", 3e-4, 1e-2)),
)
#: every family of DESIGN.md §3 in one space (issue 11 point 5: the all-family reference atlas). The large space's
#: ranges where a family has no reason to differ; per family (``task_levers``, ``task_lr_ranges``), where its own
#: measurements said so (benchmarks/RESULTS.md, "Space 2-all"):
#:
#: - mnist1d: n_train 2,048-4,000 (the anchor's 4,000 and half of it; at 1,024 examples the median MLP of space
#:   1-all scored 0.31 test accuracy, against 0.49 at 4,000; MNIST-1D's median over 1,024-4,000 was 0.43);
#: - graph: n_train 256-2,048 (a GNN is at its ceiling from ~1,024 graphs; the MLP is not);
#: - sequence: n_train 2,048-4,000, batch 64-128, depth 2-3 (at 1,024 sequences or 400 steps most transformers
#:   stayed at chance: median test accuracy 0.35 at n 1,024 in space 1-all); budgets capped for CPU cost (a
#:   transformer step costs ~10x an MLP's);
#: - transfer: few labels, and learning rates below the large space's (32-d inputs: mse regression diverged in
#:   2-3 steps from SGD 0.4 and momentum 0.009-0.5, 18 of 47 regression runs of space 1-all, and the divergence
#:   fell unevenly on pretrained and scratch runs); only related sources (similarity 0.5-1): DESIGN.md defines
#:   ``pretrained`` by a *related* source task, and an orthogonal source raises variance, which would average
#:   edge 22 towards zero;
#: - generative: Adam only, lr 1e-3-5e-3, init 0.5-1.5, batch 128 and 1,000-4,000 steps. In a grid of 288 runs
#:   (benchmarks/grid_generative.py; numbers in benchmarks/RESULTS.md) momentum taught no VAE (precision <= 0.23,
#:   a fitted Gaussian scores 0.25) and few GANs (median 0.15-0.21), every momentum flow and VAE at init 2
#:   diverged, Adam VAEs at init 2 learnt nothing, lr 1e-2 collapsed GANs onto 1-5 modes, and VAEs and GANs
#:   need ~3,000 Adam steps at lr 1e-3; space 1-all's generative runs (SGD and momentum down to lr 1e-5,
#:   400-1,600 steps) learnt only as flows.
ALL_SPACE = LeverSpace(
    levers=_levers(width=(16, 32, 64, 128, 256), depth=(2, 3, 4), batch=(32, 64, 128, 256),
                   batch_w=(1.0, 1.0, 1.0, 1.0), n_train=(1024, 2048, 4000), epochs=(25, 50, 100),
                   init=(0.25, 2.0), tasks=("teacher", "mnist1d", "sequence", "graph", "transfer", "generative"),
                   archs=("mlp", "cnn", "transformer", "gnn", "vae", "gan", "flow", "diffusion"),
                   losses=("cross_entropy", "mse", "l1", "elbo", "adversarial", "nll", "denoising"),
                   pretrained=(False, True), similarity=(0.5, 0.8, 1.0), source_steps=(250, 1000)),
    version="2-all", name="all", min_steps=400, arch_per_task=True,
    arch_widths=(("mlp", (32, 64, 128, 256)), ("cnn", (16, 32, 64)), ("transformer", (16, 32)),
                 ("gnn", (8, 16, 32)), ("vae", (8, 16, 32, 64, 128)), ("gan", (8, 16, 32, 64, 128)),
                 ("flow", (8, 16, 32, 64, 128)), ("diffusion", (8, 16, 32, 64, 128))),
    task_levers=(
        ("mnist1d", (("n_train", _C((2048, 4000))),)),
        ("sequence", (("depth", _C((2, 3))), ("n_train", _C((2048, 4000))), ("batch_size", _C((64, 128))),
                      ("epochs", _C((25, 50))))),
        ("graph", (("n_train", _C((256, 512, 1024, 2048))), ("batch_size", _C((64, 128, 256))),
                   ("epochs", _C((25, 50))))),
        ("transfer", (("n_train", _C((64, 128, 256))), ("batch_size", _C((32, 64, "full"))),
                      ("epochs", _C((20, 50))))),
        ("generative", (("depth", _C((2, 3))), ("n_train", _C((512, 1024))), ("batch_size", _C((128,))),
                        ("epochs", _C((250, 500))), ("init_scale", LogUniform(0.5, 1.5)),
                        ("optimizer", _C(("adam",))))),
    ),
    task_lr_ranges=(("transfer", (("sgd", 1e-2, 0.2), ("momentum", 1e-3, 2e-2), ("adam", 5e-4, 5e-2))),
                    ("generative", (("sgd", 1e-4, 3e-2), ("momentum", 1e-5, 3e-3), ("adam", 1e-3, 5e-3)))),
)
SpaceName = Literal["small", "large", "generative", "transfer", "all"]
SPACES: dict[str, LeverSpace] = {"small": SMALL_SPACE, "large": LARGE_SPACE, "generative": GENERATIVE_SPACE,
                                 "transfer": TRANSFER_SPACE, "all": ALL_SPACE}
DEFAULT_SPACE = SMALL_SPACE  # what a command with no --space draws from


def get_space(space: "str | LeverSpace") -> LeverSpace:
    """A :class:`LeverSpace` by name (``'small'``, ``'large'``) or as given."""
    if isinstance(space, LeverSpace):
        return space
    try:
        return SPACES[space]
    except (KeyError, TypeError):
        raise ConfigError(f"space must be one of {sorted(SPACES)} or a LeverSpace; received {space!r}") from None


#: RunConfig fields that are levers of the space (everything but ids and replicas)
LEVER_FIELDS = tuple(f.name for f in fields(RunConfig) if f.name not in ("run_index", "seed", "replicas"))
assert all(set(LEVER_FIELDS) == set(sp.names) for sp in SPACES.values()), "lever space and RunConfig disagree"
