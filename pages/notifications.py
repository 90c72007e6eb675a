"""Notifications: the signed-in person's inbox (maintenance notices, billing, applications)."""

from __future__ import annotations

import streamlit as st

from dashboard import fmt
from dashboard.forms import run_action
from dashboard.identity import require, uow
from services.auth.permissions import Action
from services.notifications import service as notifications

PAGE_SIZE = 20
KIND_ICONS = {
    "maintenance": ":material/construction:",
    "low_balance": ":material/account_balance_wallet:",
    "deployment": ":material/deployed_code:",
    "provider_request": ":material/storefront:",
    "payment": ":material/credit_card:",
}

me = require(Action.NOTIFICATIONS_READ_OWN)


@st.fragment(run_every="30s")
def inbox() -> None:
    unread = notifications.unread_count(uow(), me)
    st.title(f"Notifications ({unread:,} unread)" if unread else "Notifications")
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    unread_only = c1.toggle("Unread only", key="notifications_unread_only")
    if c2.button("Mark all read", key="notifications_mark_all", disabled=not unread, icon=":material/done_all:"):
        n = run_action(lambda: notifications.mark_all_read(uow(), me))
        if n is not None:
            st.session_state["notifications_flash"] = f"Marked {n:,} as read."
            st.rerun()
    flash = st.session_state.pop("notifications_flash", None)
    if flash:
        st.success(flash, icon=":material/check_circle:")

    page = st.session_state.get("notifications_page", 1)
    offset = (page - 1) * PAGE_SIZE
    # One row more than shown tells whether there is a next page, without counting them all.
    rows = notifications.list_own(uow(), me, unread_only=unread_only, limit=PAGE_SIZE + 1, offset=offset)
    has_next = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    if not rows:
        st.info("Nothing here." if page == 1 else "No more notifications.", icon=":material/inbox:")
    for n in rows:
        with st.container(border=True):
            marker = "🔵 " if n.read_at is None else ""
            icon = KIND_ICONS.get(n.kind, ":material/notifications:")
            st.markdown(f"{marker}{icon} **{n.title}**")
            if n.body:
                st.write(n.body)
            st.caption(f"{fmt.when(n.created_at, me.timezone)} · {n.kind.replace('_', ' ')}")
    prev_col, label_col, next_col = st.columns([1, 2, 1], vertical_alignment="center")
    if page > 1 and prev_col.button("Newer", key="notifications_prev", icon=":material/chevron_left:"):
        st.session_state["notifications_page"] = page - 1
        st.rerun(scope="fragment")
    if page > 1 or has_next:
        label_col.caption(f"Page {page}")
    if has_next and next_col.button("Older", key="notifications_next", icon=":material/chevron_right:"):
        st.session_state["notifications_page"] = page + 1
        st.rerun(scope="fragment")


inbox()
