"""Home: the marketplace at a glance, with figures straight from the database."""

import streamlit as st

from dashboard.identity import current, uow
from services.settings import service as settings_service
from services.stats import service as stats

me = current()
settings = settings_service.get(uow())
summary = stats.summary(uow())

st.title(settings.marketplace_name)
st.caption(f"Signed in as {me.name} · roles: {', '.join(sorted(r.value for r in me.roles))}")

c1, c2, c3, c4 = st.columns(4)
c1.metric("Providers", f"{summary.providers:,}")
c2.metric("Nodes online", f"{summary.nodes_online:,}", help=f"of {summary.nodes_total:,} nodes (not decommissioned)")
c3.metric("Running deployments", f"{summary.deployments_by_status.get('running', 0):,}")
c4.metric("Regions", f"{summary.regions:,}")
st.caption(f"{summary.nodes_online:,} of {summary.nodes_total:,} nodes online")

st.subheader("Deployments by status")
order = ["running", "pending", "stopped", "failed", "deleted"]
cols = st.columns(len(order))
for col, status in zip(cols, order, strict=True):
    col.metric(status.capitalize(), f"{summary.deployments_by_status.get(status, 0):,}")
