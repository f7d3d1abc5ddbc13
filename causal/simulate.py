"""A linear structural causal model over the column-level graph, for tests.

:func:`simulate_linear_scm` draws a runs-like table whose true causal
structure is known: every root lever is randomized independently (as the
generator does), every other node is a linear combination of its column-level
parents plus Gaussian noise. The returned :class:`SimulatedData` carries the
true direct coefficient of every column edge, so estimators can be checked
against it (``fit_edges`` CIs, mediation path effects, falsification).

Lever distributions (root nodes)
--------------------------------
* binary levers (``inductive_bias``, ``loss_matched``, ``augmentation``,
  ``early_stopping``, ``pretrained``, ``residual``): Bernoulli(0.5), int64 0/1;
* categorical levers: ``optimizer`` uniform over sgd/momentum/adam and
  ``normalization`` over none/batch/layer; their 0/1 contrasts
  (``optimizer_momentum``, ``optimizer_adam``, ...) are derived from that one
  draw, so two contrasts of one lever are never both 1; the string columns and
  ``normalized`` are written too;
* continuous levers and context: uniform on a realistic range
  (:data:`LEVER_RANGES`); ``init_quality`` is ``-|N(0, 1)|``;
* ``overparam = capacity - data_quantity`` and ``overparameterized`` are
  derived (they are not nodes of the analysis graph).

Default coefficients
--------------------
The default coefficient of a column edge ``t → o`` is
``sign × 0.5 / sd(t)`` for root levers (half a noise sd per lever sd) and
``sign × 0.5`` for mediator/outcome treatments, where ``sign`` is the book's
expected sign and ``+`` for edges whose sign is ``?``. ``coefficients``
overrides single edges (keys ``(treatment, outcome)``) or all column edges of
a book edge (key: the edge number).

Examples
--------
>>> sim = simulate_linear_scm(500, seed=1)
>>> sim.data.shape[0]
500
>>> round(sim.coefficient("residual", "gradient_stability"), 3)
1.0
>>> sim2 = simulate_linear_scm(500, seed=1, coefficients={("residual", "sharpness"): 0.0})
>>> sim2.coefficient("residual", "sharpness")
0.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd

from causal.errors import ConfigError, GraphError
from causal.graph import BOOK_DAG, CausalGraph
from causal.variables import CATEGORICALS

__all__ = [
    "LEVER_RANGES",
    "BINARY_LEVERS",
    "SimulatedData",
    "simulate_linear_scm",
    "default_coefficients",
]

#: uniform ranges of the continuous levers and context columns
LEVER_RANGES: dict[str, tuple[float, float]] = {
    "capacity": (2.5, 5.5),
    "log_lr": (-4.0, -1.0),
    "log_batch": (4.0, 9.0),
    "weight_decay": (0.0, 0.01),
    "dropout": (0.0, 0.5),
    "label_smoothing": (0.0, 0.2),
    "data_quantity": (2.5, 4.5),
    "data_noise": (0.0, 0.4),
}

#: Bernoulli(0.5) 0/1 levers (stored as int64 like the schema declares)
BINARY_LEVERS: tuple[str, ...] = (
    "inductive_bias",
    "loss_matched",
    "augmentation",
    "early_stopping",
    "pretrained",
    "residual",
)

_HALF_NORMAL_SD = float(np.sqrt(1 - 2 / np.pi))  # sd of -|N(0,1)|
_CONTRAST_SD = float(np.sqrt((1 / 3) * (2 / 3)))  # sd of a 1-in-3 indicator


def _lever_sd(col: str) -> float:
    """Population sd of a root lever under the simulator's distribution."""
    if col in LEVER_RANGES:
        lo, hi = LEVER_RANGES[col]
        return (hi - lo) / np.sqrt(12.0)
    if col in BINARY_LEVERS:
        return 0.5
    if col == "init_quality":
        return _HALF_NORMAL_SD
    if any(col in c.contrasts for c in CATEGORICALS.values()):
        return _CONTRAST_SD
    return 1.0  # any other root: standard normal


@dataclass(frozen=True)
class SimulatedData:
    """A simulated runs table and the truth that generated it.

    Attributes
    ----------
    data : pandas.DataFrame
        One row per simulated run: graph nodes (restricted to ``columns`` if
        given), string columns ``optimizer``/``normalization``, ``normalized``,
        ``overparam``, ``overparameterized``, ``run_id`` and ``seed``.
    true_effects : pandas.DataFrame
        One row per generating column edge: ``treatment``, ``outcome``,
        ``number`` (book edge number, 0 for an added edge), ``coefficient``
        (true direct effect per unit of the treatment column), ``in_book``.
    graph : networkx.DiGraph
        The generating column-level graph (after ``drop_edges``/``add_edges``).
    seed : int
    regime_coefficients : tuple of float or None
        ``(under, over)`` slopes of ``capacity → variance`` when edge 2 was
        simulated with a moderation; then ``coefficient`` for that edge is NaN.
    """

    data: pd.DataFrame
    true_effects: pd.DataFrame
    graph: nx.DiGraph
    seed: int
    regime_coefficients: tuple[float, float] | None = None

    def coefficient(self, treatment: str, outcome: str) -> float:
        """True direct coefficient of ``treatment → outcome`` (0.0 if no such edge)."""
        if not self.graph.has_edge(treatment, outcome):
            for node in (treatment, outcome):
                if node not in self.graph:
                    raise GraphError(f"{node!r} is not a node of the simulated graph")
            return 0.0
        return float(self.graph.edges[treatment, outcome]["coefficient"])

    def path_effect(self, path: Sequence[str]) -> float:
        """True path-specific effect of a directed chain: the product of its coefficients.

        Parameters
        ----------
        path : sequence of str
            Column names ``[treatment, mediator..., outcome]``; every consecutive
            pair must be an edge of the simulated graph.

        Raises
        ------
        GraphError
            If a consecutive pair is not an edge.
        """
        if len(path) < 2:
            raise GraphError(f"a path needs at least two columns, got {list(path)}")
        effect = 1.0
        for a, b in zip(path[:-1], path[1:]):
            if not self.graph.has_edge(a, b):
                raise GraphError(
                    f"{a!r} → {b!r} is not an edge of the simulated graph; "
                    f"path {list(path)} is not a directed chain"
                )
            effect *= float(self.graph.edges[a, b]["coefficient"])
        return effect

    def total_effect(self, treatment: str, outcome: str) -> float:
        """True total effect of ``treatment`` on ``outcome``: sum over all directed paths."""
        for node in (treatment, outcome):
            if node not in self.graph:
                raise GraphError(f"{node!r} is not a node of the simulated graph")
        if treatment == outcome:
            return 1.0
        return float(
            sum(self.path_effect(p) for p in nx.all_simple_paths(self.graph, treatment, outcome))
        )


def default_coefficients(graph: CausalGraph = BOOK_DAG) -> dict[tuple[str, str], float]:
    """The default true coefficient of every column edge (see module docstring)."""
    roots = {n for n, d in graph.column_graph().nodes(data=True) if d["kind"] in ("lever", "context")}
    out = {}
    for ce in graph.column_edges():
        sign = -1.0 if ce.expected_sign.value == "-" else 1.0
        scale = 0.5 / _lever_sd(ce.treatment) if ce.treatment in roots else 0.5
        out[(ce.treatment, ce.outcome)] = sign * scale
    return out


def _resolve_coefficients(
    graph: CausalGraph, coefficients: Mapping[object, float] | None
) -> dict[tuple[str, str], float]:
    coef = default_coefficients(graph)
    for key, value in (coefficients or {}).items():
        if isinstance(key, int):
            keys = [k for k in coef if graph.column_graph().edges[k]["number"] == key]
            if not keys:
                raise ConfigError(f"coefficients: edge number {key} has no column edge; use 1..27 (arrows)")
            for k in keys:
                coef[k] = float(value)
        elif isinstance(key, tuple) and len(key) == 2:
            if key not in coef:
                raise ConfigError(
                    f"coefficients: {key[0]!r} → {key[1]!r} is not a column edge of the graph; "
                    "to simulate an edge the graph lacks, pass it in add_edges"
                )
            coef[key] = float(value)
        else:
            raise ConfigError(
                f"coefficients: key {key!r} must be an edge number or a (treatment, outcome) tuple"
            )
    return coef


def _draw_levers(rng: np.random.Generator, n: int, nodes: Iterable[str]) -> dict[str, np.ndarray]:
    """Independent draws of every root lever (fixed order, so draws do not depend on edits)."""
    out: dict[str, np.ndarray] = {}
    cats = {cat.column: cat for cat in CATEGORICALS.values()}
    for name, cat in cats.items():
        levels = (cat.reference, *cat.levels)
        idx = rng.integers(0, len(levels), size=n)
        out[name] = np.asarray(levels, dtype=object)[idx]
        for k, contrast in enumerate(cat.contrasts, start=1):
            out[contrast] = (idx == k).astype("float64")
    for col in nodes:
        if col in out:
            continue
        if col in LEVER_RANGES:
            lo, hi = LEVER_RANGES[col]
            out[col] = rng.uniform(lo, hi, size=n)
        elif col in BINARY_LEVERS:
            out[col] = rng.integers(0, 2, size=n).astype("int64")
        elif col == "init_quality":
            out[col] = -np.abs(rng.standard_normal(n))
    return out


def simulate_linear_scm(
    n: int,
    *,
    seed: int,
    graph: CausalGraph = BOOK_DAG,
    coefficients: Mapping[object, float] | None = None,
    drop_edges: Iterable[tuple[str, str]] = (),
    add_edges: Mapping[tuple[str, str], float] | None = None,
    noise_sd: float | Mapping[str, float] = 1.0,
    columns: Iterable[str] | None = None,
    regime_coefficients: tuple[float, float] | None = None,
) -> SimulatedData:
    """Draw ``n`` runs from a linear SCM over ``graph``'s column-level DAG.

    Parameters
    ----------
    n : int
        Number of rows (runs), at least 1.
    seed : int
        Seed of the ``numpy.random.Generator``; the same arguments and seed
        always give the same table.
    graph : CausalGraph
        The hypothesis whose column-level graph generates the data.
    coefficients : mapping, optional
        Overrides of the default true coefficients, keyed by
        ``(treatment, outcome)`` or by book edge number (all its column edges).
        E.g. ``{("residual", "sharpness"): +0.8}`` contradicts the book's sign,
        ``{23: 0.0}`` makes edge 23 null.
    drop_edges : iterable of (str, str)
        Column edges of ``graph`` that the *true* process lacks.
    add_edges : mapping (str, str) -> float, optional
        Extra true edges the book lacks, with their coefficients (the result
        must stay acyclic), e.g. ``{("log_lr", "sharpness"): -0.4}``.
    noise_sd : float or mapping column -> float
        Standard deviation of each non-root node's Gaussian noise.
    columns : iterable of str, optional
        Keep only these node columns in ``data`` (the others act as latent
        variables); string/derived/id columns are kept when their sources are.
    regime_coefficients : (float, float), optional
        Simulate edge 3's moderation: ``capacity → variance`` has slope
        ``under`` where ``overparam <= 0`` and ``over`` where ``overparam > 0``.

    Returns
    -------
    SimulatedData

    Raises
    ------
    ConfigError
        For ``n < 1``, an unknown override/drop edge, a negative noise sd.
    GraphError
        When ``add_edges`` names an unknown node or makes a cycle.
    """
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    coef = _resolve_coefficients(graph, coefficients)
    g = graph.column_graph()
    nx.set_edge_attributes(g, {k: v for k, v in coef.items()}, "coefficient")
    for u, v in g.edges:
        g.edges[u, v]["in_book"] = True
    for t, o in drop_edges:
        if not g.has_edge(t, o):
            raise ConfigError(f"drop_edges: {t!r} → {o!r} is not a column edge of the graph")
        g.remove_edge(t, o)
    for (t, o), value in (add_edges or {}).items():
        for node in (t, o):
            if node not in g:
                raise GraphError(f"add_edges: {node!r} is not a column-level node; nodes: {', '.join(g)}")
        g.add_edge(t, o, coefficient=float(value), number=0, edge=f"{t}→{o}", expected_sign="?", in_book=False)
    if not nx.is_directed_acyclic_graph(g):
        raise GraphError(f"add_edges makes the graph cyclic: {nx.find_cycle(g)}")
    if regime_coefficients is not None and not g.has_edge("capacity", "variance"):
        raise ConfigError("regime_coefficients needs the capacity → variance edge in the graph")

    nodes = list(graph.nodes)
    kinds = dict(g.nodes(data="kind"))
    values: dict[str, np.ndarray] = _draw_levers(rng, n, nodes)
    noise = rng.standard_normal((len(nodes), n))  # (nodes, runs), fixed order
    overparam = values["capacity"] - values["data_quantity"]
    for node in nx.lexicographical_topological_sort(g):
        parents = list(g.predecessors(node))
        if kinds[node] in ("lever", "context") and node in values:
            continue  # randomized root lever (drawn above)
        sd = noise_sd.get(node, 1.0) if isinstance(noise_sd, Mapping) else float(noise_sd)
        if sd < 0:
            raise ConfigError(f"noise_sd for {node!r} must be >= 0, got {sd}")
        x = sd * noise[nodes.index(node)]
        for p in parents:
            pv = np.asarray(values[p], dtype="float64")
            if (p, node) == ("capacity", "variance") and regime_coefficients is not None:
                under, over = regime_coefficients
                x = x + np.where(overparam > 0, over, under) * pv
            else:
                x = x + g.edges[p, node]["coefficient"] * pv
        values[node] = x

    keep = set(nodes) if columns is None else set(columns)
    unknown = keep - set(nodes) - {"optimizer", "normalization", "normalized", "overparam", "overparameterized"}
    if unknown:
        raise ConfigError(f"columns: unknown column(s) {sorted(unknown)}; choose from the graph's nodes {nodes}")
    data = {"run_id": [f"sim{seed}-{i}" for i in range(n)], "seed": np.arange(n, dtype="int64") + seed * n}
    for cat in CATEGORICALS.values():
        if columns is None or cat.column in keep or any(c in keep for c in cat.contrasts):
            data[cat.column] = pd.array(values[cat.column], dtype="string")
    if "normalization" in data:
        data["normalized"] = (values["normalization"] != "none").astype("int64")
    if columns is None or "capacity" in keep or "overparam" in keep:
        data["overparam"] = overparam
        data["overparameterized"] = (overparam > 0).astype("int64")
    for col in nodes:
        if col in keep:
            data[col] = values[col]
    frame = pd.DataFrame(data)

    if regime_coefficients is not None:
        g.edges["capacity", "variance"]["coefficient"] = float("nan")
    truth = pd.DataFrame(
        [
            {
                "treatment": u,
                "outcome": v,
                "number": int(d.get("number", 0)),
                "coefficient": float(d["coefficient"]),
                "in_book": bool(d.get("in_book", False)),
            }
            for u, v, d in g.edges(data=True)
        ]
    ).sort_values(["number", "treatment", "outcome"], ignore_index=True)
    return SimulatedData(
        data=frame,
        true_effects=truth,
        graph=g,
        seed=seed,
        regime_coefficients=None if regime_coefficients is None else tuple(map(float, regime_coefficients)),
    )
