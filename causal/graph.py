"""The book's causal graph as data (DESIGN.md §2).

:data:`BOOK_DAG` holds the 21 concepts and 27 edges of *Understanding Deep
Learning* with kind, columns, expected sign and book chapter. It expands to a
column-level DAG (one edge per column pair; categorical levers as 0/1
contrasts; derived nodes left out so that no adjustment set is collinear) and
exports to networkx, DOT and GML.

Examples
--------
>>> from causal import BOOK_DAG
>>> len(BOOK_DAG.concepts), len(BOOK_DAG.edges)
(21, 27)
>>> BOOK_DAG.edge(9).label
'init_quality→gradient_stability'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

import networkx as nx

from causal.errors import GraphError

__all__ = [
    "NodeKind",
    "Sign",
    "EdgeKind",
    "Concept",
    "Edge",
    "ColumnEdge",
    "CausalGraph",
    "BOOK_DAG",
]


class NodeKind(str, Enum):
    LEVER = "lever"
    CONTEXT = "context"
    DERIVED = "derived"
    MEDIATOR = "mediator"
    OUTCOME = "outcome"


class Sign(str, Enum):
    POSITIVE = "+"
    NEGATIVE = "-"
    UNKNOWN = "?"  # the book states no direction
    FLIPS = "flips"  # moderation: the moderated edge changes sign across regimes

    @property
    def value_int(self) -> int:
        """+1, -1 or 0 (unknown / flips)."""
        return {"+": 1, "-": -1}.get(self.value, 0)


class EdgeKind(str, Enum):
    ARROW = "arrow"
    MODERATION = "moderation"


@dataclass(frozen=True)
class Concept:
    """A node of the concept-level graph.

    Attributes
    ----------
    id : str
        snake_case concept id (``model_capacity``).
    kind : NodeKind
    columns : tuple of str
        The column-level nodes that represent it in the analysis graph
        (categorical levers appear as their 0/1 contrasts).
    extra_columns : tuple of str
        Further columns of the concept that are reported but not part of the
        analysis graph (``test_loss`` beside ``generalization``).
    doc : str
        What higher values mean.
    chapter : str
        Where the book discusses it.
    """

    id: str
    kind: NodeKind
    columns: tuple[str, ...]
    doc: str
    chapter: str
    extra_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Edge:
    """An edge of the book's graph.

    Attributes
    ----------
    number : int
        1..27 as in DESIGN.md.
    source, target : str
        Concept ids. For a moderation, ``target`` is the target of the moderated edge.
    sign : Sign
        The sign the book's argument implies for the oriented columns.
    chapter : str
        Book chapter(s) that make the argument.
    column_signs : Mapping[str, Sign]
        Per-source-column overrides of ``sign`` (edge 17: ``log_lr`` +, ``log_batch`` -).
    regime_signs : Mapping[str, Sign]
        For edge 2, the sign per overparameterization regime
        (``under``: +, ``over``: -).
    kind : EdgeKind
        Arrow, or moderation of edge ``moderates``.
    moderates : int or None
    note : str
    """

    number: int
    source: str
    target: str
    sign: Sign
    chapter: str
    column_signs: Mapping[str, Sign] = field(default_factory=dict)
    regime_signs: Mapping[str, Sign] = field(default_factory=dict)
    kind: EdgeKind = EdgeKind.ARROW
    moderates: int | None = None
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.source}→{self.target}"

    def sign_for(self, column: str) -> Sign:
        """Expected sign of the column-level edge whose treatment is ``column``."""
        return self.column_signs.get(column, self.sign)


@dataclass(frozen=True)
class ColumnEdge:
    """One column-level edge: the unit that ``fit_edges`` estimates."""

    number: int
    edge: str  # concept label "source→target"
    treatment: str
    outcome: str
    expected_sign: Sign
    chapter: str


class CausalGraph:
    """A concept-level causal graph with its column-level expansion.

    Parameters
    ----------
    concepts : iterable of Concept
    edges : iterable of Edge

    Raises
    ------
    GraphError
        On duplicate ids, an edge naming an unknown concept, a duplicated column,
        or a cycle in the column-level graph.
    """

    def __init__(self, concepts: Iterable[Concept], edges: Iterable[Edge]):
        concepts = tuple(concepts)
        edges = tuple(edges)
        ids = [c.id for c in concepts]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise GraphError(f"duplicate concept id(s) {dup}; every concept id must be unique")
        self._concepts = MappingProxyType({c.id: c for c in concepts})
        numbers = [e.number for e in edges]
        if len(set(numbers)) != len(numbers):
            raise GraphError(f"duplicate edge numbers in {numbers}; number each edge once")
        for e in edges:
            for end in (e.source, e.target):
                if end not in self._concepts:
                    raise GraphError(
                        f"edge {e.number} ({e.label}) names unknown concept {end!r}; "
                        f"known concepts: {', '.join(self._concepts)}"
                    )
            if e.kind is EdgeKind.MODERATION and e.moderates not in numbers:
                raise GraphError(f"edge {e.number} moderates edge {e.moderates}, which is not in the graph")
        self._edges = MappingProxyType({e.number: e for e in edges})
        owner: dict[str, str] = {}
        for c in concepts:
            for col in c.columns:
                if col in owner:
                    raise GraphError(f"column {col!r} belongs to both {owner[col]!r} and {c.id!r}")
                owner[col] = c.id
        self._owner = MappingProxyType(owner)
        g = self.column_graph()
        if not nx.is_directed_acyclic_graph(g):
            cycle = nx.find_cycle(g)
            raise GraphError(f"the column-level graph has a cycle: {cycle}")

    # ---- access -----------------------------------------------------------------
    @property
    def concepts(self) -> Mapping[str, Concept]:
        return self._concepts

    @property
    def edges(self) -> Mapping[int, Edge]:
        return self._edges

    def concept(self, concept_id: str) -> Concept:
        try:
            return self._concepts[concept_id]
        except KeyError:
            raise GraphError(
                f"unknown concept {concept_id!r}; known concepts: {', '.join(self._concepts)}"
            ) from None

    def edge(self, number: int) -> Edge:
        try:
            return self._edges[number]
        except KeyError:
            raise GraphError(f"unknown edge number {number!r}; edges are numbered {min(self._edges)}..{max(self._edges)}") from None

    def concept_of(self, column: str) -> str:
        """The concept a column-level node belongs to."""
        try:
            return self._owner[column]
        except KeyError:
            raise GraphError(
                f"column {column!r} is not a node of the column-level graph; "
                f"nodes: {', '.join(self._owner)}"
            ) from None

    @property
    def arrows(self) -> tuple[Edge, ...]:
        return tuple(e for e in self._edges.values() if e.kind is EdgeKind.ARROW)

    def column_edges(self) -> tuple[ColumnEdge, ...]:
        """Every column-level edge, in edge-number order."""
        out = []
        for e in self.arrows:
            src, dst = self.concept(e.source), self.concept(e.target)
            if src.kind is NodeKind.DERIVED or dst.kind is NodeKind.DERIVED:
                continue
            for t in src.columns:
                for o in dst.columns:
                    out.append(ColumnEdge(e.number, e.label, t, o, e.sign_for(t), e.chapter))
        return tuple(out)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Column-level nodes (derived concepts excluded)."""
        return tuple(
            col for c in self._concepts.values() if c.kind is not NodeKind.DERIVED for col in c.columns
        )

    # ---- graphs -----------------------------------------------------------------
    def column_graph(self, columns: Iterable[str] | None = None) -> nx.DiGraph:
        """The column-level DAG, optionally restricted to ``columns``.

        Every node carries ``concept`` and ``kind`` attributes; every edge
        ``number``, ``edge``, ``expected_sign`` and ``chapter``. Derived concepts
        (``overparameterization``) are left out: they are deterministic in other
        nodes and would make adjustment sets collinear; edge 3 is analysed as a
        moderation of edge 2 instead.
        """
        keep = None if columns is None else set(columns)
        g = nx.DiGraph()
        for c in self._concepts.values():
            if c.kind is NodeKind.DERIVED:
                continue
            for col in c.columns:
                if keep is None or col in keep:
                    g.add_node(col, concept=c.id, kind=c.kind.value)
        for ce in self.column_edges():
            if ce.treatment in g and ce.outcome in g:
                g.add_edge(
                    ce.treatment,
                    ce.outcome,
                    number=ce.number,
                    edge=ce.edge,
                    expected_sign=ce.expected_sign.value,
                    chapter=ce.chapter,
                )
        return g

    def to_networkx(self, level: str = "concept") -> nx.DiGraph:
        """The graph as a networkx ``DiGraph`` at ``level`` 'concept' or 'column'."""
        if level == "column":
            return self.column_graph()
        if level != "concept":
            raise GraphError(f"level must be 'concept' or 'column', got {level!r}")
        g = nx.DiGraph()
        for c in self._concepts.values():
            g.add_node(c.id, kind=c.kind.value, columns=",".join(c.columns), chapter=c.chapter)
        for e in self.arrows:
            g.add_edge(e.source, e.target, number=e.number, expected_sign=e.sign.value, chapter=e.chapter)
        for e in self._edges.values():
            if e.kind is EdgeKind.MODERATION:
                # drawn as a dashed arrow to the moderated edge's target
                g.add_edge(e.source, e.target, number=e.number, expected_sign=e.sign.value,
                           chapter=e.chapter, moderates=e.moderates)
        return g

    def to_dot(self, level: str = "concept") -> str:
        """Graphviz DOT text (no graphviz install needed to produce it)."""
        g = self.to_networkx(level)
        shape = {"lever": "box", "context": "box", "derived": "diamond", "mediator": "ellipse", "outcome": "doubleoctagon"}
        lines = [f'digraph "udl_{level}" {{', "  rankdir=LR;"]
        for n, d in g.nodes(data=True):
            lines.append(f'  "{n}" [shape={shape.get(d.get("kind"), "ellipse")}, kind="{d.get("kind")}"];')
        for u, v, d in g.edges(data=True):
            style = ', style=dashed' if d.get("moderates") else ""
            sign = d.get("expected_sign", "?")
            lines.append(f'  "{u}" -> "{v}" [label="{d.get("number")} ({sign})"{style}];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_gml(self, level: str = "concept") -> str:
        """GML text via networkx."""
        g = self.to_networkx(level)
        return "\n".join(nx.generate_gml(g)) + "\n"


def _c(id_, kind, columns, doc, chapter, extra=()):
    return Concept(id_, NodeKind(kind), tuple(columns), doc, chapter, tuple(extra))


_P, _N, _U, _FLIP = Sign.POSITIVE, Sign.NEGATIVE, Sign.UNKNOWN, Sign.FLIPS

_CONCEPTS = (
    _c("model_capacity", "lever", ["capacity"], "log10(trainable parameters)", "3-4, 8"),
    _c("inductive_bias", "lever", ["inductive_bias"], "architecture matches the data's structure", "10-13"),
    _c("loss_design", "lever", ["loss_matched"], "loss is the NLL of the right output distribution", "5"),
    _c("init_quality", "lever", ["init_quality"], "-|log2(init scale / He scale)|", "7.5"),
    _c("optimizer", "lever", ["optimizer_momentum", "optimizer_adam", "log_lr", "log_batch"],
       "optimizer contrasts vs SGD, log10 lr, log2 batch size", "6", extra=["optimizer"]),
    _c("explicit_regularization", "lever",
       ["weight_decay", "dropout", "label_smoothing", "augmentation", "early_stopping"],
       "strength of explicit regularizers", "9"),
    _c("transfer_learning", "lever", ["pretrained"], "initialized from a related source task", "9.3"),
    _c("normalization", "lever", ["normalization_batch", "normalization_layer"],
       "batch / layer normalization contrasts vs none", "11.4", extra=["normalization", "normalized"]),
    _c("residual_connections", "lever", ["residual"], "residual connections", "11"),
    _c("data_quantity", "context", ["data_quantity"], "log10(training examples)", "8"),
    _c("data_noise", "context", ["data_noise"], "label-noise fraction or relative noise std", "8"),
    _c("overparameterization", "derived", ["overparam"],
       "log10(parameters / (examples x outputs)); moderates edge 2", "8.4", extra=["overparameterized"]),
    _c("gradient_stability", "mediator", ["gradient_stability"], "-|log10 ratio of first/last hidden pre-activation gradients|", "7.5"),
    _c("loss_surface", "mediator", ["sharpness"], "log10 top Hessian eigenvalue at the end of training", "6, 20.3"),
    _c("implicit_regularization", "mediator", ["implicit_reg"], "strength of SGD's implicit gradient-norm penalty", "9.2"),
    _c("model_bias", "mediator", ["bias_sq"], "log10 squared bias over replicas", "8.2"),
    _c("model_variance", "mediator", ["variance"], "log10 variance across replicas", "8.2"),
    _c("training_convergence", "mediator", ["convergence"], "-log10(final / initial training loss)", "6", extra=["diverged"]),
    _c("generalization", "outcome", ["generalization"], "test accuracy or test R^2", "8",
       extra=["test_loss", "test_error", "gen_gap"]),
    _c("sample_quality", "outcome", ["precision", "recall", "coverage", "density"],
       "k-NN precision/recall, coverage/density of generated samples", "14-18"),
    _c("deployment_risk", "outcome", ["deployment_risk"], "worst-group minus best-group test error", "21",
       extra=["ece"]),
)


def _e(n, s, t, sign, ch, **kw):
    return Edge(n, s, t, sign, ch, **kw)


_EDGES = (
    _e(1, "model_capacity", "model_bias", _N, "8.2"),
    _e(2, "model_capacity", "model_variance", _U, "8.2, 8.4",
       regime_signs={"under": _P, "over": _N},
       note="+ under-parameterized, - over-parameterized (double descent); estimated per regime"),
    _e(3, "overparameterization", "model_variance", _FLIP, "8.4", kind=EdgeKind.MODERATION, moderates=2,
       note="moderates edge 2: its sign flips between the under- and over-parameterized regimes"),
    _e(4, "model_bias", "generalization", _N, "8.2"),
    _e(5, "model_variance", "generalization", _N, "8.2"),
    _e(6, "data_quantity", "model_variance", _N, "8.2"),
    _e(7, "explicit_regularization", "model_variance", _N, "9"),
    _e(8, "explicit_regularization", "model_bias", _P, "9"),
    _e(9, "init_quality", "gradient_stability", _P, "7.5"),
    _e(10, "gradient_stability", "training_convergence", _P, "7"),
    _e(11, "residual_connections", "gradient_stability", _P, "11.2"),
    _e(12, "normalization", "gradient_stability", _P, "11.4"),
    _e(13, "normalization", "loss_surface", _N, "11.4, 20"),
    _e(14, "residual_connections", "loss_surface", _N, "11.3, 20"),
    _e(15, "loss_surface", "training_convergence", _N, "6, 20"),
    _e(16, "training_convergence", "generalization", _P, "8, 20"),
    _e(17, "optimizer", "implicit_regularization", _U, "9.2",
       column_signs={"log_lr": _P, "log_batch": _N},
       note="the book: implicit regularization grows with lr / batch size (+ for log_lr, - for log_batch)"),
    _e(18, "implicit_regularization", "model_variance", _N, "9.2"),
    _e(19, "loss_design", "training_convergence", _P, "5"),
    _e(20, "inductive_bias", "model_variance", _N, "10"),
    _e(21, "inductive_bias", "model_bias", _U, "10"),
    _e(22, "transfer_learning", "model_variance", _N, "9.3.6"),
    _e(23, "data_noise", "generalization", _N, "8"),
    _e(24, "model_capacity", "sample_quality", _P, "14-18"),
    _e(25, "generalization", "deployment_risk", _N, "21"),
    _e(26, "data_quantity", "deployment_risk", _N, "21"),
    _e(27, "loss_surface", "generalization", _N, "20.3"),
)

#: The book's graph: 21 concepts, 27 edges (26 arrows and one moderation).
BOOK_DAG = CausalGraph(_CONCEPTS, _EDGES)
