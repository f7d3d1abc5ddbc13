"""Parquet shards: declared schema and metadata, atomic writes, manifest checks, bad paths."""

from __future__ import annotations

import json
import math
import os
import sys

import pyarrow.parquet as pq
import pytest

from causal.errors import ConfigError, SchemaError
from causal.schema import RUNS_SCHEMA, SCHEMA_VERSION
from runs_generator import storage
from runs_generator.levers import LARGE_SPACE as S
from runs_generator.spec import RunMetrics
from runs_generator.table import Provenance, make_row
from runs_generator.tasks import make_task_data


def _metrics(**over) -> RunMetrics:
    base = dict(n_params=1234, gradient_stability=-0.5, sharpness=1.2, implicit_reg=-2.0, bias_sq=-1.0,
                variance=-2.0, convergence=1.5, diverged=False, diverged_step=None, generalization=0.8, test_loss=0.6, test_error=0.2,
                gen_gap=0.1, deployment_risk=0.05, ece=None, train_loss_initial=2.0, train_loss_final=0.1,
                wall_time_s=0.3)
    base.update(over)
    return RunMetrics(**base)


PROV = Provenance(engine="batched", device="cpu", package_version="0.1.0", torch_version="x", sweep_seed=9)


def _rows(n=3, **fix):
    cfgs = S.draw_all(9, n, S.overrides(fix={"task": "teacher", **fix}))
    return [make_row(c, make_task_data(c, sweep_seed=9), _metrics(), PROV) for c in cfgs]


def test_row_has_every_schema_column_with_declared_types():
    row = _rows(1, problem="regression", loss="l1", noise_dist="laplace", init_scale=0.5, n_train=128)[0]
    assert list(row) == [c.name for c in RUNS_SCHEMA]
    assert row["loss_matched"] == 1 and row["init_quality"] == -1.0 and row["pretrained"] == 0
    assert row["data_quantity"] == pytest.approx(2.10721, abs=1e-4)
    assert row["overparam"] == pytest.approx(math.log10(1234 / (128 * 1)))
    assert row["capacity"] == pytest.approx(math.log10(1234)) and row["overparameterized"] == 1
    assert row["ece"] is None and row["precision"] is None and row["run_id"] == "9-0"
    for col in RUNS_SCHEMA:
        v = row[col.name]
        assert v is None or isinstance(v, {"float64": float, "int64": int, "string": str}[col.dtype.value])


def test_nonfinite_required_value_is_refused_naming_the_column():
    c = S.draw(9, 0, S.overrides(fix={"task": "teacher"}))
    with pytest.raises(SchemaError, match="'sharpness'"):
        make_row(c, make_task_data(c, sweep_seed=9), _metrics(sharpness=float("inf")), PROV)
    with pytest.raises(SchemaError, match="'wall_time_s'"):
        make_row(c, make_task_data(c, sweep_seed=9), _metrics(wall_time_s=float("nan")), PROV)


def test_unmeasurable_values_are_null_not_placeholders():
    c = S.draw(9, 0, S.overrides(fix={"task": "teacher"}))
    diverged = _metrics(diverged=True, diverged_step=17, sharpness=None, variance=float("nan"), generalization=None)
    row = make_row(c, make_task_data(c, sweep_seed=9), diverged, PROV)
    assert row["diverged"] == 1 and row["diverged_step"] == 17
    assert row["sharpness"] is None and row["variance"] is None and row["generalization"] is None


def test_shard_roundtrip_with_schema_and_metadata(tmp_path):
    rows = _rows(3)
    path = storage.write_shard(tmp_path, 3, rows, {"identity": {"seed": 9}})
    assert path.name == "shard-00003.parquet" and storage.shard_index(path) == 3
    meta = pq.read_schema(path).metadata
    assert meta[b"udl.schema_version"].decode() == SCHEMA_VERSION
    assert json.loads(meta[b"udl.columns"]) == [c.name for c in RUNS_SCHEMA]
    assert json.loads(meta[b"udl.sweep"]) == {"identity": {"seed": 9}}
    assert pq.read_schema(path).remove_metadata() == storage.ARROW_SCHEMA
    df = storage.read_shards(tmp_path)
    assert len(df) == 3 and list(df["run_index"]) == [0, 1, 2]
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


def test_a_shard_reaches_the_disk_before_its_name(tmp_path, monkeypatch):
    """The temp file is fsynced before the rename and the directory after, so a power loss cannot leave a
    finished-looking shard name on a short file (a resumed sweep would skip it for good)."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    names = {}

    def fsync(fd):
        events.append(("fsync", names.get(fd, "?")))
        real_fsync(fd)

    def open_(path, flags, *a, **k):
        fd = real_open(path, flags, *a, **k)
        names[fd] = "dir" if os.path.isdir(path) else ("temp" if os.path.basename(path).startswith(".") else "file")
        return fd

    def replace(a, b):
        events.append(("replace", os.path.basename(b)))
        real_replace(a, b)

    real_open = os.open
    monkeypatch.setattr(storage.os, "fsync", fsync)
    monkeypatch.setattr(storage.os, "open", open_)
    monkeypatch.setattr(storage.os, "replace", replace)
    path = storage.write_shard(tmp_path, 0, _rows(2), {})
    assert events == [("fsync", "temp"), ("replace", path.name), ("fsync", "dir")], events
    assert len(pq.read_table(path)) == 2


def test_reader_names_a_bad_column(tmp_path):
    import pyarrow as pa

    table = pa.Table.from_pylist(_rows(1), schema=storage.ARROW_SCHEMA).drop_columns(["sharpness"])
    table = table.replace_schema_metadata({b"udl.schema_version": SCHEMA_VERSION.encode()})
    pq.write_table(table, tmp_path / "shard-00000.parquet")
    with pytest.raises(SchemaError, match="'sharpness'"):
        storage.read_shards(tmp_path)


def test_stray_temp_files_are_removed_and_never_read(tmp_path):
    storage.write_shard(tmp_path, 0, _rows(2), {})
    stray = tmp_path / ".shard-00001.parquet.4194999.tmp"  # above Linux's pid_max: its writer is gone
    stray.write_bytes(b"half a parquet file")
    assert storage.finished_shards(tmp_path) == {0}
    assert len(storage.read_shards(tmp_path)) == 2
    assert storage.clean_stray_temps(tmp_path) == [stray] and not stray.exists()


def test_temp_files_of_live_or_remote_writers_are_kept(tmp_path):
    """Slices on other processes or hosts may be writing into the same directory right now."""
    host = storage._HOST
    live = tmp_path / f".shard-00001.parquet.{host}-{os.getppid()}.tmp"  # our parent process is alive
    dead = tmp_path / f".shard-00002.parquet.{host}-4194999.tmp"
    remote = tmp_path / ".shard-00003.parquet.othernode-12.tmp"
    old_remote = tmp_path / ".shard-00004.parquet.othernode-13.tmp"
    for p in (live, dead, remote, old_remote):
        p.write_bytes(b"partial")
    os.utime(old_remote, (1e9, 1e9))  # 2001: its writer is long gone
    assert sorted(storage.clean_stray_temps(tmp_path)) == sorted([dead, old_remote])
    assert live.exists() and remote.exists()


def test_manifest_is_created_once_the_first_writer_wins(tmp_path):
    assert storage.create_manifest(tmp_path, {"identity": {"seed": 1}, "plan": [[0]]}) is True
    assert storage.create_manifest(tmp_path, {"identity": {"seed": 1}, "plan": [[1]]}) is False
    assert storage.read_manifest(tmp_path)["plan"] == [[0]]
    assert [p.name for p in tmp_path.iterdir()] == ["_sweep.json"]  # no temp file left behind


def test_failure_records_keep_every_attempt_with_its_traceback(tmp_path):
    def boom():
        raise ValueError("bad shard")

    for attempt in (1, 2):
        try:
            boom()
        except ValueError as exc:
            storage.record_failure(tmp_path, 7, exc, attempt)
    rec = storage.read_failures(tmp_path)
    assert list(rec) == [7] and [a["attempt"] for a in rec[7]] == [1, 2]
    assert rec[7][-1]["error"] == "ValueError: bad shard" and "in boom" in rec[7][-1]["traceback"]
    assert (tmp_path / "_failures" / "shard-00007.json").exists()


def test_manifest_refuses_a_different_sweep_naming_the_keys(tmp_path):
    ident = {"runs": 10, "seed": 1, "fix": {}, "vary": {}}
    assert storage.check_manifest(tmp_path, ident) is False
    storage.write_manifest(tmp_path, {"identity": ident})
    assert storage.check_manifest(tmp_path, ident) is True
    with pytest.raises(ConfigError) as info:
        storage.check_manifest(tmp_path, {**ident, "seed": 2})
    assert "seed" in str(info.value) and "existing 1" in str(info.value) and "requested 2" in str(info.value)


def test_shards_without_manifest_are_refused(tmp_path):
    storage.write_shard(tmp_path, 0, _rows(1), {})
    with pytest.raises(ConfigError, match="no _sweep.json"):
        storage.check_manifest(tmp_path, {"seed": 1})


def test_pandas_and_pyarrow_read_a_sweep_directory_as_it_is(tmp_path):
    """Every non-shard file starts with '_' or '.', so the directory is a plain parquet dataset."""
    import pandas as pd

    storage.write_shard(tmp_path, 0, _rows(2), {})
    storage.write_shard(tmp_path, 1, _rows(3), {})
    storage.write_manifest(tmp_path, {"identity": {}})
    (tmp_path / ".shard-00002.parquet.99.tmp").write_bytes(b"half a file")
    assert all(p.name.startswith(("shard-", "_", ".")) for p in tmp_path.iterdir())
    df = pd.read_parquet(tmp_path)
    assert len(df) == 5 and set(df.columns) == {c.name for c in RUNS_SCHEMA}


def test_bad_output_paths_give_clear_errors(tmp_path):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        storage.prepare_dir(afile)
    with pytest.raises(ConfigError, match="cannot create"):
        storage.prepare_dir(afile / "sub")
    if sys.platform != "win32" and os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(ConfigError, match="not writable"):
            storage.prepare_dir(ro)
