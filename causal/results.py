"""Shared base of every analysis result: a tidy ``summary`` and its views.

A result (``EdgeEffects``, ``MediationResult``, ``FalsifyResult``,
``SignCheck``) subclasses :class:`Result` and provides a ``summary``
DataFrame (an attribute, dataclass field or property). The base class adds the
analyst-facing views the house style asks for, lifelines/ArviZ style:

* :meth:`Result.print_summary` — a readable text table with a header of
  settings (from :meth:`Result._info`);
* :meth:`Result._repr_html_` — the same for notebooks;
* :meth:`Result.to_frame`, :meth:`Result.to_dict` (JSON-friendly) and
  :meth:`Result.write` (``.csv``, ``.json`` or ``.parquet`` by suffix).

Nothing prints as a side effect of computing a result.

Examples
--------
>>> import pandas as pd
>>> from dataclasses import dataclass
>>> @dataclass
... class Toy(Result):
...     summary: pd.DataFrame
...     title = "Toy result"
>>> Toy(pd.DataFrame({"a": [1.0]})).to_dict()["summary"]
[{'a': 1.0}]
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TextIO

import numpy as np
import pandas as pd

from causal.errors import ConfigError

__all__ = ["Result", "Row", "format_table", "json_safe"]


def json_safe(value: Any) -> Any:
    """Convert numpy/pandas scalars and containers to plain JSON types (NaN -> None)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if value is pd.NA or value is None:
        return None
    if hasattr(value, "value") and not isinstance(value, (str, int)):  # Enum
        return json_safe(value.value)
    return value


def format_table(df: pd.DataFrame, *, decimals: int = 3, max_rows: int | None = None) -> str:
    """A plain-text table of ``df`` with floats rounded to ``decimals``."""
    if max_rows is not None and len(df) > max_rows:
        df = df.head(max_rows)
    if df.empty:
        return "(no rows)"

    def fmt(v: Any) -> str:
        return _fmt_value(v, decimals)

    return df.to_string(index=False, formatters={c: fmt for c in df.columns}, na_rep="-")


class Row(pd.Series):
    """One summary row (a ``pandas.Series``) that prints every value readably.

    A row of a mixed-type summary is an object Series, and pandas prints its
    tiny floats as ``0.0`` (a p-value of 6.5e-47 shows as 0.0). ``Row``
    prints each value with :func:`format_table`'s rules instead; indexing,
    arithmetic and ``to_dict`` are the Series'.

    Examples
    --------
    >>> r = Row({"p_adjusted": 6.5e-47, "verdict": "supports"})
    >>> print(r)
    p_adjusted  6.50e-47
    verdict     supports
    >>> float(r["p_adjusted"])
    6.5e-47
    """

    @property
    def _constructor(self) -> type:
        return Row

    def __repr__(self) -> str:
        width = max((len(str(k)) for k in self.index), default=0)
        return "\n".join(f"{str(k):<{width}}  {_fmt_value(v)}" for k, v in self.items())


def _fmt_value(v: Any, decimals: int = 3) -> str:
    """One value as :func:`format_table` and :class:`Row` print it: scientific when tiny or huge, "-" when missing."""
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "-"
        a = abs(v)
        if a != 0 and (a < 10 ** (-decimals) or a >= 1e5):
            return f"{v:.{decimals - 1}e}"
        return f"{v:.{decimals}f}"
    if v is None or v is pd.NA:
        return "-"
    return str(v)


class Result:
    """Base class of analysis results; subclasses provide ``summary``.

    Subclasses may override :attr:`title`, :attr:`display_columns` (the
    columns shown by :meth:`print_summary`; all when ``None``) and
    :meth:`_info` (settings shown above the table and stored by
    :meth:`to_dict`).
    """

    title: ClassVar[str] = "Result"
    display_columns: ClassVar[tuple[str, ...] | None] = None
    summary: pd.DataFrame

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # @dataclass writes a field-by-field __repr__ unless the class already has one: give every
        # subclass the short one, so repr(result) never dumps its DataFrames
        super().__init_subclass__(**kwargs)
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = Result.__repr__  # type: ignore[method-assign]

    # ---- hooks ------------------------------------------------------------------
    def _info(self) -> dict[str, Any]:
        """Settings and counts shown above the table (override)."""
        return {}

    def _display_frame(self) -> pd.DataFrame:
        df = self.summary
        if self.display_columns is not None:
            df = df[[c for c in self.display_columns if c in df.columns]]
        return df

    # ---- views ------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """A copy of ``summary``."""
        return self.summary.copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly ``{"title", "info", "summary": [records]}``."""
        records = self.summary.astype(object).where(self.summary.notna(), None).to_dict("records")
        return {"title": self.title, "info": json_safe(self._info()), "summary": json_safe(records)}

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON text (``kwargs`` go to :func:`json.dumps`)."""
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(), **kwargs)

    def write(self, path: str | Path) -> Path:
        """Write ``summary`` to ``.csv``/``.parquet``, :meth:`to_dict` to ``.json``, or the HTML view to ``.html``.

        The ``.html`` file is a self-contained page (:mod:`causal.html`) with
        the same tables as :meth:`_repr_html_`.

        Raises
        ------
        ConfigError
            For any other suffix.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            self.summary.to_csv(path, index=False)
        elif suffix == ".parquet":
            self.summary.to_parquet(path, index=False)
        elif suffix == ".json":
            path.write_text(self.to_json() + "\n")
        elif suffix in (".html", ".htm"):
            from causal.html import page, result_html

            path.write_text(page(self.title, [("result", self.title, result_html(self))]), encoding="utf-8")
        else:
            raise ConfigError(
                f"cannot write {path}: suffix {suffix or '(none)'!r} is not supported; "
                "use .csv, .json, .parquet or .html"
            )
        return path

    def summary_text(self, *, decimals: int = 3) -> str:
        """The text :meth:`print_summary` prints."""
        lines = [self.title, "=" * len(self.title)]
        for key, value in self._info().items():
            lines.append(f"{key:<16} {value}")
        lines.append("")
        lines.append(format_table(self._display_frame(), decimals=decimals))
        return "\n".join(lines)

    def print_summary(self, *, decimals: int = 3, file: TextIO | None = None) -> None:
        """Print the settings and the summary table."""
        print(self.summary_text(decimals=decimals), file=file or sys.stdout)

    def _repr_html_(self) -> str:
        """Settings, the summary with verdicts tinted, and the tables the result carries (skipped edges,
        moderation, ...): the same HTML as the result's section of the report (:func:`causal.html.result_html`)."""
        from causal.html import result_html

        return result_html(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self.summary)} rows; print_summary() for the table>"
