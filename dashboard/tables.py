"""Column configuration shared by every table: money, times, statuses look the same everywhere."""

from __future__ import annotations

import streamlit as st

# Status -> badge shown in tables (one mapping for deployments, nodes, payments, requests, windows).
STATUS_BADGES = {
    "running": "🟢 running",
    "online": "🟢 online",
    "succeeded": "🟢 succeeded",
    "approved": "🟢 approved",
    "active": "🟢 active",
    "pending": "🟡 pending",
    "scheduled": "🟡 scheduled",
    "requires_action": "🟡 needs action",
    "processing": "🟡 processing",
    "draining": "🟠 draining",
    "stopped": "⚪ stopped",
    "offline": "🔴 offline",
    "failed": "🔴 failed",
    "rejected": "🔴 rejected",
    "canceled": "⚪ canceled",
    "cancelled": "⚪ cancelled",
    "deleted": "⚫ deleted",
    "decommissioned": "⚫ decommissioned",
    "refunded": "⚪ refunded",
}


def badge(status: str | None) -> str:
    return STATUS_BADGES.get(status or "", status or "—")


def money_column(label: str, **kw):
    """A column of amounts in dollars (pass dollars: cents / 100), formatted as $1,234.56."""
    return st.column_config.NumberColumn(label, format="dollar", **kw)


def time_column(label: str, **kw):
    """A column of datetimes already converted to the viewer's timezone (dashboard.fmt.local)."""
    return st.column_config.DatetimeColumn(label, format="YYYY-MM-DD HH:mm", **kw)


def status_column(label: str = "Status", **kw):
    return st.column_config.TextColumn(label, **kw)
