"""A sweep: draw every run's levers, plan shards, train them, write parquet shards.

The public entry point is :func:`generate` (DESIGN.md §7). A sweep is
deterministic: its configurations come from the lever space and the seed, its
shard plan from the configurations (runs sorted by the engine's ``group_key``,
then by index, cut into shards of at most ``shard_size`` runs, so each shard is
mostly one architecture shape and trains as few big batches), and every shard
is written atomically, so a killed sweep rerun with the same settings resumes
and ends with exactly the rows of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from causal.errors import ConfigError
from causal.schema import SCHEMA_VERSION
from runs_generator import storage
from runs_generator.levers import DEFAULT_SPACE, LeverSpace, Overrides, get_space
from runs_generator.spec import Engine, RunConfig

__all__ = ["SweepConfig", "SweepResult", "generate", "run_sweep", "plan_shards", "default_workers"]

log = logging.getLogger("runs_generator.sweep")

Device = Literal["auto", "cpu", "cuda"]
Trainer = Callable[..., list]  # train_runs(configs, data, *, engine, device) -> list[RunMetrics]

# glibc malloc settings that cut page faults of small batched steps (~1.8x, measured
# on 2 CPU cores); read at process start, so they are set for spawned workers only
_WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


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
        Most runs per shard file (the unit of resumption), >= 1; a sweep of fewer
        than ``4 * workers * shard_size`` runs is cut into about ``4 * workers``
        smaller shards.
        The plan is stored in ``_sweep.json`` and a resumed sweep keeps it.
    workers : int
        Worker processes; 1 trains in this process.
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
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "space", get_space(self.space))

    def identity(self) -> dict[str, Any]:
        """What determines the rows: a rerun into the same directory must match it.

        Execution settings (``workers``, ``engine``, ``device``) are not part of it:
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


def _group_key(config: RunConfig) -> tuple:
    from runs_generator.engine import group_key

    return tuple(group_key(config))


def plan_shards(configs: Sequence[RunConfig], shard_size: int, key: Callable[[RunConfig], tuple] = _group_key) -> list[tuple[int, ...]]:
    """Cut runs into shards: sorted by ``key`` then run index, ``shard_size`` at a time.

    Returns a list of tuples of run indices; shard ``s`` holds ``plan[s]``.
    """
    order = sorted(configs, key=lambda c: (tuple(repr(k) for k in key(c)), c.run_index))
    idx = [c.run_index for c in order]
    return [tuple(idx[s : s + shard_size]) for s in range(0, len(idx), shard_size)]


@dataclass(frozen=True)
class _ShardJob:
    cfg: SweepConfig
    shard: int
    indices: tuple[int, ...]
    trainer: Trainer | None


def _versions() -> dict[str, str]:
    import numpy
    import pyarrow

    from runs_generator import __version__

    versions = {"udl-causal": __version__, "numpy": numpy.__version__, "pyarrow": pyarrow.__version__}
    with contextlib.suppress(ImportError):
        import torch

        versions["torch"] = torch.__version__
    return versions


def _run_shard(job: _ShardJob) -> tuple[int, int, float]:
    """Train one shard's runs and write its parquet file; return (shard, rows, seconds)."""
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
    metrics = trainer(configs, data, engine=cfg.engine, device=device)
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


def _init_worker() -> None:
    # one thread per process: two single-thread workers beat one two-thread process
    import torch

    torch.set_num_threads(1)


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


@contextlib.contextmanager
def _worker_env() -> Iterator[None]:
    """Set :data:`_WORKER_ENV` for spawned workers (unless the user set them), then restore."""
    added = {k: v for k, v in _WORKER_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


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


def run_sweep(cfg: SweepConfig, *, trainer: Trainer | None = None) -> SweepResult:
    """Run (or resume) the sweep ``cfg``; see :func:`generate`."""
    t0 = time.perf_counter()
    out = storage.prepare_dir(cfg.out)
    resumed = storage.check_manifest(out, cfg.identity())
    removed = storage.clean_stray_temps(out)
    if removed:
        log.info("removed %d unfinished temp file(s) of an interrupted sweep in %s", len(removed), out)
    configs = cfg.configs()  # validates every override against every run before any training
    # a resumed sweep keeps the plan it started with, even if the engine's group key changed since
    # small sweeps: cut about four shards per worker so the pool balances cheap and costly shards
    size = min(cfg.shard_size, -(-cfg.runs // (4 * cfg.workers)))
    plan = _manifest_plan(out, cfg.runs) if resumed else plan_shards(configs, size)
    if not resumed:
        storage.write_manifest(out, {
            "identity": cfg.identity(),
            "execution": {"engine": cfg.engine, "device": cfg.device, "workers": cfg.workers},
            "levers": cfg.space.describe(),
            "versions": _versions(),
            "plan": [list(s) for s in plan],
        })
    done = storage.finished_shards(out)
    jobs = [_ShardJob(cfg, s, idx, trainer) for s, idx in enumerate(plan) if s not in done]
    skipped_runs = sum(len(idx) for s, idx in enumerate(plan) if s in done)
    log.info("sweep %s: %d runs in %d shards, %d to train, %d already done", out, cfg.runs, len(plan), len(jobs),
             len(plan) - len(jobs))
    progress = _Progress(cfg.runs, skipped_runs)
    written = 0
    try:
        if cfg.workers == 1 or len(jobs) <= 1:
            with _single_thread():
                for job in jobs:
                    written += _run_shard(job)[1]
                    progress.update(len(job.indices))
        else:
            written = _run_pool(jobs, min(cfg.workers, len(jobs)), progress)
    finally:
        progress.close()
    return SweepResult(
        out=out, runs=cfg.runs, shards=len(plan), written_shards=len(jobs), skipped_shards=len(plan) - len(jobs),
        written_runs=written, skipped_runs=skipped_runs, wall_time_s=time.perf_counter() - t0,
    )


def _manifest_plan(out: Path, runs: int) -> list[tuple[int, ...]]:
    import json

    path = out / storage.MANIFEST
    try:
        plan = [tuple(int(i) for i in shard) for shard in json.loads(path.read_text())["plan"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the shard plan in {str(path)!r} is unreadable ({exc}); use an empty directory for --out") from None
    if sorted(i for shard in plan for i in shard) != list(range(runs)):
        raise ConfigError(f"the shard plan in {str(path)!r} does not cover runs 0..{runs - 1} exactly once; "
                          "the directory is damaged: use an empty directory for --out")
    return plan


def _run_pool(jobs: list[_ShardJob], workers: int, progress: _Progress) -> int:
    import multiprocessing as mp

    written = 0
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker)
    try:
        with _worker_env():  # workers start at the first submit and read the environment then
            pending = {pool.submit(_run_shard, job) for job in jobs}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                _, rows, _ = fut.result()  # re-raises a worker's error; finished shards stay on disk
                written += rows
                progress.update(rows)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return written


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
        Runs per shard file.
    workers : int, optional
        Worker processes (default ``min(2, cpu count)``); 1 trains in-process.
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

    Returns
    -------
    Path
        The output directory.

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
    )
    return run_sweep(cfg, trainer=trainer).out
