"""Plotly figures for J&F results (plotly is what FiftyOne uses for its plots; no FiftyOne import here).

Inputs are the plain rows stored by ``sampd_plugin.fo.evaluation.JFResults``:
``curves`` (one dict per object: ``sequence, index, frames, J, F``) and ``objects`` (one dict per object with
``JF, J_mean, F_mean``). Save figures with :func:`write_html` (one self-contained page: plotly.js is inlined, so
it renders offline) or show one with ``fig.show()``; :func:`figure_json` is the plain-JSON form the FiftyOne App's
plot views take.
"""
import json

import plotly.graph_objects as go

from sampd_plugin.core.metrics import object_name


def plot_j_over_time(curves, title="J over time"):
    """Line plot of J per frame number, one trace per object, grouped (legend groups) per sample.

    Args:
        curves: list of dicts ``{sample_id, sequence, index, frames, J, ...}``.
    Returns: ``plotly.graph_objects.Figure``.
    """
    fig = go.Figure()
    for c in curves:
        fig.add_trace(go.Scatter(
            x=c["frames"], y=c["J"], mode="lines+markers", name=object_name(c),
            legendgroup=c["sample_id"], legendgrouptitle_text=c["sequence"],
            hovertemplate="frame %{x}<br>J %{y:.3f}<extra>" + object_name(c) + "</extra>"))
    fig.add_hline(y=0.5, line_dash="dot", line_color="gray")
    fig.update_layout(title=title, xaxis_title="frame number", yaxis_title="J (IoU)",
                      yaxis_range=[0, 1.02], legend_groupclick="toggleitem")
    return fig


def plot_jf_bars(objects, title="J&F per object"):
    """Grouped bars of J&F, J-Mean and F-Mean per object, sorted by J&F ascending (worst first).

    Args:
        objects: list of dicts ``{sequence, index, JF, J_mean, F_mean, ...}``.
    Returns: ``plotly.graph_objects.Figure``.
    """
    rows = worst_objects(objects)
    names = [object_name(r) for r in rows]
    fig = go.Figure([go.Bar(name=label, x=names, y=[r[key] for r in rows])
                     for label, key in (("J&F", "JF"), ("J", "J_mean"), ("F", "F_mean"))])
    fig.update_layout(title=title, barmode="group", xaxis_title="object", yaxis_title="score",
                      yaxis_range=[0, 1])
    return fig


def worst_objects(objects, n=None):
    """The per-object rows sorted by J&F ascending (unscored objects last), the ``n`` worst if given."""
    rows = sorted(objects, key=lambda r: (r["JF"] is None, r["JF"] or 0.0))
    return rows if n is None else rows[:n]


def write_html(figures, path, title="SAM-PD J&F"):
    """Writes ``figures`` (one or several) into one self-contained HTML page at ``path``: plotly.js is inlined once,
    nothing is fetched from a CDN, so the page renders offline. Returns ``path``."""
    figures = [figures] if isinstance(figures, go.Figure) else list(figures)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>"
                + "".join(parts) + "</body></html>")
    return path


def figure_json(fig):
    """``{"data": [...], "layout": {...}}`` of a figure as plain JSON values (numpy arrays converted), without the
    plotly template (the App's plot view styles it)."""
    d = json.loads(fig.to_json())
    d.get("layout", {}).pop("template", None)
    return {"data": d.get("data", []), "layout": d.get("layout", {})}
