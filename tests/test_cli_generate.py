"""The real ``udl generate`` command, run in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from causal.schema import RUNS_SCHEMA, supervised_columns
from runs_generator import storage


def _cmd() -> list[str]:
    exe = shutil.which("udl", path=str(Path(sys.executable).parent)) or shutil.which("udl")
    return [exe] if exe else [sys.executable, "-m", "causal.cli"]


def _udl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.run([*_cmd(), *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.slow
def test_udl_generate_24_runs_writes_schema_rows_and_resumes(tmp_path):
    out = tmp_path / "sweep"
    res = _udl("generate", "--runs", "24", "--seed", "5", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert str(out) in res.stdout and "wrote 24 runs" in res.stdout
    df = storage.read_shards(out)
    assert list(df.columns) == [c.name for c in RUNS_SCHEMA]
    assert len(df) == 24 and sorted(df["run_index"]) == list(range(24))
    assert not df[supervised_columns()].isna().any().any()
    assert set(df["task"]) <= {"teacher", "mnist1d"} and (df["sweep_seed"] == 5).all()
    assert (out / "_sweep.json").exists()
    assert json.loads((out / "_sweep.json").read_text())["identity"]["lever_space"] == "small"  # the default
    # the same command again skips every finished shard
    again = _udl("generate", "--runs", "24", "--seed", "5", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "wrote 0 runs" in again.stdout and "skipped 24" in again.stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--fix", "lr=99"], ["'lr'", "99", "[1e-06, 10]"]),
        (["--fix", "colour=red"], ["unknown lever", "'colour'"]),
        (["--vary", "optimizer=sgd,lbfgs"], ["'optimizer'", "lbfgs"]),
        (["--fix", "depth"], ["malformed", "LEVER=VALUE"]),
        (["--runs", "0"], ["'runs'"]),
        (["--shards", "2/2"], ["I/N", "2/2"]),
        (["--partition", "gpu"], ["--partition", "--backend local"]),
        (["--backend", "slurm", "--address", "auto"], ["--address", "--backend slurm"]),
    ],
)
def test_bad_overrides_fail_with_a_message_naming_the_lever(tmp_path, args, needles):
    base = ["generate", "--runs", "4", "--seed", "0", "--out", str(tmp_path / "o")]
    if "--runs" in args:
        base = ["generate", "--seed", "0", "--out", str(tmp_path / "o")]
    res = _udl(*base, *args)
    assert res.returncode == 2
    for needle in needles:
        assert needle in res.stderr
    assert not (tmp_path / "o" / "_sweep.json").exists()


def test_out_is_a_file_fails_clearly(tmp_path):
    f = tmp_path / "taken"
    f.write_text("")
    res = _udl("generate", "--runs", "2", "--seed", "0", "--out", str(f))
    assert res.returncode == 2 and "not a directory" in res.stderr and str(f) in res.stderr


# a small real sweep: 6 one-run shards of a fraction of a second each
TINY = ["--runs", "6", "--seed", "8", "--shard-size", "1", "--device", "cpu", "--replicas", "2", "--fix",
        "task=teacher", "--fix", "width=16", "--fix", "depth=2", "--fix", "steps=300", "--fix", "n_train=64"]


@pytest.mark.slow
def test_sigkill_mid_shard_then_resume_in_slices_gives_the_uninterrupted_rows(tmp_path):
    from causal.cli import main

    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["generate", *TINY, "--workers", "1", "--out", str(full)]) == 0  # the uninterrupted sweep
    # the same sweep, killed with SIGKILL (the process and its pool workers) once its first shard is on disk
    proc = subprocess.Popen([*_cmd(), "generate", *TINY, "--workers", "2", "--out", str(part)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if part.is_dir() and storage.finished_shards(part):
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = storage.finished_shards(part)
    assert 1 <= len(done) < 6, f"the kill did not land mid-sweep ({len(done)} shards done)"
    # readers see exactly the finished shards' rows: no partial file counts
    assert len(pd.read_parquet(part)) == len(done)
    # resume as two slices (as two machines would), in either order
    for piece in ("1/2", "0/2"):
        res = _udl("generate", *TINY, "--workers", "1", "--out", str(part), "--shards", piece)
        assert res.returncode == 0, res.stderr
        assert f"slice {piece}" in res.stdout
    assert not [p for p in part.iterdir() if p.name.endswith(".tmp")]
    a, b = (storage.read_shards(d).drop(columns=["wall_time_s"]) for d in (full, part))
    pd.testing.assert_frame_equal(a, b)


def _children(pid: int) -> set[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path) as fh:
            return {int(c) for c in fh.read().split()}
    except FileNotFoundError:
        return set()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][:1] not in ("Z", "X")  # a zombie has finished
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_killing_only_the_sweep_process_stops_its_workers(tmp_path):
    """`kill -9 PID` of the main process (not its group): the pool workers die with it, mid-shard."""
    long_shards = [a if a != "steps=300" else "steps=20000" for a in TINY]  # shards of tens of seconds
    out = tmp_path / "s"
    proc = subprocess.Popen([*_cmd(), "generate", *long_shards, "--workers", "2", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, workers = time.monotonic() + 120, set()
        while time.monotonic() < deadline and len(workers) < 2:
            workers = {c for c in _children(proc.pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}
            time.sleep(0.1)
        assert len(workers) == 2, f"no pool workers appeared: {_children(proc.pid)}"
        time.sleep(2.0)  # the workers are past their initializer and training
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "pool workers outlived the killed sweep process"
        assert not storage.finished_shards(out)  # killed mid-shard: no half-trained shard reads as data
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group, pass or fail
        except ProcessLookupError:
            pass
        proc.wait()


def test_udl_status_and_compact_on_a_sweep_directory(tmp_path):
    from runs_generator.sweep import generate
    from test_sweep import CrashAfter, fake_train

    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        generate(runs=20, seed=2, out=out, shard_size=3, trainer=CrashAfter(5), workers=1)
    res = _udl("status", str(out))
    assert res.returncode == 0, res.stderr
    assert "5/7 shards done" in res.stdout and "missing: 5-6" in res.stdout
    res = _udl("compact", str(out))
    assert res.returncode == 2 and "not a finished sweep" in res.stderr and "missing" in res.stderr
    generate(runs=20, seed=2, out=out, shard_size=3, trainer=fake_train, workers=1)
    before = storage.read_shards(out)
    res = _udl("compact", str(out), "--max-rows", "8")
    assert res.returncode == 0, res.stderr
    files = storage.data_files(out)
    assert 3 <= len(files) <= 4 and all(f.name.startswith("part-") for f in files)  # 7 shards of 2-3 runs
    assert f"20 rows from 7 file(s) into {len(files)} file(s)" in res.stdout
    pd.testing.assert_frame_equal(storage.read_shards(out), before)
    assert len(pd.read_parquet(out)) == 20
    st = json.loads(_udl("status", str(out), "--json").stdout)
    assert st["complete"] and st["files"] == len(files) and st["rows_done"] == 20 and st["missing"] == []


def test_udl_status_of_a_directory_that_is_not_a_sweep_fails_clearly(tmp_path):
    res = _udl("status", str(tmp_path))
    assert res.returncode == 2 and "no _sweep.json" in res.stderr


def test_a_reader_that_goes_away_ends_udl_quietly():
    """``udl status DIR --json | head -1``: when the pipe's reader has gone, no traceback, exit 141 (SIGPIPE)."""
    data = str(Path(__file__).resolve().parents[1] / "data" / "reference")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([*_cmd(), "status", data, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    proc.stdout.close()  # the reader is gone before udl writes a byte
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
