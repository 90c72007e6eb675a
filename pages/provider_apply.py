"""Become a provider: an application form for a signed-in person who is not a provider yet."""

from __future__ import annotations

import streamlit as st

from dashboard import fmt, tables
from dashboard.forms import attempt, field_error, form_message
from dashboard.identity import require, uow
from services.auth.permissions import Action
from services.providers import service as providers
from services.settings import service as settings_service

ERRORS = "apply_errors"

me = require(Action.PROVIDER_APPLY)
st.title("Become a provider")

provider = providers.provider_for(uow(), me)
if provider is not None:
    st.success(
        f"You are already a provider: **{provider.company}** (since {fmt.when(provider.created_at, me.timezone, '%Y-%m-%d')}). "
        "Manage your machines under **Nodes** and plan downtime under **Maintenance**.",
        icon=":material/verified:",
    )
    st.stop()

st.write(
    "Offer your machines on the marketplace: users launch deployments on your nodes and you are paid for the "
    "hours they run. Tell us about your company; an operator reviews every application."
)

applications = providers.my_applications(uow(), me)
pending = next((a for a in applications if a.status == "pending"), None)
flash = st.session_state.pop("apply_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

if applications:
    st.subheader("Your applications")
    for a in applications:
        with st.container(border=True):
            st.markdown(f"**{a.company}** · {tables.badge(a.status)} · submitted {fmt.when(a.created_at, me.timezone)}")
            st.caption(
                f"Contact: {a.contact_name}, {a.contact_email} · regions {', '.join(a.regions)} · "
                f"capacity: {a.expected_capacity} · {a.website or ''}"
            )
            if a.status == "pending":
                st.info("An operator will review this application. You will get a notification when they decide.")
            elif a.status == "rejected":
                note = f" The operator wrote: “{a.review_note}”" if a.review_note else ""
                st.warning(
                    f"Not approved ({fmt.when(a.reviewed_at, me.timezone, '%Y-%m-%d')}).{note} "
                    "You may apply again below."
                )
            elif a.status == "approved":
                st.success("Approved. Reload the app to see your provider pages.")

if pending is not None:
    st.stop()

settings = settings_service.get(uow())
if not settings.provider_applications_open:
    st.info("Provider applications are closed at the moment. Please come back later.", icon=":material/schedule:")
    st.stop()

st.subheader("Apply")
form_message(ERRORS)
with st.form("provider_application"):
    c1, c2 = st.columns(2)
    with c1:
        company = st.text_input("Company", key="apply_company", max_chars=200)
        field_error(ERRORS, "company")
        contact_name = st.text_input("Contact name", key="apply_contact_name", value=me.name, max_chars=200)
        field_error(ERRORS, "contact_name")
        contact_email = st.text_input("Contact email", key="apply_contact_email", value=me.email or "", max_chars=320)
        field_error(ERRORS, "contact_email")
    with c2:
        regions = st.multiselect(
            "Regions you will offer nodes in",
            settings.allowed_regions,
            key="apply_regions",
            placeholder="Choose one or more regions",
        )
        field_error(ERRORS, "regions")
        website = st.text_input("Website", key="apply_website", placeholder="https://", max_chars=500)
        field_error(ERRORS, "website")
    capacity = st.text_area(
        "Expected capacity",
        key="apply_capacity",
        placeholder="e.g. 20 nodes of 64 vCPU / 256 GB, 8 of them with 4× A100",
        max_chars=2000,
    )
    field_error(ERRORS, "expected_capacity")
    submitted = st.form_submit_button("Submit application", type="primary", icon=":material/send:")

if submitted:
    data = dict(
        company=company,
        contact_name=contact_name,
        contact_email=contact_email,
        regions=regions,
        expected_capacity=capacity,
        website=website,
    )
    with st.spinner("Submitting…"):
        result = attempt(lambda: providers.submit_application(uow(), me, data), errors_key=ERRORS)
    if result is not None:
        st.session_state["apply_flash"] = f"Application for {result.company} submitted. An operator will review it."
    st.rerun()  # messages (if any) show next to their fields on the next run
