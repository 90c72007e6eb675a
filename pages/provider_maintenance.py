"""Maintenance: a provider plans downtime for nodes, sees whom it affects, confirms, and can cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard import fmt, tables
from dashboard.forms import attempt, field_error, form_message, run_action
from dashboard.identity import require, uow
from dashboard.pager import fetch_page, pager
from services.auth.permissions import Action
from services.db.base import utcnow
from services.maintenance import service as maintenance
from services.nodes import service as nodes
from services.providers import service as providers
from services.settings import service as settings_service

ERRORS = "mw_errors"
PREVIEW_KEY = "mw_preview"
CANCEL_KEY = "mw_cancel"
PAGE_SIZE = 20

me = require(Action.MAINTENANCE_MANAGE)
provider = providers.provider_for(uow(), me)

st.title("Maintenance")
if provider is None:
    st.info(
        "Your account has the provider role but no provider profile yet, so there is nothing to maintain. "
        "Apply under **Become a provider**, or ask an operator to link your account.",
        icon=":material/info:",
    )
    st.stop()

settings = settings_service.get(uow())
zone = fmt.zone(me.timezone)
st.caption(
    f"{provider.company} · windows need at least {settings.min_maintenance_notice_hours} h notice and may last at most "
    f"{settings.max_maintenance_hours} h · times in {me.timezone}"
)
flash = st.session_state.pop("mw_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")


def _span(w) -> str:
    start, end = fmt.local(w.starts_at, me.timezone), fmt.local(w.ends_at, me.timezone)
    end_fmt = "%H:%M %Z" if start.date() == end.date() else "%Y-%m-%d %H:%M %Z"
    return f"{start:%Y-%m-%d %H:%M} – {end.strftime(end_fmt)}"


def _impact_tables(impact: maintenance.Impact, key: str) -> None:
    c1, c2 = st.columns(2)
    c1.metric("Deployments affected", f"{len(impact.deployments):,}")
    c2.metric("Users to notify", f"{len(impact.users):,}")
    if impact.deployments:
        left, right = st.columns([3, 2])
        left.dataframe(
            pd.DataFrame(
                [
                    {
                        "Deployment": d.name,
                        "Status": tables.badge(d.status),
                        "Owner": d.owner_name,
                        "On nodes": ", ".join(d.node_names),
                    }
                    for d in impact.deployments
                ]
            ),
            hide_index=True,
            width="stretch",
            key=f"{key}_deployments",
            column_config={"Status": tables.status_column()},
        )
        right.dataframe(
            pd.DataFrame([{"User": u.name, "Deployments": u.deployments} for u in impact.users]),
            hide_index=True,
            width="stretch",
            key=f"{key}_users",
        )
    else:
        st.caption("No pending or running deployments are on these nodes: nobody needs to be notified.")


# --- plan a window ------------------------------------------------------------------------------------
st.subheader("Plan a window")
choices = nodes.node_choices(uow(), me)
if not choices:
    st.info("You have no active nodes. Register one under **Nodes** first.")
else:
    by_id = {n.id: n for n in choices}
    v = st.session_state.setdefault("mw_form_version", 0)
    earliest = (utcnow() + timedelta(hours=settings.min_maintenance_notice_hours, minutes=59)).replace(
        minute=0, second=0, microsecond=0
    )
    default_start = earliest.astimezone(zone)
    default_end = default_start + timedelta(hours=min(2, settings.max_maintenance_hours))
    form_message(ERRORS)
    with st.form(f"maintenance_window_{v}"):
        node_ids = st.multiselect(
            "Nodes",
            list(by_id),
            format_func=lambda i: (
                f"{by_id[i].name} ({by_id[i].region}, {by_id[i].active_deployments} active)"
                if by_id[i].active_deployments
                else f"{by_id[i].name} ({by_id[i].region})"
            ),
            key=f"mw_nodes_{v}",
            placeholder="Choose one or more nodes",
        )
        field_error(ERRORS, "node_ids")
        c1, c2, c3, c4 = st.columns(4)
        start_date = c1.date_input("Start date", value=default_start.date(), key=f"mw_start_date_{v}")
        start_time = c2.time_input("Start time", value=default_start.time(), step=900, key=f"mw_start_time_{v}")
        end_date = c3.date_input("End date", value=default_end.date(), key=f"mw_end_date_{v}")
        end_time = c4.time_input("End time", value=default_end.time(), step=900, key=f"mw_end_time_{v}")
        e1, e2 = st.columns(2)
        with e1:
            field_error(ERRORS, "starts_at")
        with e2:
            field_error(ERRORS, "ends_at")
        reason = st.text_area(
            "Reason (shown to affected users)",
            key=f"mw_reason_{v}",
            max_chars=500,
            placeholder="e.g. Kernel upgrade and reboot",
        )
        field_error(ERRORS, "reason")
        previewed = st.form_submit_button("Preview impact", icon=":material/visibility:")
    if previewed:
        data = dict(
            node_ids=list(node_ids),
            starts_at=datetime.combine(start_date, start_time, tzinfo=zone).astimezone(UTC),
            ends_at=datetime.combine(end_date, end_time, tzinfo=zone).astimezone(UTC),
            reason=reason,
        )
        st.session_state.pop(PREVIEW_KEY, None)
        with st.spinner("Checking the window and finding affected deployments…"):
            impact = attempt(lambda: maintenance.preview(uow(), me, data), errors_key=ERRORS)
        if impact is not None:
            st.session_state[PREVIEW_KEY] = {"data": data, "impact": impact}
        st.rerun()  # messages (if any) show next to their fields on the next run

    preview = st.session_state.get(PREVIEW_KEY)
    if preview:
        impact, data = preview["impact"], preview["data"]
        with st.container(border=True):
            st.markdown(
                f"**Impact of maintenance on {', '.join(impact.node_names)}** · {_span(impact)} · “{data['reason']}”"
            )
            _impact_tables(impact, "preview")
            c1, c2, _ = st.columns([2, 1, 2])
            label = (
                f"Confirm and notify {len(impact.users):,} user{'s' if len(impact.users) != 1 else ''}"
                if impact.users
                else "Confirm"
            )
            if c1.button(label, type="primary", key="mw_confirm", icon=":material/event_available:"):
                with st.spinner("Scheduling and notifying…"):
                    done = attempt(lambda: maintenance.schedule(uow(), me, data), errors_key=ERRORS)
                st.session_state.pop(PREVIEW_KEY, None)
                if done is not None:
                    st.session_state["mw_form_version"] = v + 1
                    st.session_state["mw_flash"] = (
                        f"Maintenance window #{done.window.id} scheduled; {done.notified:,} user"
                        f"{'s' if done.notified != 1 else ''} notified."
                    )
                st.rerun()
            if c2.button("Discard preview", key="mw_discard"):
                st.session_state.pop(PREVIEW_KEY, None)
                st.rerun()


# --- windows -------------------------------------------------------------------------------------------
st.subheader("Windows")


def _window_status(w) -> str:
    if w.status == "cancelled":
        return "cancelled"
    return {"upcoming": "scheduled", "active": "active", "past": "completed"}[w.phase]


def _windows_table(phase: str) -> list:
    page = fetch_page(
        f"mw_page_{phase}",
        PAGE_SIZE,
        lambda limit, offset: maintenance.list_windows(uow(), me, phase=phase, limit=limit, offset=offset),
        lambda p: p.total,
    )
    if not page.rows:
        st.caption(f"No {phase} windows.")
        return []
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Window": f"#{w.id}",
                    "Status": tables.badge(_window_status(w)),
                    "Starts": fmt.local(w.starts_at, me.timezone),
                    "Ends": fmt.local(w.ends_at, me.timezone),
                    "Hours": round((w.ends_at - w.starts_at).total_seconds() / 3600, 2),
                    "Nodes": ", ".join(w.node_names),
                    "Reason": w.reason,
                }
                for w in page.rows
            ]
        ),
        hide_index=True,
        width="stretch",
        key=f"mw_table_{phase}",
        column_config={
            "Status": tables.status_column(),
            "Starts": tables.time_column("Starts"),
            "Ends": tables.time_column("Ends"),
        },
    )
    pager(f"mw_page_{phase}", page.total, page_size=PAGE_SIZE, label=f"{phase} windows")
    return page.rows


upcoming_tab, active_tab, past_tab = st.tabs(["Upcoming", "Active", "Past"])
with active_tab:
    _windows_table("active")
with past_tab:
    _windows_table("past")
with upcoming_tab:
    upcoming = _windows_table("upcoming")
    if upcoming:
        by_window = {w.id: w for w in upcoming}
        chosen = st.selectbox(
            "Window",
            list(by_window),
            format_func=lambda i: f"#{i} · {_span(by_window[i])} · {by_window[i].reason}",
            key="mw_selected",
        )
        w = by_window[chosen]
        # Found only while the expander is open: a closed one costs no query and no tables.
        impact_box = st.expander(f"Who is affected by #{w.id}", key=f"mw_impact_open_{w.id}", on_change="rerun")
        if impact_box.open:
            with impact_box:
                impact = run_action(lambda: maintenance.window_impact(uow(), me, w.id))
                if impact is not None:
                    _impact_tables(impact, f"window_{w.id}")
        if st.button(f"Cancel window #{w.id}…", key="mw_ask_cancel", icon=":material/event_busy:"):
            st.session_state[CANCEL_KEY] = w.id
        if st.session_state.get(CANCEL_KEY) == w.id:
            with st.container(border=True):
                st.warning(
                    f"**Cancel maintenance window #{w.id}** ({_span(w)}, “{w.reason}”)? "
                    "Everyone who was told about it gets a cancellation notice.",
                    icon=":material/help:",
                )
                y, n_ = st.columns([1, 4])
                if y.button("Yes, cancel it", type="primary", key="mw_confirm_cancel"):
                    done = run_action(lambda: maintenance.cancel(uow(), me, w.id))
                    if done is not None:
                        st.session_state.pop(CANCEL_KEY, None)
                        st.session_state["mw_flash"] = (
                            f"Maintenance window #{w.id} cancelled; {done.notified:,} user"
                            f"{'s' if done.notified != 1 else ''} notified."
                        )
                        st.rerun()
                if n_.button("Keep it", key="mw_keep"):
                    st.session_state.pop(CANCEL_KEY, None)
                    st.rerun()
