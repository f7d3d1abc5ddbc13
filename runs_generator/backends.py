"""Where shards train: a local process pool, SLURM job arrays (submitit), or Ray.

A backend receives the sweep's pending :class:`~runs_generator.sweep.ShardJob`
objects and makes each one run :func:`~runs_generator.sweep.run_shard`
somewhere: that function skips a shard already on disk, retries one that
raises and records its traceback, and writes the shard atomically into the
sweep directory, which every machine must see (a shared filesystem on a
cluster). So rows never depend on the backend, and a backend only schedules:

- :class:`LocalBackend` (default): ``workers`` single-threaded processes, or
  this process for ``workers=1``.
- :class:`SlurmBackend`: one submitit job array; each array task runs a few
  shards in turn. The task is a ``submitit.helpers.Checkpointable``, so a task
  preempted or out of time is requeued (up to ``max_requeues`` times) and
  resumes at its first unfinished shard.
- :class:`RayBackend`: one Ray task per shard on an existing cluster
  (``address``) or on a local one it starts; ``gpus_per_shard`` may be a
  fraction, so several shards share a GPU.

``submitit`` and ``ray`` are optional (``pip install "udl-causal[slurm]"``,
``"udl-causal[ray]"``) and load only when their backend runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from causal.errors import ConfigError

if TYPE_CHECKING:
    from runs_generator.sweep import ShardJob, ShardOutcome

__all__ = ["Backend", "BackendName", "BACKENDS", "LocalBackend", "SlurmBackend", "RayBackend", "get_backend"]

log = logging.getLogger("runs_generator.backends")

BackendName = Literal["local", "slurm", "ray"]
BACKENDS: tuple[str, ...] = get_args(BackendName)
OnDone = Callable[["ShardOutcome"], None]

# glibc malloc settings that cut page faults of small batched steps (~1.8x, measured
# on 2 CPU cores); read at process start, so they are set for spawned workers only
_WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


class Backend(Protocol):
    """Runs shard jobs somewhere and reports each outcome through ``on_done``."""

    def run(self, jobs: Sequence["ShardJob"], retries: int, on_done: OnDone) -> bool:
        """Run ``jobs``; return False when they were only submitted (not waited for)."""
        ...


def _need(cond: bool, name: str, expected: str, value: object) -> None:
    if not cond:
        raise ConfigError(f"backend setting {name!r} must be {expected}; received {value!r}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ------------------------------------------------------------------------------------------------ local


def _init_worker(parent: int | None = None) -> None:
    # one thread per process: two single-thread workers beat one two-thread process
    import torch

    torch.set_num_threads(1)
    _die_with_parent(parent)


def _die_with_parent(parent: int | None) -> None:
    """Linux: the kernel kills this worker when the sweep process that spawned it dies.

    Without it, a sweep stopped with ``kill PID`` (SIGTERM or SIGKILL to the main
    process, as a scheduler or a user does; Ctrl-C reaches the whole process
    group) leaves its workers training their current shard to the end, unseen,
    and writing it after the sweep has been declared stopped. A worker killed
    mid-write leaves only a ``.tmp`` file, which readers ignore and a resumed
    sweep removes. Elsewhere a no-op: the pool stops idle workers once the
    parent is gone.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl (an unusual libc): keep the pool's own behaviour
        return
    if parent is not None and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


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


@dataclass(frozen=True)
class LocalBackend:
    """This machine: ``workers`` spawned single-thread processes, or this process for 1."""

    workers: int = 1

    def __post_init__(self) -> None:
        _need(_is_int(self.workers) and 1 <= self.workers <= 256, "workers", "an integer in [1, 256]", self.workers)

    def run(self, jobs: Sequence["ShardJob"], retries: int, on_done: OnDone) -> bool:
        from runs_generator.sweep import run_shard, run_shards

        if self.workers == 1 or len(jobs) <= 1:
            run_shards(jobs, retries, on_done)
            return True
        import multiprocessing as mp

        pool = ProcessPoolExecutor(min(self.workers, len(jobs)), mp_context=mp.get_context("spawn"),
                                   initializer=_init_worker, initargs=(os.getpid(),))
        try:
            with _worker_env():  # workers start at the first submit and read the environment then
                pending = {pool.submit(run_shard, job, retries): job.shard for job in jobs}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    shard = pending.pop(fut)
                    try:
                        on_done(fut.result())
                    except BrokenProcessPool:
                        running = sorted([shard, *pending.values()])
                        raise RuntimeError(
                            f"a worker process died (killed, or out of memory) while shards {running[:8]} were "
                            "pending; finished shards are on disk. Rerun the same command to resume, with fewer "
                            "--workers if memory ran out"
                        ) from None
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return True


# ------------------------------------------------------------------------------------------------ slurm


class _ShardTask:
    """One array task's shards, run in turn; requeued on preemption or timeout (see SlurmBackend)."""

    def __init__(self, retries: int) -> None:
        self.retries = retries

    def __call__(self, jobs: Sequence["ShardJob"]) -> list["ShardOutcome"]:
        from runs_generator.sweep import run_shards

        return run_shards(jobs, self.retries)  # shards already on disk (a requeued task) are skipped

    def checkpoint(self, jobs: Sequence["ShardJob"]):
        """Called by submitit on preemption or timeout: resubmit the same shards; finished ones are skipped."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, jobs)


@dataclass(frozen=True)
class SlurmBackend:
    """SLURM job arrays through submitit.

    Attributes
    ----------
    partition : str, optional
        SLURM partition (the cluster default when None).
    gpus_per_task : int
        GPUs per array task (``--gres=gpu:N``); shards use the first one.
    cpus_per_task : int
        CPUs per array task.
    time_min : int
        Time limit per array task, in minutes; a task that reaches it is requeued.
    array_parallelism : int
        Most array tasks running at once (``--array=0-N%P``).
    shards_per_task : int
        Shards each array task runs in turn (amortizes start-up and queueing).
    max_requeues : int
        Requeues of a task after preemption or timeout.
    mem_gb : float, optional
        Memory per task.
    wait : bool
        Wait for the array to finish (True) or return after submitting; then
        ``udl status`` follows it.
    folder : path, optional
        submitit's logs and pickles (default ``OUT/_submitit/%j``).
    cluster : {"slurm", "local", "debug"}, optional
        submitit's executor: None picks SLURM when ``sbatch`` is there; "local"
        runs tasks as local processes (tests), "debug" in this process.
    additional : dict, optional
        Extra ``sbatch`` options (submitit's ``slurm_additional_parameters``), e.g. ``{"account": "x"}``.
    """

    partition: str | None = None
    gpus_per_task: int = 1
    cpus_per_task: int = 2
    time_min: int = 240
    array_parallelism: int = 64
    shards_per_task: int = 1
    max_requeues: int = 3
    mem_gb: float | None = None
    wait: bool = True
    folder: str | os.PathLike | None = None
    cluster: Literal["slurm", "local", "debug"] | None = None
    additional: dict | None = None

    def __post_init__(self) -> None:
        for name, low in (("gpus_per_task", 0), ("cpus_per_task", 1), ("time_min", 1), ("array_parallelism", 1),
                          ("shards_per_task", 1), ("max_requeues", 0)):
            v = getattr(self, name)
            _need(_is_int(v) and v >= low, name, f"an integer >= {low}", v)
        _need(self.cluster in (None, "slurm", "local", "debug"), "cluster", "None, 'slurm', 'local' or 'debug'",
              self.cluster)
        _need(self.mem_gb is None or (isinstance(self.mem_gb, (int, float)) and self.mem_gb > 0), "mem_gb",
              "a positive number or None", self.mem_gb)

    def executor(self, out: Path):
        """The configured ``submitit.AutoExecutor``."""
        try:
            import submitit
        except ImportError:
            raise ConfigError('--backend slurm needs submitit: pip install "udl-causal[slurm]"') from None
        folder = Path(self.folder) if self.folder is not None else Path(out) / "_submitit" / "%j"
        ex = submitit.AutoExecutor(folder=folder, cluster=self.cluster, slurm_max_num_timeout=self.max_requeues)
        if self.cluster is None and ex.cluster != "slurm":  # submitit fell back to running the tasks here
            raise ConfigError(
                "--backend slurm found no SLURM on this machine (submitit detects it by `srun` on PATH), so "
                "nothing would be submitted; run `udl generate` on a SLURM login node, or use --backend local "
                "(SlurmBackend(cluster='local') runs submitit's local executor on purpose, e.g. in tests)")
        params: dict = {"name": "udl-generate", "timeout_min": self.time_min, "gpus_per_node": self.gpus_per_task,
                        "cpus_per_task": self.cpus_per_task, "tasks_per_node": 1, "nodes": 1}
        if self.mem_gb is not None:
            params["mem_gb"] = self.mem_gb
        if ex.cluster == "slurm":
            params["slurm_array_parallelism"] = self.array_parallelism
            if self.partition:
                params["slurm_partition"] = self.partition
            if self.additional:
                params["slurm_additional_parameters"] = dict(self.additional)
        ex.update_parameters(**params)
        return ex

    def run(self, jobs: Sequence["ShardJob"], retries: int, on_done: OnDone) -> bool:
        from runs_generator.sweep import ShardOutcome

        out = jobs[0].cfg.out
        ex = self.executor(out)
        k = self.shards_per_task
        groups = [list(jobs[i : i + k]) for i in range(0, len(jobs), k)]
        submitted = ex.map_array(_ShardTask(retries), groups)
        log.info("submitted %d array task(s) of up to %d shard(s): job %s", len(groups), k,
                 submitted[0].job_id.split("_")[0] if submitted else "-")
        if not self.wait:
            return False
        import submitit

        by_job = {id(j): g for j, g in zip(submitted, groups)}
        poll_s = 30.0 if ex.cluster == "slurm" else 0.5  # sacct calls are costly for the scheduler
        for job in submitit.helpers.as_completed(submitted, poll_frequency=poll_s):
            group = by_job[id(job)]
            try:
                outcomes = job.result()
            except Exception as exc:  # noqa: BLE001 - the task died outside run_shard (node failure, out of requeues)
                from runs_generator import storage

                t = time.strftime("%H:%M:%S")
                outcomes = []
                for sj in group:
                    if storage.shard_path(out, sj.shard).exists():
                        outcomes.append(ShardOutcome(sj.shard, len(sj.indices), 0.0, 1))
                    else:
                        storage.record_failure(out, sj.shard, exc, 0)
                        outcomes.append(ShardOutcome(sj.shard, 0, 0.0, 1,
                                                     f"array task {job.job_id} failed at {t}: {type(exc).__name__}"))
            for o in outcomes:
                on_done(o)
        return True


# ------------------------------------------------------------------------------------------------ ray


def _ray_run_shard(job: "ShardJob", retries: int) -> "ShardOutcome":
    from runs_generator.sweep import run_shards

    return run_shards([job], retries)[0]


@dataclass(frozen=True)
class RayBackend:
    """One Ray task per shard.

    Attributes
    ----------
    address : str, optional
        An existing cluster (``"auto"``, ``"ray://host:10001"``, ...); None uses
        the cluster this process is already connected to, or starts a local one.
    gpus_per_shard : float
        GPUs each shard reserves; a fraction such as 0.25 packs four shards on one GPU.
    cpus_per_shard : float
        CPUs each shard reserves.
    num_cpus : int, optional
        CPUs of a local cluster this backend starts (default: all).
    max_task_retries : int
        Ray's own retries of a task whose worker process died (errors raised by
        training are retried by ``run_shard`` and recorded instead).
    wait_for_resources : bool
        Queue shards that no live node can run yet (an autoscaling cluster that
        will add such nodes). False (default): refuse them with a ConfigError,
        since Ray would otherwise wait for them forever.
    """

    address: str | None = None
    gpus_per_shard: float = 0.0
    cpus_per_shard: float = 1.0
    num_cpus: int | None = None
    max_task_retries: int = 2
    wait_for_resources: bool = False

    def __post_init__(self) -> None:
        _need(isinstance(self.gpus_per_shard, (int, float)) and not isinstance(self.gpus_per_shard, bool)
              and self.gpus_per_shard >= 0, "gpus_per_shard", "a number >= 0 (a fraction shares a GPU)",
              self.gpus_per_shard)
        _need(isinstance(self.cpus_per_shard, (int, float)) and self.cpus_per_shard > 0, "cpus_per_shard",
              "a number > 0", self.cpus_per_shard)
        _need(self.num_cpus is None or (_is_int(self.num_cpus) and self.num_cpus >= 1), "num_cpus",
              "None or an integer >= 1", self.num_cpus)
        _need(self.address is None or self.num_cpus is None, "num_cpus",
              "None with an address (a running cluster has its own CPUs)", self.num_cpus)
        _need(_is_int(self.max_task_retries) and self.max_task_retries >= 0, "max_task_retries", "an integer >= 0",
              self.max_task_retries)
        _need(isinstance(self.wait_for_resources, bool), "wait_for_resources", "True or False",
              self.wait_for_resources)

    def _check_feasible(self, nodes: list[dict]) -> None:
        """Refuse shard tasks that no live node of the cluster can run (Ray would wait for them forever)."""
        if self.wait_for_resources:
            return
        for key, need, option in (("GPU", self.gpus_per_shard, "gpus_per_shard"),
                                  ("CPU", self.cpus_per_shard, "cpus_per_shard")):
            best = max((float(n.get("Resources", {}).get(key, 0.0)) for n in nodes if n.get("Alive")), default=0.0)
            if need > best:
                raise ConfigError(
                    f"{option}={need:g} but no node of the Ray cluster has that many {key}s (the most on one node: "
                    f"{best:g}), so no shard could ever start; lower --{option.replace('_', '-')} (0 GPUs trains "
                    f"on the CPU) or connect to a cluster with such nodes (an autoscaling cluster that will add "
                    f"them: RayBackend(wait_for_resources=True))")

    def run(self, jobs: Sequence["ShardJob"], retries: int, on_done: OnDone) -> bool:
        try:
            import ray
        except ImportError:
            raise ConfigError('--backend ray needs ray: pip install "udl-causal[ray]"') from None
        from runs_generator import storage
        from runs_generator.sweep import ShardOutcome

        started = False
        if not ray.is_initialized():
            ray.init(address=self.address, num_cpus=self.num_cpus, include_dashboard=False,
                     configure_logging=False, log_to_driver=False)
            started = True
        try:
            self._check_feasible(ray.nodes())
            remote = ray.remote(num_cpus=self.cpus_per_shard, num_gpus=self.gpus_per_shard,
                                max_retries=self.max_task_retries)(_ray_run_shard)
            pending = {remote.remote(job, retries): job for job in jobs}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the worker died every time, or the cluster went away
                        storage.record_failure(job.cfg.out, job.shard, exc, 0)
                        outcome = ShardOutcome(job.shard, 0, 0.0, 1, f"{type(exc).__name__}: {exc}".splitlines()[0])
                    on_done(outcome)
        finally:
            if started:
                ray.shutdown()
        return True


def get_backend(backend: "Backend | str", *, workers: int = 1) -> "Backend":
    """A backend by name with default options, or ``backend`` itself when it is one."""
    if not isinstance(backend, str):
        if not callable(getattr(backend, "run", None)):
            raise ConfigError(f"backend must be one of {list(BACKENDS)} or a Backend object; received {backend!r}")
        return backend
    if backend == "local":
        return LocalBackend(workers)
    if backend == "slurm":
        return SlurmBackend()
    if backend == "ray":
        return RayBackend()
    raise ConfigError(f"backend must be one of {list(BACKENDS)}; received {backend!r}")
