"""Payments (operators): every payment, refunds through Stripe, and manual credit adjustments with a reason."""

from __future__ import annotations

import uuid

import pandas as pd
import streamlit as st

from dashboard import fmt, tables
from dashboard.billing import KIND_LABELS, parse_dollars
from dashboard.forms import attempt, field_error, form_message, refuse
from dashboard.identity import require, uow
from dashboard.pager import fetch_page, pager
from services.auth.permissions import Action
from services.payments import history

PAGE_SIZE = 25
PAGE_KEY = "opay_page"
NOTICE = "opay_notice"
REFUND_ERRORS = "opay_refund_errors"
ADJUST_ERRORS = "opay_adjust_errors"
STATUSES = ["succeeded", "refunded", "processing", "requires_action", "failed", "canceled", "created"]

me = require(Action.PAYMENTS_ADMIN)
state = st.session_state

st.title("Payments")
st.caption(f"Every card payment on the marketplace · times in {me.timezone}")
notice = state.pop(NOTICE, None)
if notice:
    st.success(notice, icon=":material/check_circle:")

c1, c2 = st.columns([3, 2])
search = c1.text_input("Payer", key="opay_search", placeholder="email or name contains…, or a pi_… id")
statuses = c2.multiselect("Status", STATUSES, key="opay_statuses", format_func=tables.badge, placeholder="All")


def _fetch(limit: int, offset: int):
    return history.list_payments(
        uow(), me, statuses=statuses or None, search=search or None, limit=limit, offset=offset
    )


rows, total = fetch_page(PAGE_KEY, PAGE_SIZE, _fetch, lambda r: r[1])
if not rows:
    st.info("No payments match these filters.", icon=":material/info:")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "#": r.id,
                    "When": fmt.local(r.created_at, me.timezone),
                    "Payer": r.user_label,
                    "What": KIND_LABELS.get(r.kind, r.kind),
                    "Amount": r.amount_cents / 100,
                    "Refunded": r.refunded_cents / 100,
                    "Status": tables.badge(r.status),
                    "Card": r.card or "",
                    "Stripe": r.stripe_reference or "",
                }
                for r in rows
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "When": tables.time_column("When"),
            "Amount": tables.money_column("Amount"),
            "Refunded": tables.money_column("Refunded"),
            "Status": tables.status_column(),
        },
    )
    pager(PAGE_KEY, total, page_size=PAGE_SIZE, label="payments")

# --- refund --------------------------------------------------------------------------------------------
st.subheader("Refund a payment")
refundable = {r.id: r for r in rows if r.refundable_cents > 0}
if not refundable:
    st.caption("No refundable payment on this page (only settled card payments with something left to refund).")
else:

    def _refund() -> None:
        chosen = refundable[state["opay_refund_choice"]]
        state[REFUND_ERRORS] = {}
        state.pop(REFUND_ERRORS + ":message", None)
        if not state.get("opay_refund_confirm"):
            refuse(REFUND_ERRORS, "confirm", "Tick the confirmation first.")
            return
        try:
            cents = parse_dollars(state.get("opay_refund_amount", ""))
        except ValueError as exc:
            refuse(REFUND_ERRORS, "amount_cents", str(exc))
            return
        result = attempt(
            lambda: history.refund(
                uow(),
                me,
                {
                    "payment_id": chosen.id,
                    "amount_cents": cents,
                    "reason": state.get("opay_refund_reason", ""),
                    "request_key": state.setdefault("opay_refund_key", uuid.uuid4().hex),
                },
            ),
            errors_key=REFUND_ERRORS,
        )
        if result is not None:
            state[NOTICE] = result.message
            state.pop("opay_refund_key", None)
            state["opay_refund_confirm"] = False

    with st.form("opay_refund", enter_to_submit=False):
        st.selectbox(
            "Payment",
            list(refundable),
            format_func=lambda i: (
                f"#{i} · {refundable[i].user_label} · {fmt.money(refundable[i].amount_cents)} "
                f"(refundable {fmt.money(refundable[i].refundable_cents)})"
            ),
            key="opay_refund_choice",
        )
        st.text_input(
            "Amount to refund (USD)", key="opay_refund_amount", placeholder="10.00 (partial) or the full amount"
        )
        field_error(REFUND_ERRORS, "amount_cents")
        st.text_input("Reason", key="opay_refund_reason", placeholder="Why (kept in the audit log)")
        field_error(REFUND_ERRORS, "reason")
        st.checkbox(
            "I confirm: the money goes back to the card and the person's credits go down", key="opay_refund_confirm"
        )
        field_error(REFUND_ERRORS, "confirm")
        st.form_submit_button("Refund through Stripe", type="primary", on_click=_refund)
    form_message(REFUND_ERRORS)
    st.caption("The person's credits change when Stripe confirms the refund (its charge.refunded event).")

# --- manual adjustment ---------------------------------------------------------------------------------
st.subheader("Adjust a person's credits")
query = st.text_input("Find a person", key="opay_person_query", placeholder="email or name (2+ characters)")
people = {p.user_id: p for p in history.find_people(uow(), me, query)} if query else {}
if query and not people:
    st.caption("Nobody matches.")
if people:

    def _adjust() -> None:
        try:
            cents = parse_dollars(state.get("opay_adjust_amount", ""))
        except ValueError as exc:
            refuse(ADJUST_ERRORS, "amount_cents", str(exc))
            return
        result = attempt(
            lambda: history.adjust_credits(
                uow(),
                me,
                {
                    "user_id": state["opay_adjust_person"],
                    "amount_cents": cents,
                    "reason": state.get("opay_adjust_reason", ""),
                    "request_key": state.setdefault("opay_adjust_key", uuid.uuid4().hex),
                },
            ),
            errors_key=ADJUST_ERRORS,
        )
        if result is not None:
            state[NOTICE] = result.message
            state.pop("opay_adjust_key", None)  # the next adjustment is a new one

    with st.form("opay_adjust", enter_to_submit=False):
        st.selectbox(
            "Person",
            list(people),
            format_func=lambda i: f"{people[i].label} · credits {fmt.money(people[i].balance_cents)}",
            key="opay_adjust_person",
        )
        st.text_input("Amount (USD)", key="opay_adjust_amount", placeholder="10.00 adds credits, -10.00 removes them")
        field_error(ADJUST_ERRORS, "amount_cents")
        st.text_input("Reason", key="opay_adjust_reason", placeholder="e.g. goodwill credit for the 3 May outage")
        field_error(ADJUST_ERRORS, "reason")
        st.form_submit_button("Record adjustment", type="primary", on_click=_adjust)
    form_message(ADJUST_ERRORS)
