"""A sweep directory as a whole: its status, and compacting its shards into a few large files.

:func:`status` compares the manifest's shard plan with the data files and the
failure records: which shards are done, missing or failed (with their errors),
and whether any shard's rows are on disk twice.

:func:`compact` merges a finished sweep's shards into ``part-*.parquet`` files
of whole shards (each lists its shards in its metadata, so a rerun of
``udl generate`` still sees every shard done). It must never let a reader count
a row twice or miss one, even when killed at any instant, and a flat directory
cannot swap a set of files atomically: a reader could list the new part file
and the old shards it replaces. So the new directory is built beside the old
one (``.NAME.compact``: the merged files, fsynced, plus hard links to every
non-data file), checked against the plan row by row, and swapped with the old
directory in one ``renameat2(RENAME_EXCHANGE)`` call (Linux). A reader then sees
the whole old directory or the whole new one (one that listed the old files
just before the swap fails to open them: an error, never a wrong count); a kill before the swap leaves the
old one untouched, a kill after it leaves only the hidden leftover, which the
next ``compact`` (or ``generate``) removes. Where the exchange is not supported
(another OS, some network filesystems) two renames are used instead: the old
directory moves aside, then the new one takes its name. A kill between them
leaves no directory at ``NAME`` (a reader fails; it never double-counts) and
the next ``compact``/``generate``/``status`` finishes the swap. Two compactions
of one directory exclude each other with a lock file beside it. Compact while
no ``udl generate`` writes into the directory: it refuses an unfinished sweep.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from causal.errors import ConfigError, SchemaError
from runs_generator import storage

__all__ = ["SweepStatus", "status", "CompactResult", "compact", "finish_interrupted_compact"]

log = logging.getLogger("runs_generator.sweepdir")

DEFAULT_MAX_ROWS = 200_000  # rows per compacted file: ~tens of MB with the runs schema


@dataclass(frozen=True)
class SweepStatus:
    """Where a sweep stands. Shard lists are sorted; ``errors`` maps a failed shard to its last error."""

    out: Path
    runs: int
    shards: int
    done: list[int]
    missing: list[int]  # neither written nor failed (not started, running, or killed)
    failed: list[int]  # not written, with recorded failed attempts
    errors: dict[int, str]
    retried: list[int]  # written after failed attempts
    duplicated: dict[int, list[str]]  # shard -> the files that each hold its rows (damage)
    rows_done: int
    files: int
    damaged: dict[str, str] = field(default_factory=dict)  # unreadable data file -> the reader's error

    @property
    def complete(self) -> bool:
        return not self.missing and not self.failed and not self.duplicated and not self.damaged

    def as_json(self) -> dict:
        return {
            "out": str(self.out), "runs": self.runs, "shards": self.shards, "done": self.done,
            "missing": self.missing, "failed": self.failed, "errors": {str(k): v for k, v in self.errors.items()},
            "retried": self.retried, "duplicated": {str(k): v for k, v in self.duplicated.items()},
            "rows_done": self.rows_done, "files": self.files, "damaged": dict(self.damaged),
            "complete": self.complete,
        }

    def summary(self) -> str:
        """A few lines for a terminal."""
        lines = [
            f"{self.out}: {len(self.done)}/{self.shards} shards done ({self.rows_done}/{self.runs} runs) in "
            f"{self.files} file(s); {len(self.missing)} missing, {len(self.failed)} failed"
            + (f"; {len(self.retried)} done after retries" if self.retried else ""),
        ]
        if self.missing:
            lines.append(f"missing: {_ranges(self.missing)}")
        for s in self.failed[:20]:
            lines.append(f"failed shard {s}: {self.errors[s]}  (traceback: {storage.FAILURES}/shard-{s:05d}.json)")
        if len(self.failed) > 20:
            lines.append(f"... and {len(self.failed) - 20} more failed shards")
        for s, files in sorted(self.duplicated.items())[:20]:
            lines.append(f"DUPLICATED shard {s}: its rows are in {files}; remove all but one file")
        for name, err in sorted(self.damaged.items())[:20]:
            lines.append(f"DAMAGED file {name}: not readable ({err}); delete it and rerun the same `udl generate` "
                         "command to retrain its shard(s)")
        return "\n".join(lines)


def _ranges(xs: list[int]) -> str:
    out, start = [], None
    for i, x in enumerate(xs):
        if start is None:
            start = x
        if i + 1 == len(xs) or xs[i + 1] != x + 1:
            out.append(str(start) if start == x else f"{start}-{x}")
            start = None
    return ", ".join(out)


def _plan(out: Path) -> list[list[int]]:
    manifest = storage.read_manifest(out)
    try:
        return [[int(i) for i in shard] for shard in manifest["plan"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"the shard plan in {str(Path(out) / storage.MANIFEST)!r} is unreadable ({exc!r})") from None


def status(out: str | os.PathLike) -> SweepStatus:
    """Done, missing and failed shards of a sweep directory (read-only but for an interrupted compact).

    Raises
    ------
    ConfigError
        If ``out`` is not a sweep directory (no readable manifest).
    """
    finish_interrupted_compact(out)
    return _status(Path(out))


def _status(out: Path) -> SweepStatus:
    if not out.is_dir():
        raise ConfigError(f"{str(out)!r} is not a directory; pass the --out directory of `udl generate`")
    plan = _plan(out)
    damaged = _unreadable(out)
    where = storage.shard_locations(out, skip=set(damaged))
    failures = storage.read_failures(out)
    done = sorted(s for s in where if s < len(plan))
    failed = sorted(s for s in failures if s not in where and s < len(plan))
    missing = sorted(set(range(len(plan))) - set(done) - set(failed))
    errors = {s: failures[s][-1].get("error", "?") for s in failed}
    return SweepStatus(
        out=out, runs=sum(len(p) for p in plan), shards=len(plan), done=done, missing=missing, failed=failed,
        errors=errors, retried=sorted(s for s in failures if s in where),
        duplicated={s: f for s, f in where.items() if len(f) > 1}, rows_done=sum(len(plan[s]) for s in done),
        files=len(storage.data_files(out)), damaged=damaged,
    )


def _unreadable(out: Path) -> dict[str, str]:
    """Data files whose parquet footer cannot be read (cut short, overwritten), by name, with the error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = {}
    for p in storage.data_files(out):
        try:
            pq.read_metadata(p)
        except (OSError, pa.ArrowException) as exc:
            bad[p.name] = str(exc).splitlines()[0][:200]
    return bad


# ------------------------------------------------------------------------------------------------ compact


@dataclass(frozen=True)
class CompactResult:
    out: Path
    files_before: int
    files_after: int
    rows: int
    atomic: bool  # swapped with one RENAME_EXCHANGE (False: two renames)


def _siblings(out: Path) -> tuple[Path, Path, Path]:
    """(build directory, old directory during a two-rename swap, lock file), hidden beside ``out``."""
    out = Path(os.path.abspath(out))
    return (out.with_name(f".{out.name}.compact"), out.with_name(f".{out.name}.compact-old"),
            out.with_name(f".{out.name}.compact.lock"))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False when the OS or filesystem cannot."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE) failed: {os.strerror(err)}")


def finish_interrupted_compact(out: str | os.PathLike) -> None:
    """Complete or undo a compaction that was killed; a no-op otherwise (or while one runs).

    ``out`` missing with both hidden siblings present is a kill between the two
    renames of the fallback swap: the new directory is complete, so it takes the
    name. ``out`` present: any hidden sibling is a leftover (an unfinished build,
    or the old directory after the swap) and is removed.
    """
    build, old, lockfile = _siblings(Path(out))
    if not (build.exists() or old.exists()):
        return
    try:
        with _lock(lockfile):
            _finish_interrupted(Path(out))
    except _Busy:
        return  # a compaction is running: its siblings are not leftovers


def _finish_interrupted(out: Path) -> None:
    build, old, _ = _siblings(out)
    if old.is_dir() and out.is_dir() and not any(out.iterdir()):
        out.rmdir()  # an empty directory made at out after the kill holds nothing to keep
    if not out.exists() and old.is_dir():
        if build.is_dir():
            os.rename(build, out)
            log.info("finished an interrupted compaction of %s", out)
        else:
            os.rename(old, out)
            log.info("undid an interrupted compaction of %s", out)
    if out.exists() and old.exists() and build.exists():  # both copies beside a third: nothing is certain
        raise ConfigError(f"{str(out)!r} exists beside both copies of an interrupted compaction ({build.name}, "
                          f"{old.name}); keep the one that `udl status` reads as complete, rename it to "
                          f"{out.name} and remove the others")
    if out.exists():
        for leftover in (build, old):
            if leftover.exists():
                shutil.rmtree(leftover)


class _Busy(ConfigError):
    """Another process holds the compaction lock."""


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive, non-blocking lock on ``path`` (created; removed by the holder on exit)."""
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot create the lock file {str(path)!r} ({exc.strerror}); compacting needs "
                              "write access to the directory that holds the sweep directory") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _Busy(f"another `udl compact` holds {str(path)!r}; wait for it to finish") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder before us removed the file after we opened it: lock the new one
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def compact(out: str | os.PathLike, *, max_rows: int = DEFAULT_MAX_ROWS) -> CompactResult:
    """Merge a finished sweep's data files into files of at most ``max_rows`` rows (whole shards).

    Every row is kept exactly once: the merged files are checked against the
    manifest's plan (each planned run exactly once) before they replace the old
    files, and the replacement is atomic (see the module docstring).

    Raises
    ------
    ConfigError
        If the sweep is unfinished (names the missing and failed shards), a shard
        is on disk twice, ``max_rows`` is not a positive integer, or another
        compaction holds the directory.
    SchemaError
        If a data file does not match the declared schema (names the file and column).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ConfigError(f"max_rows must be an integer >= 1; received {max_rows!r}")
    out = Path(os.path.abspath(out))
    build, _, lockfile = _siblings(out)
    with _lock(lockfile):
        _finish_interrupted(out)
        st = _status(out)
        if not st.complete:
            problems = []
            if st.missing:
                problems.append(f"{len(st.missing)} missing ({_ranges(st.missing)[:80]})")
            if st.failed:
                problems.append(f"{len(st.failed)} failed ({_ranges(st.failed)[:80]})")
            if st.duplicated:
                problems.append(f"{len(st.duplicated)} on disk twice ({sorted(st.duplicated)[:8]})")
            if st.damaged:
                problems.append(f"{len(st.damaged)} file(s) unreadable ({sorted(st.damaged)[:4]}: delete them and "
                                "rerun `udl generate` to retrain their shards)")
            raise ConfigError(f"{out} is not a finished sweep: shards {'; '.join(problems)}. Finish it with the "
                              "same `udl generate` command (or fix the duplicates) before compacting")
        plan = _plan(out)
        files = storage.data_files(out)
        # group whole shards into files in shard order, at most max_rows rows each (a bigger shard alone)
        groups: list[list[int]] = [[]]
        rows_in = 0
        for s in range(len(plan)):
            if groups[-1] and rows_in + len(plan[s]) > max_rows:
                groups.append([])
                rows_in = 0
            groups[-1].append(s)
            rows_in += len(plan[s])
        if build.exists():
            shutil.rmtree(build)
        build.mkdir()
        try:
            for p in out.iterdir():  # everything that is not data: manifest, failure records, logs (hard links)
                if p.name.startswith(".") and p.name.endswith(".tmp"):
                    continue
                if p in files:
                    continue
                if p.is_dir():
                    shutil.copytree(p, build / p.name, copy_function=_link_or_copy, symlinks=True)
                else:
                    _link_or_copy(str(p), str(build / p.name))
            shard_of = {i: s for s, idx in enumerate(plan) for i in idx}
            tables: dict[int, list[pa.Table]] = {}
            sources: list[dict] = []
            for f in files:
                table = _read_checked(f)
                meta = (table.schema.metadata or {}).get(b"udl.sweep")
                if meta is not None and meta not in sources:
                    sources.append(meta)
                shard = pa.array([shard_of.get(int(i), -1) for i in table.column("run_index").to_pylist()])
                for s in set(shard.to_pylist()):
                    tables.setdefault(s, []).append(table.filter(pc.equal(shard, s)))
            if -1 in tables:
                raise SchemaError(f"{out}: rows with run_index outside the plan; the directory is damaged")
            written = 0
            identity = storage.read_manifest(out).get("identity", {})
            for k, group in enumerate(groups):
                parts = [t for s in group for t in tables.get(s, [])]
                table = pa.concat_tables([t.replace_schema_metadata(None) for t in parts])
                table = table.sort_by("run_index")
                expected = sorted(i for s in group for i in plan[s])
                got = table.column("run_index").to_pylist()
                if got != expected:  # a lost or duplicated row: never swap such a directory in
                    raise SchemaError(f"{out}: shards {group[:5]}... hold run indices that differ from the plan "
                                      f"({len(got)} rows, {len(expected)} planned); the directory is damaged")
                storage.write_part(build, k, table, group, {"identity": identity, "sources": [
                    m.decode() for m in sources[:50]]})
                written += table.num_rows
            if written != sum(len(p) for p in plan):
                raise SchemaError(f"{out}: compacted {written} rows, the plan has {sum(len(p) for p in plan)}")
            os.chmod(build, out.stat().st_mode & 0o7777)
            storage.fsync_path(build)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
        atomic = _swap(build, out)
        storage.fsync_path(out.parent)
        shutil.rmtree(build if atomic else _siblings(out)[1], ignore_errors=True)
    return CompactResult(out, len(files), len(groups), written, atomic)


def _swap(build: Path, out: Path) -> bool:
    """Put ``build`` at ``out``: one atomic exchange, or two renames (see the module docstring)."""
    if _exchange(build, out):
        return True
    old = _siblings(out)[1]
    os.rename(out, old)
    os.rename(build, out)
    return False


def _read_checked(path: Path):
    """A data file as a pyarrow table, after the schema checks of :func:`storage.read_shards`."""
    import pyarrow.parquet as pq

    from causal.schema import SCHEMA_VERSION

    import pyarrow as pa

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise SchemaError(f"{path.name}: not a readable parquet file ({str(exc).splitlines()[0][:200]}); delete it "
                          "and rerun the same `udl generate` command to retrain its shard(s)") from None
    meta = table.schema.metadata or {}
    version = meta.get(b"udl.schema_version", b"?").decode()
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise SchemaError(f"{path.name}: schema version {version}, this reader expects {SCHEMA_VERSION}")
    for col in storage.ARROW_SCHEMA:
        if col.name not in table.schema.names:
            raise SchemaError(f"{path.name}: column {col.name!r} is missing")
        if table.schema.field(col.name).type != col.type:
            raise SchemaError(f"{path.name}: column {col.name!r} has type {table.schema.field(col.name).type}, "
                              f"expected {col.type}")
    return table.select(storage.ARROW_SCHEMA.names)
