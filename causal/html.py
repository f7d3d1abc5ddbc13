"""Self-contained HTML: tables with verdict colours, sortable in place; figures embedded; no network.

Every result's ``_repr_html_`` is :func:`result_html` of it, and the report
(:mod:`causal.report`) builds each section from the same function, adding the
section's figures: a notebook cell and the report's section show one table.

The page (:func:`page`) carries its CSS and a small script inline (sortable
tables: click a header; a numeric column sorts by value, a text column
alphabetically). Figures are PNGs embedded as ``data:`` URIs. No file,
font, script or style is fetched from anywhere: the page opens offline.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["fmt", "table_html", "info_html", "figure_html", "result_html", "page", "VERDICT_TINTS"]

#: background tints of verdict and status cells
VERDICT_TINTS: dict[str, str] = {
    "supports": "#c8e6c9", "contradicts": "#ffcdd2", "inconclusive": "#eeeeee",
    "flipped": "#ffcdd2", "shifted": "#ffe0b2", "missing": "#ffe0b2", "lost_power": "#e1bee7",
    "weakened": "#fff9c4", "lost_significance": "#fff9c4", "newly_significant": "#e3f2fd",
    "gained_power": "#e3f2fd", "strengthened": "#e0f2f1", "stable": "#c8e6c9", "only_in_a": "#efebe9",
    "only_in_b": "#efebe9", "not_in_baseline": "#efebe9", "True": "#ffcdd2",
}
_OPEN_ROWS = 15  # secondary tables longer than this start folded
_FOLD_MAIN = 80  # and main tables longer than this
_TINTED = ("verdict", "status", "dag_verdict", "violated", "failed")


def fmt(v: Any) -> str:
    """A cell as text: floats to 4 significant digits, tiny and huge ones in scientific notation, NaN as '–'."""
    if v is None or v is pd.NA:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "–"
        if f == 0:
            return "0"
        a = abs(f)
        if a < 1e-3 or a >= 1e5:
            return f"{f:.2e}"
        return f"{f:.4g}"
    return str(v)


def _sort_key(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (int, float, np.integer, np.floating)) and not pd.isna(v):
        return repr(float(v))
    return ""


def table_html(df: pd.DataFrame, *, sortable: bool = True, max_rows: int | None = None,
               caption: str | None = None) -> str:
    """An HTML table of ``df``; verdict/status cells tinted; numeric cells carry their value for sorting."""
    if df is None or len(df) == 0:
        return "<p class='empty'>(no rows)</p>"
    shown = df if max_rows is None or len(df) <= max_rows else df.head(max_rows)
    out = [f"<table class='udl{' sortable' if sortable else ''}'>"]
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns) + "</tr></thead>")
    out.append("<tbody>")
    for row in shown.itertuples(index=False):
        cells = []
        for col, v in zip(shown.columns, row):
            text = html.escape(fmt(v))
            attrs = ""
            key = _sort_key(v)
            if key:
                attrs += f" data-v='{key}' class='num'"
            if col in _TINTED:
                tint = VERDICT_TINTS.get(str(v))
                if tint:
                    attrs += f" style='background:{tint}'"
            cells.append(f"<td{attrs}>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    if len(shown) < len(df):
        out.append(f"<p class='note'>first {len(shown)} of {len(df)} rows</p>")
    return "".join(out)


def info_html(info: Mapping[str, Any]) -> str:
    """Settings and counts as a two-column key/value table."""
    if not info:
        return ""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in info.items())
    return f"<table class='info'>{rows}</table>"


def figure_html(fig: Any, *, caption: str | None = None, dpi: int = 100) -> str:
    """A matplotlib figure as an embedded PNG (closed after rendering)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure><img alt='{html.escape(caption or 'figure')}' src='data:image/png;base64,{data}'>{cap}</figure>"


def _frame(obj: Any, name: str) -> pd.DataFrame | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, pd.DataFrame) else None


def _parts(obj: Any) -> list[tuple[str, pd.DataFrame]]:
    """The extra tables a result carries beside its summary, titled (the report shows the same)."""
    cls = type(obj).__name__
    parts: list[tuple[str, pd.DataFrame]] = []
    if cls == "EdgeEffects":
        mod = _frame(obj, "moderation")
        if mod is not None and len(mod):
            parts.append(("Edge 2 by overparameterization regime (edge 3: moderation)", mod))
        het = _frame(obj, "heterogeneity")
        if het is not None and len(het):
            parts.append((f"Heterogeneity across {obj.by} (Cochran's q; sign_differs)", het))
        skipped = _frame(obj, "skipped")
        if skipped is not None and len(skipped):
            parts.append(("Skipped edges (not estimated, and why)", skipped))
    elif cls == "FalsifyResult":
        for name, title in (("missing_edges", "Strong effects the book's graph lacks"),
                            ("randomization", "Randomization checks (lever vs lever; not part of the verdict)")):
            f = _frame(obj, name)
            if f is not None and len(f):
                parts.append((title, f))
    elif cls == "MeasureScores":
        f = _frame(obj, "by_lever")
        if f is not None and len(f):
            parts.append(("Per lever (ψᵢ and sign errors)", f))
    elif cls == "Comparison":
        f = _frame(obj, "settings")
        if f is not None and len(f):
            parts.append(("Settings that differ", f))
    return parts


def _main_table(obj: Any) -> tuple[str, pd.DataFrame]:
    cls = type(obj).__name__
    if cls == "FalsifyResult":
        s = obj.summary
        viol = s[s["violated"]] if "violated" in s.columns else s
        return (f"Violated implications ({len(viol)} of {len(s)} tested)", viol)
    if cls in ("SignCheck", "Comparison"):
        return ("Edges that changed", obj._display_frame())
    return ("", obj._display_frame())


def result_html(obj: Any) -> str:
    """A result's settings, its main table and the tables it carries, as HTML (its ``_repr_html_``)."""
    title, main = _main_table(obj)
    out = [f"<div class='udl-result'><h4>{html.escape(getattr(obj, 'title', type(obj).__name__))}</h4>",
           info_html(obj._info())]
    if title:
        out.append(f"<h5>{html.escape(title)}</h5>")
    if len(main) > _FOLD_MAIN:  # e.g. every lever x outcome x family: sortable, but folded until asked for
        out.append(f"<details><summary><b>The table</b> ({len(main)} rows, sortable; click to show)</summary>"
                   f"{table_html(main)}</details>")
    else:
        out.append(table_html(main))
    for sub_title, frame in _parts(obj):
        if len(frame) > _OPEN_ROWS:  # long secondary tables fold away; the summary line says what is inside
            out.append(f"<details><summary><b>{html.escape(sub_title)}</b> ({len(frame)} rows; click to show)"
                       f"</summary>{table_html(frame)}</details>")
        else:
            out.append(f"<h5>{html.escape(sub_title)}</h5>")
            out.append(table_html(frame))
    out.append("</div>")
    return "".join(out)


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#212121;background:#fafafa}
header{background:#263238;color:#eceff1;padding:14px 24px}header h1{margin:0;font-size:22px}
nav{background:#37474f;padding:6px 24px;position:sticky;top:0;z-index:2}
nav a{color:#eceff1;margin-right:14px;font-size:13px;text-decoration:none}
main{padding:8px 24px 40px}p{font-size:13px}section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:8px 18px;
margin:16px 0}h2{font-size:18px;border-bottom:1px solid #eee;padding-bottom:4px}h4{margin:6px 0}h5{margin:14px 0 4px}
table.udl{border-collapse:collapse;font-size:12px;margin:6px 0}table.udl th,table.udl td{border:1px solid #e0e0e0;
padding:2px 6px;text-align:left}table.udl td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;background:#eceff1;position:sticky;top:30px}table.sortable th:hover{background:#cfd8dc}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
table.info{font-size:12px;margin:4px 0}table.info th{text-align:left;padding-right:12px;color:#546e7a;font-weight:600}
figure{margin:10px 0}div.grid figure{display:inline-block;vertical-align:top;width:32%;margin:4px}
details{margin:10px 0;font-size:13px}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#546e7a}
p.note,p.empty{font-size:12px;color:#757575}code,pre{background:#f5f5f5;padding:1px 4px;border-radius:3px}
pre{padding:8px;overflow-x:auto;font-size:12px}.legend span{display:inline-block;padding:1px 8px;margin-right:6px;
border-radius:3px;font-size:12px}
"""

# sort on click; numbers by value (data-v), text alphabetically; errors surface in #udl-errors
_JS = """
(function(){
  var errs=[];
  window.addEventListener('error',function(e){errs.push(String(e.message));
    var box=document.getElementById('udl-errors');if(box){box.textContent=errs.join('\\n');box.hidden=false;}});
  function cell(tr,i){var td=tr.children[i];if(!td)return {n:NaN,t:''};
    var v=td.getAttribute('data-v');return {n:v===null?NaN:parseFloat(v),t:td.textContent};}
  function sortBy(table,i,th){
    var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
    var asc=!th.classList.contains('asc');
    Array.prototype.forEach.call(th.parentNode.children,function(h){h.classList.remove('asc','desc');});
    th.classList.add(asc?'asc':'desc');
    rows.sort(function(a,b){var x=cell(a,i),y=cell(b,i);var r;
      if(!isNaN(x.n)&&!isNaN(y.n)){r=x.n-y.n;}else if(!isNaN(x.n)){r=-1;}else if(!isNaN(y.n)){r=1;}
      else{r=x.t.localeCompare(y.t);}return asc?r:-r;});
    rows.forEach(function(r){body.appendChild(r);});
  }
  document.querySelectorAll('table.sortable').forEach(function(table){
    var ths=table.tHead?table.tHead.rows[0].children:[];
    Array.prototype.forEach.call(ths,function(th,i){th.addEventListener('click',function(){sortBy(table,i,th);});});
  });
  document.body.setAttribute('data-udl-ready','1');
})();
"""


def page(title: str, sections: Iterable[tuple[str, str, str]], *, subtitle: str = "") -> str:
    """A complete, self-contained HTML document.

    Parameters
    ----------
    title : str
    sections : iterable of (anchor id, heading, HTML body)
    subtitle : str
    """
    sections = list(sections)
    nav = "".join(f"<a href='#{html.escape(sid)}'>{html.escape(head)}</a>" for sid, head, _ in sections)
    body = "".join(f"<section id='{html.escape(sid)}'><h2>{html.escape(head)}</h2>{content}</section>"
                   for sid, head, content in sections)
    sub = f"<div>{html.escape(subtitle)}</div>" if subtitle else ""
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{html.escape(title)}</h1>{sub}</header><nav>{nav}</nav><main>"
            "<pre id='udl-errors' hidden></pre>"
            f"{body}</main><script>{_JS}</script></body></html>")
