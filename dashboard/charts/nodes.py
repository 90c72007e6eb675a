"""Node charts: utilisation over time and daily uptime."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from dashboard.charts import COLORS, figure, house_layout, iso
from dashboard.fmt import zone


def utilisation(points: Sequence, tz: str | None, *, bucket_seconds: int = 0) -> go.Figure:
    """CPU, RAM and disk use (percent) over time, in the viewer's timezone."""
    viewer_zone = zone(tz)
    xs = iso(p.ts.astimezone(viewer_zone) for p in points)
    data = [
        {
            "type": "scatter",
            "x": xs,
            "y": [getattr(p, attr) for p in points],
            "name": label,
            "mode": "lines",
            "line": {"color": color, "width": 1.8},
            "hovertemplate": "%{y:.1f} %<extra>" + label + "</extra>",
        }
        for label, attr, color in (
            ("CPU", "cpu_pct", COLORS[0]),
            ("RAM", "ram_pct", COLORS[1]),
            ("Disk", "disk_pct", COLORS[2]),
        )
    ]
    if bucket_seconds >= 3600:
        title = "Utilisation (hourly averages)"
    elif bucket_seconds:
        title = f"Utilisation ({bucket_seconds // 60}-minute averages)"
    else:
        title = "Utilisation"
    layout = house_layout(
        title=title,
        y_title="Use",
        yaxis={"range": [0, 100], "ticksuffix": " %"},
        legend={"x": 1, "xanchor": "right"},  # keep the legend clear of the title
    )
    return figure(data, layout)


def uptime(days: Sequence, *, height: int = 240) -> go.Figure:
    """Share of each day the node reported online (bars; days not measured are left empty)."""
    measured = [d for d in days if d.share is not None]
    colors = [COLORS[1] if d.share >= 0.99 else (COLORS[2] if d.share >= 0.9 else COLORS[3]) for d in measured]
    data = [
        {
            "type": "bar",
            "x": iso(d.day for d in measured),
            "y": [round(d.share * 100, 2) for d in measured],
            "marker": {"color": colors},
            "name": "Online",
            "hovertemplate": "%{x|%Y-%m-%d}: %{y:.2f} % online<extra></extra>",
        }
    ]
    layout = house_layout(
        title="Uptime per day (UTC days)",
        height=height,
        y_title="Online",
        yaxis={"range": [0, 100], "ticksuffix": " %"},
        xaxis={"type": "date"},
    )
    return figure(data, layout)
