"""Billing: your credits (live), saved cards (add with Stripe Elements, default, remove) and top-ups (3-D Secure)."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from dashboard import fmt, stripe_card, tables
from dashboard.billing import KIND_LABELS, parse_dollars
from dashboard.forms import attempt, field_error, form_message, refuse, run_action
from dashboard.identity import require, uow
from services.auth.permissions import Action
from services.payments import history
from services.payments import service as payments

NOTICE = "billing_notice"  # (level, text) shown once at the top of the next run
ACTION = "billing_action"  # {"payment_id", "client_secret"} while the bank asks for 3-D Secure
SETUP = "billing_setup"  # the SetupIntent the card form confirms (one per session until used)
CARD_ERROR = "billing_card_error"
TOPUP_ERRORS = "billing_topup_errors"
CARD_ERRORS = "billing_cards_errors"
LAST_SUBMIT = "billing_last_submit"

me = require(Action.BILLING_MANAGE_OWN)
state = st.session_state

st.title("Billing")


@st.fragment(run_every="4s")
def credits() -> None:
    summary = payments.summary(uow(), me)
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    c1.metric("Credits", fmt.money(summary.balance_cents), help="Spent hour by hour by your running deployments")
    if summary.balance_cents < summary.low_balance_threshold_cents:
        c2.warning(
            f"Your credits are below {fmt.money(summary.low_balance_threshold_cents)}. A running deployment whose "
            "next hour your credits cannot cover is stopped.",
            icon=":material/warning:",
        )
    rows, _ = history.list_own_payments(uow(), me, limit=5)
    if rows:
        frame = pd.DataFrame(
            [
                {
                    "When": fmt.local(r.created_at, me.timezone),
                    "What": KIND_LABELS.get(r.kind, r.kind),
                    "Amount": r.amount_cents / 100,
                    "Status": tables.badge(r.status),
                    "Note": r.failure_message or "",
                }
                for r in rows
            ]
        )
        st.caption("Latest payments (updates by itself: credits land when Stripe confirms a payment)")
        st.dataframe(
            frame,
            hide_index=True,
            width="stretch",
            column_config={
                "When": tables.time_column("When"),
                "Amount": tables.money_column("Amount"),
                "Status": tables.status_column(),
            },
        )
    st.page_link("pages/billing_history.py", label="All transactions and receipts", icon=":material/receipt_long:")


def show_notice() -> None:
    notice = state.pop(NOTICE, None)
    if notice:
        level, text = notice
        (st.success if level == "success" else st.error)(text, icon=":material/info:")


credits()
summary = payments.summary(uow(), me)
if not summary.cards_enabled:
    st.info(
        "**Card payments are not configured on this marketplace**, so saved cards and top-ups are not available. "
        "Your credits and your history still show here. (Operators: set `STRIPE_SECRET_KEY` and "
        "`STRIPE_PUBLISHABLE_KEY`.)",
        icon=":material/credit_card_off:",
    )
    st.stop()

config = payments.public_config()
show_notice()


# --- a payment waiting for the person's confirmation (3-D Secure) ---------------------------------------
def _action_done(payment_id: int, _report: dict) -> None:
    # the browser's report is a hint: the service reads the PaymentIntent from Stripe
    result = attempt(lambda: payments.complete_topup(uow(), me, payment_id), errors_key="billing_action_errors")
    if result is None:
        state[NOTICE] = ("error", state.get("billing_action_errors:message") or "The payment could not be checked.")
    else:
        state[NOTICE] = ("success" if result.status in ("processing", "succeeded") else "error", result.message)
    if result is None or result.status != "requires_action":
        state.pop(ACTION, None)


def _action_cancel(payment_id: int) -> None:
    result = attempt(lambda: payments.cancel_topup(uow(), me, payment_id), errors_key="billing_action_errors")
    state[NOTICE] = ("error", result.message if result else state.get("billing_action_errors:message", ""))
    state.pop(ACTION, None)


pending = state.get(ACTION)
if pending:
    with st.container(border=True):
        st.subheader("Confirm your payment")
        st.write(f"Your bank asks you to confirm the payment of **{fmt.money(pending['amount_cents'])}**.")
        pid = pending["payment_id"]
        stripe_card.card_action(
            key=f"billing_action_{pid}",
            publishable_key=config.publishable_key,
            js_url=config.js_url,
            client_secret=pending["client_secret"],
            on_result=lambda report, pid=pid: _action_done(pid, report),
        )
        st.button("Cancel this payment", key=f"billing_action_cancel_{pid}", on_click=_action_cancel, args=(pid,))

# --- saved cards ---------------------------------------------------------------------------------------
st.subheader("Cards")
cards = run_action(lambda: payments.list_cards(uow(), me)) or []
labels = {c.id: c.label for c in cards}
if cards:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Card": f"{c.brand.title()} •••• {c.last4}",
                    "Expires": f"{c.exp_month:02d}/{c.exp_year}",
                    "Default": c.is_default,
                }
                for c in cards
            ]
        ),
        hide_index=True,
        column_config={"Default": st.column_config.CheckboxColumn("Default")},
    )

    def _make_default() -> None:
        chosen = state.get("billing_card_choice")
        attempt(lambda: payments.set_default_card(uow(), me, {"payment_method_id": chosen}), errors_key=CARD_ERRORS)
        if not state.get(CARD_ERRORS + ":message"):
            state[NOTICE] = ("success", f"{labels.get(chosen, 'The card')} is now your default card.")

    def _remove() -> None:
        chosen = state.get("billing_card_choice")
        attempt(lambda: payments.remove_card(uow(), me, {"payment_method_id": chosen}), errors_key=CARD_ERRORS)
        if not state.get(CARD_ERRORS + ":message"):
            state[NOTICE] = ("success", f"Removed {labels.get(chosen, 'the card')}.")
        state["billing_confirm_remove"] = False

    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    choice = c1.selectbox("Card", list(labels), format_func=labels.get, key="billing_card_choice")
    c2.button("Make default", on_click=_make_default, disabled=next(c for c in cards if c.id == choice).is_default)
    confirm = c3.checkbox("Really remove", key="billing_confirm_remove")
    c3.button("Remove card", on_click=_remove, disabled=not confirm)
    form_message(CARD_ERRORS)
else:
    st.caption("No saved cards yet: add one below.")


def _card_reported(report: dict) -> None:
    state.pop(SETUP, None)  # a SetupIntent is used once (succeeded or cancelled): the next card gets a fresh one
    if report.get("error"):
        state[CARD_ERROR] = report["error"]
        return
    card = attempt(
        lambda: payments.finish_card_setup(uow(), me, {"setup_intent_id": report.get("setupIntentId")}),
        errors_key="billing_setup_errors",
    )
    if card is None:
        state[CARD_ERROR] = state.get("billing_setup_errors:message") or "The card was not saved."
    else:
        state.pop(CARD_ERROR, None)
        state[NOTICE] = ("success", f"Card saved: {card.label}.")


with st.expander("Add a card", expanded=not cards, icon=":material/add_card:"):
    if SETUP not in state:
        setup = run_action(lambda: payments.start_card_setup(uow(), me))
        if setup is not None:
            state[SETUP] = {"id": setup.id, "client_secret": setup.client_secret}
    if SETUP in state:
        st.caption("Your card details go straight to Stripe; the marketplace never sees the number.")
        stripe_card.card_form(
            key="billing_add_card",
            publishable_key=config.publishable_key,
            js_url=config.js_url,
            client_secret=state[SETUP]["client_secret"],
            on_result=_card_reported,
        )
    if state.get(CARD_ERROR):
        st.error(state[CARD_ERROR], icon=":material/error:")

# --- top up --------------------------------------------------------------------------------------------
st.subheader("Top up")


def _pay() -> None:
    text, card_id = state.get("billing_topup_amount", ""), state.get("billing_topup_card")
    state[TOPUP_ERRORS] = {}
    state.pop(TOPUP_ERRORS + ":message", None)
    try:
        cents = parse_dollars(text)
    except ValueError as exc:
        refuse(TOPUP_ERRORS, "amount_cents", str(exc))
        return
    last = state.get(LAST_SUBMIT)
    if last and last[0] == (cents, card_id) and time.monotonic() - last[1] < 5:
        return  # the same payment submitted twice in a row (a double click): once is enough
    state[LAST_SUBMIT] = ((cents, card_id), time.monotonic())
    result = attempt(
        lambda: payments.create_topup(uow(), me, {"amount_cents": cents, "payment_method_id": card_id}),
        errors_key=TOPUP_ERRORS,
    )
    if result is None:
        return
    if result.status == "requires_action":
        state[ACTION] = {"payment_id": result.payment_id, "client_secret": result.client_secret, "amount_cents": cents}
    else:
        state[NOTICE] = ("success" if result.status in ("processing", "succeeded") else "error", result.message)


if not cards:
    st.caption("Add a card first.")
else:
    default_index = next((i for i, c in enumerate(cards) if c.is_default), 0)
    with st.form("billing_topup", enter_to_submit=False):
        st.text_input(
            "Amount (USD)",
            key="billing_topup_amount",
            placeholder="25.00",
            help=f"Between {fmt.money(summary.topup_min_cents)} and {fmt.money(summary.topup_max_cents)}",
        )
        field_error(TOPUP_ERRORS, "amount_cents")
        st.selectbox("Card", list(labels), index=default_index, format_func=labels.get, key="billing_topup_card")
        field_error(TOPUP_ERRORS, "card")
        st.form_submit_button("Pay", type="primary", on_click=_pay)
    form_message(TOPUP_ERRORS)
    st.caption(
        f"Top-ups between {fmt.money(summary.topup_min_cents)} and {fmt.money(summary.topup_max_cents)}. "
        "Credits are added when Stripe confirms the payment, usually within seconds."
    )
