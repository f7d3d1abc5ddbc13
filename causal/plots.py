"""Shared plotting: the layered causal graph and forest plots of effects.

Every function draws only on the ``ax`` it is given (a new figure's axes when
``ax`` is None) and returns it. matplotlib is imported on first use, so
importing :mod:`causal` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["VERDICT_COLORS", "KIND_COLORS", "layered_layout", "draw_graph", "forest", "paired_forest", "measure_bars"]

#: edge colours by verdict (green supports, red contradicts, grey inconclusive)
VERDICT_COLORS: dict[str, str] = {
    "supports": "#2e7d32",
    "contradicts": "#c62828",
    "inconclusive": "#9e9e9e",
    "book": "#455a64",  # an edge drawn without an estimate
}

KIND_COLORS: dict[str, str] = {
    "lever": "#bbdefb",
    "context": "#c8e6c9",
    "derived": "#fff9c4",
    "mediator": "#ffe0b2",
    "outcome": "#f8bbd0",
    "latent": "#eeeeee",
}


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def layered_layout(graph: nx.DiGraph) -> dict[Any, tuple[float, float]]:
    """Positions with levers/context left, mediators in the middle, outcomes right.

    A node's layer is the length of the longest directed path reaching it
    (roots — levers and context — are layer 0; outcomes are moved to the last
    layer). Within a layer nodes are ordered by the mean height of their
    parents (one barycentre sweep) to reduce crossings.
    """
    layer: dict[Any, int] = {}
    for node in nx.topological_sort(graph):
        preds = list(graph.predecessors(node))
        layer[node] = 0 if not preds else 1 + max(layer[p] for p in preds)
        if graph.nodes[node].get("kind") in ("lever", "context"):
            layer[node] = 0
    last = max(layer.values(), default=0)
    for node, d in graph.nodes(data=True):
        if d.get("kind") == "outcome" and graph.out_degree(node) == 0:
            layer[node] = max(last, layer[node])
    pos: dict[Any, tuple[float, float]] = {}
    for k in sorted(set(layer.values())):
        nodes = [n for n in graph.nodes if layer[n] == k]
        if k > 0:
            nodes.sort(key=lambda n: np.mean([pos[p][1] for p in graph.predecessors(n) if p in pos] or [0.0]))
        heights = np.linspace(1.0, -1.0, len(nodes)) if len(nodes) > 1 else [0.0]
        for n, y in zip(nodes, heights):
            pos[n] = (float(k), float(y))
    return pos


def draw_graph(
    graph: nx.DiGraph,
    ax: Axes | None = None,
    *,
    edge_colors: Mapping[tuple[Any, Any], str] | None = None,
    edge_widths: Mapping[tuple[Any, Any], float] | None = None,
    edge_styles: Mapping[tuple[Any, Any], str] | None = None,
    edge_labels: Mapping[tuple[Any, Any], str] | None = None,
    title: str | None = None,
    legend: Mapping[str, str] | None = None,
) -> Axes:
    """Draw ``graph`` in a :func:`layered_layout`, nodes coloured by ``kind``.

    Parameters
    ----------
    edge_colors, edge_widths, edge_styles, edge_labels : mapping (u, v) -> value, optional
        Per-edge colour, line width, line style (``'solid'``/``'dashed'``) and
        label; unspecified edges are drawn thin and dark grey.
    legend : mapping label -> colour, optional
        Adds a legend of coloured lines.
    """
    ax = _axes(ax, (14, 8))
    pos = layered_layout(graph)
    node_colors = [KIND_COLORS.get(graph.nodes[n].get("kind", "mediator"), "#ffffff") for n in graph.nodes]
    nx.draw_networkx_nodes(graph, pos, ax=ax, node_color=node_colors, node_size=900, edgecolors="#607d8b")
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=7)
    edges = list(graph.edges)
    colors = [(edge_colors or {}).get(e, VERDICT_COLORS["book"]) for e in edges]
    widths = [(edge_widths or {}).get(e, 1.0) for e in edges]
    styles = [(edge_styles or {}).get(e, "solid") for e in edges]
    nx.draw_networkx_edges(
        graph, pos, ax=ax, edgelist=edges, edge_color=colors, width=widths, style=styles,
        arrows=True, arrowsize=10, node_size=900, connectionstyle="arc3,rad=0.05",
    )
    if edge_labels:
        nx.draw_networkx_edge_labels(graph, pos, edge_labels=dict(edge_labels), ax=ax, font_size=6)
    if legend:
        from matplotlib.lines import Line2D

        handles = [Line2D([0], [0], color=c, lw=2, label=label) for label, c in legend.items()]
        ax.legend(handles=handles, loc="lower left", fontsize=7, frameon=False)
    if title:
        ax.set_title(title)
    ax.set_axis_off()
    return ax


def forest(
    frames: Sequence[pd.DataFrame],
    ax: Axes | None = None,
    *,
    labels: Sequence[str] | None = None,
    value: str = "std_effect",
    low: str = "std_ci_low",
    high: str = "std_ci_high",
    xlabel: str = "standardized direct effect",
) -> Axes:
    """Forest plot of one or several summaries (ArviZ-style comparison).

    Parameters
    ----------
    frames : sequence of DataFrame
        Each needs ``treatment``, ``outcome``, ``verdict`` and the ``value``,
        ``low`` and ``high`` columns. Rows are matched across frames by
        ``treatment → outcome``; each fit is drawn with its own marker and a
        small vertical offset.
    labels : sequence of str, optional
        Names of the fits for the legend.
    """
    keys: list[str] = []
    for df in frames:
        for t, o in zip(df["treatment"], df["outcome"]):
            k = f"{t} → {o}"
            if k not in keys:
                keys.append(k)
    ax = _axes(ax, (7, max(3.0, 0.28 * len(keys) + 1)))
    ypos = {k: len(keys) - 1 - i for i, k in enumerate(keys)}
    markers = "osD^v<>"
    m = len(frames)
    for j, df in enumerate(frames):
        offset = (j - (m - 1) / 2) * (0.6 / max(m, 1)) if m > 1 else 0.0
        for _, row in df.iterrows():
            y = ypos[f"{row['treatment']} → {row['outcome']}"] - offset
            color = VERDICT_COLORS.get(str(row.get("verdict")), VERDICT_COLORS["book"])
            ax.plot([row[low], row[high]], [y, y], color=color, lw=1.5)
            ax.plot([row[value]], [y], marker=markers[j % len(markers)], color=color, ms=4)
    ax.axvline(0.0, color="black", lw=0.8, ls=":")
    ax.set_yticks(list(ypos.values()), list(ypos.keys()), fontsize=7)
    ax.set_xlabel(xlabel)
    if labels:
        from matplotlib.lines import Line2D

        handles = [Line2D([0], [0], marker=markers[j % len(markers)], color="black", lw=0, ms=4, label=lab)
                   for j, lab in enumerate(labels)]
        handles += [Line2D([0], [0], color=c, lw=1.5, label=k) for k, c in VERDICT_COLORS.items() if k != "book"]
        ax.legend(handles=handles, fontsize=7, frameon=False)
    return ax


def paired_forest(
    df: pd.DataFrame,
    ax: Axes | None = None,
    *,
    labels: Sequence[str] = ("a", "b"),
    status_colors: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Axes:
    """Two fits' CIs per edge, one above the other; the edge label coloured by its status.

    Parameters
    ----------
    df : DataFrame
        A :class:`causal.compare.Comparison` summary: ``treatment``,
        ``outcome``, ``regime``, ``estimate_a``/``ci_low_a``/``ci_high_a``,
        the same for ``b``, and ``status``.
    labels : (str, str)
        Names of the two fits for the legend.
    status_colors : mapping status -> colour, optional
    """
    from matplotlib.lines import Line2D

    status_colors = dict(status_colors or {})
    keys = [f"{t} → {o}" + (f" [{r}]" if r else "") for t, o, r in zip(df["treatment"], df["outcome"], df["regime"])]
    ax = _axes(ax, (8, max(3.0, 0.32 * len(keys) + 1.5)))
    side_colors = ("#37474f", "#1e88e5")
    n = len(keys)
    for i, row in enumerate(df.itertuples(index=False)):
        y = n - 1 - i
        for j, side in enumerate(("a", "b")):
            est, lo, hi = (getattr(row, f"{c}_{side}") for c in ("estimate", "ci_low", "ci_high"))
            if not np.isfinite(est):
                continue
            yy = y + (0.17 if j == 0 else -0.17)
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [yy, yy], color=side_colors[j], lw=1.6)
            ax.plot([est], [yy], marker="os"[j], color=side_colors[j], ms=4)
    ax.axvline(0.0, color="black", lw=0.8, ls=":")
    ax.set_yticks(range(n - 1, -1, -1), keys, fontsize=7)
    for tick, status in zip(ax.get_yticklabels(), df["status"]):
        # unchanged edges stay black so that the changed ones stand out
        tick.set_color("black" if status in ("stable", "not_significant") else status_colors.get(str(status), "black"))
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("direct effect per unit of treatment (symlog scale: linear within ±1)")
    handles = [Line2D([0], [0], marker="os"[j], color=side_colors[j], lw=1.6, ms=4, label=str(lab))
               for j, lab in enumerate(labels)]
    present = [s for s in status_colors if s in set(df["status"].astype(str)) and s not in ("stable", "not_significant")]
    handles += [Line2D([0], [0], color=status_colors[s], lw=0, marker="$A$", ms=7, label=f"label: {s}")
                for s in present]
    ax.legend(handles=handles, fontsize=7, frameon=True, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def measure_bars(summary: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Per measure: Kendall τ, granulated Ψ and 1 − 2 × sign error (mean and worst environment).

    All four are on one scale: 1 a measure that always orders the gap right
    (in its book orientation), 0 chance, −1 always wrong.
    """
    ax = _axes(ax, (8, 4))
    scores = {
        "Kendall τ (all runs)": summary["kendall_tau"],
        "granulated Ψ": summary["psi"],
        "1 − 2·mean sign error": 1 - 2 * summary["mean_sign_error"],
        "1 − 2·worst sign error": 1 - 2 * summary["worst_sign_error"],
    }
    colors = ("#1e88e5", "#43a047", "#fb8c00", "#c62828")
    x = np.arange(len(summary))
    w = 0.8 / len(scores)
    for j, ((label, vals), c) in enumerate(zip(scores.items(), colors)):
        ax.bar(x + (j - 1.5) * w, np.asarray(vals, dtype=float), w, label=label, color=c)
    ax.axhline(0.0, color="black", lw=0.8)
    names = [f"{m}\n({'+' if o > 0 else '−'} oriented)" for m, o in zip(summary["measure"], summary["orientation"])]
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("agreement with the gap's order\n(1 perfect, 0 chance, −1 reversed)", fontsize=8)
    ax.set_title("Mediators as predictors of the generalization gap", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return ax
