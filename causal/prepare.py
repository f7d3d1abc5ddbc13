"""One preparation of a runs table for every analysis: rows, columns, identification graph.

:func:`prepare` applies, once and the same way for ``fit_edges``, ``mediation``
and ``falsify``:

* **Diverged rows** (``diverged == 1``) are excluded by default
  (``diverged="exclude"``); their mediators and outcomes are placeholders or
  nulls, and no estimate may rest on them. ``diverged="include"`` keeps them.
  Both counts are recorded (:attr:`Prepared.n_input`, :attr:`Prepared.n_diverged`).
  Divergence depends on the randomized levers only, which every design-adjusted
  estimate conditions on, so dropping those rows does not open a selection path.
* **Columns**: categorical levers become 0/1 contrasts; graph columns that are
  absent, non-numeric or entirely null are left out (per edge, rows with a null
  in the edge's columns are dropped later and counted).
* **Graph** (``adjust``):

  - ``"design"`` (default): the book's column graph plus the experiment's design
    (:mod:`causal.design`): raw levers present in the table become roots,
    parents of the columns computed from them and possible direct causes of
    every mediator and outcome. Book lever/context columns absent from the
    table are taken as not varied and dropped (a latent lever would confound
    every mediator). Raw levers absent or constant are dropped with a note.
  - ``"book"``: the book's graph alone (the hypothesis without the design), for
    comparison.

  Missing mediators are marginalized by a latent projection
  (:func:`causal._dowhy.identification_graph`) in both.
* **Units** (:mod:`causal.units`): a column whose units differ by problem
  (``generalization``: accuracy or R²; ``data_noise``, ``deployment_risk``,
  ``test_loss``, ...) is z-scored within each task × problem family when the
  kept rows span more than one problem, so no analysis pools it raw
  (:attr:`Prepared.units` says which, with each family's mean and sd).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import networkx as nx
import numpy as np
import pandas as pd

from causal.errors import ConfigError, SchemaError
from causal.graph import CausalGraph

__all__ = ["Adjust", "Diverged", "ADJUST_CHOICES", "DIVERGED_CHOICES", "Prepared", "prepare", "usable"]

Adjust = Literal["design", "book"]
Diverged = Literal["exclude", "include"]
ADJUST_CHOICES: tuple[str, ...] = ("design", "book")
DIVERGED_CHOICES: tuple[str, ...] = ("exclude", "include")
_ROOTS = ("lever", "context")


def usable(df: pd.DataFrame, col: str) -> str:
    """'' when ``col`` can enter a regression, else why not."""
    if col not in df.columns:
        return f"column {col!r} is not in the table"
    s = df[col]
    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
        return f"column {col!r} is not numeric (dtype {s.dtype})"
    if s.notna().sum() == 0:
        return f"column {col!r} is entirely null"
    return ""


@dataclass(frozen=True)
class Prepared:
    """A runs table made ready for identification and estimation.

    Attributes
    ----------
    data : pandas.DataFrame
        The rows kept, with contrast columns added.
    numeric : pandas.DataFrame
        float64 regression columns: usable graph columns and, under
        ``adjust="design"``, the encoded raw levers.
    gid : networkx.DiGraph
        The identification graph (observed nodes, latent ``U[..]`` nodes).
    adjust, diverged : str
    n_input : int
        Rows of the input table.
    n_diverged : int
        Diverged rows excluded (0 with ``diverged="include"``).
    columns : dict of str -> tuple of str
        Raw-lever node -> its regression columns.
    notes : dict of str -> str
        Columns and levers left out of the design, and why.
    units : pandas.DataFrame
        Columns standardized within family (:func:`causal.units.standardize_units`;
        empty when none mixes units).
    """

    data: pd.DataFrame
    numeric: pd.DataFrame
    gid: nx.DiGraph
    adjust: str
    diverged: str
    n_input: int
    n_diverged: int
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    units: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def search(self) -> str:
        """DoWhy's backdoor search for this graph (see ``causal._dowhy.identify_direct``)."""
        return "maximal" if self.adjust == "design" else "minimal"

    def expand(self, nodes: list[str] | tuple[str, ...]) -> list[str]:
        """Graph nodes -> regression columns (raw levers expanded to their encodings)."""
        out: list[str] = []
        for n in nodes:
            out.extend(self.columns.get(n, (n,)))
        return list(dict.fromkeys(out))

    def extra_for(self, treatment: str) -> list[str]:
        """Further nodes to adjust for when ``treatment`` is the treatment.

        Under ``adjust="design"``, a mediator/outcome treatment also adjusts for
        every randomized node (raw levers included, interventions too): roots
        are always admissible and absorb lever effects that bypass the
        computed columns. Nothing otherwise.
        """
        if self.adjust != "design":
            return []
        kind = self.gid.nodes[treatment].get("kind") if treatment in self.gid else None
        if kind in _ROOTS or kind == "design":
            return []
        return [n for n, k in self.gid.nodes(data="kind") if k in (*_ROOTS, "design")]

    def counts(self) -> dict[str, int]:
        """Row counts for summaries."""
        return {"rows_input": self.n_input, "diverged_excluded": self.n_diverged, "rows_used": len(self.data)}


def prepare(df: pd.DataFrame, graph: CausalGraph, *, adjust: str = "design", diverged: str = "exclude",
            who: str = "the analysis") -> Prepared:
    """Rows, regression columns and identification graph of ``df`` (see the module docstring).

    Raises
    ------
    SchemaError
        ``df`` is not a non-empty DataFrame.
    ConfigError
        ``adjust`` or ``diverged`` is not a known choice.
    """
    from causal import _dowhy
    from causal.design import design_graph, encode_design
    from causal.units import UNIT_DEPENDENT, standardize_units
    from causal.variables import add_contrasts

    if adjust not in ADJUST_CHOICES:
        raise ConfigError(f"adjust must be one of {ADJUST_CHOICES}, got {adjust!r} "
                          "('graph' is now 'book'; 'all_levers' is superseded by 'design')")
    if diverged not in DIVERGED_CHOICES:
        raise ConfigError(f"diverged must be one of {DIVERGED_CHOICES}, got {diverged!r}")
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"{who} needs a pandas DataFrame, got {type(df).__name__}")
    if df.empty:
        raise SchemaError(f"{who} got an empty table (0 rows); load or simulate some runs first")
    df = df.reset_index(drop=True)  # a duplicate index (pd.concat of two sweeps) would misalign columns
    n_input = len(df)
    n_div = 0
    if diverged == "exclude" and "diverged" in df.columns:
        flag = pd.to_numeric(df["diverged"], errors="coerce").fillna(0).to_numpy() == 1
        n_div = int(flag.sum())
        df = df.loc[~flag]
        if df.empty:
            raise SchemaError(f"{who}: all {n_input} rows have diverged == 1; pass diverged='include' "
                              "to analyse them anyway")
    data, units = standardize_units(add_contrasts(df), UNIT_DEPENDENT)
    full = graph.column_graph()
    observed = [n for n in full.nodes if not usable(data, n)]
    numeric = pd.DataFrame({c: np.asarray(data[c], dtype="float64") for c in observed}, index=data.index)
    notes: dict[str, str] = {}
    columns: dict[str, tuple[str, ...]] = {}
    if adjust == "design":
        enc = encode_design(data)
        notes.update({f"raw lever {k}": v for k, v in enc.notes.items()})
        columns = {k: v for k, v in enc.columns.items()}
        extra = enc.frame.drop(columns=[c for c in enc.frame.columns if c in numeric.columns])
        numeric = pd.concat([numeric, extra], axis=1)
        base = full.copy()
        for n, kind in full.nodes(data="kind"):
            if kind in _ROOTS and n not in observed and full.in_degree(n) == 0:
                base.remove_node(n)
                notes[f"lever {n}"] = "not in the table: taken as not varied (dropped from the design graph)"
        g = design_graph(base, columns)
        gid = _dowhy.identification_graph(g, [*observed, *columns])
    else:
        gid = _dowhy.identification_graph(full, observed)
    return Prepared(data, numeric, gid, adjust, diverged, n_input, n_div, columns, notes, units)
