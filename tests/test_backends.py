"""Cluster backends give the local backend's sweep: submitit's local executor and a local Ray cluster."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from causal.errors import ConfigError
from runs_generator import storage
from runs_generator.backends import LocalBackend, RayBackend, SlurmBackend, get_backend
from runs_generator.sweep import generate

# a tiny real sweep: 4 runs in 4 shards, a second or two of training in all
FIX = {"task": "teacher", "width": 8, "depth": 2, "steps": 15, "n_train": 64}
SWEEP = dict(runs=4, seed=11, shard_size=2, fix=FIX, device="cpu", replicas=2)


def _rows(out) -> pd.DataFrame:
    return storage.read_shards(out).drop(columns=["wall_time_s"])


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    return _rows(generate(out=tmp_path_factory.mktemp("local") / "s", workers=1, **SWEEP))


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # workers import this test module's trainers by name, so they need the tests folder on their path
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}})
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_submitit_local_executor_gives_the_local_backends_sweep(tmp_path, local_sweep):
    pytest.importorskip("submitit")
    backend = SlurmBackend(cluster="local", gpus_per_task=0, cpus_per_task=1, time_min=10, shards_per_task=2)
    out = generate(out=tmp_path / "s", backend=backend, **SWEEP)
    pd.testing.assert_frame_equal(_rows(out), local_sweep)
    assert not storage.read_failures(out)
    assert len(list((out / "_submitit").glob("*/*_result.pkl"))) == 2  # 4 shards, 2 per array task: two tasks
    # a rerun submits nothing: every shard is on disk
    generate(out=out, backend=backend, **SWEEP)
    assert len(list((out / "_submitit").glob("*/*_result.pkl"))) == 2


@pytest.mark.slow
def test_a_requeued_slurm_task_skips_the_shards_it_finished(tmp_path, local_sweep):
    """What submitit's checkpoint resubmits after a preemption or timeout: the same task, resuming."""
    pytest.importorskip("submitit")
    from runs_generator.backends import _ShardTask
    from runs_generator.levers import get_space
    from runs_generator.sweep import ShardJob, SweepConfig

    out = generate(out=tmp_path / "s", workers=1, **SWEEP)
    settings = {k: v for k, v in SWEEP.items() if k != "fix"}
    cfg = SweepConfig(out=out, workers=1, overrides=get_space("small").overrides(FIX), **settings)
    plan = storage.read_manifest(out)["plan"]
    jobs = [ShardJob(cfg, s, tuple(plan[s])) for s in range(len(plan))]
    task = _ShardTask(retries=0)
    resubmitted = task.checkpoint(jobs)
    assert resubmitted.function is task and resubmitted.args == (jobs,)
    before = {p.name: p.stat().st_mtime_ns for p in storage.data_files(out)}
    outcomes = resubmitted.result()  # runs the task again
    assert [o.skipped for o in outcomes] == [True] * len(plan)
    assert {p.name: p.stat().st_mtime_ns for p in storage.data_files(out)} == before


@pytest.mark.slow
def test_ray_local_cluster_gives_the_local_backends_sweep(tmp_path, local_sweep, ray_cluster):
    out = generate(out=tmp_path / "s", backend=RayBackend(), **SWEEP)
    pd.testing.assert_frame_equal(_rows(out), local_sweep)
    assert ray_cluster.is_initialized()  # a cluster it did not start is left running


@pytest.mark.slow
def test_ray_backend_retries_and_records_a_failing_shard(tmp_path, ray_cluster):
    from runs_generator.sweep import ShardsFailed

    # a trainer that always raises: every shard is tried twice, recorded, and none is written
    with pytest.raises(ShardsFailed) as info:
        generate(out=tmp_path / "s", backend=RayBackend(), trainer=_always_fails, retries=1, **SWEEP)
    assert sorted(info.value.failed) == [0, 1, 2, 3]
    recs = storage.read_failures(tmp_path / "s")
    assert sorted(recs) == [0, 1, 2, 3] and all(len(a) == 2 for a in recs.values())
    assert "injected" in recs[0][0]["traceback"]


def test_ray_backend_refuses_gpus_the_cluster_does_not_have(tmp_path, ray_cluster):
    """Ray would wait forever for a task no node can run: asking for a GPU share on a CPU cluster is an error
    that names the option, before any shard is queued."""
    with pytest.raises(ConfigError, match=r"gpus_per_shard=0.25 but no node of the Ray cluster has that many GPUs"):
        generate(out=tmp_path / "s", backend=RayBackend(gpus_per_shard=0.25), **SWEEP)
    assert storage.finished_shards(tmp_path / "s") == set()
    assert ray_cluster.is_initialized()


def _always_fails(configs, data, **kw):
    raise RuntimeError("injected")


@pytest.mark.parametrize(
    ("make", "name"),
    [(lambda: SlurmBackend(time_min=0), "'time_min'"), (lambda: SlurmBackend(shards_per_task=0), "'shards_per_task'"),
     (lambda: SlurmBackend(cluster="pbs"), "'cluster'"), (lambda: RayBackend(gpus_per_shard=-0.5), "'gpus_per_shard'"),
     (lambda: RayBackend(address="auto", num_cpus=2), "'num_cpus'"), (lambda: LocalBackend(0), "'workers'"),
     (lambda: get_backend("kubernetes"), "'kubernetes'")],
)
def test_bad_backend_settings_name_the_setting(make, name):
    with pytest.raises(ConfigError, match=name):
        make()


def test_slurm_backend_without_slurm_is_refused_not_run_locally(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun: submitit would pick its local executor
    with pytest.raises(ConfigError, match="found no SLURM on this machine"):
        SlurmBackend(partition="gpu").executor(tmp_path / "sweep")
    assert SlurmBackend(cluster="local").executor(tmp_path / "sweep").cluster == "local"  # asked for: allowed


def test_slurm_array_script_carries_the_options_and_requeues_on_timeout(tmp_path, monkeypatch):
    """The sbatch script submitit would submit (a stand-in ``srun`` lets it build one off-cluster)."""
    pytest.importorskip("submitit")
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    backend = SlurmBackend(partition="gpu", gpus_per_task=1, time_min=120, array_parallelism=8, max_requeues=5,
                           mem_gb=32, additional={"account": "lab"}, cluster="slurm")
    ex = backend.executor(tmp_path / "sweep")
    assert ex.cluster == "slurm" and ex._executor.max_num_timeout == 5
    ex._executor.parameters["map_count"] = 10  # what map_array sets for ten array tasks
    script = ex._executor._make_submission_file_text("python -m x", "%j")
    for line in ("--partition=gpu", "--gpus-per-node=1", "--time=120", "--array=0-9%8", "--mem=32GB",
                 "--account=lab", "--signal=USR2@"):  # USR2 before the limit: checkpoint and requeue
        assert f"#SBATCH {line}" in script
    assert str(tmp_path / "sweep" / "_submitit") in script
