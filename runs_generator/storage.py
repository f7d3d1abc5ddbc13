"""Parquet shards and the sweep manifest (DESIGN.md §5).

A sweep directory holds

- ``_sweep.json`` — the manifest: the resolved sweep configuration and the shard
  plan. A rerun into the same directory must carry the same configuration (its
  :func:`identity`), or it is refused.
- ``shard-00000.parquet``, ``shard-00001.parquet``, ... — one file per shard of
  runs, written against :data:`ARROW_SCHEMA` (built from
  :data:`causal.schema.RUNS_SCHEMA`) with the schema version, the column list,
  the sweep configuration and package versions in the file's key-value metadata.

Every non-shard file starts with ``_`` or ``.`` (DESIGN.md §5), so
``pandas.read_parquet(DIR)``, pyarrow datasets and DuckDB read the directory as
it is. Every file is written to a temporary name in the same directory
(``.shard-00000.parquet.<pid>.tmp``) and atomically renamed with
:func:`os.replace`, so a shard file either exists complete or not at all. A
killed sweep leaves at most stray ``*.tmp`` files; :func:`clean_stray_temps`
removes them and no reader ever looks at them.
"""

from __future__ import annotations

import json
import os
import re
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
    "shard_path",
    "shard_index",
    "prepare_dir",
    "write_manifest",
    "check_manifest",
    "write_shard",
    "finished_shards",
    "clean_stray_temps",
    "read_shards",
]

MANIFEST = "_sweep.json"
_SHARD_RE = re.compile(r"^shard-(\d{5,})\.parquet$")
_TEMP_RE = re.compile(r"^\.(shard-\d{5,}\.parquet|_sweep\.json)\.\d+\.tmp$")
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


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename the temp file onto ``path`` atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
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


def clean_stray_temps(out: Path) -> list[Path]:
    """Remove temp files a killed sweep left in ``out``; return what was removed."""
    removed = []
    for p in Path(out).iterdir():
        if _TEMP_RE.match(p.name):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def write_manifest(out: Path, manifest: Mapping[str, Any]) -> Path:
    """Write the manifest (``_sweep.json``) atomically."""
    path = Path(out) / MANIFEST
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    _atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


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
        strays = sorted(p.name for p in Path(out).iterdir() if shard_index(p) is not None)
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


def finished_shards(out: Path) -> set[int]:
    """Indices of the shard files present in ``out`` (complete by construction)."""
    return {i for p in Path(out).iterdir() if (i := shard_index(p)) is not None}


def read_shards(out: Path):
    """Read every shard of a sweep directory into one DataFrame sorted by ``run_index``.

    A small reader for tests and quick looks; analyses use ``causal.load_runs``.

    Raises
    ------
    SchemaError
        If a shard's schema version or columns differ from the declared schema
        (names the file and the column).
    """
    import pandas as pd

    paths = sorted((p for p in Path(out).iterdir() if shard_index(p) is not None), key=shard_index)
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
