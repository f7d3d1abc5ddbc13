"""A sweep: draw every run's levers, plan shards, train them, write parquet shards.

The public entry point is :func:`generate` (DESIGN.md §7). A sweep is
deterministic: its configurations come from the lever space and the seed, its
shard plan from the configurations (:func:`plan_shards`: runs sorted by the
engine's ``group_key``, then by index, cut into shards of at most
``shard_size`` runs, so each shard is mostly one architecture shape and trains
as few big batches; the shards are then numbered in an interleaved order, so
that the first shards to finish are a spread sample of the whole sweep, not
one architecture). The plan is stored in the manifest, and every slice, machine
and resumed run uses that stored plan. Every shard is written atomically, so a
killed sweep rerun with the same settings resumes and ends with exactly the
rows of an uninterrupted one.

Shards are the unit of work: ``shards=ShardSlice(i, n)`` runs one slice of
them (shard ``s`` belongs to slice ``s % n``), and a backend
(:mod:`runs_generator.backends`: a local process pool, SLURM job arrays through
submitit, or Ray) decides where each shard trains. A shard that raises is
recorded with its traceback under ``_failures/`` and retried up to ``retries``
times; a run whose loss goes non-finite is a diverged row, not an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from causal.errors import ConfigError
from causal.schema import SCHEMA_VERSION
from runs_generator import storage
from runs_generator.levers import DEFAULT_SPACE, LeverSpace, Overrides, get_space
from runs_generator.spec import Engine, RunConfig

if TYPE_CHECKING:
    from runs_generator.backends import Backend

__all__ = ["SweepConfig", "SweepResult", "ShardSlice", "ShardJob", "ShardOutcome", "ShardsFailed", "generate",
           "run_sweep", "run_shard", "run_shards", "plan_shards", "default_workers", "DEFAULT_RETRIES"]

log = logging.getLogger("runs_generator.sweep")

Device = Literal["auto", "cpu", "cuda"]
Trainer = Callable[..., list]  # train_runs(configs, data, *, engine, device) -> list[RunMetrics]

DEFAULT_RETRIES = 2  # attempts after the first before a shard counts as failed
#: a small sweep is cut into about this many shards (whatever the worker count, so
#: that every machine running a slice computes the same plan)
_MIN_SHARDS = 8


def default_workers() -> int:
    """A sensible process count for this machine: ``min(2, cpu count)``."""
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep.

    Attributes
    ----------
    runs : int
        Number of runs (rows), >= 1.
    seed : int
        Sweep seed, >= 0: the same seed gives the same configurations.
    out : Path
        Output directory of shards and the manifest ``_sweep.json``.
    shard_size : int
        Most runs per shard file (the unit of resumption and of cluster work), >= 1;
        a sweep of fewer than ``8 * shard_size`` runs is cut into about 8 smaller
        shards. The plan is stored in ``_sweep.json`` and a resumed sweep keeps it.
    workers : int
        Worker processes of the local backend; 1 trains in this process.
    engine : {"batched", "naive"}
        Training engine.
    device : {"auto", "cpu", "cuda"}
        Torch device ("auto": CUDA when available).
    replicas : int
        K replicas per run, >= 2 (variance needs two).
    overrides : Overrides
        Validated ``fix``/``vary`` overrides (see :meth:`LeverSpace.overrides`).
    space : LeverSpace or {"small", "large"}
        The lever space drawn from (a name is resolved by
        :func:`runs_generator.levers.get_space`).
    pad_widths : bool or None
        Let runs that differ only in width train as one computation padded to the widest
        (``train_runs(pad_widths=...)``); None: on CUDA only. Rows do not depend on it.
    """

    runs: int
    seed: int
    out: Path
    shard_size: int = 128  # big enough for big same-shape batches, small enough to resume cheaply
    workers: int = field(default_factory=default_workers)
    engine: Engine = "batched"
    device: Device = "auto"
    replicas: int = 4
    overrides: Overrides = Overrides()
    space: LeverSpace = DEFAULT_SPACE
    pad_widths: bool | None = None

    def __post_init__(self) -> None:
        def need_int(name: str, low: int, high: int | None = None) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
                rng = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ConfigError(f"sweep setting {name!r} must be an integer {rng}; received {value!r}")

        need_int("runs", 1)
        need_int("seed", 0, 2**63 - 1)
        need_int("shard_size", 1)
        need_int("workers", 1, 256)
        need_int("replicas", 2, 64)
        if self.engine not in ("batched", "naive"):
            raise ConfigError(f"sweep setting 'engine' must be 'batched' or 'naive'; received {self.engine!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"sweep setting 'device' must be 'auto', 'cpu' or 'cuda'; received {self.device!r}")
        if self.pad_widths is not None and not isinstance(self.pad_widths, bool):
            raise ConfigError(f"sweep setting 'pad_widths' must be True, False or None (auto); received {self.pad_widths!r}")
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "space", get_space(self.space))

    def identity(self) -> dict[str, Any]:
        """What determines the rows: a rerun into the same directory must match it.

        Execution settings (``workers``, ``engine``, ``device``, ``pad_widths``) are not part of it:
        they change speed, not the configurations (the engine and device of each row
        are recorded in its provenance columns).
        """
        return {
            "runs": self.runs,
            "seed": self.seed,
            "shard_size": self.shard_size,
            "replicas": self.replicas,
            **self.overrides.as_json(),
            "lever_space": self.space.name,
            "lever_space_version": self.space.version,
            "schema_version": SCHEMA_VERSION,
        }

    def configs(self, indices: Sequence[int] | None = None) -> list[RunConfig]:
        """The resolved configurations of ``indices`` (all runs by default)."""
        idx = range(self.runs) if indices is None else indices
        return [self.space.draw(self.seed, i, self.overrides, self.replicas) for i in idx]


@dataclass(frozen=True)
class SweepResult:
    """What :func:`run_sweep` did."""

    out: Path
    runs: int
    shards: int
    written_shards: int
    skipped_shards: int
    written_runs: int
    skipped_runs: int
    wall_time_s: float
    selected_shards: int = 0  # shards of this slice (all shards without a slice)
    submitted_shards: int = 0  # handed to a cluster that was not waited for


@dataclass(frozen=True)
class ShardSlice:
    """Slice ``index`` of ``count``: the shards ``s`` with ``s % count == index``.

    Examples
    --------
    >>> ShardSlice.parse("1/4").select([0, 1, 2, 3, 4, 5])
    [1, 5]
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        for name in ("index", "count"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                raise ConfigError(f"shard slice {name} must be an integer; received {getattr(self, name)!r}")
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard slice must be I/N with 0 <= I < N (0-based, like SLURM_ARRAY_TASK_ID); "
                              f"received {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: "str | ShardSlice") -> "ShardSlice":
        """``"I/N"`` -> ShardSlice(I, N)."""
        if isinstance(text, ShardSlice):
            return text
        parts = str(text).split("/")
        try:
            index, count = (int(x) for x in parts)
        except ValueError:
            raise ConfigError(f"--shards must be I/N, e.g. 0/4 for the first of four slices; received {text!r}") from None
        return cls(index, count)

    def select(self, shards: Sequence[int]) -> list[int]:
        """The members of ``shards`` in this slice, in order."""
        return [s for s in shards if s % self.count == self.index]


def _group_key(config: RunConfig) -> tuple:
    """The plan's sort key: the CUDA path's group (widths padded), then the CPU path's (exact width).

    Runs that share a padded GPU computation are then adjacent, and so, inside them, are runs that
    share an exact-shape CPU computation: a shard trains as few groups as the device allows.
    """
    from runs_generator.engine import group_key

    return tuple(group_key(config, pad=True)) + tuple(group_key(config))


def interleaved_order(n: int) -> list[int]:
    """A permutation of ``range(n)`` whose every prefix is spread evenly over ``range(n)``.

    Position ``j`` is ranked by the fractional part of ``(j + 1) / golden ratio``
    (a low-discrepancy sequence), so the first ``k`` picks cover each stretch of
    ``range(n)`` in proportion to its length, within a few picks, for every ``k``.

    Examples
    --------
    >>> interleaved_order(5)
    [4, 1, 3, 0, 2]
    """
    g = (math.sqrt(5.0) - 1.0) / 2.0
    return sorted(range(n), key=lambda j: ((j + 1) * g) % 1.0)


def plan_shards(configs: Sequence[RunConfig], shard_size: int, key: Callable[[RunConfig], tuple] = _group_key) -> list[tuple[int, ...]]:
    """Cut runs into shards by shape, numbered so that any prefix of shards is a spread sample.

    Runs are sorted by ``key`` then run index and cut ``shard_size`` at a time
    (so a shard is mostly one shape and trains as few big batches); shard ``s``
    of the result is chunk ``interleaved_order(n)[s]`` of that sorted list. Shards
    run in index order, so a sweep stopped part-way (or the first slices of a
    cluster sweep) holds a sample spread over every shape, not the shapes that
    sort first: a partial sweep does not confound a lever with having finished.

    Returns a list of tuples of run indices; shard ``s`` holds ``plan[s]``.
    """
    order = sorted(configs, key=lambda c: (tuple(repr(k) for k in key(c)), c.run_index))
    idx = [c.run_index for c in order]
    chunks = [tuple(idx[s : s + shard_size]) for s in range(0, len(idx), shard_size)]
    return [chunks[j] for j in interleaved_order(len(chunks))]


@dataclass(frozen=True)
class ShardJob:
    """One shard to train: the sweep, the shard's index and its run indices (picklable)."""

    cfg: SweepConfig
    shard: int
    indices: tuple[int, ...]
    trainer: Trainer | None = None


@dataclass(frozen=True)
class ShardOutcome:
    """What became of one shard on whichever machine ran it."""

    shard: int
    rows: int  # rows written; 0 when skipped or failed
    seconds: float
    attempts: int  # attempts made here (0: already on disk)
    error: str | None = None  # the last error when every attempt failed

    @property
    def skipped(self) -> bool:
        return self.attempts == 0


def sweep_plan(configs: Sequence[RunConfig], shard_size: int) -> list[tuple[int, ...]]:
    """The shards a new sweep of ``configs`` is cut into: :func:`plan_shards` with at most ``shard_size``
    runs a shard, smaller when that would give fewer than 8 shards."""
    return plan_shards(configs, min(shard_size, -(-len(configs) // _MIN_SHARDS)))


def _versions() -> dict[str, str]:
    import numpy
    import pyarrow

    from runs_generator import __version__

    versions = {"udl-causal": __version__, "numpy": numpy.__version__, "pyarrow": pyarrow.__version__}
    with contextlib.suppress(ImportError):
        import torch

        versions["torch"] = torch.__version__
    return versions


def _train_shard(job: ShardJob, concurrent: int | None = None) -> tuple[int, int, float]:
    """Train one shard's runs and write its parquet file; return (shard, rows, seconds).

    ``concurrent``: chunks interleaved by the engine (None: its default; see
    :func:`runs_generator.engine.train_runs`). A custom trainer is not passed it.
    """
    from runs_generator.table import Provenance, make_row
    from runs_generator.tasks import make_task_data

    t0 = time.perf_counter()
    cfg = job.cfg
    configs = cfg.configs(job.indices)
    data = [make_task_data(c, sweep_seed=cfg.seed) for c in configs]
    if job.trainer is None:
        from runs_generator.engine import resolve_device, train_runs

        trainer: Trainer = train_runs
        device = str(resolve_device(cfg.device))
    else:
        trainer, device = job.trainer, "cpu" if cfg.device == "auto" else cfg.device
    from runs_generator.transfer import SOURCE_CACHE_DIR, source_cache_dir

    extra = {"pad_widths": cfg.pad_widths} if job.trainer is None and cfg.pad_widths is not None else {}
    if job.trainer is None and concurrent is not None:
        extra["concurrent"] = concurrent
    with source_cache_dir(cfg.out / SOURCE_CACHE_DIR):  # pretrained runs' source models, shared by every shard
        metrics = trainer(configs, data, engine=cfg.engine, device=device, **extra)
    if len(metrics) != len(configs):
        raise RuntimeError(f"shard {job.shard}: the trainer returned {len(metrics)} results for {len(configs)} runs")
    versions = _versions()
    prov = Provenance(
        engine=cfg.engine,
        device=device,
        package_version=versions["udl-causal"],
        torch_version=versions.get("torch", "none"),
        sweep_seed=cfg.seed,
    )
    rows = [make_row(c, d, m, prov) for c, d, m in zip(configs, data, metrics)]
    meta = {"identity": cfg.identity(), "engine": cfg.engine, "device": device, "versions": versions}
    storage.write_shard(cfg.out, job.shard, rows, meta)
    return job.shard, len(rows), time.perf_counter() - t0


def run_shard(job: ShardJob, retries: int = DEFAULT_RETRIES) -> ShardOutcome:
    """Train one shard unless it is already on disk, with up to ``retries`` retries.

    Every failed attempt is recorded (error and traceback) under ``_failures/``;
    after the last one the outcome carries the error instead of raising, so one
    bad shard does not stop the others. An attempt that ran out of GPU memory
    is retried with the device's cache emptied and one chunk at a time (the
    engine interleaves several on CUDA; the rows are the same either way). A
    :class:`~causal.errors.ConfigError` (a setting this machine cannot run) is
    not retried.
    ``KeyboardInterrupt`` and other non-``Exception`` errors propagate (the
    shard stays missing and a rerun trains it). This is what every backend
    runs, wherever it runs it.
    """
    if storage.shard_path(job.cfg.out, job.shard).exists():  # a requeued or duplicate task: already done
        return ShardOutcome(job.shard, 0, 0.0, 0)
    t0 = time.perf_counter()
    error = None
    concurrent = None
    for attempt in range(1, retries + 2):
        try:
            _, rows, _ = _train_shard(job, concurrent)
            return ShardOutcome(job.shard, rows, time.perf_counter() - t0, attempt)
        except Exception as exc:  # noqa: BLE001 - any error of one shard is recorded, not fatal to the sweep
            storage.record_failure(job.cfg.out, job.shard, exc, attempt)
            error = f"{type(exc).__name__}: {exc}"
            log.warning("shard %d failed (attempt %d of %d): %s", job.shard, attempt, retries + 1, error)
            if isinstance(exc, ConfigError):  # a setting this machine cannot run: another attempt fails alike
                break
            if _out_of_memory(exc) and concurrent != 1:
                concurrent = 1
                log.warning("shard %d: out of device memory; retrying with one chunk at a time", job.shard)
    return ShardOutcome(job.shard, 0, time.perf_counter() - t0, attempt, error)


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's out-of-memory error (then the device's cached blocks are freed)."""
    try:
        import torch
    except ImportError:
        return False
    if not isinstance(exc, torch.cuda.OutOfMemoryError):
        return False
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return True


def run_shards(jobs: Sequence[ShardJob], retries: int = DEFAULT_RETRIES,
               on_done: Callable[[ShardOutcome], None] | None = None) -> list[ShardOutcome]:
    """Run shards one after another in this process, on one thread (see :func:`_single_thread`)."""
    outcomes = []
    with _single_thread():
        for job in jobs:
            outcomes.append(run_shard(job, retries))
            if on_done is not None:
                on_done(outcomes[-1])
    return outcomes


class ShardsFailed(RuntimeError):
    """Some shards failed every attempt; the others are on disk. ``failed``: shard -> last error."""

    def __init__(self, out: Path, failed: Mapping[int, str]) -> None:
        self.out, self.failed = Path(out), dict(failed)
        first = sorted(self.failed)[:10]
        more = f" and {len(self.failed) - len(first)} more" if len(self.failed) > len(first) else ""
        shard, error = first[0], self.failed[first[0]]
        super().__init__(
            f"{len(self.failed)} shard(s) failed after every retry: {first}{more}; shard {shard}: {error}. "
            f"Tracebacks are in {str(self.out / storage.FAILURES)!r} (`udl status {self.out}` lists them); "
            "fix the cause and rerun the same command to retry only the missing shards"
        )


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Train in this process on one thread, like a pool worker, then restore the thread count.

    With the default (one thread per core) a sweep that shares the machine with
    any other busy process oversubscribes the cores, and torch's OpenMP threads
    then wait on each other: a 16-run shard took 128 s that way instead of 10 s.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Progress:
    """A tqdm bar on a terminal, otherwise a log line at most every ``every`` seconds."""

    def __init__(self, total: int, done: int, every: float = 15.0) -> None:
        self.total, self.done, self.every = total, done, every
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, unit="run", desc="udl generate")

    def update(self, rows: int) -> None:
        self.done += rows
        now = time.perf_counter()
        if self.bar is not None:
            self.bar.update(rows)
        elif now - self.last >= self.every or self.done >= self.total:
            self.last = now
            log.info("%d/%d runs done (%.0f s elapsed)", self.done, self.total, now - self.t0)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_sweep(
    cfg: SweepConfig,
    *,
    trainer: Trainer | None = None,
    shards: "ShardSlice | str | None" = None,
    backend: "Backend | str" = "local",
    retries: int = DEFAULT_RETRIES,
) -> SweepResult:
    """Run (or resume) the sweep ``cfg``, or one slice of its shards; see :func:`generate`.

    Raises
    ------
    ShardsFailed
        When shards failed every attempt (after the others finished).
    """
    from runs_generator import sweepdir
    from runs_generator.backends import LocalBackend, get_backend

    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise ConfigError(f"sweep setting 'retries' must be an integer in [0, 100]; received {retries!r}")
    piece = None if shards is None else ShardSlice.parse(shards)
    runner = get_backend(backend, workers=cfg.workers)
    if trainer is None and isinstance(runner, LocalBackend):  # trains here: a device this machine lacks is an
        from runs_generator.engine import resolve_device   # error now (a cluster's nodes may have what this lacks)

        resolve_device(cfg.device)
    t0 = time.perf_counter()
    sweepdir.finish_interrupted_compact(cfg.out)  # first: a killed compact may have left no directory at out
    out = storage.prepare_dir(cfg.out)
    resumed = storage.check_manifest(out, cfg.identity())
    configs = cfg.configs()  # validates every override against every run before any training
    if not resumed:
        # a plan that depends only on the sweep's identity: every slice on every machine computes the same one
        wrote = storage.create_manifest(out, {
            "identity": cfg.identity(),
            "execution": {"engine": cfg.engine, "device": cfg.device, "workers": cfg.workers,
                          "pad_widths": cfg.pad_widths},
            "levers": cfg.space.describe(),
            "versions": _versions(),
            "plan": [list(s) for s in sweep_plan(configs, cfg.shard_size)],
        })
        if not wrote:  # another slice created it first: it must be the same sweep
            storage.check_manifest(out, cfg.identity())
    # a resumed sweep keeps the plan it started with, even if the engine's group key changed since
    plan = _manifest_plan(out, cfg.runs)
    removed = storage.clean_stray_temps(out)
    if removed:
        log.info("removed %d unfinished temp file(s) of an interrupted sweep in %s", len(removed), out)
    selected = list(range(len(plan))) if piece is None else piece.select(range(len(plan)))
    done = storage.finished_shards(out)
    # cluster workers start in other directories: hand them an absolute --out
    ship = dataclasses.replace(cfg, out=Path(os.path.abspath(out)))
    jobs = [ShardJob(ship, s, plan[s], trainer) for s in selected if s not in done]
    skipped_runs = sum(len(plan[s]) for s in selected if s in done)
    where = "" if piece is None else f" (slice {piece.index}/{piece.count}: {len(selected)} shards)"
    log.info("sweep %s: %d runs in %d shards%s, %d to train, %d already done", out, cfg.runs, len(plan), where,
             len(jobs), len(selected) - len(jobs))
    progress = _Progress(sum(len(plan[s]) for s in selected), skipped_runs)
    outcomes: list[ShardOutcome] = []

    def on_done(outcome: ShardOutcome) -> None:
        outcomes.append(outcome)
        progress.update(len(plan[outcome.shard]) if outcome.error is None else 0)  # done means written

    try:
        waited = runner.run(jobs, retries, on_done) if jobs else True
    finally:
        progress.close()
    failed = {o.shard: o.error for o in outcomes if o.error is not None}
    if failed:
        raise ShardsFailed(out, failed)
    trained = [o for o in outcomes if not o.skipped]
    return SweepResult(
        out=out, runs=cfg.runs, shards=len(plan), written_shards=len(trained),
        skipped_shards=len(selected) - len(jobs) + len(outcomes) - len(trained),
        written_runs=sum(o.rows for o in trained), skipped_runs=skipped_runs,
        wall_time_s=time.perf_counter() - t0, selected_shards=len(selected),
        submitted_shards=0 if waited else len(jobs),
    )


def _manifest_plan(out: Path, runs: int) -> list[tuple[int, ...]]:
    path = out / storage.MANIFEST
    try:
        plan = [tuple(int(i) for i in shard) for shard in storage.read_manifest(out)["plan"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the shard plan in {str(path)!r} is unreadable ({exc}); use an empty directory for --out") from None
    if sorted(i for shard in plan for i in shard) != list(range(runs)):
        raise ConfigError(f"the shard plan in {str(path)!r} does not cover runs 0..{runs - 1} exactly once; "
                          "the directory is damaged: use an empty directory for --out")
    return plan


def generate(
    runs: int,
    seed: int,
    out: str | os.PathLike,
    *,
    shard_size: int = 128,
    workers: int | None = None,
    engine: Engine = "batched",
    device: Device = "auto",
    replicas: int = 4,
    fix: Mapping[str, Any] | None = None,
    vary: Mapping[str, Sequence[Any]] | None = None,
    space: "str | LeverSpace" = "small",
    trainer: Trainer | None = None,
    shards: "ShardSlice | str | None" = None,
    backend: "Backend | str" = "local",
    retries: int = DEFAULT_RETRIES,
    pad_widths: bool | None = None,
) -> Path:
    """Generate (or resume) a randomized sweep of training runs as parquet shards.

    Parameters
    ----------
    runs : int
        Number of runs (one parquet row each).
    seed : int
        Sweep seed; the same seed gives the same configurations and, on CPU, rows.
    out : path
        Output directory (created). Rerunning the same call resumes; a different
        sweep into the same directory is refused.
    shard_size : int, default 128
        Runs per shard file (the unit of resumption and of cluster work).
    workers : int, optional
        Worker processes of the local backend (default ``min(2, cpu count)``);
        1 trains in-process.
    engine : {"batched", "naive"}, default "batched"
        Training engine.
    device : {"auto", "cpu", "cuda"}, default "auto"
        Torch device.
    replicas : int, default 4
        K replicas per run.
    fix : mapping, optional
        Lever -> value held constant, e.g. ``{"optimizer": "adam"}``.
    vary : mapping, optional
        Lever -> values cycled over runs, e.g. ``{"depth": [1, 4]}``.
    space : {"small", "large"} or LeverSpace, default "small"
        Lever space to draw from: ``"small"`` (fast: tests, CPU demos) or
        ``"large"`` (the reference atlas and GPU sweeps; see
        :mod:`runs_generator.levers`).
    trainer : callable, optional
        Replacement for ``runs_generator.engine.train_runs`` (tests).
    shards : "I/N" or ShardSlice, optional
        Run only slice I of N (0-based): the shards ``s`` with ``s % N == I``.
        Slices run anywhere, in any order, into one directory; their union is
        the whole sweep.
    backend : {"local", "slurm", "ray"} or Backend, default "local"
        Where shards train: the local process pool, SLURM job arrays through
        submitit, or a Ray cluster; pass a configured
        :class:`~runs_generator.backends.SlurmBackend` or
        :class:`~runs_generator.backends.RayBackend` for their options.
    retries : int, default 2
        Retries of a shard that raises, before it counts as failed.
    pad_widths : bool, optional
        Train runs that differ only in width as one computation padded to the widest
        (default: on CUDA only; rows do not depend on it, to float rounding).

    Returns
    -------
    Path
        The output directory.

    Raises
    ------
    ShardsFailed
        When shards failed every attempt; the others are written, the errors are
        under ``out/_failures/`` and a rerun retries only the missing shards.

    Examples
    --------
    >>> import runs_generator  # doctest: +SKIP
    >>> runs_generator.generate(runs=24, seed=5, out="runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo')
    """
    cfg = SweepConfig(
        runs=runs, seed=seed, out=Path(out), shard_size=shard_size,
        workers=default_workers() if workers is None else workers, engine=engine, device=device,
        replicas=replicas, overrides=get_space(space).overrides(fix, vary), space=get_space(space),
        pad_widths=pad_widths,
    )
    return run_sweep(cfg, trainer=trainer, shards=shards, backend=backend, retries=retries).out
