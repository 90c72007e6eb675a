"""Overview: the operator's first screen. Money and the queue on top, the marketplace below, then charts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import fmt
from dashboard.charts import operator as charts
from dashboard.identity import require, uow
from services.auth.permissions import Action
from services.config import get_settings
from services.stats import overview as overview_service

CACHE_SECONDS = 60
me = require(Action.OVERVIEW_VIEW)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=32)
def load(database_url: str, user_id: int, timezone: str) -> overview_service.Overview:
    """Aggregates over the whole marketplace: cached briefly, per database and viewer timezone."""
    return overview_service.overview(uow(), me)


title, refresh = st.columns([5, 1], vertical_alignment="bottom")
title.title("Overview")
if refresh.button("Refresh", icon=":material/refresh:", help="Figures are cached for a minute; refresh now."):
    load.clear()


@st.fragment(run_every=f"{CACHE_SECONDS}s")
def overview_body() -> None:
    with st.spinner("Adding up the marketplace…"):
        data = load(get_settings().database_url, me.user_id, me.timezone)
    k = data.kpis
    month = fmt.when(k.month_start, me.timezone, "%B %Y")
    st.caption(
        f"{month} so far, from the ledger · as of {fmt.when(data.computed_at, me.timezone, '%H:%M %Z')} "
        f"· days in {data.timezone}"
    )

    c1, c2, c3, c4 = st.columns(4)
    c1.metric(
        "Revenue this month",
        fmt.money(k.revenue_month_cents, k.currency),
        help="Charged to users for compute since the start of the month: metered hours and paid subscription months.",
        border=True,
    )
    c2.metric(
        "Platform fees this month",
        fmt.money(k.fees_month_cents, k.currency),
        help="Credited to the platform:fees account since the start of the month.",
        border=True,
    )
    c3.metric(
        "Monthly run rate",
        fmt.money(k.run_rate_month_cents, k.currency),
        help="What the running deployments charge per month (730 h) at their current prices.",
        border=True,
    )
    c4.metric(
        "Provider requests waiting",
        f"{k.pending_requests:,}",
        help="Pending applications to become a provider.",
        border=True,
    )
    if k.pending_requests:
        c4.page_link("pages/operator_requests.py", label="Review the queue", icon=":material/arrow_forward:")

    by_status = k.deployments_by_status
    d1, d2, d3, d4, d5, d6 = st.columns(6)
    d1.metric("Users", f"{k.users:,}")
    d2.metric("Providers", f"{k.providers:,}", help="Active providers.")
    d3.metric(
        "Nodes online",
        f"{k.nodes_online:,} / {k.nodes_total:,}",
        help="Online with a fresh heartbeat, of all nodes not decommissioned.",
    )
    d4.metric("Running deployments", f"{by_status.get('running', 0):,}")
    d5.metric("Pending deployments", f"{by_status.get('pending', 0):,}")
    d6.metric("Failed deployments", f"{by_status.get('failed', 0):,}")
    st.caption(
        "Deployments by status: "
        + " · ".join(f"{s} {by_status.get(s, 0):,}" for s in ("pending", "running", "stopped", "failed", "deleted"))
    )

    left, right = st.columns(2)
    left.plotly_chart(charts.revenue_per_day(data.revenue_per_day, data.fees_per_day, k.currency), key="ov_revenue")
    right.plotly_chart(charts.deployments_per_day(data.deployments_per_day), key="ov_deployments")
    if data.capacity:
        chart, table = st.columns([3, 2])
        chart.plotly_chart(charts.capacity_by_region(data.capacity), key="ov_capacity")
        table.dataframe(
            pd.DataFrame(
                [
                    {
                        "Region": r.region,
                        "Nodes": r.nodes_online,
                        "vCPU": f"{r.vcpu_used:,} / {r.vcpu_online:,}",
                        "RAM GB": f"{r.ram_gb_used:,} / {r.ram_gb_online:,}",
                    }
                    for r in data.capacity
                ]
            ),
            hide_index=True,
            width="stretch",
            column_config={
                "Nodes": st.column_config.NumberColumn("Nodes", help="Nodes online in the region"),
                "vCPU": st.column_config.TextColumn("vCPU", help="Held by pending and running deployments / online"),
                "RAM GB": st.column_config.TextColumn(
                    "RAM GB", help="Held by pending and running deployments / online"
                ),
            },
            key="ov_capacity_table",
        )
    else:
        st.info("No nodes yet, so there is no capacity to show.", icon=":material/info:")


overview_body()
