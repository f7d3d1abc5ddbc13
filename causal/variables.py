"""Column-level variables: categorical levers as explicit 0/1 contrasts.

DoWhy treats string treatments badly (no analytic CIs) and integer codes as
continuous, so every categorical lever is expanded into 0/1 contrast columns
against a declared reference level, e.g. ``optimizer`` -> ``optimizer_momentum``
and ``optimizer_adam`` (reference ``sgd``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from causal.errors import SchemaError

__all__ = ["Categorical", "CATEGORICALS", "CONTRAST_COLUMNS", "add_contrasts"]


@dataclass(frozen=True)
class Categorical:
    """A categorical lever and its contrast coding.

    Attributes
    ----------
    column : str
        The string column in the runs table (``optimizer``).
    reference : str
        The level every contrast is measured against (``sgd``).
    levels : tuple of str
        The other levels; each gets a column ``f"{column}_{level}"``.
    """

    column: str
    reference: str
    levels: tuple[str, ...]

    @property
    def contrasts(self) -> tuple[str, ...]:
        return tuple(f"{self.column}_{lv}" for lv in self.levels)


CATEGORICALS: dict[str, Categorical] = {
    "optimizer": Categorical("optimizer", "sgd", ("momentum", "adam")),
    "normalization": Categorical("normalization", "none", ("batch", "layer")),
}

#: contrast column -> (categorical column, level)
CONTRAST_COLUMNS: dict[str, tuple[str, str]] = {
    f"{c.column}_{lv}": (c.column, lv) for c in CATEGORICALS.values() for lv in c.levels
}


def add_contrasts(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``df`` with a 0/1 float column for every contrast.

    Contrast columns already present are kept as they are (so a table built by
    another tool may carry them directly). A categorical column holding a level
    that is neither the reference nor a declared level is refused.

    Examples
    --------
    >>> import pandas as pd
    >>> add_contrasts(pd.DataFrame({"optimizer": ["sgd", "adam"]}))["optimizer_adam"].tolist()
    [0.0, 1.0]
    """
    out = df.copy()
    for cat in CATEGORICALS.values():
        if cat.column not in out.columns or all(c in out.columns for c in cat.contrasts):
            continue
        values = out[cat.column].astype("string")
        allowed = {cat.reference, *cat.levels}
        bad = sorted(set(values.dropna().unique()) - allowed)
        if bad:
            raise SchemaError(
                f"column {cat.column!r} holds unknown level(s) {bad}; expected one of "
                f"{sorted(allowed)} (reference {cat.reference!r}). Fix the values or drop the column."
            )
        for lv, name in zip(cat.levels, cat.contrasts):
            out[name] = (values == lv).astype("float64").where(values.notna())
    return out
