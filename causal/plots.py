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

__all__ = ["VERDICT_COLORS", "KIND_COLORS", "layered_layout", "draw_graph", "effects_graph", "forest", "forest_facets",
           "matched_interval", "paired_forest", "measure_bars", "standardize_paths", "mediation_forest",
           "plot_edge", "distributions", "totals_heatmap"]

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


def _box_positions(graph: nx.DiGraph) -> tuple[dict[Any, tuple[float, float]], int, int]:
    """Layer columns 0..L-1 (x) and rows spread over the tallest layer's height (y), no two nodes closer than 1."""
    base = layered_layout(graph)
    layers: dict[float, list[Any]] = {}
    for n, (x, y) in base.items():
        layers.setdefault(x, []).append(n)
    xs = sorted(layers)
    tallest = max((len(v) for v in layers.values()), default=1)
    pos: dict[Any, tuple[float, float]] = {}
    for i, x in enumerate(xs):
        nodes = sorted(layers[x], key=lambda n: -base[n][1])  # keep the barycentre order, top to bottom
        ys = np.linspace(tallest - 1, 0, len(nodes)) if len(nodes) > 1 else [(tallest - 1) / 2]
        for n, y in zip(nodes, ys):
            pos[n] = (float(i), float(y))
    return pos, len(xs), tallest


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
    width_legend: Mapping[str, float] | None = None,
    style_legend: Mapping[str, str] | None = None,
    hide: Sequence[Any] = (),
) -> Axes:
    """Draw ``graph`` in layers (levers left, outcomes right), nodes as labelled boxes coloured by ``kind``.

    Boxes in a layer are spread over the height of the tallest layer, at least
    one row apart, so labels never overlap; arrows run from a box's right
    edge to the next box's left edge. The legend sits below the drawing.

    Parameters
    ----------
    edge_colors, edge_widths, edge_styles, edge_labels : mapping (u, v) -> value, optional
        Per-edge colour, line width, line style (``'solid'``/``'dashed'``) and
        label; unspecified edges are drawn thin and dark grey.
    legend : mapping label -> colour, optional
        What the edge colours mean.
    width_legend : mapping label -> line width, optional
        What the edge widths mean (e.g. ``{"|std effect| 0.1": 1.2, ...}``).
    style_legend : mapping label -> line style, optional
    hide : sequence of nodes
        Nodes left out (with their edges), e.g. columns with no data.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    g = graph.subgraph([n for n in graph.nodes if n not in set(hide)]).copy()
    pos, n_layers, tallest = _box_positions(g)
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(max(8.0, 3.2 * n_layers), max(4.0, 0.42 * tallest + 1.6)))
    texts = {}
    for n in g.nodes:
        kind = g.nodes[n].get("kind", "mediator")
        x, y = pos[n]
        texts[n] = ax.text(x, y, str(n), ha="center", va="center", fontsize=7, zorder=3,
                           bbox=dict(boxstyle="round,pad=0.35", fc=KIND_COLORS.get(kind, "#ffffff"), ec="#607d8b",
                                     lw=0.8))
    for u, v in g.edges:
        forward = pos[v][0] > pos[u][0]
        skip = forward and pos[v][0] - pos[u][0] > 1  # bend edges that jump a layer around its boxes
        color = (edge_colors or {}).get((u, v), VERDICT_COLORS["book"])
        ax.annotate(
            "", xy=(0.0, 0.5) if forward else (0.5, 1.0), xycoords=texts[v],
            xytext=(1.0, 0.5) if forward else (0.5, 0.0), textcoords=texts[u],
            arrowprops=dict(arrowstyle="-|>", color=color, lw=(edge_widths or {}).get((u, v), 1.0),
                            ls=(edge_styles or {}).get((u, v), "solid"), shrinkA=1, shrinkB=1, mutation_scale=9,
                            connectionstyle=f"arc3,rad={0.12 if skip else 0.0}" if forward else "arc3,rad=0.3", alpha=0.9),
            zorder=2,
        )
        if edge_labels and (u, v) in edge_labels:
            (x0, y0), (x1, y1) = pos[u], pos[v]
            ax.text(0.5 * (x0 + x1), 0.5 * (y0 + y1), edge_labels[(u, v)], fontsize=6, ha="center",
                    va="center", color=color, zorder=4, bbox=dict(fc="white", ec="none", pad=0.5, alpha=0.8))
    ax.set_xlim(-0.55, n_layers - 0.45)
    ax.set_ylim(-0.8, tallest - 0.2)
    handles: list[Any] = []
    if legend:
        handles += [Line2D([0], [0], color=c, lw=2, label=label) for label, c in legend.items()]
    if style_legend:
        handles += [Line2D([0], [0], color="#455a64", lw=1.5, ls=st, label=label) for label, st in style_legend.items()]
    if width_legend:
        handles += [Line2D([0], [0], color="#455a64", lw=w, label=label) for label, w in width_legend.items()]
    kinds = sorted({g.nodes[n].get("kind", "mediator") for n in g.nodes}, key=list(KIND_COLORS).index)
    handles += [Patch(fc=KIND_COLORS.get(k, "#ffffff"), ec="#607d8b", label=k) for k in kinds]
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(5, len(handles)),
                  fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_axis_off()
    return ax


def effects_graph(effects: Any, ax: Axes | None = None, *, hide_unestimated: bool = True) -> Axes:
    """The column graph of a fit: edges coloured by verdict, dashed when negative, width by |std effect|.

    Parameters
    ----------
    effects : EdgeEffects
    hide_unestimated : bool
        Leave out nodes none of whose edges was estimated (columns with no
        data in this table, e.g. sample quality in a supervised sweep).
    """
    g = effects.graph.column_graph()
    colors, widths, styles = {}, {}, {}
    for row in effects.summary.itertuples(index=False):
        e = (row.treatment, row.outcome)
        colors[e] = VERDICT_COLORS.get(str(row.verdict), VERDICT_COLORS["book"])
        size = row.std_effect if np.isfinite(row.std_effect) else 0.0
        widths[e] = _effect_width(size)
        styles[e] = "dashed" if row.estimate < 0 else "solid"
    hide: list[Any] = []
    if hide_unestimated:
        touched = set(effects.summary["treatment"]) | set(effects.summary["outcome"])
        hide = [n for n in g.nodes if n not in touched]
    legend = {f"{k} (corrected p < {effects.config.alpha:g})" if k != "inconclusive" else k: VERDICT_COLORS[k]
              for k in ("supports", "contradicts", "inconclusive")}
    legend["book edge, not estimated"] = VERDICT_COLORS["book"]
    width_legend = {f"|standardized effect| {v:g}": _effect_width(v) for v in (0.05, 0.25, 0.5, 1.0)}
    note = f"; hidden, no estimated edge: {', '.join(map(str, hide))}" if hide else ""
    return draw_graph(g, ax, edge_colors=colors, edge_widths=widths, edge_styles=styles, legend=legend,
                      width_legend=width_legend, style_legend={"positive estimate": "solid",
                                                               "negative estimate": "dashed"},
                      hide=hide, title=f"The book's graph on this table: verdict per edge{note}")


def _effect_width(std_effect: float) -> float:
    return 0.6 + 4.0 * min(abs(float(std_effect)), 1.0)


def matched_interval(df: pd.DataFrame, *, value: str, low: str, high: str, alpha: float = 0.05,
                     ci: str = "matched") -> tuple[np.ndarray, np.ndarray]:
    """CIs on the same footing as the verdict, from a summary's nominal CIs and p-values.

    ``ci="matched"`` (default): each interval is estimate ± z·SE at the level
    1 − α·p/p_adjusted, so it excludes 0 exactly when ``p_adjusted < alpha``
    (the verdict's test: Holm by default). ``"bonferroni"``: simultaneous at
    α/m. ``"nominal"``: the summary's own (unadjusted) interval. The SE is
    read back from the nominal interval (half-width ÷ z₁₋α/₂), so standardized
    columns work too.
    """
    from scipy import stats

    est = df[value].to_numpy(float)
    lo, hi = df[low].to_numpy(float), df[high].to_numpy(float)
    if ci == "nominal":
        return lo, hi
    if ci not in ("matched", "bonferroni"):
        raise ValueError(f"ci must be 'matched', 'bonferroni' or 'nominal', got {ci!r}")
    se = (hi - lo) / (2 * stats.norm.isf(alpha / 2))
    if ci == "bonferroni":
        level = np.full(len(df), alpha / max(len(df), 1))
    else:
        if not {"p_value", "p_adjusted"} <= set(df.columns):
            raise ValueError("ci='matched' needs the summary's p_value and p_adjusted columns; use ci='nominal'")
        p, p_adj = df["p_value"].to_numpy(float), df["p_adjusted"].to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where(p_adj > 0, alpha * p / p_adj, alpha)
        level = np.clip(np.nan_to_num(level, nan=alpha), 1e-300, alpha)
    z = stats.norm.isf(level / 2)
    return est - z * se, est + z * se


EXPECTED_MARKERS = {"+": ("$+$", "book expects +"), "-": ("$-$", "book expects −"), "?": ("$?$", "book: direction not stated")}


def forest(
    frames: Sequence[pd.DataFrame],
    ax: Axes | None = None,
    *,
    labels: Sequence[str] | None = None,
    value: str = "std_effect",
    low: str = "std_ci_low",
    high: str = "std_ci_high",
    xlabel: str = "standardized direct effect (sd of outcome per sd of treatment)",
    alpha: float = 0.05,
    ci: str = "matched",
    title: str | None = "Direct effects of the book's edges",
    legend: bool = True,
    expected: bool = True,
) -> Axes:
    """Forest plot of one or several summaries (ArviZ-style comparison).

    Parameters
    ----------
    frames : sequence of DataFrame
        Each needs ``treatment``, ``outcome``, ``verdict`` and the ``value``,
        ``low`` and ``high`` columns (and ``p_value``/``p_adjusted`` for
        ``ci="matched"``). Rows are matched across frames by
        ``treatment → outcome``; each fit is drawn with its own marker and a
        small vertical offset.
    labels : sequence of str, optional
        Names of the fits for the legend.
    alpha, ci
        The interval drawn (:func:`matched_interval`): by default on the same
        footing as the verdict, so a bar clear of 0 is exactly a significant
        verdict.
    title : str, optional
    legend : bool
        Verdict colours, the book's expected sign (the marker at the right
        edge) and the interval's meaning.
    """
    keys: list[str] = []
    signs: dict[str, str] = {}
    for df in frames:
        for t, o, e in zip(df["treatment"], df["outcome"], df.get("expected_sign", pd.Series([""] * len(df)))):
            k = f"{t} → {o}"
            if k not in keys:
                keys.append(k)
                signs[k] = str(e)
    ax = _axes(ax, (7, max(3.0, 0.28 * len(keys) + 1.5)))
    ypos = {k: len(keys) - 1 - i for i, k in enumerate(keys)}
    markers = "osD^v<>"
    m = len(frames)
    for j, df in enumerate(frames):
        lo, hi = matched_interval(df, value=value, low=low, high=high, alpha=alpha, ci=ci)
        offset = (j - (m - 1) / 2) * (0.6 / max(m, 1)) if m > 1 else 0.0
        for i, row in enumerate(df.itertuples(index=False)):
            y = ypos[f"{row.treatment} → {row.outcome}"] - offset
            color = VERDICT_COLORS.get(str(row.verdict), VERDICT_COLORS["book"])
            ax.plot([lo[i], hi[i]], [y, y], color=color, lw=1.5)
            ax.plot([getattr(row, value)], [y], marker=markers[j % len(markers)], color=color, ms=4)
    ax.axvline(0.0, color="black", lw=0.8, ls=":")
    ax.set_yticks(list(ypos.values()), list(ypos.keys()), fontsize=7)
    ax.set_ylim(-0.7, len(keys) - 0.3)
    # the book's expected sign, in a column just right of the data (axes-fraction x, data y)
    trans = ax.get_yaxis_transform()
    for k, y in ypos.items() if expected else ():
        mk = EXPECTED_MARKERS.get(signs.get(k, ""))
        if mk:
            ax.plot([1.02], [y], marker=mk[0], color="#37474f", ms=6, transform=trans, clip_on=False)
    ax.set_xlabel(xlabel, fontsize=8)
    what = {"matched": f"CIs matched to the {100 * (1 - alpha):g}% verdict (multiplicity-corrected)",
            "bonferroni": f"simultaneous {100 * (1 - alpha):g}% CIs (Bonferroni)",
            "nominal": f"unadjusted {100 * (1 - alpha):g}% CIs (verdicts are corrected)"}[ci]
    if title:
        ax.set_title(f"{title}\n{what}", fontsize=9)
    if legend:
        from matplotlib.lines import Line2D

        handles = [Line2D([0], [0], color=c, lw=1.5, label=k) for k, c in VERDICT_COLORS.items() if k != "book"]
        if labels:
            handles += [Line2D([0], [0], marker=markers[j % len(markers)], color="black", lw=0, ms=4, label=lab)
                        for j, lab in enumerate(labels)]
        handles += [Line2D([0], [0], marker=mk, color="#37474f", lw=0, ms=6, label=text)
                    for mk, text in EXPECTED_MARKERS.values()]
        ax.legend(handles=handles, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.05, 1.0))
    return ax


def forest_facets(effects: Any, *, alpha: float | None = None, ci: str = "matched",
                  figsize: tuple[float, float] | None = None) -> Any:
    """One forest panel per stratum beside the pooled fit (``fit_edges(..., by=...)``); a Figure.

    Without strata it is the pooled panel alone. Each panel's intervals are
    matched to its own verdicts (:func:`matched_interval`). Rows share the y
    axis, so an edge reads across the panels.
    """
    import matplotlib.pyplot as plt

    alpha = alpha if alpha is not None else effects.config.alpha
    panels = [("pooled" + (f" (within-{effects.by} sd)" if effects.by else ""), effects.summary)]
    strata = getattr(effects, "strata", None)
    if strata is not None and len(strata) and "stratum" in strata.columns:
        for name, frame in strata.groupby("stratum", sort=True):
            panels.append((f"{effects.by} = {name}", frame))
    n = len(effects.summary)
    fig, axes = plt.subplots(1, len(panels), figsize=figsize or (3.6 * len(panels) + 3.2, 0.27 * n + 2.2),
                             sharey=True, squeeze=False)
    order = [f"{t} → {o}" for t, o in zip(effects.summary["treatment"], effects.summary["outcome"])]
    for j, (ax, (name, frame)) in enumerate(zip(axes[0], panels)):
        keyed = frame.assign(_k=[f"{t} → {o}" for t, o in zip(frame["treatment"], frame["outcome"])])
        keyed = keyed.set_index("_k").reindex(order).reset_index(drop=True)
        keyed["treatment"] = effects.summary["treatment"].to_numpy()
        keyed["outcome"] = effects.summary["outcome"].to_numpy()
        keyed["expected_sign"] = effects.summary["expected_sign"].to_numpy()
        last = j == len(panels) - 1
        forest([keyed], ax, alpha=alpha, ci=ci, title=None, legend=last, expected=last,
               xlabel="standardized direct effect")
        ax.set_title(name, fontsize=9)
    what = {"matched": "intervals matched to each panel's multiplicity-corrected verdict",
            "bonferroni": "simultaneous (Bonferroni) intervals", "nominal": "unadjusted intervals"}[ci]
    fig.suptitle(f"Direct effects of the book's edges: {what} (alpha {alpha:g})", fontsize=10)
    fig.tight_layout()
    return fig


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
    flags = df["setting_changed"].to_numpy(bool) if "setting_changed" in df.columns else np.zeros(len(df), bool)
    keys = [f"{t} → {o}" + (f" [{r}]" if r else "") + (" *" if f else "")
            for t, o, r, f in zip(df["treatment"], df["outcome"], df["regime"], flags)]
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
    ax.set_xlabel("direct effect per unit of treatment (symlog scale: linear within ±1)", fontsize=8)
    handles = [Line2D([0], [0], marker="os"[j], color=side_colors[j], lw=1.6, ms=4, label=str(lab))
               for j, lab in enumerate(labels)]
    present = [s for s in status_colors if s in set(df["status"].astype(str)) and s not in ("stable", "not_significant")]
    handles += [Line2D([0], [0], color=status_colors[s], lw=0, marker="$A$", ms=7, label=f"label: {s}")
                for s in present]
    if flags.any():
        handles.append(Line2D([0], [0], color="black", lw=0, marker="$*$", ms=7,
                              label="* a setting differs (adjustment set, units, fit)"))
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


def standardize_paths(summary: pd.DataFrame, df: pd.DataFrame, *, adjust: str = "design",
                      diverged: str = "exclude") -> pd.DataFrame:
    """Mediation rows with ``std_*`` columns: estimates × sd(source) ÷ sd(target).

    The sds are taken over the rows the analysis keeps (:func:`causal.prepare.prepare`:
    diverged runs excluded, unit-dependent columns in within-family units),
    where both columns are non-null.
    """
    from causal.graph import BOOK_DAG
    from causal.prepare import prepare

    numeric = prepare(df, BOOK_DAG, adjust=adjust, diverged=diverged, who="standardize_paths").numeric
    out = summary.copy()
    scale = []
    for src, tgt in zip(out["source"], out["target"]):
        if src in numeric.columns and tgt in numeric.columns:
            both = numeric[[src, tgt]].dropna()
            sd_t = float(both[tgt].std())
            scale.append(float(both[src].std()) / sd_t if sd_t > 0 else np.nan)
        else:
            scale.append(np.nan)
    scale_arr = np.asarray(scale)
    for col in ("estimate", "ci_low", "ci_high", "total", "total_ci_low", "total_ci_high", "direct"):
        if col in out.columns:
            out[f"std_{col}"] = out[col].to_numpy(float) * scale_arr
    return out


def mediation_forest(table: Any, df: pd.DataFrame, ax: Axes | None = None, *, adjust: str = "design",
                     diverged: str = "exclude", show_total: bool = True) -> Axes:
    """Path-specific effects of a :class:`~causal.mediate.MediationTable` in standardized units.

    Each path's interval is matched to its corrected p-value
    (:func:`matched_interval`): coloured when significant after correction.
    With ``show_total``, the source's total effect on the target is drawn as a
    hollow diamond, so a path's share of it reads at a glance.
    """
    std = standardize_paths(table.summary, df, adjust=adjust, diverged=diverged)
    n = len(std)
    ax = _axes(ax, (8, max(3.0, 0.3 * n + 1.6)))
    alpha = float(getattr(table, "alpha", 0.05))
    lo, hi = matched_interval(std, value="std_estimate", low="std_ci_low", high="std_ci_high", alpha=alpha)
    y = np.arange(n)[::-1]
    sig = std["p_adjusted"].to_numpy(float) < alpha
    for i in range(n):
        color = "#1565c0" if sig[i] else "#9e9e9e"
        ax.plot([lo[i], hi[i]], [y[i], y[i]], color=color, lw=1.5)
        ax.plot([std["std_estimate"].iloc[i]], [y[i]], "o", color=color, ms=4)
        if show_total and "std_total" in std.columns and np.isfinite(std["std_total"].iloc[i]):
            ax.plot([std["std_total"].iloc[i]], [y[i]], "D", mfc="none", mec="#6d4c41", ms=5)
    ax.axvline(0.0, color="black", lw=0.8, ls=":")
    labels = [p.replace(" -> ", " → ") for p in std["path"].astype(str)]
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("standardized effect (sd of target per sd of source)", fontsize=8)
    ax.set_title(f"Mediation: path-specific effects, CIs matched to the {table.correction}-corrected "
                 f"{100 * (1 - alpha):g}% test", fontsize=9)
    from matplotlib.lines import Line2D

    handles = [Line2D([0], [0], color="#1565c0", marker="o", ms=4, lw=1.5, label="path effect, significant"),
               Line2D([0], [0], color="#9e9e9e", marker="o", ms=4, lw=1.5, label="path effect, not significant")]
    if show_total:
        handles.append(Line2D([0], [0], marker="D", mfc="none", mec="#6d4c41", lw=0, ms=5,
                              label="total effect of the source"))
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


def _added_variable(numeric: pd.DataFrame, data: pd.DataFrame, treatment: str, outcome: str,
                    adjustment: list[str]) -> dict[str, Any]:
    """Residuals of treatment and outcome on the adjustment set (Frisch–Waugh–Lovell), hat values, diverged."""
    cols = [treatment, outcome, *[c for c in adjustment if c in numeric.columns]]
    sub = numeric[cols].dropna()
    z = np.column_stack([np.ones(len(sub)), sub[cols[2:]].to_numpy(float)])  # (n, 1 + adj)
    t, o = sub[treatment].to_numpy(float), sub[outcome].to_numpy(float)
    beta_t, *_ = np.linalg.lstsq(z, t, rcond=None)
    beta_o, *_ = np.linalg.lstsq(z, o, rcond=None)
    rt, ro = t - z @ beta_t, o - z @ beta_o
    x = np.column_stack([t, z])  # the edge's full regression
    q, _ = np.linalg.qr(x)
    hat = (q ** 2).sum(1)
    return {"rt": rt, "ro": ro, "hat": hat, "p": x.shape[1], "index": sub.index, "beta_t": beta_t,
            "beta_o": beta_o, "cols": cols}


def plot_edge(effects: Any, df: pd.DataFrame, treatment: str, outcome: str, ax: Axes | None = None, *,
              bins: int = 10) -> Any:
    """Added-variable (partial regression) plot of one estimated edge: does the verdict rest on a trend?

    The treatment and the outcome are both residualized on the edge's
    adjustment set (its ``adjustment`` column, on the rows the fit used); the
    least-squares slope through the points is the edge's linear estimate
    (Frisch–Waugh–Lovell). Drawn: the points, their means in ``bins``
    quantile bins of the treatment residual (± 2 standard errors), a LOWESS
    smoother, the fitted slope, high-leverage points (hat value > 2p/n of
    the edge's regression) ringed, and diverged runs that have both values
    (excluded from the fit) as crosses. With a stratified fit
    (``fit_edges(..., by=...)``) one panel per stratum is drawn with that
    stratum's own adjustment set, and the axes array is returned.

    Parameters
    ----------
    effects : EdgeEffects
        The fit (its settings choose the rows and units).
    df : pandas.DataFrame
        The runs table the fit was made on.
    treatment, outcome : str
        Columns of an estimated edge (an optimizer or normalization contrast
        such as ``optimizer_adam``, not the categorical column).
    """
    from causal.errors import ConfigError
    from causal.prepare import prepare

    s = effects.summary
    hit = s[(s["treatment"] == treatment) & (s["outcome"] == outcome)]
    if hit.empty:
        options = ", ".join(f"{t} → {o}" for t, o in zip(s["treatment"], s["outcome"])
                            if t.startswith(treatment) or o == outcome)
        raise ConfigError(f"{treatment} → {outcome} is not an estimated edge of this fit"
                          + (f"; did you mean one of: {options}" if options else "; see effects.summary"))
    by = getattr(effects, "by", None)
    strata = getattr(effects, "strata", None)
    panels: list[tuple[str, pd.DataFrame, pd.Series]] = []
    if by and strata is not None and len(strata):
        cols = [by] if isinstance(by, str) else list(by)
        for name, rows in strata[(strata["treatment"] == treatment) & (strata["outcome"] == outcome)].groupby(
                "stratum", sort=True):
            mask = np.ones(len(df), dtype=bool)
            parts = str(name).split("/") if len(cols) > 1 else [str(name)]
            for c, v in zip(cols, parts):
                mask &= df[c].astype(str).to_numpy() == v
            panels.append((f"{'/'.join(cols)} = {name}", df[mask], rows.iloc[0]))
    else:
        panels.append(("", df, hit.iloc[0]))
    if ax is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
        axes_list = list(axes[0])
    else:
        axes_list = [ax] if len(panels) == 1 else list(np.ravel(ax))
        if len(axes_list) != len(panels):
            raise ConfigError(f"plot_edge draws {len(panels)} panels (one per stratum); pass that many axes or none")
    cfg = effects.config
    for pax, (name, frame, row) in zip(axes_list, panels):
        prep = prepare(frame, effects.graph, adjust=cfg.adjust, diverged=cfg.diverged, who="plot_edge")
        adjustment = [c for c in str(row["adjustment"]).split(",") if c and c != "nan"]
        av = _added_variable(prep.numeric, prep.data, treatment, outcome, adjustment)
        _draw_added_variable(pax, av, row, bins=bins)
        if cfg.diverged == "exclude" and "diverged" in frame.columns:
            _draw_diverged(pax, frame, prep, av, effects.graph, treatment, outcome)
        pax.set_title((f"{name}\n" if name else "") + f"{treatment} → {outcome}: estimate {row['estimate']:.3g} "
                      f"[{row['ci_low']:.3g}, {row['ci_high']:.3g}], {row['verdict']}", fontsize=9)
        pax.set_xlabel(f"{treatment} | adjustment set (residual)", fontsize=8)
        pax.set_ylabel(f"{outcome} | adjustment set (residual)", fontsize=8)
        pax.legend(fontsize=6, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    return axes_list[0] if len(axes_list) == 1 else np.asarray(axes_list)


def _draw_added_variable(ax: Any, av: dict[str, Any], row: pd.Series, *, bins: int) -> None:
    from statsmodels.nonparametric.smoothers_lowess import lowess

    rt, ro, hat = av["rt"], av["ro"], av["hat"]
    n = len(rt)
    high = hat > 2 * av["p"] / n
    ax.scatter(rt, ro, s=9, color="#90a4ae", alpha=0.6, lw=0, label=f"runs ({n})")
    if high.any():
        ax.scatter(rt[high], ro[high], s=30, facecolors="none", edgecolors="#e65100", lw=0.9,
                   label=f"high leverage, hat > 2p/n ({int(high.sum())})")
    k = int(min(bins, max(2, n // 15)))
    edges = np.unique(np.quantile(rt, np.linspace(0, 1, k + 1)))
    which = np.clip(np.searchsorted(edges, rt, side="right") - 1, 0, len(edges) - 2)
    mx, my, me = [], [], []
    for b in range(len(edges) - 1):
        sel = which == b
        if sel.sum() >= 2:
            mx.append(rt[sel].mean())
            my.append(ro[sel].mean())
            me.append(2 * ro[sel].std(ddof=1) / np.sqrt(sel.sum()))
    ax.errorbar(mx, my, yerr=me, fmt="s", color="#1565c0", ms=4, capsize=2, lw=1,
                label=f"bin means ± 2 SE ({len(mx)} quantile bins)")
    if n >= 10 and np.ptp(rt) > 0:
        sm = lowess(ro, rt, frac=0.6, return_sorted=True)
        ax.plot(sm[:, 0], sm[:, 1], color="#6a1b9a", lw=1.3, label="LOWESS smoother")
    slope = float(rt @ ro / (rt @ rt)) if rt @ rt > 0 else np.nan
    xs = np.array([rt.min(), rt.max()])
    color = VERDICT_COLORS.get(str(row["verdict"]), VERDICT_COLORS["book"])
    ax.plot(xs, slope * xs, color=color, lw=1.8, label=f"fitted slope {slope:.3g} ({row['verdict']})")
    ax.axhline(0, color="black", lw=0.5, ls=":")
    ax.axvline(0, color="black", lw=0.5, ls=":")


def _draw_diverged(ax: Any, frame: pd.DataFrame, prep: Any, av: dict[str, Any], graph: Any, treatment: str,
                   outcome: str) -> None:
    """Diverged runs (excluded from the fit) placed with the kept rows' residualizing coefficients."""
    from causal.prepare import prepare

    div = frame[frame["diverged"].fillna(0) == 1]
    if div.empty:
        return
    try:
        num = prepare(frame, graph, adjust=prep.adjust, diverged="include", who="plot_edge").numeric.loc[div.index]
    except Exception:  # noqa: BLE001 - a drawing aid only; the diverged count is still reported
        num = None
    cols = av["cols"]
    usable = num[cols].dropna() if num is not None and all(c in num.columns for c in cols) else pd.DataFrame()
    if len(usable):
        z = np.column_stack([np.ones(len(usable)), usable[cols[2:]].to_numpy(float)])
        rt = usable[treatment].to_numpy(float) - z @ av["beta_t"]
        ro = usable[outcome].to_numpy(float) - z @ av["beta_o"]
        ax.scatter(rt, ro, marker="x", s=22, color="#c62828", lw=1,
                   label=f"diverged, excluded ({len(usable)} of {len(div)} have both values)")
    else:
        ax.plot([], [], "x", color="#c62828", label=f"diverged: {len(div)} runs, none has both values")


def distributions(df: pd.DataFrame, columns: Sequence[str], *, by: str = "task", bins: int = 30) -> Any:
    """Small multiples: one histogram per column, one outline per ``by`` group; diverged runs left out. A Figure."""
    import matplotlib.pyplot as plt

    data = df[df["diverged"].fillna(0) != 1] if "diverged" in df.columns else df
    groups = sorted(data[by].dropna().astype(str).unique()) if by in data.columns else []
    ncol = 6
    nrow = int(np.ceil(len(columns) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.3 * ncol, 1.9 * nrow), squeeze=False)
    colors = ("#1e88e5", "#e53935", "#43a047", "#8e24aa", "#fb8c00", "#00897b")
    for ax, col in zip(axes.ravel(), columns):
        values = pd.to_numeric(data[col], errors="coerce")
        finite = values[np.isfinite(values)]
        if finite.empty:
            ax.set_axis_off()
            continue
        # a few extreme runs (R² of -100 among values near 0.9) would squash the rest into one bin:
        # then draw the central 98% and say how many runs lie outside
        lo_q, hi_q = np.quantile(finite, [0.01, 0.99])
        wide = hi_q > lo_q and float(finite.max() - finite.min()) > 3 * float(hi_q - lo_q)  # outliers dominate
        outside = int(((finite < lo_q) | (finite > hi_q)).sum()) if wide else 0
        edges = np.histogram_bin_edges(finite[(finite >= lo_q) & (finite <= hi_q)] if outside else finite, bins=bins)
        if groups:
            for g, c in zip(groups, colors):
                v = values[data[by].astype(str) == g]
                ax.hist(v[np.isfinite(v)], bins=edges, histtype="step", color=c, lw=1.2, label=g)
        else:
            ax.hist(finite, bins=edges, color="#90a4ae")
        n_null = int(values.isna().sum())
        notes = [f"{n_null} null"] if n_null else []
        if outside:
            notes.append(f"{outside} outside")
        ax.set_title(f"{col}" + (f" ({', '.join(notes)})" if notes else ""), fontsize=8)
        ax.tick_params(labelsize=6)
        ax.locator_params(nbins=4)
    for ax in axes.ravel()[len(columns):]:
        ax.set_axis_off()
    if groups:
        handles = [plt.Line2D([0], [0], color=c, lw=1.2, label=f"{by} = {g}") for g, c in zip(groups, colors)]
        fig.legend(handles=handles, loc="upper center", ncol=len(groups), fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, 1.0))
    # fixed spacing: tight_layout would lay out every tick label of the grid again (seconds for 18 panels)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.05, top=1 - 0.55 / fig.get_figheight(),
                        wspace=0.3, hspace=0.55)
    return fig


def totals_heatmap(summary: pd.DataFrame, *, alpha: float = 0.05, families: Sequence[str] | None = None) -> Any:
    """Total effects as a lever × outcome grid of z = estimate ÷ SE, one panel per family; a Figure.

    z is unitless, so outcomes in different units share one colour scale;
    a dot marks a total effect significant after the table's correction
    (``p_adjusted < alpha``). Grey cells were not estimated (the lever or
    the outcome does not vary in that family).
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    fams = list(families) if families is not None else list(dict.fromkeys(summary["family"]))
    levers = list(dict.fromkeys(summary["lever"]))
    outcomes = list(dict.fromkeys(summary["outcome"]))
    fig, axes = plt.subplots(1, len(fams), figsize=(0.42 * len(outcomes) * len(fams) + 2.5,
                                                    0.3 * len(levers) + 2.2), squeeze=False, sharey=True)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-8.0, vmax=8.0)
    image = None
    for ax, fam in zip(axes[0], fams):
        part = summary[summary["family"] == fam]
        z = np.full((len(levers), len(outcomes)), np.nan)
        sig = np.zeros_like(z, dtype=bool)
        for r in part.itertuples(index=False):
            i, j = levers.index(r.lever), outcomes.index(r.outcome)
            z[i, j] = r.estimate / r.std_error if r.std_error and np.isfinite(r.std_error) else np.nan
            sig[i, j] = bool(r.p_adjusted < alpha)
        ax.set_facecolor("#bdbdbd")  # NaN cells are transparent: grey = not estimated, unlike white = 0
        image = ax.imshow(np.ma.masked_invalid(np.clip(z, -8, 8)), cmap="RdBu_r", norm=norm, aspect="auto")
        ii, jj = np.nonzero(sig)
        ax.scatter(jj, ii, s=6, color="black")
        ax.set_xticks(range(len(outcomes)), outcomes, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(levers)), levers, fontsize=7)
        ax.set_title(str(fam), fontsize=9)
    cbar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, pad=0.01)
    cbar.set_label("z = estimate ÷ SE (clipped at ±8)", fontsize=8)
    fig.suptitle(f"Total effects of the randomized levers: z per lever and outcome; dot = significant after "
                 f"correction (alpha {alpha:g}); grey = not estimated", fontsize=10)
    return fig
