"""Charts for a deployment: cost per day (from the ledger) and its status timeline (from its events)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import plotly.graph_objects as go

from dashboard import fmt
from dashboard.charts import COLORS, figure, house_layout, iso
from services.deployments.schemas import DailyCost, DeploymentEventRow

DAY_MS = 86_400_000  # plotly measures date axes in milliseconds

STATUS_COLORS = {
    "pending": COLORS[2],
    "running": COLORS[1],
    "stopped": COLORS[6],
    "failed": COLORS[3],
    "deleted": "#111827",
}


def cost_per_day(days: Sequence[DailyCost], currency: str, tz: str) -> go.Figure:
    """Bars: what the deployment was charged each day (UTC days, labelled in the viewer's timezone)."""
    viewer_zone = fmt.zone(tz)
    starts = [fmt.local(d.day, tz).astimezone(viewer_zone) for d in days]
    xaxis: dict = {"type": "date", "tickformat": "%b %d"}
    if starts:  # a day either side, and one tick a day when there are few: a lone bar has no span of its own
        xaxis["range"] = iso([min(starts) - timedelta(days=1), max(starts) + timedelta(days=1)])
        if (max(starts) - min(starts)).days < 10:
            xaxis["dtick"] = DAY_MS
    data = [
        {
            "type": "bar",
            "x": iso(starts),
            "width": DAY_MS * 0.8,
            "y": [d.cost_cents / 100 for d in days],
            "text": [fmt.money(d.cost_cents, currency) for d in days],
            "hovertemplate": "%{x|%Y-%m-%d}: %{text}<extra></extra>",
            "marker": {"color": COLORS[0]},
            "name": "Cost",
            "textposition": "none",
        }
    ]
    layout = house_layout(
        title="Cost per day",
        y_title=currency,
        height=280,
        yaxis={"tickprefix": "$" if currency == "USD" else "", "rangemode": "tozero"},
        xaxis=xaxis,
    )
    return figure(data, layout)


def status_timeline(events: Sequence[DeploymentEventRow], now: datetime, tz: str) -> go.Figure:
    """One bar per status period: from each event that set a status to the next one (or now)."""
    periods: list[tuple[str, datetime, datetime, str]] = []
    with_status = [e for e in events if e.status]
    for i, e in enumerate(with_status):
        end = with_status[i + 1].ts if i + 1 < len(with_status) else now
        if e.status == "deleted":
            end = e.ts
        periods.append((e.status or "", e.ts, end, e.kind))
    data = []
    for status in dict.fromkeys(p[0] for p in periods):
        mine = [p for p in periods if p[0] == status]
        data.append(
            {
                "type": "bar",
                "y": [status] * len(mine),
                "x": [max((end - start).total_seconds() * 1000, 60_000) for _, start, end, _ in mine],
                "base": iso(fmt.local(start, tz) for _, start, _, _ in mine),
                "orientation": "h",
                "name": status,
                "marker": {"color": STATUS_COLORS.get(status, COLORS[4])},
                "customdata": [[kind, fmt.when(start, tz), fmt.when(end, tz)] for _, start, end, kind in mine],
                "hovertemplate": "%{y}: %{customdata[1]} → %{customdata[2]} (%{customdata[0]})<extra></extra>",
            }
        )
    layout = house_layout(
        title="Status over time",
        height=220,
        xaxis={"type": "date"},
        barmode="overlay",
        showlegend=False,
    )
    return figure(data, layout)
