"""`udl status` and `udl compact` on sweep directories: every row kept once, atomic under kills."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow.dataset as ds
import pytest

from causal.errors import ConfigError
from runs_generator import storage, sweepdir
from runs_generator.sweep import generate
from test_sweep import KW, CrashAfter, _rows, fake_train

RUNS = 23


@pytest.fixture
def sweep(tmp_path):
    out = generate(runs=RUNS, seed=4, out=tmp_path / "sweep", shard_size=3, trainer=fake_train, **KW)
    (out / storage.FAILURES).mkdir()  # a failure record and cluster logs live in '_' folders
    (out / storage.FAILURES / "shard-00001.json").write_text(json.dumps({"shard": 1, "attempts": [{"error": "x"}]}))
    (out / "_submitit").mkdir()
    (out / "_submitit" / "log.out").write_text("log")
    return out


def _readers_see(out) -> pd.DataFrame:
    """What plain readers see: pandas and a pyarrow dataset must agree, rows sorted by run index."""
    df = pd.read_parquet(out).sort_values("run_index", ignore_index=True)
    assert ds.dataset(out, format="parquet").count_rows() == len(df)
    return df


def test_status_counts_done_missing_and_failed(tmp_path):
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        generate(runs=RUNS, seed=4, out=out, shard_size=3, trainer=CrashAfter(3), **KW)
    st = sweepdir.status(out)
    assert st.shards == 8 and st.done == [0, 1, 2] and st.missing == list(range(3, 8)) and st.failed == []
    assert st.rows_done == sum(len(s) for s in json.loads((out / storage.MANIFEST).read_text())["plan"][:3])
    assert not st.complete and "missing: 3-7" in st.summary()
    assert json.loads(json.dumps(st.as_json()))["missing"] == [3, 4, 5, 6, 7]


def test_status_of_a_directory_that_is_not_a_sweep_says_so(tmp_path):
    with pytest.raises(ConfigError, match="no _sweep.json"):
        sweepdir.status(tmp_path)


@pytest.mark.parametrize("max_rows", [1, 7, 10**6])
def test_compact_keeps_every_row_once_and_readers_still_read_the_directory(sweep, max_rows):
    before = _rows(sweep)
    res = sweepdir.compact(sweep, max_rows=max_rows)
    assert res.rows == RUNS and res.files_before == 8 and res.atomic
    files = storage.data_files(sweep)
    assert len(files) == res.files_after and all(f.name.startswith("part-") for f in files)
    assert res.files_after == (1 if max_rows == 10**6 else 8 if max_rows == 1 else res.files_after) >= 1
    if max_rows == 7:
        assert 4 <= res.files_after < 8 and all(pq_rows(f) <= 7 for f in files)
    pd.testing.assert_frame_equal(_rows(sweep), before)
    seen = _readers_see(sweep)
    assert list(seen["run_index"]) == list(range(RUNS))
    # everything else is still there, and nothing is left beside the directory
    assert (sweep / "_submitit" / "log.out").read_text() == "log" and (sweep / storage.FAILURES).is_dir()
    assert sorted(p.name for p in sweep.parent.iterdir()) == ["sweep"]
    # the sweep is still complete for `udl status` and `udl generate` (which trains nothing)
    assert sweepdir.status(sweep).complete
    generate(runs=RUNS, seed=4, out=sweep, shard_size=3, trainer=CrashAfter(0), **KW)
    # compacting again (into one file) keeps every row too
    sweepdir.compact(sweep, max_rows=10**6)
    pd.testing.assert_frame_equal(_rows(sweep), before)


def pq_rows(path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def test_compact_refuses_an_unfinished_sweep(tmp_path):
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        generate(runs=RUNS, seed=4, out=out, shard_size=3, trainer=CrashAfter(2), **KW)
    with pytest.raises(ConfigError, match=r"not a finished sweep: shards 6 missing \(2-7\)"):
        sweepdir.compact(out)
    assert sorted(p.name for p in storage.data_files(out)) == ["shard-00000.parquet", "shard-00001.parquet"]


def test_compact_refuses_rows_that_are_on_disk_twice(sweep):
    spare = sweep.parent / "spare.parquet"
    shutil.copy(sweep / "shard-00003.parquet", spare)
    sweepdir.compact(sweep)
    shutil.copy(spare, sweep / "shard-00003.parquet")  # e.g. copied back by hand
    st = sweepdir.status(sweep)
    assert list(st.duplicated) == [3] and not st.complete and "DUPLICATED shard 3" in st.summary()
    with pytest.raises(ConfigError, match="on disk twice"):
        sweepdir.compact(sweep)


def test_a_cut_short_shard_is_reported_damaged_and_compact_refuses_it_by_name(sweep):
    """A data file cut short (a copy that failed, a disk fault) is not done: status names it and the fix, and
    compact refuses the sweep with that message instead of a reader's traceback."""
    path = sweep / "shard-00002.parquet"
    path.write_bytes(path.read_bytes()[:300])
    st = sweepdir.status(sweep)
    assert list(st.damaged) == ["shard-00002.parquet"] and 2 not in st.done and not st.complete
    assert "DAMAGED file shard-00002.parquet" in st.summary() and "delete it" in st.summary()
    assert json.loads(json.dumps(st.as_json()))["damaged"]
    with pytest.raises(ConfigError, match=r"1 file\(s\) unreadable \(\['shard-00002.parquet'\]"):
        sweepdir.compact(sweep)
    path.unlink()  # the fix the message gives: delete it and rerun the same command
    generate(runs=RUNS, seed=4, out=sweep, shard_size=3, trainer=fake_train, **KW)
    assert sweepdir.status(sweep).complete


class Kill(BaseException):
    """A stand-in for SIGKILL at one point of the compaction (BaseException, like KeyboardInterrupt)."""


@pytest.mark.parametrize("where", ["second_part", "before_swap", "after_swap"])
def test_a_compaction_killed_anywhere_leaves_the_old_or_the_new_files_never_both(sweep, monkeypatch, where):
    before = _rows(sweep)
    write_part, swap = storage.write_part, sweepdir._swap
    calls = []

    def part(*a, **k):
        calls.append(1)
        if where == "second_part" and len(calls) == 2:
            raise Kill
        return write_part(*a, **k)

    def swap_then_kill(build, out):
        if where == "before_swap":
            raise Kill
        swap(build, out)
        raise Kill  # killed before removing the old directory

    monkeypatch.setattr(storage, "write_part", part)
    monkeypatch.setattr(sweepdir, "_swap", swap_then_kill)
    with pytest.raises(Kill):
        sweepdir.compact(sweep, max_rows=5)
    seen = _readers_see(sweep)
    assert list(seen["run_index"]) == list(range(RUNS))  # all rows, each once
    kinds = {f.name[:5] for f in storage.data_files(sweep)}
    assert kinds == ({"part-"} if where == "after_swap" else {"shard"})
    monkeypatch.undo()
    sweepdir.compact(sweep, max_rows=5)  # removes the leftover and finishes
    assert sorted(p.name for p in sweep.parent.iterdir()) == ["sweep"]
    pd.testing.assert_frame_equal(_rows(sweep), before)


@pytest.mark.parametrize("finisher", ["status", "generate"])
def test_without_an_atomic_exchange_a_kill_between_the_renames_is_finished_later(sweep, monkeypatch, finisher):
    before = _rows(sweep)
    monkeypatch.setattr(sweepdir, "_exchange", lambda a, b: False)
    res = sweepdir.compact(sweep, max_rows=5)
    assert not res.atomic and sorted(p.name for p in sweep.parent.iterdir()) == ["sweep"]
    pd.testing.assert_frame_equal(_rows(sweep), before)

    import os

    real_rename = os.rename
    calls = []

    def rename(a, b):
        calls.append(1)
        if len(calls) == 2:
            raise Kill  # the old directory moved aside, the new one not yet in place
        real_rename(a, b)

    monkeypatch.setattr(sweepdir.os, "rename", rename)
    with pytest.raises(Kill):
        sweepdir.compact(sweep, max_rows=100)
    monkeypatch.setattr(sweepdir.os, "rename", real_rename)
    assert not sweep.exists()  # a reader fails here; it never counts a row twice
    if finisher == "generate":  # the same sweep rerun finishes the swap and finds every shard done
        generate(runs=RUNS, seed=4, out=sweep, shard_size=3, trainer=CrashAfter(0), **KW)
    assert sweepdir.status(sweep).complete  # finishes the swap (if generate did not)
    assert len(storage.data_files(sweep)) == 1 and sorted(p.name for p in sweep.parent.iterdir()) == ["sweep"]
    pd.testing.assert_frame_equal(_rows(sweep), before)


def test_bad_max_rows_is_refused(sweep):
    with pytest.raises(ConfigError, match="max_rows"):
        sweepdir.compact(sweep, max_rows=0)
