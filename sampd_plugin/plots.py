"""Plotly figures for J&F results (plotly is what FiftyOne uses for its plots; no FiftyOne import here).

Inputs are the plain rows stored by ``sampd_plugin.evaluation.JFResults``:
``curves`` (one dict per object: ``sequence, index, frames, J, F``) and ``objects`` (one dict per object with
``JF, J_mean, F_mean``). Save a figure with ``fig.write_html(path)`` or show it with ``fig.show()``.
"""
import plotly.graph_objects as go

from sampd_plugin.metrics import object_name


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
    rows = sorted(objects, key=lambda r: (r["JF"] is None, r["JF"] or 0.0))
    names = [object_name(r) for r in rows]
    fig = go.Figure([go.Bar(name=label, x=names, y=[r[key] for r in rows])
                     for label, key in (("J&F", "JF"), ("J", "J_mean"), ("F", "F_mean"))])
    fig.update_layout(title=title, barmode="group", xaxis_title="object", yaxis_title="score",
                      yaxis_range=[0, 1])
    return fig
