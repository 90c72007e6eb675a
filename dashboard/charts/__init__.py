"""Plotly figure builders, one module per area (nodes, deployments, revenue, ...). Style lives here.

Builders write the figure as plain trace and layout dicts and wrap them with `figure()`, which skips
plotly's property-by-property validation: validating a 600-point chart costs more than the rest of
its page (about 15 ms, plus as much again for `to_dict`/`to_json` of datetimes). The builders'
output is checked against the validating constructor in tests/pages/test_charts.py instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import plotly.graph_objects as go

COLORS = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#64748b"]


class _PlainFigure(go.Figure):
    """A figure whose traces and layout hold only plain values (lists of numbers and strings, dicts).

    `to_dict` (what st.plotly_chart sends) copies each trace and the layout one level deep instead of
    plotly's deep copy and base64 pass, which walk every point (about 1 ms per 600-point trace set).
    The figure's own state is read, so later `update_*` calls still show.
    """

    def to_dict(self) -> dict:
        return {"data": [dict(trace) for trace in self._data], "layout": dict(self._layout)}


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A figure from trace dicts (each with its "type") and a layout dict, without validation."""
    return _PlainFigure({"data": data, "layout": layout}, _validate=False)


def house_layout(*, title: str | None = None, height: int = 320, y_title: str | None = None, **more) -> dict:
    """The house look: compact margins, legend on top, unified hover; `more` adds or replaces keys."""
    layout: dict = {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        "colorway": COLORS,
        "hovermode": "x unified",
    }
    if title:
        layout["title"] = {"text": title}
    if y_title:
        layout["yaxis"] = {"title": {"text": y_title}}
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def iso(values: Iterable[datetime | date | None]) -> list[str | None]:
    """Times and dates as the ISO strings plotly's JSON encoder would write (cheaper done once here)."""
    return [None if v is None else v.isoformat() for v in values]


def styled(fig: go.Figure, *, title: str | None = None, height: int = 320, y_title: str | None = None) -> go.Figure:
    """The house look for a figure built with plotly's own (validating) constructors."""
    fig.update_layout(house_layout(title=title, height=height, y_title=y_title))
    return fig
