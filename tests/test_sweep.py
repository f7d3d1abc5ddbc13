"""Sweeps: deterministic shard plans and rows, resumption after a kill, refused reruns."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from causal.errors import ConfigError
from runs_generator import storage
from runs_generator.spec import RunMetrics
from runs_generator.sweep import SweepConfig, generate, plan_shards

TIMING = ["wall_time_s"]


def fake_train(configs, data, *, engine, device):
    """A deterministic stand-in for the engine: metrics are a hash of the run seed."""
    out = []
    for c, d in zip(configs, data):
        h = int(hashlib.sha256(f"{c.seed}-{d.y_train.sum():.6f}".encode()).hexdigest()[:8], 16) / 2**32
        out.append(RunMetrics(
            n_params=100 * c.width, gradient_stability=-h, sharpness=h, implicit_reg=-h, bias_sq=-1 - h,
            variance=-2 + h, convergence=h, diverged=h > 0.9, diverged_step=None, generalization=1 - h, test_loss=h,
            test_error=h / 2, gen_gap=h / 3, deployment_risk=h / 4, ece=None, train_loss_initial=1.0, train_loss_final=h,
            wall_time_s=h,  # a timing column: free to differ between runs of the same sweep
        ))
    return out


class CrashAfter:
    """A trainer that completes ``n`` shards and then fails, like a sweep killed mid-way."""

    def __init__(self, n: int, inner=fake_train) -> None:
        self.n, self.inner = n, inner

    def __call__(self, configs, data, **kw):
        if self.n == 0:
            raise KeyboardInterrupt("simulated kill")
        self.n -= 1
        return self.inner(configs, data, **kw)


def _rows(path) -> pd.DataFrame:
    return storage.read_shards(path).drop(columns=TIMING)


KW = dict(fix={"task": "teacher"}, workers=1)


def test_plan_covers_every_run_once_sorted_by_group():
    cfg = SweepConfig(runs=50, seed=3, out="unused", workers=1)
    configs = cfg.configs()
    key = lambda c: (c.task, c.width)  # noqa: E731
    plan = plan_shards(configs, 8, key=key)
    flat = [i for shard in plan for i in shard]
    assert sorted(flat) == list(range(50)) and all(len(s) <= 8 for s in plan)
    keys = [repr(key(configs[i])) for i in flat]
    assert keys == sorted(keys)
    assert plan == plan_shards(cfg.configs(), 8, key=key)


@pytest.mark.parametrize("seed", [0, 5])
def test_same_command_twice_gives_identical_rows(tmp_path, seed):
    a = generate(runs=20, seed=seed, out=tmp_path / "a", shard_size=6, trainer=fake_train, **KW)
    b = generate(runs=20, seed=seed, out=tmp_path / "b", shard_size=6, trainer=fake_train, **KW)
    ra, rb = _rows(a), _rows(b)
    assert len(ra) == 20 and list(ra["run_index"]) == list(range(20))
    pd.testing.assert_frame_equal(ra, rb)
    assert (ra["task"] == "teacher").all()
    # a rerun into a finished directory trains nothing and changes nothing
    generate(runs=20, seed=seed, out=a, shard_size=6, trainer=CrashAfter(0), **KW)
    pd.testing.assert_frame_equal(_rows(a), ra)


@pytest.mark.parametrize("done", [0, 1, 3])
def test_killed_sweep_resumes_to_exactly_the_uninterrupted_rows(tmp_path, done):
    full = generate(runs=23, seed=4, out=tmp_path / "full", shard_size=5, trainer=fake_train, **KW)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        generate(runs=23, seed=4, out=part, shard_size=5, trainer=CrashAfter(done), **KW)
    assert storage.finished_shards(part) == set(range(done))
    (part / ".shard-00004.parquet.999.tmp").write_bytes(b"torn write")  # what a kill -9 can leave
    generate(runs=23, seed=4, out=part, shard_size=5, trainer=fake_train, **KW)
    assert not list(part.glob("*.tmp"))
    pd.testing.assert_frame_equal(_rows(part), _rows(full))


def test_rerun_with_different_settings_is_refused(tmp_path):
    out = generate(runs=10, seed=1, out=tmp_path / "s", shard_size=5, trainer=fake_train, **KW)
    with pytest.raises(ConfigError, match="seed: existing 1, requested 2"):
        generate(runs=10, seed=2, out=out, shard_size=5, trainer=fake_train, **KW)
    with pytest.raises(ConfigError, match="fix"):
        generate(runs=10, seed=1, out=out, shard_size=5, trainer=fake_train, workers=1)


@pytest.mark.parametrize(
    ("kw", "name"),
    [({"runs": 0}, "'runs'"), ({"shard_size": 0}, "'shard_size'"), ({"replicas": 1}, "'replicas'"),
     ({"engine": "fast"}, "'engine'"), ({"device": "tpu"}, "'device'"), ({"seed": -1}, "'seed'")],
)
def test_bad_sweep_settings_name_the_setting(tmp_path, kw, name):
    args = {"runs": 4, "seed": 0, "out": tmp_path, **kw}
    with pytest.raises(ConfigError, match=name):
        generate(**args, trainer=fake_train, workers=1)


def test_out_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        generate(runs=2, seed=0, out=f, trainer=fake_train, workers=1)


@pytest.mark.slow
def test_process_pool_gives_the_same_rows_as_in_process(tmp_path):
    one = generate(runs=12, seed=2, out=tmp_path / "one", shard_size=3, trainer=fake_train, **KW)
    two = generate(runs=12, seed=2, out=tmp_path / "two", shard_size=3, trainer=fake_train,
                   fix={"task": "teacher"}, workers=2)
    pd.testing.assert_frame_equal(_rows(one), _rows(two))


@pytest.mark.slow
def test_real_engine_rows_do_not_depend_on_the_shard_layout(tmp_path):
    """Dropout, augmentation and minibatches are per-run streams: another shard layout gives the same rows."""
    fix = {"task": "mnist1d", "width": 8, "depth": 2, "steps": 12, "n_train": 64, "dropout": 0.3,
           "augmentation": True}
    kw = dict(runs=6, seed=3, fix=fix, workers=1, device="cpu", space="small")
    a = generate(out=tmp_path / "a", shard_size=1, **kw)
    b = generate(out=tmp_path / "b", shard_size=6, **kw)
    ra, rb = _rows(a), _rows(b)
    num = ra.select_dtypes("number").columns
    pd.testing.assert_frame_equal(ra.drop(columns=num), rb.drop(columns=num))
    pd.testing.assert_frame_equal(ra[num], rb[num], rtol=1e-5, atol=1e-6)  # float32: summation order only


@pytest.mark.slow
def test_real_engine_sweep_killed_and_resumed_equals_uninterrupted(tmp_path):
    from runs_generator.engine import train_runs

    fix = {"task": "teacher", "width": 16, "depth": 2, "steps": 30, "n_train": 64}
    kw = dict(runs=4, seed=7, shard_size=2, fix=fix, workers=1, device="cpu")
    full = generate(out=tmp_path / "full", **kw)
    with pytest.raises(KeyboardInterrupt):
        generate(out=tmp_path / "part", trainer=CrashAfter(1, train_runs), **kw)
    assert len(storage.finished_shards(tmp_path / "part")) == 1
    generate(out=tmp_path / "part", **kw)
    a, b = _rows(full), _rows(tmp_path / "part")
    assert len(a) == 4 and (a["engine"] == "batched").all()
    pd.testing.assert_frame_equal(a, b)


def test_resume_keeps_the_manifest_plan_even_if_the_grouping_changed(tmp_path, monkeypatch):
    from runs_generator import sweep

    full = generate(runs=15, seed=6, out=tmp_path / "full", shard_size=4, trainer=fake_train, **KW)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        generate(runs=15, seed=6, out=part, shard_size=4, trainer=CrashAfter(2), **KW)

    def new_grouping(*args, **kwargs):  # e.g. a newer engine with another group key
        raise AssertionError("a resumed sweep must not re-plan its shards")

    monkeypatch.setattr(sweep, "plan_shards", new_grouping)
    generate(runs=15, seed=6, out=part, shard_size=4, trainer=fake_train, **KW)
    pd.testing.assert_frame_equal(_rows(part), _rows(full))


def test_in_process_sweep_trains_on_one_thread_and_restores_the_count(tmp_path):
    import torch

    seen = []

    def recording_train(configs, data, *, engine, device):
        seen.append(torch.get_num_threads())
        return fake_train(configs, data, engine=engine, device=device)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        generate(runs=4, seed=0, out=tmp_path / "s", shard_size=2, trainer=recording_train, workers=1)
        assert len(seen) >= 2 and set(seen) == {1}  # like a pool worker: no oversubscription when the machine is shared
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
