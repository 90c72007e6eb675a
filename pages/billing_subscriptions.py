"""Subscriptions: commit a running deployment for a month at the term discount, see the state, cancel at period end."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import fmt, tables
from dashboard.forms import attempt, field_error, form_message
from dashboard.identity import require, uow
from services.auth.permissions import Action
from services.payments import service as payments

ERRORS = "subs_errors"
NOTICE = "subs_notice"

me = require(Action.BILLING_MANAGE_OWN)
state = st.session_state

st.title("Subscriptions")
st.caption(
    "Commit a running deployment for a month and pay less: each paid invoice pays that deployment's month, "
    "and metering does not charge it from your credits while it is paid. Cancelling stops the renewal; the paid "
    "month stays paid."
)
notice = state.pop(NOTICE, None)
if notice:
    st.success(notice, icon=":material/check_circle:")


@st.fragment(run_every="5s")
def subscription_table() -> None:
    subs = payments.list_subscriptions(uow(), me)
    if not subs:
        st.info("You have no subscriptions yet.", icon=":material/info:")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Deployment": s.deployment_name or "—",
                    "Per month": s.monthly_cents / 100,
                    "Status": tables.badge(s.status),
                    "Renews": "no (cancelled at period end)" if s.cancel_at_period_end else "monthly",
                    "Paid through": fmt.local(s.paid_through, me.timezone),
                    "Since": fmt.local(s.created_at, me.timezone),
                }
                for s in subs
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "Per month": tables.money_column("Per month"),
            "Status": tables.status_column(),
            "Paid through": tables.time_column("Paid through"),
            "Since": tables.time_column("Since"),
        },
    )


subscription_table()

if not payments.cards_enabled():
    st.info(
        "**Card payments are not configured on this marketplace**, so new subscriptions cannot be paid.",
        icon=":material/credit_card_off:",
    )
    st.stop()

subs = payments.list_subscriptions(uow(), me)
cancellable = {s.id: s for s in subs if s.status in payments.LIVE_SUBSCRIPTION_STATUSES and not s.cancel_at_period_end}
if cancellable:
    st.subheader("Cancel at the end of the paid month")

    def _cancel() -> None:
        chosen = state.get("subs_cancel_choice")
        result = attempt(lambda: payments.cancel_subscription(uow(), me, chosen), errors_key=ERRORS + "_cancel")
        if result is not None:
            state[NOTICE] = f"{result.deployment_name}: the subscription ends at the end of the paid month."

    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.selectbox(
        "Subscription",
        list(cancellable),
        format_func=lambda i: f"{cancellable[i].deployment_name} · {fmt.money(cancellable[i].monthly_cents)}/month",
        key="subs_cancel_choice",
    )
    c2.button("Cancel renewal", on_click=_cancel)
    form_message(ERRORS + "_cancel")

st.subheader("Commit a deployment")
offers = {o.deployment_id: o for o in payments.subscription_offers(uow(), me)}
if not offers:
    st.caption("None of your running deployments can be committed right now (each can have one subscription).")
    st.stop()


def _subscribe() -> None:
    chosen = state.get("subs_offer_choice")
    result = attempt(lambda: payments.subscribe(uow(), me, {"deployment_id": chosen}), errors_key=ERRORS)
    if result is not None:
        state[NOTICE] = (
            f"Subscribed: {result.deployment_name} for {fmt.money(result.monthly_cents)} a month. The month is "
            "marked paid as soon as Stripe confirms the invoice."
        )


chosen = st.selectbox(
    "Deployment",
    list(offers),
    format_func=lambda i: f"{offers[i].deployment_name} ({fmt.money(offers[i].price_per_hour_cents)}/h)",
    key="subs_offer_choice",
)
field_error(ERRORS, "deployment_id")
offer = offers[chosen]
st.write(
    f"List price {fmt.money(offer.list_monthly_cents)} a month (730 h); with the "
    f"{offer.term_discount_bp / 100:g} % term discount you pay **{fmt.money(offer.monthly_cents)} a month**, "
    "charged to your default card."
)
field_error(ERRORS, "card")
st.button("Subscribe", type="primary", on_click=_subscribe)
form_message(ERRORS)
