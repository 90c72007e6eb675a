"""My deployments: the list (live), one deployment in detail, and stop / start / scale / delete with a confirmation."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import fmt, tables
from dashboard.charts import deployments as charts
from dashboard.forms import run_action
from dashboard.identity import require, uow
from dashboard.pager import fetch_page, pager
from services.auth.permissions import Action
from services.config import get_settings
from services.db.base import utcnow
from services.deployments import service as deployments

PAGE_SIZE = 20
PAGE_KEY = "deps_page"
DETAIL_KEY = "deps_detail"
CONFIRM_KEY = "deps_confirm"  # (action, deployment id, argument)
FLASH_KEY = "deps_flash"
DETAIL_CACHE_SECONDS = 10
STATUSES = ["pending", "running", "stopped", "failed", "deleted"]
SORT_LABELS = {"created_at": "Newest first", "name": "Name", "status": "Status", "price": "Price per hour"}

me = require(Action.DEPLOYMENT_MANAGE_OWN)
state = st.session_state
if state.get("deps_viewer") != me.user_id:  # another person at this browser (demo picker): start afresh
    for key in (DETAIL_KEY, CONFIRM_KEY, FLASH_KEY):
        state.pop(key, None)
    state["deps_viewer"] = me.user_id

st.title("My deployments")
st.caption(f"Times in {me.timezone} · prices per hour as charged")

# A deep link (?deployment=<id>) opens that deployment, if it is yours.
linked = st.query_params.get("deployment")
if linked and linked.isdigit():
    state[DETAIL_KEY] = int(linked)
    del st.query_params["deployment"]

c1, c2, c3 = st.columns([2, 3, 1])
search = c1.text_input("Search", key="deps_search", placeholder="name or workload contains…")
statuses = c2.multiselect(
    "Status",
    STATUSES,
    default=["pending", "running", "stopped", "failed"],
    key="deps_statuses",
    format_func=tables.badge,
)
sort = c3.selectbox("Sort", list(SORT_LABELS), format_func=SORT_LABELS.get, key="deps_sort")


def _fetch(limit: int, offset: int):
    return deployments.list_own(
        uow(),
        me,
        statuses=statuses or STATUSES,
        search=search or None,
        sort=sort,
        descending=sort in ("created_at", "price"),
        limit=limit,
        offset=offset,
    )


shown: dict = {}  # the page of rows the table fetched in this run, for the chooser below


@st.fragment(run_every="30s")
def deployment_table() -> None:
    page = fetch_page(PAGE_KEY, PAGE_SIZE, _fetch, lambda p: p.total)
    shown["page"] = page
    if not page.rows:
        st.info(
            "No deployments match these filters."
            if page.total == 0 and (search or set(statuses) != {"pending", "running", "stopped", "failed"})
            else "You have no deployments yet. Launch one from **Launch deployment**.",
            icon=":material/info:",
        )
        return
    frame = pd.DataFrame(
        [
            {
                "Name": r.name,
                "Status": tables.badge(r.status),
                "Workload": r.workload,
                "Nodes": r.nodes or "—",
                "Region": r.node_regions or (r.region or "any"),
                "Replicas": r.replicas,
                "Backup": r.backup_enabled,
                "Price / h": r.price_per_hour_cents / 100,
                "Cost so far": r.cost_so_far_cents / 100,
                "Created": fmt.local(r.created_at, me.timezone),
            }
            for r in page.rows
        ]
    )
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "Status": tables.status_column(),
            "Nodes": st.column_config.TextColumn("Nodes", width="large"),
            "Backup": st.column_config.CheckboxColumn("Backup"),
            "Price / h": tables.money_column("Price / h"),
            "Cost so far": tables.money_column("Cost so far", help="Usage charged to your credits"),
            "Created": tables.time_column("Created"),
        },
    )
    pager(PAGE_KEY, page.total, page_size=PAGE_SIZE, label="deployments")
    st.caption(f"Refreshed {fmt.when(utcnow(), me.timezone, '%H:%M:%S')} · updates every 30 seconds")


deployment_table()

# --- one deployment -----------------------------------------------------------------------------------
st.divider()
st.subheader("Details")
flash = state.pop(FLASH_KEY, None)
if flash:
    st.success(flash, icon=":material/check_circle:")
choices = shown["page"].rows  # the table's rows (fetched once per run)
by_id = {r.id: r for r in choices}
selected = state.get(DETAIL_KEY)
options = list(by_id) + ([selected] if selected is not None and selected not in by_id else [])
if not options:
    st.caption("Choose a deployment in the list above to see it here.")
    st.stop()
if selected not in options:
    state[DETAIL_KEY] = options[0]
detail_id = st.selectbox(
    "Deployment",
    options,
    # The label must not change with the status: the widget keeps its choice by label across reruns.
    format_func=lambda i: f"{by_id[i].name} (#{i})" if i in by_id else f"#{i}",
    key=DETAIL_KEY,
)
if not isinstance(detail_id, int):  # a choice that no longer exists
    state.pop(DETAIL_KEY, None)
    st.rerun()

CONFIRM_TEXT = {
    "stop": ("Stop", "It stops running and is no longer charged; its capacity is released."),
    "start": ("Start", "Its nodes are checked again; an instance whose node has no room is moved."),
    "delete": ("Delete", "This cannot be undone. Charges stop and the name becomes free."),
    "scale": ("Scale", "New replicas are placed on other nodes; removed ones stop at once. The price is recomputed."),
}


def _act(action: str, deployment_id: int, argument: int | None) -> None:
    calls = {
        "stop": lambda: deployments.stop(uow(), me, deployment_id),
        "start": lambda: deployments.start(uow(), me, deployment_id),
        "delete": lambda: deployments.delete(uow(), me, deployment_id),
        "scale": lambda: deployments.scale_replicas(uow(), me, deployment_id, int(argument or 0)),
    }
    with st.spinner("Working…"):
        result = run_action(calls[action])
    _detail.clear()  # the detail shows the change (or the refusal's cause) on the next run
    state.pop(CONFIRM_KEY, None)
    if result is not None:
        price = fmt.money(result.price_per_hour_cents, result.currency)
        state[FLASH_KEY] = {
            "stop": f"{result.name} is stopped.",
            "start": f"{result.name} is starting ({result.status}) at {price} per hour.",
            "delete": f"{result.name} is deleted.",
            "scale": f"{result.name} now has {result.replicas} replica(s) at {price} per hour.",
        }[action]
        st.rerun()


@st.cache_data(ttl=DETAIL_CACHE_SECONDS, show_spinner=False, max_entries=256)
def _detail(database_url: str, user_id: int, deployment_id: int) -> deployments.DeploymentDetail:
    """One of the person's deployments in detail, kept briefly per database, person and deployment
    (reruns from the filters, the pager or a chart read it at most this often; cleared by actions)."""
    return deployments.get_own(uow(), me, deployment_id)


@st.fragment(run_every="20s")
def deployment_detail(deployment_id: int) -> None:
    d = run_action(lambda: _detail(get_settings().database_url, me.user_id, deployment_id))
    if d is None:
        return
    cur = d.currency
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Status", d.status.capitalize())
    c2.metric("Price per hour", fmt.money(d.price_per_hour_cents, cur))
    c3.metric("Per month", fmt.money(d.price_per_hour_cents * 730, cur), help="730 hours")
    c4.metric("Cost so far", fmt.money(d.cost_so_far_cents, cur))
    gpu = f"{d.gpu_count}× {d.gpu_model}" if d.gpu_count else "no GPU"
    st.markdown(
        f"**{d.name}** · {d.workload}{f' · image `{d.image}`' if d.image else ''}  \n"
        f"{d.vcpu} vCPU · {d.ram_gb} GB RAM · {d.disk_gb:,} GB disk · {gpu} · region {d.region or 'any'} · "
        f"{d.replicas} replica(s){' + backup VM' if d.backup_enabled else ''}  \n"
        f"Created {fmt.when(d.created_at, me.timezone)} · platform fee {d.platform_fee_bp / 100:g}% of the price"
    )

    # actions, each behind a confirmation
    confirm = state.get(CONFIRM_KEY)
    if d.status != "deleted":
        b1, b3, b2, b4 = st.columns([1, 2, 1, 1], vertical_alignment="bottom")
        if d.status in ("pending", "running"):
            if b1.button("Stop", key="ask_stop", icon=":material/stop:", width="stretch"):
                state[CONFIRM_KEY] = confirm = ("stop", d.id, None)
        elif d.status in ("stopped", "failed") and b1.button(
            "Start", key="ask_start", icon=":material/play_arrow:", width="stretch"
        ):
            state[CONFIRM_KEY] = confirm = ("start", d.id, None)
        if d.status in ("pending", "running", "stopped"):
            replicas = b3.number_input("Replicas", min_value=0, value=d.replicas, step=1, key=f"scale_to_{d.id}")
            if b2.button("Scale", key="ask_scale", icon=":material/stacks:", width="stretch"):
                state[CONFIRM_KEY] = confirm = ("scale", d.id, int(replicas))
        if b4.button("Delete", key="ask_delete", icon=":material/delete:", width="stretch"):
            state[CONFIRM_KEY] = confirm = ("delete", d.id, None)
    if confirm and confirm[1] == d.id:
        action, _, argument = confirm
        verb, consequence = CONFIRM_TEXT[action]
        with st.container(border=True):
            target = f" to {argument} replica(s)" if action == "scale" else ""
            st.warning(f"**{verb} {d.name}{target}?** {consequence}", icon=":material/help:")
            y, n, _ = st.columns([1, 1, 4])
            if y.button(f"Yes, {verb.lower()}", key="confirm_yes", type="primary", width="stretch"):
                _act(action, d.id, argument)
            if n.button("Cancel", key="confirm_no", width="stretch"):
                state.pop(CONFIRM_KEY, None)
                st.rerun(scope="fragment")

    st.markdown("**Placement**")
    if d.placements:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Instance": "backup VM" if p.role == "backup" else f"replica {p.slot}",
                        "Node": p.node_name,
                        "Provider": p.provider_name,
                        "Region": p.region,
                        "Price vs list": f"{p.price_factor_pct}%",
                        "Why": p.reason,
                    }
                    for p in d.placements
                ]
            ),
            hide_index=True,
            width="stretch",
            column_config={"Why": st.column_config.TextColumn(width="large")},
        )
    else:
        st.caption("Not placed on any node.")

    left, right = st.columns(2)
    with left:
        if d.events:
            st.plotly_chart(charts.status_timeline(d.events, utcnow(), me.timezone), key=f"timeline_{d.id}")
    with right:
        if d.daily_costs:
            st.plotly_chart(charts.cost_per_day(d.daily_costs, cur, me.timezone), key=f"cost_{d.id}")
        else:
            st.info("No usage charged yet. Charges appear here once the deployment runs.", icon=":material/info:")
    st.markdown("**Events**")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "When": fmt.local(e.ts, me.timezone),
                    "Event": e.kind,
                    "Status": tables.badge(e.status),
                    "By": e.actor,
                    "Details": e.message,
                }
                for e in reversed(d.events)
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={"When": tables.time_column("When"), "Details": st.column_config.TextColumn(width="large")},
    )


deployment_detail(detail_id)
