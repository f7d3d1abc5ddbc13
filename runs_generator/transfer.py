"""The transfer family: few target labels, a related source task, and cached source models.

**The tasks** (book §9.3.6 and ch. 11: pre-train on a secondary task, replace
the output layer, fine-tune on the primary task). Inputs are Gaussian in
:data:`TRANSFER_DIM` dimensions, and every label depends on the input only
through its projection onto a :data:`TRANSFER_RANK`-dimensional subspace
(a multi-index teacher):

- the **source** task (``source_task = 'subspace_regression'``):
  :data:`SOURCE_OUTPUTS` regression outputs, a random tanh network of
  ``x @ U_s`` (``U_s`` orthonormal, d x k), noise-free, with
  :data:`SOURCE_TRAIN` examples per replica: plenty of labels;
- the **target** task (the run's own data): a *different* random tanh network
  (its own head, classes or regression as the ``problem`` lever says) of
  ``x @ U_t`` with ``U_t = s U_s + sqrt(1 - s^2) U_perp`` (``U_perp``
  orthonormal and orthogonal to ``U_s``), so every principal cosine between
  the two subspaces equals the ``source_similarity`` lever ``s``: at ``s = 1``
  the target needs exactly the source's features, at ``s = 0`` none of them.
  Rotating the subspace does not change how hard the target is to learn from
  scratch (isotropic inputs and initialization), so scratch runs are
  statistically alike at every similarity and only the pretrained ones feel it.
  The target has a minority subgroup (inputs shifted by ``TEACHER_SHIFT``
  along a fixed random direction) and label / regression noise as the teacher
  family (:mod:`runs_generator.tasks`).

**Pretraining** (the ``pretrained`` lever): the run's K replicas start from
the K replicas of a *source model*: the run's architecture (arch, width,
depth, normalization, residual) trained on the source task for
``source_steps`` steps with a fixed recipe (:func:`source_config`: Adam,
lr :data:`SOURCE_LR`, batch :data:`SOURCE_BATCH`, MSE, He init, no
regularization), replica ``k`` on its own disjoint source training set. Every
hidden layer (weights, biases, normalization gains and shifts) is copied; the
head (``wo``, ``bo``) is re-initialized from the run's own init stream, as the
book describes (the target's labels are a different function, and its output
count may differ from the source's). Batch-norm running statistics restart
(training mode normalizes with batch statistics, and they are re-estimated
within the first fine-tuning steps on the same input distribution). The
source model is trained by the batched engine whatever the run's engine: it
is the run's starting point, not part of the run.

**The source cache**: a source model is a function of its
:func:`source_config` and the sweep seed only (not of the run: its seed comes
from the sweep seed), so every pretrained run of a sweep with the same
architecture and budget shares it, and it is trained once: in-process
(:data:`CACHE`) and, inside a sweep, on disk under ``<sweep>/_sources/``
(:func:`source_cache_dir`; written to a temporary name and renamed, so a
killed writer never leaves a file a reader could take for a model). Each
source config is trained as its own model set (its K replicas batched), never
together with other source configs: a cached model is then bit-identical
whichever shard, chunk or resumed process computed it, and a run's row does
not depend on the runs that share its chunk.

Columns (``causal.schema``): ``pretrained`` (0/1; 0 on every other family,
whose runs start from scratch by construction), ``source_task`` and
``source_similarity`` on every transfer run (they define its target) and null
elsewhere, ``source_steps`` on pretrained runs only (null on scratch runs: no
source training happened).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from causal.errors import ConfigError
from runs_generator.spec import RunConfig, TaskData

__all__ = [
    "transfer_data",
    "source_data",
    "source_config",
    "source_states",
    "source_cache_dir",
    "SourceCache",
    "CACHE",
    "SOURCE_CACHE_DIR",
    "TRANSFER_DIM",
    "TRANSFER_RANK",
    "SOURCE_TRAIN",
    "SOURCE_OUTPUTS",
    "HEAD_PARAMS",
]

TRANSFER_DIM = 32  # input dimensions (the MLP must find the TRANSFER_RANK relevant ones among these)
TRANSFER_RANK = 4  # dimensions of the subspace the labels depend on
TRANSFER_HIDDEN = 32  # hidden units of each teacher head
TRANSFER_CLASSES = 4  # classes of the target classification problem
SOURCE_OUTPUTS = 4  # regression outputs of the source task
SOURCE_TRAIN = 2048  # source examples per replica (replicas get disjoint draws)
SOURCE_LR = 3e-3  # the source recipe: Adam at this rate, batch SOURCE_BATCH, MSE, He init
SOURCE_BATCH = 64
SOURCE_CACHE_DIR = "_sources"  # under a sweep directory ('_': not a data file for parquet readers)
HEAD_PARAMS = ("wo", "bo")  # re-initialized when a run starts from a source model
_CACHE_VERSION = 1  # bump when the source recipe or the task changes: old cache files are then not read

_TAG_BASES, _TAG_SOURCE_HEAD, _TAG_TARGET_HEAD, _TAG_SOURCE_SEED, _TAG_TEST = 31, 32, 33, 34, 35
_TAG_SOURCE_DATA = 36


# --- the teachers ----------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _bases(sweep_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sweep's source subspace ``U_s``, its orthogonal partner ``U_perp`` (d x k each) and the minority shift."""
    from runs_generator.tasks import TEACHER_SHIFT

    rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, _TAG_BASES]))
    q, _ = np.linalg.qr(rng.standard_normal((TRANSFER_DIM, 2 * TRANSFER_RANK)))
    direction = rng.standard_normal(TRANSFER_DIM)
    return q[:, :TRANSFER_RANK], q[:, TRANSFER_RANK:], TEACHER_SHIFT * direction / np.linalg.norm(direction)


def _head(tag: int, sweep_seed: int, problem: str, n_out: int, basis: np.ndarray) -> dict[str, np.ndarray]:
    """A random tanh network of ``x @ basis``, its outputs standardized on N(0, I) inputs."""
    rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, tag, problem == "regression"]))
    w1 = rng.standard_normal((TRANSFER_RANK, TRANSFER_HIDDEN)) * (2.0 / math.sqrt(TRANSFER_RANK))
    b1 = 0.3 * rng.standard_normal(TRANSFER_HIDDEN)
    w2 = rng.standard_normal((TRANSFER_HIDDEN, n_out)) / math.sqrt(TRANSFER_HIDDEN)
    t = {"u": basis, "w1": w1, "b1": b1, "w2": w2, "mean": np.zeros(n_out), "std": np.ones(n_out)}
    probe = rng.standard_normal((20_000, TRANSFER_DIM))
    raw = _out(t, probe)
    t["mean"], t["std"] = raw.mean(0), raw.std(0)
    return t


def _out(t: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    return (np.tanh((x @ t["u"]) @ t["w1"] + t["b1"]) @ t["w2"] - t["mean"]) / t["std"]


@functools.lru_cache(maxsize=4)
def _source_teacher(sweep_seed: int) -> dict[str, np.ndarray]:
    u_s, _, _ = _bases(sweep_seed)
    return _head(_TAG_SOURCE_HEAD, sweep_seed, "regression", SOURCE_OUTPUTS, u_s)


@functools.lru_cache(maxsize=32)
def _target_teacher(sweep_seed: int, problem: str, similarity: float) -> dict[str, np.ndarray]:
    """The target's teacher: its own head on the subspace ``s U_s + sqrt(1 - s^2) U_perp``."""
    u_s, u_perp, shift = _bases(sweep_seed)
    basis = similarity * u_s + math.sqrt(max(0.0, 1.0 - similarity**2)) * u_perp  # orthonormal: U_s is ⟂ U_perp
    n_out = TRANSFER_CLASSES if problem == "classification" else 1
    return {**_head(_TAG_TARGET_HEAD, sweep_seed, problem, n_out, basis), "shift": shift}


def _targets(t: dict[str, np.ndarray], x: np.ndarray, problem: str) -> np.ndarray:
    out = _out(t, x)
    return out.argmax(1).astype(np.int64) if problem == "classification" else out


# --- data builders -------------------------------------------------------------------
def _similarity(config: RunConfig) -> float:
    s = config.source_similarity
    if s is None or not 0.0 <= s <= 1.0:
        raise ConfigError(f"run {config.run_index}: a transfer run needs source_similarity in [0, 1]; received {s!r} "
                          "(draw it from a lever space that offers task=transfer)")
    return float(s)


@functools.lru_cache(maxsize=32)
def _target_test(sweep_seed: int, problem: str, similarity: float, balanced: bool):
    from runs_generator.tasks import MINORITY_GROUPS, MINORITY_TRAIN, N_TEST

    t = _target_teacher(sweep_seed, problem, similarity)
    rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, _TAG_TEST, problem == "regression", balanced]))
    x, group = _inputs(rng, t["shift"], N_TEST, MINORITY_GROUPS if balanced else MINORITY_TRAIN)
    return x, _targets(t, x, problem), group


def _inputs(rng: np.random.Generator, shift: np.ndarray, n: int, minority: float):
    group = np.zeros(n, dtype=np.int64)
    group[: int(round(minority * n))] = 1
    rng.shuffle(group)
    return rng.standard_normal((n, TRANSFER_DIM)) + group[:, None] * shift, group


def transfer_data(config: RunConfig, *, sweep_seed: int) -> TaskData:
    """The target data of one transfer run (the registry's data builder; see the module docstring).

    Shapes as :func:`runs_generator.tasks.make_task_data`, with inputs (TRANSFER_DIM,).
    ``meta`` carries the sweep seed and the similarity (the engine finds the run's
    source model from them).
    """
    from runs_generator.tasks import MINORITY_TRAIN, N_VAL, _TAG_REPLICAS, _assemble, _noisy

    s = _similarity(config)
    t = _target_teacher(sweep_seed, config.problem, s)
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _TAG_REPLICAS]))
    xs, ys = [], []
    for _ in range(config.replicas):
        x, _g = _inputs(rng, t["shift"], config.n_train + N_VAL, MINORITY_TRAIN)
        xs.append(x)
        ys.append(_noisy(rng, _targets(t, x, config.problem), config, t["w2"].shape[1]))
    x_test, y_test, _ = _target_test(sweep_seed, config.problem, s, False)
    groups = _target_test(sweep_seed, config.problem, s, True)
    meta = {"task": "transfer", "input_dim": TRANSFER_DIM, "sweep_seed": int(sweep_seed), "source_similarity": s}
    return _assemble(config, xs, ys, t["w2"].shape[1], (x_test, y_test), groups, meta)


def source_data(config: RunConfig, *, sweep_seed: int) -> TaskData:
    """The source task's data for a :func:`source_config`: K disjoint noise-free draws, no subgroups."""
    from runs_generator.tasks import N_TEST, N_VAL, _assemble

    t = _source_teacher(sweep_seed)
    rng = np.random.default_rng(np.random.SeedSequence([sweep_seed, _TAG_SOURCE_DATA]))
    xs = [rng.standard_normal((config.n_train + N_VAL, TRANSFER_DIM)) for _ in range(config.replicas)]
    ys = [_out(t, x) for x in xs]
    x_test = rng.standard_normal((N_TEST, TRANSFER_DIM))
    meta = {"task": "transfer_source", "input_dim": TRANSFER_DIM, "sweep_seed": int(sweep_seed)}
    return _assemble(config, xs, ys, SOURCE_OUTPUTS, (x_test, _out(t, x_test)), (None, None, None), meta)


def source_config(config: RunConfig, sweep_seed: int) -> RunConfig:
    """The source model's training configuration for pretrained run ``config``.

    It takes the run's architecture, width, depth, normalization, residual flag,
    replica count and ``source_steps``; everything else is the fixed source recipe,
    and its seed comes from the sweep seed, so runs that share these share it.
    """
    if config.source_steps is None or config.source_steps < 1:
        raise ConfigError(f"run {config.run_index}: pretrained=1 needs source_steps >= 1; received "
                          f"{config.source_steps!r}")
    seed = int(np.random.SeedSequence([sweep_seed, _TAG_SOURCE_SEED]).generate_state(1, dtype=np.uint32)[0])
    steps = int(config.source_steps)
    return RunConfig(
        run_index=-1, seed=seed, task="transfer", problem="regression", arch=config.arch, width=config.width,
        depth=config.depth, loss="mse", init_scale=1.0, optimizer="adam", lr=SOURCE_LR, batch_size=SOURCE_BATCH,
        weight_decay=0.0, dropout=0.0, label_smoothing=0.0, augmentation=False, early_stopping=False,
        normalization=config.normalization, residual=config.residual, n_train=SOURCE_TRAIN, noise=0.0,
        noise_dist="gaussian", steps=steps, epochs=steps * SOURCE_BATCH / SOURCE_TRAIN, replicas=config.replicas,
    )


# --- the cache -----------------------------------------------------------------------
_DIR: ContextVar[Path | None] = ContextVar("udl_transfer_source_cache_dir", default=None)


@contextmanager
def source_cache_dir(path: str | Path | None) -> Iterator[None]:
    """Within the block, source models are also read from and written to ``path`` (created when needed).

    The sweep wraps each shard's training in ``source_cache_dir(<sweep>/_sources)``,
    so resumed and parallel shards reuse each other's source models.
    """
    token = _DIR.set(None if path is None else Path(path))
    try:
        yield
    finally:
        _DIR.reset(token)


@dataclass
class SourceCache:
    """Trained source models by key, in memory (LRU), with counters of where each came from.

    ``trained`` counts source trainings (each one model set of K replicas),
    ``memory`` and ``disk`` the requests served from memory and from cache files.
    """

    max_entries: int = 256
    entries: OrderedDict = field(default_factory=OrderedDict)
    trained: int = 0
    memory: int = 0
    disk: int = 0

    def clear(self) -> None:
        """Forget every model and reset the counters (tests, benchmarks)."""
        self.entries.clear()
        self.trained = self.memory = self.disk = 0

    def get(self, key: str) -> dict | None:
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        return None

    def put(self, key: str, entry: dict) -> None:
        self.entries[key] = entry
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)


#: the process's source models
CACHE = SourceCache()


def _key(scfg: RunConfig, sweep_seed: int, device, dtype) -> str:
    """What determines a source model: its config, the sweep seed (the task), dtype and device type."""
    ident = {"config": asdict(scfg), "sweep_seed": int(sweep_seed), "dtype": str(dtype),
             "device": str(getattr(device, "type", device)), "version": _CACHE_VERSION,
             "task": [TRANSFER_DIM, TRANSFER_RANK, TRANSFER_HIDDEN, SOURCE_OUTPUTS]}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def _read(path: Path) -> dict | None:
    import torch

    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - an unreadable file is retrained and replaced, never used
        return None
    return entry if isinstance(entry, dict) and "state" in entry else None


def _write(path: Path, entry: dict) -> None:
    import torch

    from runs_generator.storage import _atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    _clean_temps(path.parent)
    _atomic_write(path, lambda tmp: torch.save(entry, tmp))


_TEMP_RE = re.compile(r"^\.src-[0-9a-f]+\.pt\.(?:([A-Za-z0-9_]+)-)?(\d+)\.tmp$")


def _clean_temps(folder: Path, other_hosts_after_s: float = 86400.0) -> None:
    """Remove temp files that killed writers left (never read: a temp name is not a model's name).

    As :func:`runs_generator.storage.clean_stray_temps`: this host's when the writer's
    pid is gone, another host's after a day.
    """
    from runs_generator.storage import _HOST, _pid_alive

    for p in folder.iterdir():
        m = _TEMP_RE.match(p.name)
        if not m:
            continue
        host, pid = m.group(1), int(m.group(2))
        try:
            stale = (not _pid_alive(pid)) if host in (None, _HOST) else time.time() - p.stat().st_mtime > other_hosts_after_s
        except FileNotFoundError:
            continue
        if stale:
            p.unlink(missing_ok=True)


def _train_source(scfg: RunConfig, sweep_seed: int, device, dtype) -> dict:
    """Train one source config's K replicas as one model set; its hidden layers (K, ...) on the CPU."""
    from runs_generator._modelset import build_model_set
    from runs_generator._trainer import train_model_set

    data = source_data(scfg, sweep_seed=sweep_seed)
    ms = build_model_set([scfg], [data], device, dtype)
    final: dict[str, Any] = {}
    metrics = train_model_set(ms, state_out=final)[0]
    state = {k: v.detach().to("cpu").clone() for k, v in final.items() if k not in HEAD_PARAMS}
    return {"state": state, "generalization": metrics.generalization, "diverged": bool(metrics.diverged)}


def source_entry(config: RunConfig, sweep_seed: int, device, dtype, cache: SourceCache = CACHE) -> dict:
    """The source model of pretrained run ``config``: from memory, the cache directory, or trained now.

    Returns ``{"state": {param: (K, ...) CPU tensor}, "generalization": source test R^2, "diverged": bool}``.
    """
    scfg = source_config(config, sweep_seed)
    key = _key(scfg, sweep_seed, device, dtype)
    entry = cache.get(key)
    if entry is not None:
        cache.memory += 1
        return entry
    folder = _DIR.get()
    path = folder / f"src-{key}.pt" if folder is not None else None
    entry = _read(path) if path is not None else None
    if entry is not None:
        cache.disk += 1
    else:
        entry = _train_source(scfg, sweep_seed, device, dtype)
        cache.trained += 1
        if path is not None:
            _write(path, entry)
    cache.put(key, entry)
    return entry


def source_states(configs: Sequence[RunConfig], data: Sequence[TaskData], device, dtype,
                  cache: SourceCache = CACHE) -> dict[int, dict]:
    """Position in ``configs`` -> the hidden-layer state ``{param: (K, ...)}`` its replicas start from.

    Only pretrained runs appear. Their data must come from :func:`transfer_data`
    (its ``meta`` names the sweep seed that fixes the source task).
    """
    out: dict[int, dict] = {}
    for i, (c, d) in enumerate(zip(configs, data)):
        if not c.pretrained:
            continue
        sweep_seed = d.meta.get("sweep_seed")
        if sweep_seed is None:
            raise ConfigError(f"run {c.run_index}: pretrained=1 but its TaskData has no meta['sweep_seed']; build the "
                              "data of a pretrained run with runs_generator.transfer.transfer_data (task='transfer')")
        out[i] = source_entry(c, int(sweep_seed), device, dtype, cache)["state"]
    return out
