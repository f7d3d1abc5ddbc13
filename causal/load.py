"""Load a runs table from parquet and validate it against :mod:`causal.schema`.

:func:`load_runs` reads one parquet file or a sweep directory of shards (every
``*.parquet`` file in it; files starting with ``_`` or ``.`` such as the
manifest ``_sweep.json`` and the ``*.tmp`` files a killed sweep leaves are
ignored, as pyarrow datasets do), checks each file's schema version (key ``udl.schema_version`` in
the parquet key-value metadata, written by :mod:`runs_generator.storage`: the
same major version is accepted) and validates the result with
:func:`validate_runs`. Every failure is a :class:`~causal.errors.SchemaError`
naming the file and/or column, what was expected and what to do.

Examples
--------
>>> import pandas as pd
>>> validate_runs(pd.DataFrame({"capacity": [3, 4]}))["capacity"].dtype
dtype('float64')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from causal.errors import SchemaError
from causal.schema import COLUMNS, SCHEMA_VERSION, Dtype, Scope, supervised_columns

__all__ = ["SCHEMA_VERSION_KEY", "COLUMNS_KEY", "load_runs", "validate_runs", "parquet_files"]

#: parquet key-value metadata keys written by runs_generator.storage
SCHEMA_VERSION_KEY = b"udl.schema_version"
COLUMNS_KEY = b"udl.columns"

Required = Literal["auto", "supervised", "none"]


def parquet_files(path: str | Path) -> list[Path]:
    """The parquet files ``path`` names: itself, or the shards of a directory (sorted).

    Raises
    ------
    SchemaError
        If ``path`` does not exist, is not a parquet file, or is a directory
        without parquet files.
    """
    p = Path(path)
    if not p.exists():
        raise SchemaError(f"runs path {str(p)!r} does not exist; pass a .parquet file or a sweep directory")
    if p.is_dir():
        files = sorted(
            f for f in p.iterdir()
            if f.is_file() and f.suffix == ".parquet" and not f.name.startswith((".", "_"))
        )
        if not files:
            raise SchemaError(
                f"directory {str(p)!r} holds no *.parquet files (temporary and hidden files are ignored); "
                "point at a sweep directory written by `udl generate` or at a .parquet file"
            )
        return files
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic != b"PAR1":
        raise SchemaError(
            f"{str(p)!r} is not a parquet file (it does not start with the PAR1 magic bytes); "
            "convert it with pandas.DataFrame.to_parquet or pass the sweep directory"
        )
    return [p]


def _major(version: str) -> str:
    return version.split(".")[0]


def _read_file(path: Path, columns: Sequence[str] | None) -> tuple[pd.DataFrame, list[str] | None]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise SchemaError(f"{path}: not a readable parquet file ({exc}); regenerate or remove the file") from None
    meta = schema.metadata or {}
    declared: list[str] | None = None
    if SCHEMA_VERSION_KEY in meta:
        try:
            version = meta[SCHEMA_VERSION_KEY].decode("utf-8").strip()
            if not version or not version.split(".")[0].isdigit():
                raise ValueError(version)
        except (UnicodeDecodeError, ValueError):
            raise SchemaError(
                f"{path}: unreadable metadata {SCHEMA_VERSION_KEY.decode()}={meta[SCHEMA_VERSION_KEY]!r}; "
                f"expected a version like {SCHEMA_VERSION!r}. Regenerate the file with this package"
            ) from None
        if _major(version) != _major(SCHEMA_VERSION):
            raise SchemaError(
                f"{path}: schema version {version} is incompatible with this reader's {SCHEMA_VERSION} "
                "(major versions differ: columns changed meaning, see causal.load_runs). Regenerate the sweep "
                "with this package (udl generate ...) or install the udl-causal version that wrote it"
            )
        if COLUMNS_KEY in meta:
            try:
                declared = [str(c) for c in json.loads(meta[COLUMNS_KEY].decode("utf-8"))]
            except (UnicodeDecodeError, ValueError, TypeError):
                raise SchemaError(
                    f"{path}: unreadable metadata {COLUMNS_KEY.decode()} (expected a JSON list of column names)"
                ) from None
    if columns is not None:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise SchemaError(
                f"{path}: column(s) {missing} requested but not in the file; it has {schema.names}"
            )
    try:
        table = pq.read_table(path, columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError) as exc:
        raise SchemaError(f"{path}: could not read the parquet data ({exc})") from None
    return table.to_pandas(), declared


def load_runs(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    required: Required | Sequence[str] = "auto",
) -> pd.DataFrame:
    """Read a runs table from a parquet file or a shard directory and validate it.

    Parameters
    ----------
    path : str or Path
        A ``.parquet`` file, or a directory whose ``*.parquet`` files are the
        shards of one sweep (concatenated in file-name order).
    columns : sequence of str, optional
        Read only these columns (each must be in every file).
    required : {'auto', 'supervised', 'none'} or sequence of str
        Columns that must be present. ``'auto'``: the columns a file declares
        in its ``udl.columns`` metadata (generator output), else none beyond
        ``columns``; ``'supervised'``: every column supervised runs carry.

    Returns
    -------
    pandas.DataFrame
        Declared float columns as float64, integer columns as int64 (float64
        when they hold nulls), string columns as strings.

    Notes
    -----
    Schema 2.0 (this version) differs from 1.x in meaning, so 1.x files are
    refused with a message to regenerate them:

    * outcomes, bias² and variance are measured on an in-distribution test set
      (the training mixture of subgroups); ``deployment_risk`` on a separate
      group-balanced test set;
    * a classifier's prediction is always its softmax probability vector
      (``mse`` on classes is the Brier score; ``l1`` is regression-only);
    * ``convergence`` is ``-log10(final train loss / best-constant loss)`` in
      one evaluation loss per problem; ``implicit_reg`` uses the effective step
      (momentum, Adam's preconditioner) over the last half of training;
      ``bias_sq`` is the unbiased estimate; ``sharpness`` uses a fixed-size
      subsample;
    * a value that cannot be measured is **null**, never a floor or cap: every
      post-training mediator and outcome of a diverged run (``diverged=1``,
      new ``diverged_step``), ``gradient_stability`` at depth 1, the log of a
      non-positive ``bias_sq`` or top eigenvalue;
    * new lever column ``epochs`` (the training budget).

    Raises
    ------
    SchemaError
        Missing path, non-parquet or unreadable file, incompatible schema
        version, missing or mistyped column, empty table.
    """
    files = parquet_files(path)
    frames, declared_all = [], set()
    for f in files:
        frame, declared = _read_file(f, columns)
        if declared is not None:
            declared_all.update(declared)
        frames.append(validate_runs(frame, required="none", source=str(f), allow_empty=True))
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if required == "auto":
        req: Required | Sequence[str] = sorted(declared_all) if columns is None else list(columns)
    else:
        req = required
    return validate_runs(df, required=req, source=str(path))


def unfinished_note(path: str | Path, n_rows: int) -> str | None:
    """A line saying that ``path`` is a sweep directory with fewer rows on disk than its plan, or None.

    Reads only the manifest ``_sweep.json`` (its ``plan`` of run indices per shard); any other path, or an
    unreadable manifest, gives None.
    """
    manifest = Path(path) / "_sweep.json"
    try:
        planned = sum(len(shard) for shard in json.loads(manifest.read_text())["plan"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if n_rows >= planned:
        return None
    return (f"note: {path} is an unfinished sweep: {n_rows} of its {planned} runs are on disk and analysed "
            f"(`udl status {path}` lists the missing shards; rerun the same `udl generate` to finish it)")


def _check_column(s: pd.Series, name: str, dtype: Dtype, nullable: bool, source: str) -> pd.Series:
    """Validate one declared column and return it in its canonical dtype."""
    where = f"{source}: column {name!r}"
    if dtype is Dtype.STRING:
        if pd.api.types.is_numeric_dtype(s) and s.notna().any():
            raise SchemaError(f"{where} should hold strings but has dtype {s.dtype}; store it as text")
        bad = [v for v in s.dropna().head(1000) if not isinstance(v, str)]
        if bad:
            raise SchemaError(f"{where} should hold strings but holds {type(bad[0]).__name__} values like {bad[0]!r}")
        return s.astype("string")
    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
        example = s.dropna().iloc[0] if s.notna().any() else None
        raise SchemaError(
            f"{where} should be {dtype.value} but has dtype {s.dtype} (e.g. {example!r}); "
            "convert it to numbers (pandas.to_numeric) before analysing"
        )
    values = pd.to_numeric(s).astype("float64")
    if dtype is Dtype.INT:
        finite = values.dropna()
        if not np.all(np.isfinite(finite)) or not np.all(finite == np.round(finite)):
            raise SchemaError(f"{where} should hold integers (int64) but holds non-integer values")
        if values.notna().all():
            return values.astype("int64")
    return values


def validate_runs(
    df: pd.DataFrame,
    *,
    required: Required | Sequence[str] = "none",
    source: str = "DataFrame",
    allow_empty: bool = False,
) -> pd.DataFrame:
    """Validate a runs table that did not come from :func:`load_runs` (or did).

    Every declared column that is present is checked against its dtype
    (floats: any numeric; ints: integral numbers or booleans; strings: text)
    and returned in canonical form; columns of scope ``all`` that are declared
    non-nullable must not hold nulls. Undeclared columns (e.g. contrast
    columns) pass through unchanged.

    Parameters
    ----------
    required : {'none', 'supervised'} or sequence of str
        Columns that must be present ('auto' means 'none' here).
    source : str
        Named in error messages (a file path).

    Raises
    ------
    SchemaError
        Empty table, missing required column, mistyped column, or nulls in a
        non-nullable column.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0 and not allow_empty:
        raise SchemaError(f"{source}: the runs table is empty (0 rows); generate runs first")
    if isinstance(required, str):
        if required not in ("auto", "supervised", "none"):
            raise SchemaError(f"required must be 'auto', 'supervised', 'none' or a list of columns, got {required!r}")
        req = supervised_columns() if required == "supervised" else []
    else:
        req = list(required)
    missing = [c for c in req if c not in df.columns]
    if missing:
        raise SchemaError(
            f"{source}: required column(s) {missing} are missing; present columns: {list(df.columns)}. "
            "Regenerate the table with this package's generator or add the columns"
        )
    out = df.copy()
    for name in df.columns:
        col = COLUMNS.get(str(name))
        if col is None:
            continue
        out[name] = _check_column(df[name], col.name, col.dtype, col.nullable, source)
        if col.scope is Scope.ALL and not col.nullable and out[name].isna().any():
            n = int(out[name].isna().sum())
            raise SchemaError(f"{source}: column {name!r} has {n} null value(s) but every run must carry it")
    return out
