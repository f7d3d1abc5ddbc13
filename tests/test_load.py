import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from causal import SchemaError
from causal.load import load_runs, validate_runs
from causal.schema import SCHEMA_VERSION
from causal.simulate import simulate_linear_scm


@pytest.fixture(scope="module")
def table():
    return simulate_linear_scm(60, seed=0).data


def _write(df, path, meta=None):
    t = pa.Table.from_pandas(df, preserve_index=False)
    if meta is not None:
        t = t.replace_schema_metadata({**(t.schema.metadata or {}), **meta})
    pq.write_table(t, path)
    return path


def test_file_round_trip_with_declared_dtypes(table, tmp_path):
    df = load_runs(_write(table, tmp_path / "runs.parquet"))
    assert len(df) == 60
    assert df["capacity"].dtype == "float64" and df["residual"].dtype == "int64"
    assert str(df["optimizer"].dtype).startswith("str") or df["optimizer"].dtype == "string"
    pd.testing.assert_series_equal(df["generalization"], table["generalization"])


def test_shard_directory_ignores_temp_and_hidden_files(table, tmp_path):
    meta = {b"udl.schema_version": SCHEMA_VERSION.encode()}
    _write(table.iloc[:30], tmp_path / "shard-00000.parquet", meta)
    _write(table.iloc[30:], tmp_path / "shard-00001.parquet", meta)
    (tmp_path / ".shard-00002.parquet.123.tmp").write_bytes(b"partial")
    (tmp_path / ".hidden.parquet").write_bytes(b"junk")
    (tmp_path / "_sweep.json").write_text("{}")
    (tmp_path / "_summary.parquet").write_bytes(b"not a shard")  # '_' files are metadata, as in pyarrow datasets
    df = load_runs(tmp_path)
    assert len(df) == 60 and list(df["run_id"]) == list(table["run_id"])
    assert list(load_runs(tmp_path, columns=["capacity", "variance"]).columns) == ["capacity", "variance"]


def test_missing_path_and_non_parquet_file(tmp_path):
    with pytest.raises(SchemaError, match="does not exist"):
        load_runs(tmp_path / "nope.parquet")
    bad = tmp_path / "runs.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(SchemaError, match="runs.csv.*not a parquet file"):
        load_runs(bad)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(SchemaError, match="no \\*.parquet files"):
        load_runs(tmp_path / "empty_dir")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not really parquet PAR1")
    with pytest.raises(SchemaError, match="corrupt.parquet"):
        load_runs(corrupt)


def test_empty_table(table, tmp_path):
    with pytest.raises(SchemaError, match="empty"):
        load_runs(_write(table.iloc[:0], tmp_path / "empty.parquet"))


def test_missing_required_column(table, tmp_path):
    path = _write(table.drop(columns=["variance"]), tmp_path / "r.parquet")
    with pytest.raises(SchemaError, match="'variance'"):
        load_runs(path, required=["capacity", "variance"])
    with pytest.raises(SchemaError, match="missing"):
        load_runs(path, required="supervised")
    with pytest.raises(SchemaError, match="'nope'.*not in the file"):
        load_runs(path, columns=["nope"])
    # generator files declare their columns: a file missing one is refused
    meta = {b"udl.schema_version": SCHEMA_VERSION.encode(),
            b"udl.columns": json.dumps(list(table.columns)).encode()}
    with pytest.raises(SchemaError, match="'variance'"):
        load_runs(_write(table.drop(columns=["variance"]), tmp_path / "g.parquet", meta))


def test_mistyped_columns(table, tmp_path):
    bad = table.assign(capacity=table["capacity"].astype(str))
    with pytest.raises(SchemaError, match="column 'capacity' should be float64"):
        load_runs(_write(bad, tmp_path / "a.parquet"))
    bad = table.assign(residual=table["residual"] + 0.5)
    with pytest.raises(SchemaError, match="'residual' should hold integers"):
        load_runs(_write(bad, tmp_path / "b.parquet"))
    bad = table.assign(optimizer=1.0)
    with pytest.raises(SchemaError, match="'optimizer' should hold strings"):
        load_runs(_write(bad, tmp_path / "c.parquet"))


def test_schema_version_checked(table, tmp_path):
    minor = f"{SCHEMA_VERSION.split('.')[0]}.99"
    assert len(load_runs(_write(table, tmp_path / "ok.parquet", {b"udl.schema_version": minor.encode()}))) == 60
    with pytest.raises(SchemaError, match="schema version 99.0 is incompatible"):
        load_runs(_write(table, tmp_path / "v.parquet", {b"udl.schema_version": b"99.0"}))
    with pytest.raises(SchemaError, match=r"schema version 1.0 is incompatible.*Regenerate the sweep"):
        load_runs(_write(table, tmp_path / "old.parquet", {b"udl.schema_version": b"1.0"}))
    with pytest.raises(SchemaError, match="unreadable metadata"):
        load_runs(_write(table, tmp_path / "m.parquet", {b"udl.schema_version": b"\xff\xfe"}))


def test_schema_2_mediators_and_outcomes_may_be_null(table):
    """Schema 2.0: a value that cannot be measured is null (a diverged run), never a placeholder."""
    from causal.schema import COLUMNS, SCHEMA_VERSION, Role

    assert SCHEMA_VERSION.startswith("2.")
    for col in COLUMNS.values():
        if col.role in (Role.MEDIATOR, Role.OUTCOME) and col.name != "diverged":
            assert col.nullable, col.name
    diverged = table.assign(variance=[None] + list(table["variance"][1:]))
    assert validate_runs(diverged)["variance"].isna().sum() == 1


def test_validate_runs_on_dataframes(table):
    out = validate_runs(table.assign(capacity=table["capacity"].astype("float32")))
    assert out["capacity"].dtype == "float64"
    assert validate_runs(pd.DataFrame({"pretrained": [1.0, None]}))["pretrained"].isna().sum() == 1
    with pytest.raises(SchemaError, match="'run_id' has 1 null"):
        validate_runs(table.assign(run_id=[None] + list(table["run_id"][1:])))
    with pytest.raises(SchemaError, match="empty"):
        validate_runs(table.iloc[:0])


def test_an_unfinished_sweep_is_noted_from_its_manifest(tmp_path):
    from causal.load import unfinished_note

    (tmp_path / "_sweep.json").write_text(json.dumps({"plan": [[0, 1], [2, 3], [4]]}))
    note = unfinished_note(tmp_path, 2)
    assert note is not None and "2 of its 5 runs" in note and f"udl status {tmp_path}" in note
    assert unfinished_note(tmp_path, 5) is None
    assert unfinished_note(tmp_path / "shard-00000.parquet", 1) is None  # a file, no manifest
    (tmp_path / "_sweep.json").write_text("{not json")
    assert unfinished_note(tmp_path, 1) is None
