"""Home: the person's own figures first (deployments, credits, nodes, queue), then the marketplace's."""

import streamlit as st

from dashboard.fmt import money
from dashboard.identity import current, uow
from services.auth.permissions import Role
from services.settings import service as settings_service
from services.stats import service as stats

me = current()
settings = settings_service.get(uow())
summary = stats.summary(uow())
mine = stats.personal_summary(uow(), me)

st.title(settings.marketplace_name)
st.caption(f"Signed in as {me.name} · roles: {', '.join(sorted(r.value for r in me.roles))}")

st.subheader("Your account")
cards = st.columns(3 if me.has(Role.PROVIDER) or me.has(Role.OPERATOR) else 2, border=True)
with cards[0]:
    running = mine.my_deployments_by_status.get("running", 0)
    others = sum(mine.my_deployments_by_status.values()) - running
    st.metric("Your running deployments", f"{running:,}", help=f"{others:,} more pending, stopped or failed")
    st.page_link("pages/user_deployments.py", label="My deployments", icon=":material/apps:")
    st.page_link("pages/user_launch.py", label="Launch a deployment", icon=":material/rocket_launch:")
with cards[1]:
    st.metric("Credits", money(mine.credits_cents))
    st.page_link("pages/billing.py", label="Top up / billing", icon=":material/account_balance_wallet:")
    if mine.unread_notifications:
        st.page_link(
            "pages/notifications.py",
            label=f"{mine.unread_notifications} unread notifications",
            icon=":material/notifications:",
        )
if len(cards) == 3:
    with cards[2]:
        if me.has(Role.OPERATOR):
            st.metric("Provider requests waiting", f"{mine.pending_provider_requests or 0:,}")
            st.page_link("pages/operator_overview.py", label="Marketplace overview", icon=":material/monitoring:")
            st.page_link("pages/operator_requests.py", label="Review requests", icon=":material/how_to_reg:")
        if me.has(Role.PROVIDER):
            st.metric(
                f"Your nodes online{' · ' + mine.provider_company if mine.provider_company else ''}",
                f"{mine.my_nodes_online:,} / {mine.my_nodes_total:,}",
                help=f"{mine.my_upcoming_windows} maintenance window(s) scheduled or active",
            )
            st.page_link("pages/provider_nodes.py", label="Nodes", icon=":material/dns:")

st.subheader("The marketplace")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Providers", f"{summary.providers:,}")
c2.metric("Nodes online", f"{summary.nodes_online:,}", help=f"of {summary.nodes_total:,} nodes (not decommissioned)")
c3.metric("Running deployments", f"{summary.deployments_by_status.get('running', 0):,}")
c4.metric("Regions", f"{summary.regions:,}")
st.caption(f"{summary.nodes_online:,} of {summary.nodes_total:,} nodes online")

st.markdown("**Deployments by status**")
order = ["running", "pending", "stopped", "failed", "deleted"]
cols = st.columns(len(order))
for col, status in zip(cols, order, strict=True):
    col.metric(status.capitalize(), f"{summary.deployments_by_status.get(status, 0):,}")
