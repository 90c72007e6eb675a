"""Settings: every marketplace setting in one form, validated on save, each change audited.

The form remembers the version of each setting it was filled from; saving over a colleague's newer
change is refused with "changed by X at T" and a reload button, never a silent overwrite.
"""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard import fmt, tables
from dashboard.forms import attempt, field_error, flash, form_message
from dashboard.identity import require, uow
from services.auth.permissions import Action
from services.settings import service as settings_service

ERRORS = "st_errors"
FLASH = "st_flash"
LOADED = "st_loaded"  # setting key -> version the form was filled from
GENERATION = "st_generation"  # bumps on reload so the catalog editor starts fresh
CATALOG_COLUMNS = {
    "key": "Key",
    "name": "Name",
    "description": "Description",
    "image": "Image",
    "vcpu": "vCPU",
    "ram_gb": "RAM GB",
    "disk_gb": "Disk GB",
    "gpu_model": "GPU model",
    "gpu_count": "GPUs",
}
INT_FIELDS = (
    "min_maintenance_notice_hours",
    "max_maintenance_hours",
    "max_replicas",
    "max_vcpu_per_deployment",
    "max_ram_gb_per_deployment",
    "max_disk_gb_per_deployment",
)

me = require(Action.SETTINGS_EDIT)
state = st.session_state


def _amount(cents: int) -> str:
    return f"{cents / 100:.2f}"


def _fill_form() -> None:
    """Fill the form from the stored settings and remember each one's version."""
    current = settings_service.get(uow())
    states = settings_service.states(uow(), me)
    state["st_marketplace_name"] = current.marketplace_name
    state["st_provider_applications_open"] = current.provider_applications_open
    state["st_allowed_regions"] = "\n".join(current.allowed_regions)
    for key in INT_FIELDS:
        state[f"st_{key}"] = int(getattr(current, key))
    for key in settings_service.MONEY_FIELDS:
        state[f"st_{key}"] = _amount(getattr(current, key))
    state["st_catalog_base"] = pd.DataFrame(
        [t.model_dump() for t in current.workload_catalog], columns=list(CATALOG_COLUMNS)
    )
    state[LOADED] = {k: s.version for k, s in states.items()}
    state[GENERATION] = state.get(GENERATION, 0) + 1
    state[ERRORS] = {}
    state.pop(ERRORS + ":message", None)


if LOADED not in state:
    _fill_form()

st.title("Settings")
flash(FLASH)
form_message(ERRORS)
errors = state.get(ERRORS, {})
if any(k in errors for k in settings_service.FIELDS) and "changed by" in state.get(ERRORS + ":message", ""):
    st.button("Reload the saved settings", icon=":material/refresh:", on_click=_fill_form, type="primary")


def _int_input(label: str, key: str, help: str | None = None) -> None:
    st.number_input(label, key=f"st_{key}", step=1, help=help)
    field_error(ERRORS, key)


with st.form("settings_form"):
    st.subheader("Marketplace")
    a, b = st.columns([2, 1], vertical_alignment="center")
    with a:
        st.text_input("Marketplace name", key="st_marketplace_name", max_chars=80)
        field_error(ERRORS, "marketplace_name")
    with b:
        st.toggle("Provider applications open", key="st_provider_applications_open")
        field_error(ERRORS, "provider_applications_open")
    st.text_area(
        "Allowed regions",
        key="st_allowed_regions",
        height=180,
        help="One per line (or comma separated): letters, digits and dashes. Nodes and deployments use these.",
    )
    field_error(ERRORS, "allowed_regions")

    st.subheader("Maintenance")
    a, b = st.columns(2)
    with a:
        _int_input("Minimum notice (hours)", "min_maintenance_notice_hours", "How far ahead providers must announce.")
    with b:
        _int_input("Maximum length (hours)", "max_maintenance_hours", "Longest maintenance window allowed.")

    st.subheader("Balances and top-ups")
    a, b, c = st.columns(3)
    with a:
        st.text_input(
            "Low-balance threshold (USD)", key="st_low_balance_threshold_cents", help="Warn users below this."
        )
        field_error(ERRORS, "low_balance_threshold_cents")
    with b:
        st.text_input("Minimum top-up (USD)", key="st_topup_min_cents")
        field_error(ERRORS, "topup_min_cents")
    with c:
        st.text_input("Maximum top-up (USD)", key="st_topup_max_cents")
        field_error(ERRORS, "topup_max_cents")

    st.subheader("Deployment limits")
    a, b, c, d = st.columns(4)
    with a:
        _int_input("Max replicas", "max_replicas")
    with b:
        _int_input("Max vCPU", "max_vcpu_per_deployment")
    with c:
        _int_input("Max RAM (GB)", "max_ram_gb_per_deployment")
    with d:
        _int_input("Max disk (GB)", "max_disk_gb_per_deployment")

    st.subheader("Workload catalog")
    st.caption("What users launch from. Add, edit or delete rows; an empty image means the user names one.")
    catalog = st.data_editor(
        state["st_catalog_base"],
        key=f"st_catalog_{state[GENERATION]}",
        num_rows="dynamic",
        hide_index=True,
        width="stretch",
        column_config={
            "key": st.column_config.TextColumn("Key", required=True, max_chars=41),
            "name": st.column_config.TextColumn("Name", required=True, max_chars=80),
            "description": st.column_config.TextColumn("Description", width="medium", max_chars=300),
            "image": st.column_config.TextColumn("Image", max_chars=300),
            "vcpu": st.column_config.NumberColumn("vCPU", step=1, format="%d"),
            "ram_gb": st.column_config.NumberColumn("RAM GB", step=1, format="%d"),
            "disk_gb": st.column_config.NumberColumn("Disk GB", step=1, format="%d"),
            "gpu_model": st.column_config.TextColumn("GPU model", max_chars=64),
            "gpu_count": st.column_config.NumberColumn("GPUs", step=1, format="%d"),
        },
    )
    field_error(ERRORS, "workload_catalog")
    saved = st.form_submit_button("Save settings", type="primary", icon=":material/save:")


def _cell(value):
    """A data-editor cell as the service expects it: blanks are None, whole floats are ints."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if hasattr(value, "item"):  # numpy scalars
        return _cell(value.item())
    return value


if saved:
    form = {
        "marketplace_name": state["st_marketplace_name"],
        "provider_applications_open": bool(state["st_provider_applications_open"]),
        "allowed_regions": state["st_allowed_regions"],
        **{key: state[f"st_{key}"] for key in INT_FIELDS},
        **{key: state[f"st_{key}"] for key in settings_service.MONEY_FIELDS},
        "workload_catalog": [
            {k: _cell(v) for k, v in row.items()}
            for row in catalog.to_dict("records")
            if any(_cell(v) not in (None, "") for v in row.values())
        ],
    }
    result = attempt(
        lambda: settings_service.update_from_form(uow(), me, form, expected_versions=state[LOADED]),
        errors_key=ERRORS,
        flash_key=FLASH,
        success="Settings saved. Each change is in the audit log.",
    )
    if result is not None:
        state.pop(LOADED, None)  # the next run refills the form from what is stored now
    st.rerun()

# --- who changed what last
st.subheader("Last changes")
states = settings_service.states(uow(), me)
changed = sorted((s for s in states.values() if s.version), key=lambda s: s.updated_at, reverse=True)
if changed:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Setting": settings_service.LABELS.get(s.key, s.key),
                    "Version": s.version,
                    "Changed by": s.updated_by,
                    "Changed": fmt.local(s.updated_at, me.timezone),
                }
                for s in changed
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={"Changed": tables.time_column("Changed")},
        key="st_last_changes",
    )
else:
    st.caption("Every setting still has its default value.")
st.page_link("pages/operator_audit.py", label="Old and new values in the audit log", icon=":material/history:")
