"""Profile & settings: the name others see, the timezone every time is shown in, a default region, email on/off."""

from datetime import UTC, datetime

import streamlit as st

from dashboard.fmt import when
from dashboard.forms import field_error
from dashboard.identity import require, uow
from services.auth.permissions import Action
from services.errors import ServiceError
from services.settings import service as settings_service
from services.users import service as users

me = require(Action.PROFILE_EDIT)
profile = users.get_profile(uow(), me)
regions = settings_service.get(uow()).allowed_regions

st.title("Profile & settings")
flash = st.session_state.pop("profile_saved", None)
if flash:
    st.success(flash, icon=":material/check_circle:")

with st.container(border=True):
    st.markdown("**Your account** (from sign-in; change these at your identity provider)")
    c1, c2 = st.columns(2)
    c1.text_input(
        "Email",
        value=(profile.email or "—") + ("" if profile.email_verified or not profile.email else " (not verified)"),
        disabled=True,
        key=f"profile_{me.user_id}_email",
    )
    c2.text_input(
        "Roles",
        value=", ".join(sorted(r.value for r in me.roles)),
        disabled=True,
        key=f"profile_{me.user_id}_roles",
        help="cloud-user for everyone; provider and operator roles come from sign-in or are granted by an operator.",
    )

ERRORS = "profile_errors"
key = f"profile_{me.user_id}"  # per person, so the demo picker never shows someone else's typing
region_options = [None, *regions]
if profile.default_region and profile.default_region not in regions:
    region_options.append(profile.default_region)  # no longer offered, but still theirs until they change it
zones = users.timezones()


def save() -> None:
    """Runs before the page is drawn, so field messages appear under their fields and the new timezone
    applies to this very run. Nothing is written when the service refuses (one transaction)."""
    changes = {
        "display_name": st.session_state[f"{key}_name"],
        "timezone": st.session_state[f"{key}_tz"],
        "default_region": st.session_state[f"{key}_region"],
        "notification_prefs": {kind: st.session_state[f"{key}_notify_{kind}"] for kind in users.NOTIFICATION_KINDS},
    }
    try:
        saved = users.update_profile(uow(), me, changes)
    except ServiceError as exc:
        st.session_state[ERRORS] = dict(exc.errors)
        st.session_state["profile_failed"] = exc.message
        return
    st.session_state[ERRORS] = {}
    st.session_state["profile_saved"] = f"Saved. Times are now shown in {saved.timezone}."


failed = st.session_state.pop("profile_failed", None)
with st.form(f"{key}_form"):
    st.text_input("Display name", value=profile.display_name, max_chars=120, key=f"{key}_name")
    field_error(ERRORS, "display_name")
    st.selectbox(
        "Timezone",
        options=zones,
        index=zones.index(profile.timezone) if profile.timezone in zones else zones.index("UTC"),
        key=f"{key}_tz",
        help="Every time in the app is shown in this timezone.",
    )
    field_error(ERRORS, "timezone")
    st.selectbox(
        "Default region",
        options=region_options,
        index=region_options.index(profile.default_region),
        format_func=lambda r: "No preference" if r is None else r,
        key=f"{key}_region",
        help="Preselected when you launch a deployment.",
    )
    field_error(ERRORS, "default_region")
    st.markdown("**Email me when**")
    for kind, label in users.NOTIFICATION_KINDS.items():
        st.toggle(label, value=profile.notification_prefs[kind], key=f"{key}_notify_{kind}")
    field_error(ERRORS, "notification_prefs")
    if failed:
        st.error(failed, icon=":material/error:")
    st.form_submit_button("Save", type="primary", on_click=save)

st.caption(f"Now: {when(datetime.now(UTC), me.timezone)} · times across the app are shown in {me.timezone}.")
