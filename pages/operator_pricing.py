"""Pricing: the rates in force, a form for the next version, its effect before saving, and the history.

The form starts from the newest version and remembers which one it was; saving names that
version, so a save after someone else's is refused ("changed by X at T, reload") instead of
overwriting it. "Save" stores exactly what the preview showed.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pandas as pd
import streamlit as st

from dashboard import fmt, tables
from dashboard.forms import attempt, field_error, flash, form_message
from dashboard.identity import require, uow
from dashboard.pager import fetch_page, pager
from services.auth.permissions import Action
from services.db.base import utcnow
from services.pricing import service as pricing

ERRORS = "pr_errors"
FLASH = "pr_flash"
LOADED = "pr_loaded"  # the version number the form was filled from
PREVIEW = "pr_preview"  # (PricingInput, ImpactPreview) of the last preview
PAGE_KEY = "pr_history_page"
PAGE_SIZE = 10
FIELDS = ("pr_currency", "pr_vcpu", "pr_ram", "pr_disk", "pr_fee", "pr_discount", "pr_follow", "pr_when", "pr_note")
STATE_BADGES = {"in force": "🟢 in force", "scheduled": "🟡 scheduled", "superseded": "⚪ superseded"}

me = require(Action.PRICING_EDIT)
state = st.session_state


def _dollars(millicents: int) -> str:
    return fmt.rate(millicents, "USD").lstrip("$").replace(",", "")


def _pct(bp: int) -> str:
    return f"{bp / 100:g}"


def _fill_form(v: pricing.PricingVersionView | None) -> None:
    """Put a version's values in the form (the defaults when there is none yet) and remember its number."""
    rates = pricing.DEFAULT_RATES if v is None else v.__dict__
    state["pr_currency"] = rates["currency"]
    state["pr_vcpu"] = _dollars(rates["vcpu_hour_millicents"])
    state["pr_ram"] = _dollars(rates["ram_gb_hour_millicents"])
    state["pr_disk"] = _dollars(rates["disk_gb_month_millicents"])
    state["pr_fee"] = _pct(rates["platform_fee_bp"])
    state["pr_discount"] = _pct(rates["term_discount_bp"])
    state["pr_follow"] = bool(v.running_follow) if v else False
    state["pr_when"] = "Now"
    state["pr_note"] = ""
    state["pr_gpu_base"] = pd.DataFrame(
        [{"GPU model": m, "Per GPU-hour": _dollars(r)} for m, r in sorted(rates["gpu_hour_millicents"].items())],
        columns=["GPU model", "Per GPU-hour"],
    )
    state[LOADED] = v.version if v else 0
    state.pop(PREVIEW, None)
    state[ERRORS] = {}
    state.pop(ERRORS + ":message", None)


def _reload() -> None:
    _fill_form(pricing.latest_version(uow(), me))


latest = pricing.latest_version(uow(), me)
in_force = pricing.in_force_version(uow(), me)
if LOADED not in state:
    _fill_form(latest)

st.title("Pricing")
flash(FLASH)

# --- what is in force now
if in_force is None:
    st.warning("No pricing is in force yet: deployments cannot be priced until a version takes effect.")
else:
    cur = in_force.currency
    st.caption(
        f"In force: **version {in_force.version}** since {fmt.when(in_force.effective_at, me.timezone)}"
        f" · by {in_force.created_by}" + (f" · “{in_force.note}”" if in_force.note else "")
    )
    c = st.columns(4)
    c[0].metric("vCPU-hour", fmt.rate(in_force.vcpu_hour_millicents, cur), border=True)
    c[1].metric("RAM GB-hour", fmt.rate(in_force.ram_gb_hour_millicents, cur), border=True)
    c[2].metric("Disk GB-month", fmt.rate(in_force.disk_gb_month_millicents, cur), border=True)
    c[3].metric("Platform fee", f"{in_force.platform_fee_bp / 100:g} %", border=True)
    gpus = " · ".join(f"{m} {fmt.rate(r, cur)}" for m, r in sorted(in_force.gpu_hour_millicents.items()))
    follow = "move to new prices" if in_force.running_follow else "keep their launch price"
    st.caption(
        f"GPU-hour: {gpus or 'no GPU models priced'} · term discount {in_force.term_discount_bp / 100:g} % "
        f"· running deployments {follow} when a version takes effect"
    )
if latest is not None and latest.state == "scheduled":
    st.info(
        f"Version {latest.version} is scheduled to take effect {fmt.when(latest.effective_at, me.timezone)}.",
        icon=":material/schedule:",
    )

# --- the next version
loaded = state[LOADED]
st.subheader(f"New version {loaded + 1}")
st.caption(
    f"Starts from version {loaded}" if loaded else "Starts from the default rates",
)
form_message(ERRORS)
conflict = "expected_version" in state.get(ERRORS, {})
stale = latest is not None and latest.version != loaded
if stale and not conflict:
    st.warning(
        f"Version {latest.version} was saved by {latest.created_by} after you opened this form; "
        "saving will be refused until you reload.",
        icon=":material/sync_problem:",
    )
if conflict or stale:
    st.button("Reload the latest prices", icon=":material/refresh:", on_click=_reload, key="pr_reload", type="primary")

unit = (str(state.get("pr_currency") or "USD")).upper()[:3]
with st.form("pricing_form"):
    r1 = st.columns(4)
    with r1[0]:
        st.text_input(
            f"vCPU-hour ({unit})", key="pr_vcpu", help="Price of one vCPU for one hour, in the currency below."
        )
        field_error(ERRORS, "vcpu_hour_millicents")
    with r1[1]:
        st.text_input(f"RAM GB-hour ({unit})", key="pr_ram", help="One GB of RAM for one hour.")
        field_error(ERRORS, "ram_gb_hour_millicents")
    with r1[2]:
        st.text_input(f"Disk GB-month ({unit})", key="pr_disk", help="One GB of disk for a month (730 hours).")
        field_error(ERRORS, "disk_gb_month_millicents")
    with r1[3]:
        st.text_input("Currency", key="pr_currency", max_chars=3, help="ISO 4217 code, e.g. USD.")
        field_error(ERRORS, "currency")
    r2 = st.columns([2, 1, 1])
    with r2[0]:
        gpu_frame = st.data_editor(
            state["pr_gpu_base"],
            key=f"pr_gpus_{loaded}",
            num_rows="dynamic",
            hide_index=True,
            width="stretch",
            column_config={
                "GPU model": st.column_config.TextColumn("GPU model", required=True, max_chars=32),
                "Per GPU-hour": st.column_config.TextColumn("Per GPU-hour", required=True, help="e.g. 1.10"),
            },
        )
        field_error(ERRORS, "gpu_hour_millicents")
    with r2[1]:
        st.text_input("Platform fee %", key="pr_fee", help="The platform's share of every charge, 0 to 50 %.")
        field_error(ERRORS, "platform_fee_bp")
        st.text_input("Term discount %", key="pr_discount", help="Discount for a monthly commitment, 0 to 50 %.")
        field_error(ERRORS, "term_discount_bp")
    with r2[2]:
        st.radio("Takes effect", ["Now", "Later"], key="pr_when", horizontal=True)
        tomorrow = (utcnow() + timedelta(days=1)).astimezone(fmt.zone(me.timezone))
        st.date_input("Date", key="pr_date", value=tomorrow.date(), help=f"In {me.timezone}; used when 'Later'.")
        st.time_input("Time", key="pr_time", value=time(0, 0), step=timedelta(minutes=15))
        field_error(ERRORS, "effective_at")
    st.checkbox(
        "Running deployments move to the new prices when this version takes effect",
        key="pr_follow",
        help="Off: running deployments keep the price they launched with; only new launches pay the new rates.",
    )
    st.text_input("Note (shown in the history)", key="pr_note", max_chars=500, placeholder="Why the change")
    field_error(ERRORS, "note")
    previewed = st.form_submit_button("Preview the effect", type="primary", icon=":material/query_stats:")


def _form_input() -> pricing.PricingInput:
    effective = None
    if state["pr_when"] == "Later":
        effective = datetime.combine(state["pr_date"], state["pr_time"], tzinfo=fmt.zone(me.timezone))
    gpu_rows = gpu_frame.to_dict("records")
    return pricing.input_from_form(
        currency=state["pr_currency"],
        vcpu_hour=state["pr_vcpu"],
        ram_gb_hour=state["pr_ram"],
        disk_gb_month=state["pr_disk"],
        gpu_hour={
            str(r.get("GPU model") or "").strip(): r.get("Per GPU-hour")
            for r in gpu_rows
            if str(r.get("GPU model") or "").strip() or str(r.get("Per GPU-hour") or "").strip()
        },
        platform_fee_pct=state["pr_fee"],
        term_discount_pct=state["pr_discount"],
        running_follow=state["pr_follow"],
        effective_at=effective,
        note=state["pr_note"],
    )


if previewed:
    state.pop(PREVIEW, None)

    def _preview():
        data = _form_input()
        return data, pricing.preview_impact(uow(), me, data)

    with st.spinner("Pricing the running deployments…"):
        result = attempt(_preview, errors_key=ERRORS)
    if result is not None:
        state[PREVIEW] = result
    st.rerun()

# --- the preview, and saving exactly what it shows
if PREVIEW in state:
    data, impact = state[PREVIEW]
    cur = data.currency
    with st.container(border=True):
        when = "now" if data.effective_at is None else fmt.when(data.effective_at, me.timezone)
        st.subheader(f"Effect of version {loaded + 1} (takes effect {when})")
        m = st.columns(4)
        m[0].metric("Running deployments", f"{impact.running:,}")
        m[1].metric("Change price", f"{impact.affected:,}", help="Running deployments whose monthly cost changes.")
        m[2].metric(
            "Their monthly cost",
            fmt.money(impact.after_month_cents, cur),
            delta=fmt.money(impact.change_month_cents, cur) if impact.change_month_cents else None,
            delta_color="off",
            help=f"Now {fmt.money(impact.before_month_cents, cur)} per month (730 h).",
        )
        fee_change = impact.fees_after_month_cents - impact.fees_before_month_cents
        m[3].metric(
            "Platform fees per month",
            fmt.money(impact.fees_after_month_cents, cur),
            delta=fmt.money(fee_change, cur) if fee_change else None,
            help=f"Now {fmt.money(impact.fees_before_month_cents, cur)}.",
        )
        (st.warning if data.running_follow else st.info)(impact.explanation, icon=":material/info:")
        if impact.by_workload:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "Workload": w.workload,
                            "Running": w.deployments,
                            "Now / month": w.before_month_cents / 100,
                            "At new rates / month": w.at_new_rates_month_cents / 100,
                            "After / month": w.after_month_cents / 100,
                            "Change / month": (w.after_month_cents - w.before_month_cents) / 100,
                        }
                        for w in impact.by_workload
                    ]
                ),
                hide_index=True,
                width="stretch",
                column_config={
                    "Running": st.column_config.NumberColumn("Running", format="%d"),
                    "Now / month": tables.money_column("Now / month"),
                    "At new rates / month": tables.money_column("At new rates / month"),
                    "After / month": tables.money_column("After / month"),
                    "Change / month": tables.money_column("Change / month"),
                },
                key="pr_impact_table",
            )
        st.caption("List price per month of each catalog workload for a new launch (one instance, list rates):")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "Workload": c.name,
                        "Now": None if c.before_month_cents is None else c.before_month_cents / 100,
                        "New": c.after_month_cents / 100,
                        "Change": None
                        if c.before_month_cents is None
                        else (c.after_month_cents - c.before_month_cents) / 100,
                    }
                    for c in impact.catalog
                ]
            ),
            hide_index=True,
            width="stretch",
            column_config={
                "Now": tables.money_column("Now"),
                "New": tables.money_column("New"),
                "Change": tables.money_column("Change"),
            },
            key="pr_catalog_table",
        )
        s1, s2 = st.columns([1, 4])
        save = s1.button(f"Save as version {loaded + 1}", type="primary", icon=":material/save:", key="pr_save")
        s2.caption("Saves exactly the values previewed here. Changed the form since? Preview again first.")
    if save:

        def _save():
            return pricing.save_version(uow(), me, data, expected_version=loaded)

        saved = attempt(_save, errors_key=ERRORS)
        if saved is not None:
            effect = (
                "in force now"
                if saved.state == "in force"
                else f"scheduled for {fmt.when(saved.effective_at, me.timezone)}"
            )
            state.pop(LOADED, None)  # the next run fills the form from the new latest version
            state[FLASH] = f"Version {saved.version} saved, {effect}."
        else:
            state.pop(PREVIEW, None)
        st.rerun()

# --- history
st.subheader("History")


def _fetch(limit: int, offset: int):
    return pricing.list_versions(uow(), me, limit=limit, offset=offset)


rows, total = fetch_page(PAGE_KEY, PAGE_SIZE, _fetch, lambda r: r[1])
if rows:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Version": v.version,
                    "State": STATE_BADGES.get(v.state, v.state),
                    "Effective": fmt.local(v.effective_at, me.timezone),
                    "vCPU-hour": fmt.rate(v.vcpu_hour_millicents, v.currency),
                    "RAM GB-hour": fmt.rate(v.ram_gb_hour_millicents, v.currency),
                    "Disk GB-month": fmt.rate(v.disk_gb_month_millicents, v.currency),
                    "GPU-hour": ", ".join(
                        f"{m} {fmt.rate(r, v.currency)}" for m, r in sorted(v.gpu_hour_millicents.items())
                    ),
                    "Fee": f"{v.platform_fee_bp / 100:g} %",
                    "Running follow": v.running_follow,
                    "By": v.created_by,
                    "Saved": fmt.local(v.created_at, me.timezone),
                    "Note": v.note,
                }
                for v in rows
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "Version": st.column_config.NumberColumn("Version", format="%d"),
            "Effective": tables.time_column("Effective"),
            "Saved": tables.time_column("Saved"),
            "Running follow": st.column_config.CheckboxColumn("Running follow"),
        },
        key="pr_history",
    )
pager(PAGE_KEY, total, page_size=PAGE_SIZE, label="versions")
st.caption(f"Times in {me.timezone}.")
