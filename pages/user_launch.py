"""Launch a deployment: pick a template, size it, see the live price and where it would run, launch."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import fmt
from dashboard.identity import require, uow
from services.auth.permissions import Action
from services.deployments import service as deployments
from services.deployments.schemas import ANY_REGION, NAME_RULE
from services.errors import InvalidInput, ServiceError

SUBMIT_KEY = "launch_submit"  # {"errors": field -> message, "values": what was submitted}
RESULT_KEY = "launch_result"
PREVIEW_KEY = "launch_show_preview"
FIELDS = ("name", "workload", "image", "vcpu", "ram_gb", "disk_gb", "gpu_model", "gpu_count", "region", "replicas")

me = require(Action.DEPLOYMENT_LAUNCH)
options = deployments.launch_options(uow(), me)
templates = {t.key: t for t in options.catalog}
state = st.session_state


def _apply_template() -> None:
    """Fill the size fields from the chosen template (the person can change them afterwards)."""
    t = templates.get(state.get("launch_workload"))
    if t is None:
        return
    state["launch_vcpu"], state["launch_ram_gb"], state["launch_disk_gb"] = t.vcpu, t.ram_gb, t.disk_gb
    state["launch_gpu_model"] = t.gpu_model if t.gpu_model in options.gpu_models else None
    state["launch_gpu_count"] = t.gpu_count if t.gpu_model in options.gpu_models else 0


if state.get("launch_workload") not in templates:
    state["launch_workload"] = options.catalog[0].key
    _apply_template()
if state.pop("launch_clear_name", False):
    state["launch_name"] = ""

st.title("Launch a deployment")
st.caption(
    "Pick a workload from the catalog, size it, and see the price per hour as it will be charged. "
    "The scheduler places each replica on its own node, cheapest and most reliable first."
)

slots: dict[str, st.delta_generator.DeltaGenerator] = {}
form_col, price_col = st.columns([3, 2], gap="large")

with form_col, st.container(border=True):
    st.text_input("Name", key="launch_name", placeholder="my-web-1", max_chars=63, help=NAME_RULE)
    slots["name"] = st.empty()
    st.selectbox(
        "Workload",
        list(templates),
        format_func=lambda k: templates[k].name,
        key="launch_workload",
        on_change=_apply_template,
        help="Templates from the operator's catalog fill in sensible sizes.",
    )
    slots["workload"] = st.empty()
    template = templates[state["launch_workload"]]
    if template.image is None:
        st.text_input(
            "Container image",
            key="launch_image",
            placeholder="ghcr.io/acme/api:2.1",
            help="The OCI image reference to run, e.g. nginx:1.27.",
        )
        slots["image"] = st.empty()
    else:
        st.caption(f"{template.description} · image `{template.image}`")
    c1, c2, c3 = st.columns(3)
    with c1:
        st.number_input("vCPU", min_value=0, step=1, key="launch_vcpu", help=f"At most {options.max_vcpu:,}")
        slots["vcpu"] = st.empty()
    with c2:
        st.number_input("RAM (GB)", min_value=0, step=1, key="launch_ram_gb", help=f"At most {options.max_ram_gb:,} GB")
        slots["ram_gb"] = st.empty()
    with c3:
        st.number_input(
            "Disk (GB)", min_value=0, step=10, key="launch_disk_gb", help=f"At most {options.max_disk_gb:,} GB"
        )
        slots["disk_gb"] = st.empty()
    c1, c2 = st.columns(2)
    with c1:
        st.selectbox("GPU model", options.gpu_models, index=None, key="launch_gpu_model", placeholder="No GPU")
        slots["gpu_model"] = st.empty()
    with c2:
        st.number_input("GPU count", min_value=0, step=1, key="launch_gpu_count")
        slots["gpu_count"] = st.empty()
    c1, c2 = st.columns(2)
    with c1:
        st.selectbox(
            "Region",
            [ANY_REGION, *options.regions],
            format_func=lambda r: "Any region" if r == ANY_REGION else r,
            key="launch_region",
            accept_new_options=True,
            help="Where the nodes must be. Any region lets the scheduler pick the best nodes anywhere.",
        )
        slots["region"] = st.empty()
    with c2:
        st.number_input(
            "Replicas",
            min_value=0,
            value=1,
            step=1,
            key="launch_replicas",
            help=f"Each replica runs on its own node (at most {options.max_replicas}).",
        )
        slots["replicas"] = st.empty()
    st.toggle(
        "Backup VM",
        key="launch_backup",
        help="A standby copy on a different provider than the replicas; priced like one more instance.",
    )
    slots["backup_enabled"] = st.empty()

values = {
    "workload": state["launch_workload"],
    "image": (state.get("launch_image") or None) if template.image is None else None,
    "vcpu": int(state["launch_vcpu"]),
    "ram_gb": int(state["launch_ram_gb"]),
    "disk_gb": int(state["launch_disk_gb"]),
    "gpu_model": state.get("launch_gpu_model"),
    "gpu_count": int(state.get("launch_gpu_count") or 0),
    "region": state.get("launch_region") or ANY_REGION,
    "replicas": int(state["launch_replicas"]),
    "backup_enabled": bool(state.get("launch_backup")),
}
name = (state.get("launch_name") or "").strip()

# --- the live price (same scheduler and arithmetic as the launch itself) ------------------------------
live_errors: dict[str, str] = {}
estimate = None
try:
    estimate = deployments.estimate(uow(), me, values)
except InvalidInput as exc:
    live_errors = dict(exc.errors)

with price_col, st.container(border=True):
    st.subheader("Price")
    if estimate is None:
        st.info("Fix the fields marked in red to see the price.", icon=":material/edit:")
    else:
        cur = estimate.currency
        c1, c2 = st.columns(2)
        c1.metric("Per hour", fmt.money(estimate.price_per_hour_cents, cur))
        c2.metric("Per month", fmt.money(estimate.price_per_month_cents, cur), help="730 hours")
        st.caption(
            f"{estimate.instances} instance(s) · the price includes the platform fee of "
            f"{estimate.platform_fee_bp / 100:g}% (kept to the cent over the hours charged; the provider(s) get "
            f"the rest) · pricing version {estimate.pricing_version}"
        )
        if estimate.placement_error:
            st.warning(
                f"**Nothing fits right now:** {estimate.placement_error} The price shown is the list price.",
                icon=":material/warning:",
            )
        elif estimate.price_per_hour_cents != estimate.list_price_per_hour_cents:
            st.caption(
                f"At the chosen nodes' own prices; list price {fmt.money(estimate.list_price_per_hour_cents, cur)}/h."
            )

    launch_clicked = st.button(
        "Launch deployment", key="launch_go", type="primary", icon=":material/rocket_launch:", width="stretch"
    )
    if st.button("Preview placement", key="launch_preview", icon=":material/travel_explore:", width="stretch"):
        state[PREVIEW_KEY] = not state.get(PREVIEW_KEY, False)

    if launch_clicked:
        state.pop(RESULT_KEY, None)
        try:
            with st.spinner("Placing and launching…"):
                detail = deployments.launch(uow(), me, {**values, "name": name})
        except ServiceError as exc:
            state[SUBMIT_KEY] = {"errors": dict(exc.errors), "values": {**values, "name": name}}
            reasons = " ".join(dict.fromkeys(exc.errors.values())) or exc.message
            st.error(f"**Not launched.** {reasons}", icon=":material/error:")
        else:
            state.pop(SUBMIT_KEY, None)
            state[RESULT_KEY] = detail
            state["launch_clear_name"] = True
            state[PREVIEW_KEY] = False
            st.rerun()

    result = state.get(RESULT_KEY)
    if result is not None:
        placed = ", ".join(
            f"{p.node_name} ({p.region}{', backup' if p.role == 'backup' else ''})" for p in result.placements
        )
        st.success(
            f"**{result.name}** launched ({result.status}) at "
            f"**{fmt.money(result.price_per_hour_cents, result.currency)} per hour**, placed on {placed}.",
            icon=":material/check_circle:",
        )
        st.page_link(
            "pages/user_deployments.py",
            label=f"Open {result.name} in My deployments",
            icon=":material/open_in_new:",
            query_params={"deployment": str(result.id)},
        )

if state.get(PREVIEW_KEY):
    st.subheader("Where it would run")
    if estimate is None:
        st.info("Fix the fields marked in red first.")
    elif estimate.placement_error:
        st.warning(estimate.placement_error, icon=":material/warning:")
    else:
        frame = pd.DataFrame(
            [
                {
                    "Instance": "backup VM" if p.role == "backup" else f"replica {p.slot}",
                    "Node": p.node_name,
                    "Provider": p.provider_name,
                    "Region": p.region,
                    "Price vs list": f"{p.price_factor_pct}%",
                    "Uptime 30 d": p.uptime_pct,
                    "Free vCPU": p.free_vcpu,
                    "Free RAM (GB)": p.free_ram_gb,
                    "Why": p.reason,
                }
                for p in estimate.placement
            ]
        )
        st.dataframe(
            frame,
            hide_index=True,
            column_config={
                "Uptime 30 d": st.column_config.NumberColumn(format="%.1f%%", help="Empty: no metrics yet"),
                "Why": st.column_config.TextColumn(width="large"),
            },
        )
        st.caption("The scheduler re-checks when you launch; if capacity changed meanwhile, the result shows where.")

# --- messages next to their fields: live checks, and the last launch's refusals for unchanged fields -----
submitted = state.get(SUBMIT_KEY) or {}
current = {**values, "name": name}
for field, slot in slots.items():
    message = live_errors.get(field)
    if not message and submitted and submitted["values"].get(field) == current.get(field):
        message = submitted["errors"].get(field)
    if not message and estimate is not None and estimate.placement_error_field == field:
        message = estimate.placement_error
    if message:
        slot.caption(f":red[{message}]")
