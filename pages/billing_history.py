"""Transactions: everything that moved your credits (usage summed per deployment per day), CSV, and receipts."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from dashboard import fmt, tables
from dashboard.billing import KIND_LABELS as PAYMENT_KINDS
from dashboard.forms import run_action
from dashboard.identity import require, uow
from dashboard.pager import fetch_page, pager
from services.auth.permissions import Action
from services.config import get_settings
from services.db.base import utcnow
from services.deployments import service as deployments
from services.errors import InvalidInput
from services.payments import history

PAGE_SIZE = 25
PAGE_KEY = "tx_page"
RECEIPT_PAGE_KEY = "tx_receipts_page"
STATUSES = ["pending", "running", "stopped", "failed", "deleted"]
NAMES_CACHE_SECONDS = 60  # a deployment launched in the last minute has no charges to filter by yet

me = require(Action.BILLING_MANAGE_OWN)
state = st.session_state


@st.cache_data(ttl=NAMES_CACHE_SECONDS, show_spinner=False, max_entries=256)
def _deployment_names(database_url: str, user_id: int) -> dict[int, str]:
    """The person's deployments by name, for the filter: kept a minute per database and person."""
    mine = deployments.list_own(uow(), me, statuses=STATUSES, sort="name", descending=False, limit=200).rows
    return {d.id: d.name for d in mine}


st.title("Transactions")
st.caption(f"Times in {me.timezone} · usage is summed per deployment per day (UTC days)")

c1, c2, c3 = st.columns([3, 2, 2])
kinds = c1.multiselect(
    "Type", list(history.KIND_LABELS), format_func=history.KIND_LABELS.get, key="tx_kinds", placeholder="All types"
)
today = utcnow().date()
period = c2.date_input("Between", value=(today - timedelta(days=30), today), key="tx_period", max_value=today)
names = _deployment_names(get_settings().database_url, me.user_id)
deployment_choice = c3.selectbox(
    "Deployment", [None, *names], format_func=lambda i: "any" if i is None else names[i], key="tx_deployment"
)

since = until = None
if isinstance(period, tuple | list) and period:
    since = period[0]
    until = period[1] if len(period) > 1 else period[0]
elif isinstance(period, date):
    since = until = period
filters: dict = {"kinds": kinds or None, "since": since, "until": until}
if deployment_choice is not None:
    filters["deployment_id"] = deployment_choice


def _fetch(limit: int, offset: int):
    return history.list_transactions(uow(), me, filters, limit=limit, offset=offset)


try:
    rows, total = fetch_page(PAGE_KEY, PAGE_SIZE, _fetch, lambda r: r[1])
except InvalidInput as exc:
    st.error(exc.message, icon=":material/error:")
    st.stop()

if not rows:
    st.info("No transactions match these filters.", icon=":material/info:")
else:
    frame = pd.DataFrame(
        [
            {
                "When": fmt.local(r.at, me.timezone),
                "Type": history.KIND_LABELS.get(r.kind, r.kind),
                "Description": r.description,
                "Amount": r.amount_cents / 100,
                "Charges": str(r.charges) if r.kind == "usage" else "",
                "Payment": f"#{r.payment_id}" if r.payment_id else "",
            }
            for r in rows
        ]
    )
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "When": tables.time_column("When"),
            "Description": st.column_config.TextColumn("Description", width="large"),
            "Amount": tables.money_column("Amount", help="Positive: credits added; negative: credits used"),
            "Charges": st.column_config.TextColumn("Charges", help="Hourly charges summed in this row"),
        },
    )
    pager(PAGE_KEY, total, page_size=PAGE_SIZE, label="transactions")
    st.download_button(
        "Download CSV",
        data=lambda: history.transactions_csv(uow(), me, filters),
        file_name=f"transactions-{today:%Y%m%d}.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )

# --- receipts ------------------------------------------------------------------------------------------
st.divider()
st.subheader("Receipts")
paid, paid_total = fetch_page(
    RECEIPT_PAGE_KEY,
    10,
    lambda limit, offset: history.list_own_payments(
        uow(), me, statuses=list(history.RECEIPT_STATUSES), limit=limit, offset=offset
    ),
    lambda r: r[1],
)
if not paid:
    st.caption("No card payments yet.")
    st.stop()
by_id = {p.id: p for p in paid}
chosen = st.selectbox(
    "Payment",
    list(by_id),
    format_func=lambda i: (
        f"#{i} · {fmt.when(by_id[i].succeeded_at or by_id[i].created_at, me.timezone, '%Y-%m-%d %H:%M')} · "
        f"{PAYMENT_KINDS.get(by_id[i].kind, by_id[i].kind)} · {fmt.money(by_id[i].amount_cents)}"
    ),
    key="tx_receipt_choice",
)
pager(RECEIPT_PAGE_KEY, paid_total, page_size=10, label="payments")
receipt = run_action(lambda: history.receipt(uow(), me, chosen))
if receipt is not None:
    with st.container(border=True):
        st.markdown(f"**{receipt.marketplace_name}** · Receipt **{receipt.number}**")
        c1, c2, c3 = st.columns(3)
        c1.metric("Amount", fmt.money(receipt.amount_cents, receipt.currency))
        c2.metric("Paid", fmt.when(receipt.paid_at, me.timezone, "%Y-%m-%d %H:%M"))
        c3.metric("Card", receipt.card or "default card")
        st.write(f"For: {receipt.description}")
        if receipt.refunded_cents:
            st.write(f"Refunded: {fmt.money(receipt.refunded_cents, receipt.currency)}")
        st.caption(
            f"Stripe reference: {receipt.stripe_charge_id or receipt.stripe_payment_intent_id or '—'}"
            + (f" · invoice {receipt.stripe_invoice_id}" if receipt.stripe_invoice_id else "")
        )
        st.download_button(
            "Download receipt",
            data=lambda: history.receipt_html(receipt, me.timezone),  # built when clicked
            file_name=f"receipt-{receipt.number}.html",
            mime="text/html",
            icon=":material/download:",
            key=f"tx_receipt_download_{receipt.payment_id}",
            on_click="ignore",
        )
