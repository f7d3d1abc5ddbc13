"""Sweeps: deterministic shard plans and rows, resumption after a kill, refused reruns."""

from __future__ import annotations

import hashlib
import json

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


def test_plan_covers_every_run_once_in_shards_of_sorted_groups():
    cfg = SweepConfig(runs=50, seed=3, out="unused", workers=1)
    configs = cfg.configs()
    key = lambda c: (c.task, c.width)  # noqa: E731
    plan = plan_shards(configs, 8, key=key)
    flat = [i for shard in plan for i in shard]
    assert sorted(flat) == list(range(50)) and all(len(s) <= 8 for s in plan)
    # each shard is a run of the key-sorted order; laid end to end by position they are that order
    sort_key = lambda i: (repr(key(configs[i])), i)  # noqa: E731
    assert all(list(s) == sorted(s, key=sort_key) for s in plan)
    assert [i for s in sorted(plan, key=lambda s: sort_key(s[0])) for i in s] == sorted(range(50), key=sort_key)
    assert plan == plan_shards(cfg.configs(), 8, key=key)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_prefix_of_the_plan_is_a_spread_sample_not_the_groups_that_sort_first(seed):
    """A sweep stopped after k shards must not confound a lever (here the task) with having finished."""
    configs = SweepConfig(runs=600, seed=seed, out="unused", workers=1).configs()
    key = lambda c: (c.task, c.arch, c.width)  # noqa: E731
    teacher = {c.run_index: c.task == "teacher" for c in configs}
    overall = sum(teacher.values()) / len(configs)

    def worst_prefix_bias(plan):
        return max(abs(sum(teacher[i] for s in plan[:k] for i in s) / sum(len(s) for s in plan[:k]) - overall)
                   for k in range(len(plan) // 10, len(plan) + 1))

    plan = plan_shards(configs, 10, key=key)
    assert worst_prefix_bias(plan) < 0.15  # every prefix of >= 10% of the shards
    contiguous = sorted(plan, key=lambda s: (repr(key(configs[s[0]])), s[0]))  # the plan before interleaving
    assert worst_prefix_bias(contiguous) > 0.4  # its first shards are one task


def test_shard_slices_run_anywhere_and_their_union_is_the_whole_sweep(tmp_path):
    full = generate(runs=23, seed=4, out=tmp_path / "full", shard_size=3, trainer=fake_train, **KW)
    part = tmp_path / "sliced"
    n_shards = len(json.loads((full / storage.MANIFEST).read_text())["plan"])
    ran: set[int] = set()
    for i in (2, 0, 1):  # any order
        generate(runs=23, seed=4, out=part, shard_size=3, trainer=fake_train, shards=f"{i}/3", **KW)
        ran.add(i)
        assert {s % 3 for s in storage.finished_shards(part)} == ran
    assert storage.finished_shards(part) == set(range(n_shards))
    pd.testing.assert_frame_equal(_rows(part), _rows(full))
    # one slice alone writes exactly its shards
    alone = tmp_path / "alone"
    generate(runs=23, seed=4, out=alone, shard_size=3, trainer=fake_train, shards="1/3", **KW)
    assert storage.finished_shards(alone) == {s for s in range(n_shards) if s % 3 == 1}


def test_the_plan_does_not_depend_on_the_worker_count(tmp_path):
    """Slices on machines with different --workers must agree on which runs form shard s."""
    a = generate(runs=40, seed=2, out=tmp_path / "a", shard_size=64, trainer=fake_train, shards="0/50", **KW)
    b = generate(runs=40, seed=2, out=tmp_path / "b", shard_size=64, trainer=fake_train, shards="0/50",
                 fix={"task": "teacher"}, workers=3)
    plan_a, plan_b = (json.loads((d / storage.MANIFEST).read_text())["plan"] for d in (a, b))
    assert plan_a == plan_b and len(plan_a) == 8


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1", "a/b", "1/0"])
def test_bad_shard_slice_is_refused_naming_the_form(tmp_path, text):
    with pytest.raises(ConfigError, match="I/N"):
        generate(runs=4, seed=0, out=tmp_path, trainer=fake_train, shards=text, **KW)


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
    (part / ".shard-00004.parquet.4194999.tmp").write_bytes(b"torn write")  # what a kill -9 can leave (dead pid)
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
def test_padded_widths_give_the_rows_of_unpadded_training(tmp_path, monkeypatch):
    """A sweep with every width padded into shared computations (the CUDA path's grouping) gives the
    rows of exact-width training, to float32 rounding; the setting reaches the engine."""
    from runs_generator import engine, sweep

    seen = []
    real = engine.train_runs

    def spy(configs, data, **kwargs):
        seen.append(kwargs.get("pad_widths"))
        return real(configs, data, **kwargs)

    monkeypatch.setattr(engine, "train_runs", spy)
    monkeypatch.setattr(sweep, "_MIN_SHARDS", 1)  # one shard: its three widths can share a computation
    fix = {"task": "mnist1d", "arch": "cnn", "depth": 2, "normalization": "layer", "epochs": 20, "n_train": 64,
           "dropout": 0.1, "batch_size": 32}
    kw = dict(runs=6, seed=4, fix=fix, workers=1, device="cpu", space="small", shard_size=6,
              vary={"width": [8, 16, 32]})
    a = generate(out=tmp_path / "a", pad_widths=True, **kw)
    b = generate(out=tmp_path / "b", pad_widths=False, **kw)
    assert seen == [True, False]  # one shard each
    ra, rb = _rows(a), _rows(b)
    assert sorted(set(ra["width"])) == [8, 16, 32]
    num = ra.select_dtypes("number").columns
    pd.testing.assert_frame_equal(ra.drop(columns=num), rb.drop(columns=num))
    # float32: a padded GEMM sums in another order, and 100 Adam steps amplify that rounding (here the Adam
    # run at width 16 moves by up to 2e-3 relative, and one example of its group-balanced test set flips:
    # 5e-4 in deployment_risk); in float64 padded and unpadded training agree to 1e-7 or better
    # (tests/test_engine.py::test_padded_width_equals_alone)
    pd.testing.assert_frame_equal(ra[num], rb[num], rtol=5e-3, atol=1e-3)
    for bad in ("yes", 1):
        with pytest.raises(ConfigError, match="pad_widths"):
            SweepConfig(runs=2, seed=0, out=tmp_path / "c", pad_widths=bad)
    assert json.loads((a / "_sweep.json").read_text())["execution"]["pad_widths"] is True


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


class FailShards:
    """A trainer that raises for the runs of chosen shards, ``times`` times each (then trains)."""

    def __init__(self, out, shards, times=10**9) -> None:
        plan = json.loads((out / storage.MANIFEST).read_text())["plan"] if (out / storage.MANIFEST).exists() else None
        self.runs = {i for s in shards for i in plan[s]} if plan else set()
        self.left = {s: times for s in shards}
        self.plan = plan

    def __call__(self, configs, data, **kw):
        shard = next((s for s in self.left if self.plan and configs[0].run_index in self.plan[s]), None)
        if shard is not None and self.left[shard] > 0:
            self.left[shard] -= 1
            raise RuntimeError(f"injected failure of shard {shard}")
        return fake_train(configs, data, **kw)


def _planned(tmp_path, name, runs=12, seed=1, shard_size=3):
    """A sweep directory with its manifest and no shards yet (slice 0 of a huge count trains only shard 0)."""
    out = tmp_path / name
    generate(runs=runs, seed=seed, out=out, shard_size=shard_size, trainer=fake_train, shards="0/1000", **KW)
    (out / "shard-00000.parquet").unlink()
    return out


def test_a_shard_that_raises_is_retried_and_its_traceback_kept(tmp_path):
    full = generate(runs=12, seed=1, out=tmp_path / "full", shard_size=3, trainer=fake_train, **KW)
    out = _planned(tmp_path, "retry")
    flaky = FailShards(out, [1, 2], times=2)  # fails twice, succeeds at the third attempt
    generate(runs=12, seed=1, out=out, shard_size=3, trainer=flaky, retries=2, **KW)
    pd.testing.assert_frame_equal(_rows(out), _rows(full))
    rec = storage.read_failures(out)
    assert sorted(rec) == [1, 2] and [a["attempt"] for a in rec[1]] == [1, 2]
    assert "injected failure of shard 1" in rec[1][0]["traceback"] and "Traceback" in rec[1][0]["traceback"]


def test_a_shard_that_keeps_failing_is_reported_and_the_others_are_written(tmp_path):
    from runs_generator.sweep import ShardsFailed
    from runs_generator.sweepdir import status

    out = _planned(tmp_path, "fail")
    with pytest.raises(ShardsFailed, match=r"1 shard\(s\) failed.*shard 2: RuntimeError: injected failure") as info:
        generate(runs=12, seed=1, out=out, shard_size=3, trainer=FailShards(out, [2]), retries=1, **KW)
    assert info.value.failed == {2: "RuntimeError: injected failure of shard 2"}
    n = len(json.loads((out / storage.MANIFEST).read_text())["plan"])
    assert n >= 4 and storage.finished_shards(out) == set(range(n)) - {2}
    assert len(storage.read_failures(out)[2]) == 2  # the first attempt and one retry
    st = status(out)
    assert st.failed == [2] and st.missing == [] and st.done == sorted(set(range(n)) - {2}) and not st.complete
    assert "injected failure of shard 2" in st.summary() and "_failures/shard-00002.json" in st.summary()
    # the cause fixed, a rerun trains only the failed shard
    generate(runs=12, seed=1, out=out, shard_size=3, trainer=CrashAfter(1), **KW)
    st = status(out)
    assert st.complete and st.retried == [2] and st.rows_done == 12


def test_a_shard_out_of_gpu_memory_is_retried_one_chunk_at_a_time(tmp_path, monkeypatch):
    """An out-of-memory error (a GPU with interleaved chunks) is recorded, and the retry runs one chunk at a
    time; the shard's rows are those of a sweep that never ran out."""
    import torch

    from runs_generator import engine

    fix = {"task": "teacher", "width": 8, "depth": 1, "steps": 8, "n_train": 64}
    kw = dict(runs=4, seed=5, fix=fix, workers=1, device="cpu", space="small", shard_size=4)
    full = generate(out=tmp_path / "full", **kw)
    real, seen = engine.train_runs, []

    def tight(configs, data, **k):
        seen.append(k.get("concurrent"))
        if k.get("concurrent") != 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(configs, data, **k)

    monkeypatch.setattr(engine, "train_runs", tight)
    out = generate(out=tmp_path / "oom", retries=2, **kw)
    n = len(json.loads((out / storage.MANIFEST).read_text())["plan"])
    assert n >= 1 and seen == [None, 1] * n, seen  # per shard: the engine's default, then one chunk at a time
    pd.testing.assert_frame_equal(_rows(out), _rows(full))
    rec = storage.read_failures(out)
    assert sorted(rec) == list(range(n)) and all([a["attempt"] for a in rec[i]] == [1] for i in rec)
    assert "out of memory" in rec[0][0]["traceback"]


def test_a_setting_this_machine_cannot_run_fails_once_not_per_retry(tmp_path):
    from runs_generator.sweep import ShardsFailed

    def unrunnable(configs, data, **kw):
        raise ConfigError("device='cuda' was requested but torch sees no CUDA device")

    with pytest.raises(ShardsFailed, match="ConfigError"):
        generate(runs=6, seed=1, out=tmp_path / "s", shard_size=3, trainer=unrunnable, retries=2, **KW)
    rec = storage.read_failures(tmp_path / "s")
    assert rec and all([a["attempt"] for a in attempts] == [1] for attempts in rec.values()), rec


def test_a_device_this_machine_lacks_is_refused_before_anything_is_written(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ConfigError, match="sees no CUDA device"):
        generate(runs=4, seed=1, out=tmp_path / "s", device="cuda", **KW)
    assert not (tmp_path / "s").exists()


def test_retries_out_of_range_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="'retries'"):
        generate(runs=4, seed=0, out=tmp_path, trainer=fake_train, retries=-1, **KW)


@pytest.mark.slow
def test_a_run_whose_loss_goes_nan_is_a_diverged_row_not_a_failed_shard(tmp_path):
    fix = {"task": "teacher", "width": 8, "depth": 2, "steps": 20, "n_train": 64, "optimizer": "sgd"}
    out = generate(runs=2, seed=3, out=tmp_path / "nan", shard_size=2, fix={**fix, "lr": 10.0}, workers=1,
                   device="cpu", replicas=2)
    df = _rows(out)
    assert len(df) == 2 and df["diverged"].sum() >= 1 and not (out / storage.FAILURES).exists()
    bad = df[df["diverged"] == 1]
    assert bad["diverged_step"].notna().all() and bad["generalization"].isna().all()
