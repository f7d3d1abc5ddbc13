"""Parquet shards and the sweep manifest (DESIGN.md §5).

A sweep directory holds

- ``_sweep.json`` — the manifest: the resolved sweep configuration and the shard
  plan. A rerun into the same directory must carry the same configuration (its
  :func:`identity`), or it is refused.
- ``shard-00000.parquet``, ``shard-00001.parquet``, ... — one file per shard of
  runs, written against :data:`ARROW_SCHEMA` (built from
  :data:`causal.schema.RUNS_SCHEMA`) with the schema version, the column list,
  the sweep configuration and package versions in the file's key-value metadata.
- ``part-00000.parquet``, ... — after ``udl compact``: several whole shards per
  file; the key ``udl.shards`` in each file's metadata lists them.
- ``_failures/shard-00003.json`` — the failed attempts of a shard (error and
  traceback), kept after a later attempt succeeds.

Every non-data file starts with ``_`` or ``.`` (DESIGN.md §5), so
``pandas.read_parquet(DIR)``, pyarrow datasets and DuckDB read the directory as
it is. Every file is written to a temporary name in the same directory
(``.shard-00000.parquet.<host>-<pid>.tmp``) and atomically renamed with
:func:`os.replace`, so a shard file either exists complete or not at all. A
killed sweep leaves at most stray ``*.tmp`` files; no reader looks at them and
:func:`clean_stray_temps` removes those whose writer is gone (never those of a
live process, which may be another slice of the sweep writing into the same
directory).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from causal.errors import ConfigError, SchemaError
from causal.schema import RUNS_SCHEMA, SCHEMA_VERSION, Dtype

__all__ = [
    "ARROW_SCHEMA",
    "MANIFEST",
    "FAILURES",
    "shard_path",
    "shard_index",
    "part_path",
    "part_index",
    "data_files",
    "prepare_dir",
    "write_manifest",
    "create_manifest",
    "read_manifest",
    "check_manifest",
    "write_shard",
    "write_part",
    "shards_in_file",
    "shard_locations",
    "finished_shards",
    "record_failure",
    "read_failures",
    "clean_stray_temps",
    "read_shards",
]

MANIFEST = "_sweep.json"
FAILURES = "_failures"
_SHARD_RE = re.compile(r"^shard-(\d{5,})\.parquet$")
_PART_RE = re.compile(r"^part-(\d{5,})\.parquet$")
# .<target>.<pid>.tmp (older sweeps) or .<target>.<host>-<pid>.tmp
_TEMP_RE = re.compile(r"^\.(?:shard-\d{5,}\.parquet|part-\d{5,}\.parquet|_sweep\.json)\.(?:([A-Za-z0-9_]+)-)?(\d+)\.tmp$")
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"
_ARROW = {Dtype.FLOAT: pa.float64(), Dtype.INT: pa.int64(), Dtype.STRING: pa.string()}

#: the pyarrow schema of a shard, built from the declared columns
ARROW_SCHEMA = pa.schema([pa.field(c.name, _ARROW[c.dtype], nullable=c.nullable) for c in RUNS_SCHEMA])


def shard_path(out: Path, index: int) -> Path:
    """``out/shard-{index:05d}.parquet``."""
    return Path(out) / f"shard-{index:05d}.parquet"


def shard_index(path: Path) -> int | None:
    """The shard index encoded in a shard file name, or None for any other file."""
    m = _SHARD_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def part_path(out: Path, index: int) -> Path:
    """``out/part-{index:05d}.parquet``: a compacted file of several shards."""
    return Path(out) / f"part-{index:05d}.parquet"


def part_index(path: Path) -> int | None:
    """The index encoded in a compacted file name, or None for any other file."""
    m = _PART_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def data_files(out: Path) -> list[Path]:
    """The shard and compacted files of a sweep directory: what readers read (sorted by name)."""
    return sorted(p for p in Path(out).iterdir() if _SHARD_RE.match(p.name) or _PART_RE.match(p.name))


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.tmp")


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file or a directory) to the disk; a filesystem that cannot fsync a directory is let be
    (as is Windows, where a directory cannot be opened)."""
    is_dir = Path(path).is_dir()
    if is_dir and os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY if is_dir else os.O_RDWR)  # Windows flushes only a writable descriptor
    try:
        os.fsync(fd)
    except OSError:
        if not is_dir:
            raise
    finally:
        os.close(fd)


def _atomic_write(path: Path, write, *, exclusive: bool = False) -> bool:
    """Call ``write(tmp_path)``, fsync it, then rename the temp file onto ``path`` atomically.

    With ``exclusive`` the temp file is hard-linked to ``path`` instead, which fails
    if ``path`` exists: the first writer wins. Returns False when it lost. The
    data reach the disk before the name does, and the directory is synced after,
    so a machine that loses power leaves the file whole or absent, never a
    complete-looking name on a short file that a resumed sweep would skip.
    """
    tmp = _temp_name(path)
    try:
        write(tmp)
        fsync_path(tmp)
        if not exclusive:
            os.replace(tmp, path)
            fsync_path(path.parent)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: last writer wins (the plans are equal anyway)
            os.replace(tmp, path)
        fsync_path(path.parent)
        return True
    finally:
        if tmp.exists():
            tmp.unlink()


def prepare_dir(out: Path) -> Path:
    """Create ``out`` (and parents) and check it is a writable directory.

    Raises
    ------
    ConfigError
        If ``out`` is a file, cannot be created, or is not writable.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {str(out)!r} exists and is not a directory; pass a directory for --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {str(out)!r}: {exc.strerror}; choose another --out") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"output directory {str(out)!r} is not writable; choose another --out or fix its permissions")
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stray_temps(out: Path, *, other_hosts_after_s: float = 86400.0) -> list[Path]:
    """Remove temp files that killed writers left in ``out``; return what was removed.

    A temp file of this host is removed when its writer's pid is gone; one of
    another host (a cluster node writing into a shared directory) only when it is
    older than ``other_hosts_after_s``, since its writer may still be running.
    """
    removed = []
    now = time.time()
    for p in Path(out).iterdir():
        m = _TEMP_RE.match(p.name)
        if not m:
            continue
        host, pid = m.group(1), int(m.group(2))
        if host in (None, _HOST):
            stale = not _pid_alive(pid) or pid == os.getpid()
        else:
            try:
                stale = now - p.stat().st_mtime > other_hosts_after_s
            except FileNotFoundError:
                continue
        if stale:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def write_manifest(out: Path, manifest: Mapping[str, Any]) -> Path:
    """Write the manifest (``_sweep.json``) atomically."""
    path = Path(out) / MANIFEST
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    _atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def create_manifest(out: Path, manifest: Mapping[str, Any]) -> bool:
    """Write the manifest only if none exists (atomically); return whether this call wrote it.

    Slices of one sweep started at once on many machines all try; the first wins
    and every slice then reads the plan from the file, so all use one plan.
    """
    path = Path(out) / MANIFEST
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    return _atomic_write(path, lambda tmp: tmp.write_text(text), exclusive=True)


def read_manifest(out: Path) -> dict[str, Any]:
    """The manifest of a sweep directory.

    Raises
    ------
    ConfigError
        If ``out`` holds no manifest or it is unreadable.
    """
    path = Path(out) / MANIFEST
    if not path.exists():
        raise ConfigError(f"{str(out)!r} holds no {MANIFEST}; is it a sweep directory written by `udl generate`?")
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
        return manifest
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the sweep manifest {str(path)!r} ({exc}); the directory is damaged") from None


def check_manifest(out: Path, identity: Mapping[str, Any]) -> bool:
    """Compare an existing manifest's ``identity`` with this sweep's.

    Returns
    -------
    bool
        True when ``out`` already holds a manifest of the same sweep (a resume),
        False when it holds none (a new sweep).

    Raises
    ------
    ConfigError
        If the manifest describes a different sweep (names the keys that differ), is
        unreadable, or shard files lie in ``out`` without a manifest.
    """
    path = Path(out) / MANIFEST
    if not path.exists():
        strays = [p.name for p in data_files(out)]
        if strays:
            raise ConfigError(
                f"{str(out)!r} holds shard files ({strays[0]}, ...) but no {MANIFEST}; it is not a sweep this tool "
                "can resume. Use an empty directory for --out"
            )
        return False
    try:
        old = json.loads(path.read_text())["identity"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read the sweep manifest {str(path)!r} ({exc}); use an empty directory for --out") from None
    new = json.loads(json.dumps(dict(identity)))  # normalise tuples etc. as JSON sees them
    if old != new:
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        diffs = "; ".join(f"{k}: existing {old.get(k)!r}, requested {new.get(k)!r}" for k in keys)
        raise ConfigError(
            f"{str(out)!r} holds a different sweep ({diffs}). Rerun with the original settings to resume it, "
            "or choose another --out"
        )
    return True


def write_shard(out: Path, index: int, rows: Sequence[Mapping[str, Any]], metadata: Mapping[str, Any]) -> Path:
    """Write one shard of rows atomically; return its path.

    ``metadata`` (JSON-serialisable) is stored as ``udl.sweep`` beside the schema
    version, the column list and ``udl.shard``.
    """
    table = pa.Table.from_pylist([dict(r) for r in rows], schema=ARROW_SCHEMA)
    meta = {
        b"udl.schema_version": SCHEMA_VERSION.encode(),
        b"udl.columns": json.dumps([c.name for c in RUNS_SCHEMA]).encode(),
        b"udl.sweep": json.dumps(dict(metadata), sort_keys=True).encode(),
        b"udl.shard": str(index).encode(),
    }
    table = table.replace_schema_metadata(meta)
    path = shard_path(out, index)
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return path


def write_part(out: Path, index: int, table: pa.Table, shards: Sequence[int], metadata: Mapping[str, Any]) -> Path:
    """Write one compacted file (``table`` holds the rows of ``shards``) atomically (fsynced, as every write)."""
    meta = {
        b"udl.schema_version": SCHEMA_VERSION.encode(),
        b"udl.columns": json.dumps([c.name for c in RUNS_SCHEMA]).encode(),
        b"udl.sweep": json.dumps(dict(metadata), sort_keys=True).encode(),
        b"udl.shards": json.dumps(sorted(int(s) for s in shards)).encode(),
    }
    table = table.cast(ARROW_SCHEMA).replace_schema_metadata(meta)
    path = part_path(out, index)

    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return path


def shards_in_file(path: Path) -> list[int]:
    """The shards whose rows a data file holds: its own index, or a compacted file's ``udl.shards``.

    Raises
    ------
    SchemaError
        If a compacted file's metadata does not list its shards.
    """
    path = Path(path)
    if (i := shard_index(path)) is not None:
        return [i]
    try:
        meta = pq.read_schema(path).metadata or {}
        return [int(s) for s in json.loads(meta[b"udl.shards"])]
    except (OSError, KeyError, ValueError, TypeError, pa.ArrowException) as exc:
        raise SchemaError(f"{path.name}: a compacted file without a readable 'udl.shards' list ({exc!r}); "
                          "the directory is damaged: restore it or regenerate the sweep") from None


def shard_locations(out: Path, skip: "set[str] | frozenset[str]" = frozenset()) -> dict[int, list[str]]:
    """Shard index -> the data files holding its rows (more than one means duplicated rows); files named in
    ``skip`` are left out."""
    where: dict[int, list[str]] = {}
    for p in data_files(out):
        if p.name in skip:
            continue
        for s in shards_in_file(p):
            where.setdefault(s, []).append(p.name)
    return where


def finished_shards(out: Path) -> set[int]:
    """Indices of the shards whose rows are in ``out`` (complete by construction)."""
    return set(shard_locations(out))


def _failure_path(out: Path, index: int) -> Path:
    return Path(out) / FAILURES / f"shard-{index:05d}.json"


def record_failure(out: Path, index: int, exc: BaseException, attempt: int) -> Path:
    """Append a failed attempt of shard ``index`` (error and traceback) to ``_failures/``."""
    path = _failure_path(out, index)
    path.parent.mkdir(exist_ok=True)
    attempts = read_failures(out, index).get(index, [])
    attempts.append({
        "attempt": int(attempt),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    })
    text = json.dumps({"shard": int(index), "attempts": attempts}, indent=1) + "\n"
    _atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def read_failures(out: Path, index: int | None = None) -> dict[int, list[dict[str, Any]]]:
    """Shard index -> its recorded failed attempts (oldest first); one shard with ``index``."""
    folder = Path(out) / FAILURES
    paths = [_failure_path(out, index)] if index is not None else sorted(folder.glob("shard-*.json"))
    found: dict[int, list[dict[str, Any]]] = {}
    for p in paths:
        try:
            record = json.loads(p.read_text())
            found[int(record["shard"])] = list(record["attempts"])
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a damaged record still counts as a failure
            m = re.match(r"shard-(\d+)\.json$", p.name)
            if m:
                found[int(m.group(1))] = [{"attempt": 0, "error": f"unreadable failure record {p.name}: {exc}",
                                           "traceback": ""}]
    return found


def read_shards(out: Path):
    """Read every shard (and compacted file) of a sweep directory into one DataFrame sorted by ``run_index``.

    A small reader for tests and quick looks; analyses use ``causal.load_runs``.

    Raises
    ------
    SchemaError
        If a shard's schema version or columns differ from the declared schema
        (names the file and the column).
    """
    import pandas as pd

    paths = data_files(out)
    frames = []
    for p in paths:
        table = pq.read_table(p)
        meta = table.schema.metadata or {}
        version = meta.get(b"udl.schema_version", b"?").decode()
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise SchemaError(f"{p.name}: schema version {version}, this reader expects {SCHEMA_VERSION}")
        for field in ARROW_SCHEMA:
            if field.name not in table.schema.names:
                raise SchemaError(f"{p.name}: column {field.name!r} is missing")
            if table.schema.field(field.name).type != field.type:
                raise SchemaError(
                    f"{p.name}: column {field.name!r} has type {table.schema.field(field.name).type}, expected {field.type}"
                )
        frames.append(table.to_pandas())
    if not frames:
        return pd.DataFrame({f.name: pd.Series(dtype=f.type.to_pandas_dtype()) for f in ARROW_SCHEMA})
    return pd.concat(frames, ignore_index=True).sort_values("run_index", ignore_index=True)
