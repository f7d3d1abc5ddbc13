"""The real ``udl generate`` command, run in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from causal.schema import RUNS_SCHEMA, supervised_columns
from runs_generator import storage


def _udl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    exe = shutil.which("udl", path=str(Path(sys.executable).parent)) or shutil.which("udl")
    cmd = [exe] if exe else [sys.executable, "-m", "causal.cli"]
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env)


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
