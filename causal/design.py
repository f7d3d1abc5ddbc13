"""The experiment's design as graph structure: raw levers, computed columns, their interventions.

The book's graph is the hypothesis under test; the generator's design is known
structure. This module declares that structure as data, so that a change of the
generator (a new lever, a new computed column) is one line here:

* :data:`RAW_LEVERS` — randomized levers that have no node in the book's graph
  (``task``, ``problem``, ``arch``, ``width``, ``depth``, ``loss``,
  ``init_scale``, ``noise_dist``, ``epochs`` (or ``steps`` in schema 1.0
  tables), ``replicas``, ``full_batch``), how
  each enters a regression (0/1 contrasts, log2 or as is), and which other raw
  levers the generator resolves it from (``problem`` is forced to
  classification on mnist1d, ``arch`` to mlp on teacher, the loss is picked
  among the losses the problem allows, a CNN's width is divided).
* :data:`COMPUTED` — book columns computed from raw levers, each with the raw
  levers that **are** its intervention (``width`` for ``capacity``) and those
  that are confounders (``depth``, ``arch``, ``task``, ``problem``). Book
  columns that are one-to-one transforms of a raw lever (``log_lr`` of ``lr``,
  ``data_quantity`` of ``n_train``, ``data_noise`` of ``noise``) are the lever
  itself and need no raw node.

:func:`design_graph` adds this to a column-level graph:

* raw levers are roots (edges among them only where the generator resolves
  one from another);
* every determinant of a computed column points to it;
* the task points to every book lever and context column (the generator may
  draw a lever from a family's own distribution or set it to the family's
  neutral value, so the task confounds it in a table of several families);
* every raw lever that is *not* the intervention of some computed column, and
  every book lever/context column, is a possible direct cause of every
  mediator and outcome; an intervention lever acts only through the column
  that stands for it (``width`` through ``capacity``), which is what makes a
  computed column's effect identifiable at all.

Identification then runs on the result (``causal._dowhy.identify_direct``):
backdoor sets for a computed column contain its confounders, never its
intervention. For a mediator or outcome treatment every raw lever present is
added besides (randomized roots are always admissible): that covers effects of
an intervention lever that bypass its stand-in (the loss beyond
``loss_matched``, the sign of the init scale that ``init_quality`` drops).

Examples
--------
>>> COMPUTED["capacity"].intervention, COMPUTED["capacity"].confounders
(('width',), ('depth', 'arch', 'task', 'problem'))
>>> import pandas as pd
>>> enc = encode_design(pd.DataFrame({"task": ["teacher", "mnist1d"], "depth": [1, 3]}))
>>> enc.columns["task"], enc.columns["depth"]
(('task_mnist1d',), ('depth',))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import networkx as nx
import numpy as np
import pandas as pd

__all__ = ["RawLever", "Computed", "RAW_LEVERS", "COMPUTED", "DesignEncoding", "encode_design", "design_graph",
           "intervention_levers", "DESIGN_KIND"]

Encoding = Literal["categorical", "log2", "linear"]
#: node attribute ``kind`` of raw-lever nodes
DESIGN_KIND = "design"
_ACTED_ON = ("mediator", "outcome")
_LEVER_KINDS = ("lever", "context")


@dataclass(frozen=True)
class RawLever:
    """A randomized lever with no node in the book's graph.

    Attributes
    ----------
    name : str
        Its column in the runs table.
    encoding : {'categorical', 'log2', 'linear'}
        How it enters a regression: 0/1 contrasts against ``reference``
        (``f"{name}_{level}"``), ``log2(value)`` (``f"log2_{name}"``) or as is.
    reference : str
        Reference level of a categorical lever (the most frequent level when
        it is not observed).
    parents : tuple of str
        Raw levers the generator resolves this one from.
    superseded_by : str
        A lever that stands for this one when present (schema 2.0 computes
        ``steps`` from the drawn ``epochs``, ``n_train`` and batch size; the
        intervention is the epoch budget, so ``steps`` is not adjusted for).
    """

    name: str
    encoding: Encoding
    reference: str = ""
    parents: tuple[str, ...] = ()
    superseded_by: str = ""


@dataclass(frozen=True)
class Computed:
    """A book column computed from raw levers.

    Attributes
    ----------
    column : str
    intervention : tuple of str
        Raw levers whose change *is* a change of this column (not adjusted for
        when the column is the treatment; they act only through it).
    confounders : tuple of str
        Other raw levers or book columns it is computed from (adjusted for).
    doc : str
        The generator's computation.
    """

    column: str
    intervention: tuple[str, ...]
    confounders: tuple[str, ...]
    doc: str


RAW_LEVERS: dict[str, RawLever] = {lv.name: lv for lv in (
    RawLever("task", "categorical", "teacher"),
    RawLever("problem", "categorical", "classification", ("task",)),
    RawLever("arch", "categorical", "mlp", ("task",)),
    RawLever("width", "log2", parents=("arch",)),
    RawLever("depth", "linear"),
    RawLever("loss", "categorical", "cross_entropy", ("problem",)),
    RawLever("init_scale", "log2"),  # signed: init_quality keeps only its magnitude
    RawLever("noise_dist", "categorical", "gaussian", ("problem",)),
    RawLever("epochs", "log2"),
    RawLever("steps", "log2", superseded_by="epochs"),  # randomized in schema 1.0
    RawLever("replicas", "linear"),
    RawLever("full_batch", "linear"),
)}

COMPUTED: dict[str, Computed] = {c.column: c for c in (
    Computed("capacity", ("width",), ("depth", "arch", "task", "problem"),
             "log10 trainable parameters of the architecture at that width/depth, inputs and outputs of the task"),
    Computed("inductive_bias", ("arch",), ("task",),
             "1 for a CNN on mnist1d, a transformer on sequence, a GNN on graph"),
    Computed("loss_matched", ("loss",), ("problem", "noise_dist"),
             "cross-entropy for classes; mse with gaussian, l1 with laplace noise"),
    Computed("init_quality", ("init_scale",), (), "-|log2 init_scale|"),
    Computed("log_batch", ("full_batch",), ("data_quantity",), "log2 batch size, capped at n_train"),
    Computed("log_lr", (), ("optimizer_momentum", "optimizer_adam"),
             "log10 lr, drawn on a range per optimizer (schema 2.0)"),
    Computed("label_smoothing", (), ("loss", "problem"), "forced to 0 unless the loss is cross-entropy"),
    # randomized within the transfer family only (0 elsewhere): the family confounds it, and adjusting for
    # the task contrasts leaves the within-transfer contrast as the estimate
    Computed("pretrained", (), ("task",), "drawn 0/1 on the transfer family, 0 on families without a source task"),
)}


def intervention_levers() -> frozenset[str]:
    """Raw levers that are the intervention of some computed column."""
    return frozenset(lv for c in COMPUTED.values() for lv in c.intervention)


@dataclass(frozen=True)
class DesignEncoding:
    """Raw levers of a table as numeric regression columns.

    Attributes
    ----------
    frame : pandas.DataFrame
        float64 columns (contrasts, log2 values), index of the input.
    columns : dict of str -> tuple of str
        Raw lever -> its columns in ``frame`` (only levers that vary).
    notes : dict of str -> str
        Raw levers left out of the design and why (absent, constant).
    """

    frame: pd.DataFrame
    columns: dict[str, tuple[str, ...]]
    notes: dict[str, str] = field(default_factory=dict)

    def expand(self, nodes: Iterable[str]) -> list[str]:
        """Graph nodes -> regression columns (raw levers expanded, others as they are)."""
        out: list[str] = []
        for n in nodes:
            out.extend(self.columns.get(n, (n,)))
        return list(dict.fromkeys(out))


def encode_design(df: pd.DataFrame) -> DesignEncoding:
    """Encode the raw levers of :data:`RAW_LEVERS` present in ``df``.

    A raw lever that is absent or does not vary is left out of the design,
    with a note (a lever that did not vary cannot confound anything).
    """
    cols: dict[str, pd.Series] = {}
    mapping: dict[str, tuple[str, ...]] = {}
    notes: dict[str, str] = {}
    for lv in RAW_LEVERS.values():
        if lv.name not in df.columns:
            notes[lv.name] = "absent from the table: left out of the design (not adjusted for)"
            continue
        if lv.superseded_by and lv.superseded_by in df.columns:
            notes[lv.name] = (f"computed from {lv.superseded_by!r} (and n_train, batch size): "
                              f"{lv.superseded_by!r} stands for it in the design")
            continue
        s = df[lv.name]
        if s.nunique(dropna=True) < 2:
            notes[lv.name] = "constant in the table: left out of the design"
            continue
        if lv.encoding == "categorical":
            values = s.astype("string")
            levels = values.dropna().value_counts()
            ref = lv.reference if lv.reference in levels.index else str(levels.index[0])
            names = []
            for level in sorted(set(levels.index) - {ref}):
                name = f"{lv.name}_{level}"
                cols[name] = (values == level).astype("float64").where(values.notna())
                names.append(name)
            mapping[lv.name] = tuple(names)
        else:
            x = pd.to_numeric(s, errors="coerce").astype("float64")
            if lv.encoding == "log2":
                x = np.log2(x.where(x > 0))
                name = f"log2_{lv.name}"
            else:
                name = lv.name
            cols[name] = x
            mapping[lv.name] = (name,)
    frame = pd.DataFrame(cols, index=df.index)
    return DesignEncoding(frame, mapping, notes)


def design_graph(graph: nx.DiGraph, raw: Iterable[str]) -> nx.DiGraph:
    """``graph`` (column level) plus the design's raw levers and structure.

    Parameters
    ----------
    graph : networkx.DiGraph
        A column-level graph (book nodes with a ``kind`` attribute).
    raw : iterable of str
        Raw levers present in the table (:attr:`DesignEncoding.columns`).

    Returns
    -------
    networkx.DiGraph
        A copy with raw-lever nodes (``kind="design"``) and design edges
        (attribute ``design=True``); see the module docstring.
    """
    g = graph.copy()
    raw = [r for r in raw if r in RAW_LEVERS]
    for r in raw:
        g.add_node(r, kind=DESIGN_KIND, concept="design")
    for r in raw:
        for p in RAW_LEVERS[r].parents:
            if p in g:
                g.add_edge(p, r, design=True)
    for comp in COMPUTED.values():
        if comp.column not in g:
            continue
        for src in (*comp.intervention, *comp.confounders):
            if src in g and not g.has_edge(src, comp.column):
                g.add_edge(src, comp.column, design=True)
    if "task" in g:
        # a family's own sizes, budgets and inits (LeverSpace.task_levers) and the levers that do not act on it
        # set to their neutral values (TaskFamily.neutral: dropout 0, no normalization, ... on generative runs)
        # make any book lever or context column a function of the task in a space of several families. Adjusting
        # for the task is always admissible (a randomized root); where a lever does not depend on it, it costs
        # a few degrees of freedom
        for n, kind in list(g.nodes(data="kind")):
            if kind in _LEVER_KINDS and n in graph and not g.has_edge("task", n):
                g.add_edge("task", n, design=True)
    targets = [n for n, k in g.nodes(data="kind") if k in _ACTED_ON]
    through = intervention_levers()
    causes = [n for n, k in g.nodes(data="kind") if k in _LEVER_KINDS and n in graph]
    causes += [r for r in raw if r not in through]
    for c in causes:
        for t in targets:
            if not g.has_edge(c, t):
                g.add_edge(c, t, design=True)
    if not nx.is_directed_acyclic_graph(g):  # pragma: no cover - the declarations are acyclic
        raise AssertionError(f"design graph has a cycle: {nx.find_cycle(g)}")
    return g
