"""Nodes: a provider registers nodes, watches their status and charts, and manages them."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboard import fmt, tables
from dashboard.charts import figure as chart_figure
from dashboard.charts import nodes as node_charts
from dashboard.forms import attempt, field_error, form_message, run_action
from dashboard.identity import require, uow
from dashboard.pager import fetch_page, pager
from services.auth.permissions import Action
from services.config import get_settings
from services.db.base import utcnow
from services.nodes import service as nodes
from services.nodes.countries import COUNTRY_CODES
from services.providers import service as providers

ISSUED_KEY = "nodes_issued"  # session_state key of a just-issued token (shown once)
REG_ERRORS = "nodes_register_errors"
TAB_KEY = "nodes_tab"  # the open tab: "Fleet" or "Register a node"
EDIT_ERRORS = "nodes_edit_errors"
CONFIRM_KEY = "nodes_confirm"
PAGE_SIZE = 25
CHOICES_CACHE_SECONDS = 60  # regions and GPU models: operator settings and pricing, which move rarely
DETAIL_CACHE_SECONDS = 10  # reruns from the filters, the pager or the range re-read a node at most this often
RANGES = {"6 hours": timedelta(hours=6), "2 days": timedelta(days=2), "30 days": timedelta(days=30)}
STATUS_FILTERS = ["all", *nodes.NODE_STATUSES]
SORT_LABELS = {
    "name": "Name",
    "status": "Status",
    "region": "Region",
    "last_heartbeat": "Last heartbeat",
    "deployments": "Active deployments",
    "created": "Registered",
}

me = require(Action.NODE_MANAGE)
provider = providers.provider_for(uow(), me)

st.title("Nodes")
if provider is None:
    st.info(
        "Your account has the provider role but no provider profile yet, so there are no nodes to manage. "
        "Apply under **Become a provider**, or ask an operator to link your account.",
        icon=":material/info:",
    )
    st.stop()
st.caption(f"{provider.company} · times in {me.timezone}")
if provider.status != "active":
    st.warning(f"Your provider account is **{provider.status}**: nodes cannot be registered or edited.")


def _remember_token(title: str, name: str, token: str) -> None:
    st.session_state[ISSUED_KEY] = {"title": title, "name": name, "token": token}


def _ago(ts) -> str:
    if ts is None:
        return "never"
    seconds = int((utcnow() - ts).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _gpu(view) -> str:
    return f"{view.gpu_count}× {view.gpu_model}" if view.gpu_count else "—"


# --- reads kept briefly (cleared on every change) ----------------------------------------------------
@st.cache_data(ttl=DETAIL_CACHE_SECONDS, show_spinner=False, max_entries=64)
def _node_metrics(
    database_url: str, user_id: int, node_id: int, span: timedelta, tz: str | None
) -> tuple[nodes.NodeMetrics, dict | None, dict | None]:
    """One node's context and its two charts (figure dicts, in the viewer's timezone), kept briefly per
    database, person, node, range and timezone (cleared on changes). The samples themselves are dropped
    once charted: the figures carry them, and a rerun then neither re-charts nor re-reads them."""
    m = nodes.node_metrics(uow(), me, node_id, since=utcnow() - span)
    utilisation = node_charts.utilisation(m.points, tz, bucket_seconds=m.bucket_seconds).to_dict() if m.points else None
    uptime = node_charts.uptime(m.uptime_days).to_dict() if m.uptime_share is not None else None
    return replace(m, points=[], uptime_days=[]), utilisation, uptime


@st.cache_data(ttl=DETAIL_CACHE_SECONDS, show_spinner=False, max_entries=64)
def _node_choices(database_url: str, user_id: int) -> list[nodes.NodeView]:
    """The person's nodes for the picker, kept as briefly as the detail (cleared on changes)."""
    return nodes.node_choices(uow(), me)


def _forget_nodes() -> None:
    """After a change: the picker and the detail read the nodes afresh."""
    _node_choices.clear()
    _node_metrics.clear()


# --- a token that was just issued: shown this once --------------------------------------------------
issued = st.session_state.get(ISSUED_KEY)
if issued:
    with st.container(border=True):
        st.success(f"**{issued['title']}**: the agent token for **{issued['name']}** is below.", icon=":material/key:")
        st.code(issued["token"], language=None, wrap_lines=True)
        st.caption("Use the copy button at the right of the box, and give the token to the node agent.")
        st.warning(
            "**This token will not be shown again.** Only a hash of it is stored. If you lose it, rotate the "
            "node's token to get a new one.",
            icon=":material/warning:",
        )
        if st.button("I have saved the token", key="token_saved", icon=":material/done:"):
            st.session_state.pop(ISSUED_KEY, None)
            st.rerun()

# The register form is built only while its tab is open (on_change="rerun" makes `.open` known):
# hidden, it would be built again on every rerun of the fleet view.
fleet_tab, register_tab = st.tabs(["Fleet", "Register a node"], key=TAB_KEY, on_change="rerun")


@st.cache_data(ttl=CHOICES_CACHE_SECONDS, show_spinner=False, max_entries=16)
def _form_choices(database_url: str) -> tuple[list[str], list[str]]:
    """The marketplace's regions and priced GPU models (the same for everyone), kept a minute per database."""
    return nodes.regions(uow()), nodes.gpu_models(uow())


# The register form, the filter and the edit form offer them; registering and saving check them afresh.
regions, gpu_choices = _form_choices(get_settings().database_url)


# --- register ---------------------------------------------------------------------------------------
def _register_form() -> None:
    """Register a node: the form, its field messages, and the one-time token on success."""
    v = st.session_state.setdefault("nodes_register_version", 0)
    form_message(REG_ERRORS)
    with st.form(f"register_node_{v}"):
        c1, c2, c3 = st.columns(3)
        with c1:
            name = st.text_input("Name", key=f"reg_name_{v}", placeholder="gpu-fra-01", max_chars=100)
            field_error(REG_ERRORS, "name")
        with c2:
            region = st.selectbox("Region", regions, index=None, key=f"reg_region_{v}", placeholder="Choose a region")
            field_error(REG_ERRORS, "region")
        with c3:
            country = st.selectbox(
                "Country (ISO code)",
                COUNTRY_CODES,
                index=None,
                key=f"reg_country_{v}",
                placeholder="e.g. DE",
                help="Where the machine stands, as a two-letter ISO 3166 code.",
            )
            field_error(REG_ERRORS, "country")
        c1, c2, c3 = st.columns(3)
        with c1:
            vcpu = st.number_input("vCPU", min_value=0, value=16, step=1, key=f"reg_vcpu_{v}")
            field_error(REG_ERRORS, "vcpu")
        with c2:
            ram_gb = st.number_input("RAM (GB)", min_value=0, value=64, step=1, key=f"reg_ram_{v}")
            field_error(REG_ERRORS, "ram_gb")
        with c3:
            disk_gb = st.number_input("Disk (GB)", min_value=0, value=1000, step=10, key=f"reg_disk_{v}")
            field_error(REG_ERRORS, "disk_gb")
        c1, c2, c3, c4 = st.columns(4)
        with c1:
            gpu_model = st.selectbox(
                "GPU model", gpu_choices, index=None, key=f"reg_gpu_model_{v}", placeholder="No GPU"
            )
            field_error(REG_ERRORS, "gpu_model")
        with c2:
            gpu_count = st.number_input("GPUs", min_value=0, value=0, step=1, key=f"reg_gpu_count_{v}")
            field_error(REG_ERRORS, "gpu_count")
        with c3:
            bandwidth = st.number_input(
                "Bandwidth (Mbit/s)", min_value=0, value=1000, step=100, key=f"reg_bandwidth_{v}"
            )
            field_error(REG_ERRORS, "bandwidth_mbps")
        with c4:
            factor = st.number_input(
                "Price factor (%)",
                min_value=0,
                value=100,
                step=5,
                key=f"reg_factor_{v}",
                help="Your price relative to the marketplace's list rates: 100 = list price.",
            )
            field_error(REG_ERRORS, "price_factor_pct")
        submitted = st.form_submit_button("Register node", type="primary", icon=":material/add:")
    if submitted:
        form = dict(
            name=name,
            region=region or "",
            country=country or "",
            vcpu=vcpu,
            ram_gb=ram_gb,
            disk_gb=disk_gb,
            gpu_model=gpu_model,
            gpu_count=gpu_count,
            bandwidth_mbps=bandwidth,
            price_factor_pct=factor,
        )
        with st.spinner("Registering…"):
            result = attempt(lambda: nodes.register_node(uow(), me, form), errors_key=REG_ERRORS)
        if result is not None:
            _remember_token("Node registered", result.node.name, result.token)
            st.session_state["nodes_register_version"] = v + 1  # fresh, empty form
            st.session_state["node_detail"] = result.node.id
            _forget_nodes()  # the new node is in the picker at once
        st.rerun()  # messages (if any) show next to their fields on the next run


if register_tab.open:
    with register_tab:
        _register_form()


# --- fleet table (refreshes itself) -------------------------------------------------------------------
@st.fragment(run_every="30s")
def fleet(regions: list[str]) -> None:
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    search = c1.text_input("Search by name", key="nodes_search", placeholder="node name contains…")
    status = c2.selectbox("Status", STATUS_FILTERS, key="nodes_status", format_func=str.capitalize)
    region = c3.selectbox(
        "Region", ["all", *regions], key="nodes_region", format_func=lambda r: "All" if r == "all" else r
    )
    sort = c4.selectbox("Sort by", list(SORT_LABELS), format_func=SORT_LABELS.get, key="nodes_sort")
    page = fetch_page(
        "nodes_page",
        PAGE_SIZE,
        lambda limit, offset: nodes.list_for_provider(
            uow(),
            me,
            status=None if status == "all" else status,
            region=None if region == "all" else region,
            search=search or None,
            sort=sort,
            descending=sort in ("last_heartbeat", "deployments", "created"),
            limit=limit,
            offset=offset,
        ),
        lambda p: p.total,
    )
    if not page.rows:
        st.info(
            "No nodes match."
            if page.total == 0 and (search or status != "all" or region != "all")
            else "You have no nodes yet. Register one in the **Register a node** tab."
        )
        return
    frame = pd.DataFrame(
        [
            {
                "Name": n.name,
                "Status": tables.badge(n.status),
                "Region": n.region,
                "Country": n.country,
                "vCPU": n.vcpu,
                "RAM (GB)": n.ram_gb,
                "Disk (GB)": n.disk_gb,
                "GPU": _gpu(n),
                "Active deployments": n.active_deployments,
                "Last heartbeat": fmt.local(n.last_heartbeat_at, me.timezone),
                "Price factor": n.price_factor_pct,
                "Registered": fmt.local(n.created_at, me.timezone),
            }
            for n in page.rows
        ]
    )
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        height=35 * (len(frame) + 1) + 3,  # the whole page of rows, no inner scrolling
        column_config={
            "Status": tables.status_column(),
            "Last heartbeat": tables.time_column("Last heartbeat"),
            "Registered": tables.time_column("Registered"),
            "Price factor": st.column_config.NumberColumn("Price factor", format="%d %%"),
        },
    )
    pager("nodes_page", page.total, page_size=PAGE_SIZE, label="nodes")
    st.caption(f"Refreshed {fmt.when(utcnow(), me.timezone, '%H:%M:%S')} · updates every 30 seconds")


with fleet_tab:
    fleet(regions)


# --- one node: charts, deployments, actions ------------------------------------------------------------
@st.fragment(run_every="60s")
def node_detail(node_id: int, span: timedelta) -> None:
    detail = run_action(lambda: _node_metrics(get_settings().database_url, me.user_id, node_id, span, me.timezone))
    if detail is None:
        return
    m, utilisation, uptime = detail
    n = m.node
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Status", n.status.capitalize())
    c2.metric("Last heartbeat", _ago(n.last_heartbeat_at), help=fmt.when(n.last_heartbeat_at, me.timezone))
    c3.metric("Uptime (30 days)", "—" if m.uptime_share is None else f"{m.uptime_share:.2%}")
    c4.metric("Active deployments", f"{n.active_deployments:,}")
    st.caption(
        f"{n.region} · {n.country} · {n.vcpu} vCPU · {n.ram_gb} GB RAM · {n.disk_gb:,} GB disk · GPU {_gpu(n)} · "
        f"{n.bandwidth_mbps:,} Mbit/s · price factor {n.price_factor_pct} % · "
        + (
            f"token issued {fmt.when(n.token_rotated_at, me.timezone)}"
            if n.token_rotated_at
            else "no agent token issued"
        )
    )
    if utilisation:
        st.plotly_chart(chart_figure(utilisation["data"], utilisation["layout"]), key=f"util_chart_{node_id}")
    else:
        st.info("No utilisation samples in this range yet. They appear once the node agent reports.")
    if uptime:
        st.plotly_chart(chart_figure(uptime["data"], uptime["layout"]), key=f"uptime_chart_{node_id}")
    st.markdown(f"**Deployments placed on {n.name}** ({m.deployments_total:,}, deleted ones not shown)")
    if m.deployments:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Deployment": d.name,
                        "Status": tables.badge(d.status),
                        "Role": d.role if d.slot < 0 else f"{d.role} {d.slot + 1}",
                        "Owner": d.owner_name,
                        "vCPU": d.vcpu,
                        "RAM (GB)": d.ram_gb,
                        "GPUs": d.gpu_count,
                        "Started": fmt.local(d.started_at, me.timezone),
                    }
                    for d in m.deployments
                ]
            ),
            hide_index=True,
            width="stretch",
            column_config={"Status": tables.status_column(), "Started": tables.time_column("Started")},
        )
        if m.deployments_total > len(m.deployments):
            st.caption(f"Showing the first {len(m.deployments)}: active ones first.")
    else:
        st.caption("None.")


def _edit_form(n) -> None:
    ev = st.session_state.setdefault("nodes_edit_version", 0)
    suffix = f"{n.id}_{ev}"
    form_message(EDIT_ERRORS)
    with st.form(f"edit_node_{suffix}"):
        c1, c2, c3 = st.columns(3)
        with c1:
            name = st.text_input("Name", value=n.name, key=f"edit_name_{suffix}", max_chars=100)
            field_error(EDIT_ERRORS, "name")
        with c2:
            region_options = regions if n.region in regions else [n.region, *regions]
            region = st.selectbox(
                "Region", region_options, index=region_options.index(n.region), key=f"edit_region_{suffix}"
            )
            field_error(EDIT_ERRORS, "region")
        with c3:
            country = st.selectbox(
                "Country (ISO code)",
                COUNTRY_CODES,
                index=COUNTRY_CODES.index(n.country) if n.country in COUNTRY_CODES else None,
                key=f"edit_country_{suffix}",
            )
            field_error(EDIT_ERRORS, "country")
        c1, c2, c3 = st.columns(3)
        with c1:
            vcpu = st.number_input("vCPU", min_value=0, value=n.vcpu, key=f"edit_vcpu_{suffix}")
            field_error(EDIT_ERRORS, "vcpu")
        with c2:
            ram_gb = st.number_input("RAM (GB)", min_value=0, value=n.ram_gb, key=f"edit_ram_{suffix}")
            field_error(EDIT_ERRORS, "ram_gb")
        with c3:
            disk_gb = st.number_input("Disk (GB)", min_value=0, value=n.disk_gb, step=10, key=f"edit_disk_{suffix}")
            field_error(EDIT_ERRORS, "disk_gb")
        c1, c2, c3, c4 = st.columns(4)
        gpu_options = gpu_choices if not n.gpu_model or n.gpu_model in gpu_choices else [n.gpu_model, *gpu_choices]
        with c1:
            gpu_model = st.selectbox(
                "GPU model",
                gpu_options,
                index=gpu_options.index(n.gpu_model) if n.gpu_model in gpu_options else None,
                placeholder="No GPU",
                key=f"edit_gpu_model_{suffix}",
            )
            field_error(EDIT_ERRORS, "gpu_model")
        with c2:
            gpu_count = st.number_input("GPUs", min_value=0, value=n.gpu_count, key=f"edit_gpu_count_{suffix}")
            field_error(EDIT_ERRORS, "gpu_count")
        with c3:
            bandwidth = st.number_input(
                "Bandwidth (Mbit/s)", min_value=0, value=n.bandwidth_mbps, step=100, key=f"edit_bandwidth_{suffix}"
            )
            field_error(EDIT_ERRORS, "bandwidth_mbps")
        with c4:
            factor = st.number_input(
                "Price factor (%)", min_value=0, value=n.price_factor_pct, step=5, key=f"edit_factor_{suffix}"
            )
            field_error(EDIT_ERRORS, "price_factor_pct")
        saved = st.form_submit_button("Save changes", type="primary", icon=":material/save:")
    if saved:
        form = dict(
            name=name,
            region=region or "",
            country=country or "",
            vcpu=vcpu,
            ram_gb=ram_gb,
            disk_gb=disk_gb,
            gpu_model=gpu_model,
            gpu_count=gpu_count,
            bandwidth_mbps=bandwidth,
            price_factor_pct=factor,
        )
        if attempt(lambda: nodes.update_node(uow(), me, n.id, form), errors_key=EDIT_ERRORS) is not None:
            _forget_nodes()
            st.session_state["nodes_edit_version"] = ev + 1
            st.session_state["nodes_flash"] = f"Saved {name}."
        st.rerun()


CONFIRM_TEXT = {
    "drain": ("Drain", "It keeps the deployments it runs and takes no new ones until you resume it."),
    "resume": ("Resume", "It takes new deployments again once it is online."),
    "rotate": ("Rotate the token of", "The current token stops working at once: update the node agent right after."),
    "decommission": (
        "Decommission",
        "This retires the node for good and revokes its token. It is refused while deployments run on it.",
    ),
}


def _act(action: str, n) -> None:
    _forget_nodes()  # the picker and the detail show the change on the next run
    if action == "drain":
        if run_action(lambda: nodes.drain(uow(), me, n.id)) is not None:
            st.session_state["nodes_flash"] = f"{n.name} is draining."
    elif action == "resume":
        if run_action(lambda: nodes.resume(uow(), me, n.id)) is not None:
            st.session_state["nodes_flash"] = f"{n.name} takes deployments again."
    elif action == "rotate":
        result = run_action(lambda: nodes.rotate_token(uow(), me, n.id))
        if result is not None:
            _remember_token("Token rotated", n.name, result.token)
    elif action == "decommission":
        if run_action(lambda: nodes.decommission(uow(), me, n.id)) is not None:
            st.session_state["nodes_flash"] = f"{n.name} is decommissioned."
            st.session_state.pop("node_detail", None)
    else:
        return
    if "nodes_flash" in st.session_state or st.session_state.get(ISSUED_KEY):
        st.session_state.pop(CONFIRM_KEY, None)
        st.rerun()


with fleet_tab:
    st.divider()
    st.subheader("Node details")
    flash = st.session_state.pop("nodes_flash", None)
    if flash:
        st.success(flash, icon=":material/check_circle:")
    choices = _node_choices(get_settings().database_url, me.user_id)
    if not choices:
        st.caption("No active nodes.")
    else:
        by_id = {n.id: n for n in choices}
        if st.session_state.get("node_detail") not in by_id:
            st.session_state["node_detail"] = choices[0].id
        c1, c2 = st.columns([2, 2])
        node_id = c1.selectbox(
            "Node",
            list(by_id),
            format_func=lambda i: f"{by_id[i].name} · {tables.badge(by_id[i].status)}",
            key="node_detail",
        )
        range_label = c2.segmented_control("Range", list(RANGES), default="2 days", key="node_range") or "2 days"
        node = by_id[node_id]

        b1, b2, b3, b4 = st.columns(4)
        if node.stored_status == "draining":
            if b1.button("Resume", key="ask_resume", icon=":material/play_arrow:", width="stretch"):
                st.session_state[CONFIRM_KEY] = ("resume", node.id)
        elif b1.button("Drain", key="ask_drain", icon=":material/pause:", width="stretch"):
            st.session_state[CONFIRM_KEY] = ("drain", node.id)
        if b2.button("Rotate token", key="ask_rotate", icon=":material/key:", width="stretch"):
            st.session_state[CONFIRM_KEY] = ("rotate", node.id)
        if b3.button("Decommission", key="ask_decommission", icon=":material/delete_forever:", width="stretch"):
            st.session_state[CONFIRM_KEY] = ("decommission", node.id)
        editing = b4.toggle("Edit", key=f"edit_open_{node.id}")

        pending = st.session_state.get(CONFIRM_KEY)
        if pending and pending[1] == node.id:
            action = pending[0]
            verb, consequence = CONFIRM_TEXT[action]
            with st.container(border=True):
                st.warning(f"**{verb} {node.name}?** {consequence}", icon=":material/help:")
                y, n_ = st.columns([1, 5])
                if y.button(f"Yes, {verb.split()[0].lower()}", key=f"confirm_{action}", type="primary"):
                    _act(action, node)
                if n_.button("Cancel", key="confirm_cancel"):
                    st.session_state.pop(CONFIRM_KEY, None)
                    st.rerun()
        if editing:
            _edit_form(node)
        node_detail(node_id, RANGES[range_label])
