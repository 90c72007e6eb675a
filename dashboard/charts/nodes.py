"""Node charts: utilisation over time and daily uptime."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from dashboard.charts import COLORS, styled
from dashboard.fmt import local


def utilisation(points: Sequence, tz: str | None, *, bucket_seconds: int = 0) -> go.Figure:
    """CPU, RAM and disk use (percent) over time, in the viewer's timezone."""
    xs = [local(p.ts, tz) for p in points]
    fig = go.Figure()
    for label, attr, color in (
        ("CPU", "cpu_pct", COLORS[0]),
        ("RAM", "ram_pct", COLORS[1]),
        ("Disk", "disk_pct", COLORS[2]),
    ):
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[getattr(p, attr) for p in points],
                name=label,
                mode="lines",
                line=dict(color=color, width=1.8),
                hovertemplate="%{y:.1f} %<extra>" + label + "</extra>",
            )
        )
    if bucket_seconds >= 3600:
        title = "Utilisation (hourly averages)"
    elif bucket_seconds:
        title = f"Utilisation ({bucket_seconds // 60}-minute averages)"
    else:
        title = "Utilisation"
    fig.update_yaxes(range=[0, 100], ticksuffix=" %")
    styled(fig, title=title, y_title="Use")
    fig.update_layout(legend=dict(x=1, xanchor="right"))  # keep the legend clear of the title
    return fig


def uptime(days: Sequence, *, height: int = 240) -> go.Figure:
    """Share of each day the node reported online (bars; days not measured are left empty)."""
    measured = [d for d in days if d.share is not None]
    colors = [COLORS[1] if d.share >= 0.99 else (COLORS[2] if d.share >= 0.9 else COLORS[3]) for d in measured]
    fig = go.Figure(
        go.Bar(
            x=[d.day for d in measured],
            y=[round(d.share * 100, 2) for d in measured],
            marker_color=colors,
            name="Online",
            hovertemplate="%{x|%Y-%m-%d}: %{y:.2f} % online<extra></extra>",
        )
    )
    fig.update_yaxes(range=[0, 100], ticksuffix=" %")
    fig.update_xaxes(type="date")
    return styled(fig, title="Uptime per day (UTC days)", height=height, y_title="Online")
