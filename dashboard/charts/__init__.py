"""Plotly figure builders, one module per area (nodes, deployments, revenue, ...). Style lives here."""

from __future__ import annotations

import plotly.graph_objects as go

COLORS = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#64748b"]


def styled(fig: go.Figure, *, title: str | None = None, height: int = 320, y_title: str | None = None) -> go.Figure:
    """The house look: compact margins, legend on top, no plotly logo clutter."""
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0),
        colorway=COLORS,
        hovermode="x unified",
    )
    if y_title:
        fig.update_yaxes(title_text=y_title)
    return fig
