"""Charts for the operator overview: revenue and deployments per day, capacity used per region."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from dashboard import fmt
from dashboard.charts import COLORS, styled
from services.stats.overview import DayPoint, RegionCapacity


def revenue_per_day(revenue: Sequence[DayPoint], fees: Sequence[DayPoint], currency: str = "USD") -> go.Figure:
    """Stacked bars per local day: the providers' share and the platform's fees make up what users were charged (metered hours and subscription months)."""
    fee_by_day = {p.day: p.value for p in fees}
    days = [p.day for p in revenue]
    fee_cents = [fee_by_day.get(p.day, 0) for p in revenue]
    share_cents = [p.value - f for p, f in zip(revenue, fee_cents, strict=True)]
    totals = [fmt.money(p.value, currency) for p in revenue]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=days,
            y=[c / 100 for c in share_cents],
            name="Providers' share",
            marker_color=COLORS[0],
            customdata=[[fmt.money(c, currency), t] for c, t in zip(share_cents, totals, strict=True)],
            hovertemplate="Providers: %{customdata[0]} of %{customdata[1]}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=days,
            y=[c / 100 for c in fee_cents],
            name="Platform fees",
            marker_color=COLORS[1],
            customdata=[[fmt.money(c, currency)] for c in fee_cents],
            hovertemplate="Platform fees: %{customdata[0]}<extra></extra>",
        )
    )
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="date", tickformat="%b %d")
    fig.update_yaxes(tickprefix="$" if currency == "USD" else "", rangemode="tozero", tickformat=",.0f")
    return _legend_right(styled(fig, title="Charged per day", y_title=currency, height=300))


def deployments_per_day(points: Sequence[DayPoint]) -> go.Figure:
    """Bars: deployments created each local day."""
    fig = go.Figure(
        go.Bar(
            x=[p.day for p in points],
            y=[p.value for p in points],
            name="Created",
            marker_color=COLORS[4],
            hovertemplate="%{x|%b %d}: %{y:,} created<extra></extra>",
        )
    )
    fig.update_xaxes(type="date", tickformat="%b %d")
    fig.update_yaxes(rangemode="tozero", tickformat=",d")
    return styled(fig, title="Deployments created per day", height=300)


def _legend_right(fig: go.Figure) -> go.Figure:
    """Legend on the title's line, at the right, so the two never overlap."""
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))
    return fig


def _pct(used: int, total: int) -> float:
    return round(100 * used / total, 1) if total else 0.0


def capacity_by_region(regions: Sequence[RegionCapacity]) -> go.Figure:
    """Horizontal bars per region: share of the online nodes' vCPU and RAM held by pending and running deployments."""
    names = [r.region for r in regions]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            y=names,
            x=[_pct(r.vcpu_used, r.vcpu_online) for r in regions],
            orientation="h",
            name="vCPU",
            marker_color=COLORS[0],
            customdata=[[f"{r.vcpu_used:,}", f"{r.vcpu_online:,}", r.nodes_online] for r in regions],
            hovertemplate="%{y} vCPU: %{x}% (%{customdata[0]} of %{customdata[1]} on %{customdata[2]} nodes online)"
            "<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            y=names,
            x=[_pct(r.ram_gb_used, r.ram_gb_online) for r in regions],
            orientation="h",
            name="RAM",
            marker_color=COLORS[5],
            customdata=[[f"{r.ram_gb_used:,}", f"{r.ram_gb_online:,}"] for r in regions],
            hovertemplate="%{y} RAM: %{x}% (%{customdata[0]} of %{customdata[1]} GB online)<extra></extra>",
        )
    )
    top = max(
        [100.0]
        + [_pct(r.vcpu_used, r.vcpu_online) for r in regions]
        + [_pct(r.ram_gb_used, r.ram_gb_online) for r in regions]
    )
    fig.add_vline(
        x=100, line_dash="dot", line_color=COLORS[3], annotation_text="online capacity", annotation_position="top left"
    )
    fig.update_layout(barmode="group", hovermode="closest")
    fig.update_xaxes(ticksuffix="%", range=[0, top * 1.08])
    fig.update_yaxes(autorange="reversed")
    return _legend_right(
        styled(
            fig, title="Capacity used per region (pending + running vs online)", height=max(260, 60 + 48 * len(names))
        )
    )
