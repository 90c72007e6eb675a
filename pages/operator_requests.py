"""Provider requests: the queue of applications (pending first), approve or reject each with a note."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import fmt, tables
from dashboard.forms import attempt, field_error, flash, form_message
from dashboard.identity import require, uow
from dashboard.pager import fetch_page, pager
from services.auth.permissions import Action
from services.db.base import utcnow
from services.providers import review

FLASH = "rq_flash"
QUEUE_PAGE = "rq_queue_page"
DECIDED_PAGE = "rq_decided_page"
QUEUE_SIZE = 5
DECIDED_SIZE = 20
DECIDED_FILTERS = {"all decided": "decided", "approved": "approved", "rejected": "rejected"}

me = require(Action.PROVIDER_REQUEST_REVIEW)
state = st.session_state


def _errors_key(request_id: int) -> str:
    return f"rq_errors_{request_id}"


def _decide(request_id: int, company: str, approve: bool) -> None:
    """on_click: approve or reject with the note typed for this request."""
    note = state.get(f"rq_note_{request_id}", "")
    for key in [k for k in state if str(k).startswith("rq_errors_")]:
        del state[key]  # messages belong to the last decision only
    if approve:
        attempt(
            lambda: review.approve(uow(), me, request_id, note),
            errors_key=_errors_key(request_id),
            flash_key=FLASH,
            success=f"Approved {company}: the provider exists and the applicant can now manage nodes.",
        )
    else:
        attempt(
            lambda: review.reject(uow(), me, request_id, note),
            errors_key=_errors_key(request_id),
            flash_key=FLASH,
            success=f"Rejected {company}. The applicant sees your note.",
        )


st.title("Provider requests")
flash(FLASH)
counts = review.status_counts(uow(), me)
c = st.columns(3)
c[0].metric("Waiting for review", f"{counts['pending']:,}", border=True)
c[1].metric("Approved", f"{counts['approved']:,}", border=True)
c[2].metric("Rejected", f"{counts['rejected']:,}", border=True)

# --- the queue: oldest waiting first, each with the whole application and the decision
st.subheader("Queue")
queue = fetch_page(
    QUEUE_PAGE,
    QUEUE_SIZE,
    lambda limit, offset: review.list_requests(uow(), me, status="pending", limit=limit, offset=offset),
    lambda r: r[1],
)
pending, pending_total = queue
if not pending:
    st.success("Nothing waiting: every application has been reviewed.", icon=":material/done_all:")
for r in pending:
    with st.container(border=True, key=f"rq_card_{r.id}"):
        head, when = st.columns([2, 1])
        head.markdown(f"#### {r.company}")
        days = (utcnow() - r.created_at).days
        waited = "today" if days == 0 else f"{days} day{'s' if days != 1 else ''} ago"
        when.caption(f"Applied {fmt.when(r.created_at, me.timezone)} ({waited})")
        left, right = st.columns([3, 2])
        with left:
            st.markdown(
                f"**Applicant:** {r.applicant_name}"
                + (f" ({r.applicant_email})" if r.applicant_email else "")
                + f"  \n**Contact:** {r.contact_name} · {r.contact_email}"
                + f"  \n**Regions:** {', '.join(r.regions) or '—'}"
                + f"  \n**Expected capacity:** {r.expected_capacity or '—'}"
                + f"  \n**Website:** {r.website or '—'}"
            )
        with right:
            st.text_area(
                "Note to the applicant",
                key=f"rq_note_{r.id}",
                max_chars=2000,
                height=90,
                placeholder="Required when rejecting: say why.",
            )
            field_error(_errors_key(r.id), "note")
            b1, b2 = st.columns(2)
            b1.button(
                "Approve",
                key=f"rq_approve_{r.id}",
                type="primary",
                icon=":material/check:",
                on_click=_decide,
                args=(r.id, r.company, True),
                width="stretch",
            )
            b2.button(
                "Reject",
                key=f"rq_reject_{r.id}",
                icon=":material/close:",
                on_click=_decide,
                args=(r.id, r.company, False),
                width="stretch",
            )
        errors = state.get(_errors_key(r.id), {})
        if "note" not in errors:
            form_message(_errors_key(r.id))
if pending_total:
    pager(QUEUE_PAGE, pending_total, page_size=QUEUE_SIZE, label="waiting")

# --- decided applications
st.subheader("Decided")
which = st.segmented_control(
    "Show", list(DECIDED_FILTERS), default="all decided", key="rq_decided_filter", label_visibility="collapsed"
)
status = DECIDED_FILTERS[which or "all decided"]


def _fetch_decided(limit: int, offset: int):
    return review.list_requests(uow(), me, status=status, limit=limit, offset=offset)


rows, decided_total = fetch_page(DECIDED_PAGE, DECIDED_SIZE, _fetch_decided, lambda r: r[1])
if rows:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Company": r.company,
                    "Status": tables.badge(r.status),
                    "Note": r.review_note or "",
                    "Decided by": r.reviewed_by or "",
                    "Decided": fmt.local(r.reviewed_at, me.timezone),
                    "Applicant": r.applicant_name,
                    "Regions": ", ".join(r.regions),
                    "Applied": fmt.local(r.created_at, me.timezone),
                }
                for r in rows
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "Status": tables.status_column(),
            "Decided": tables.time_column("Decided"),
            "Applied": tables.time_column("Applied"),
            "Note": st.column_config.TextColumn("Note", width="large"),
        },
        key="rq_decided",
    )
else:
    st.caption("No decided applications yet.")
pager(DECIDED_PAGE, decided_total, page_size=DECIDED_SIZE, label="applications")
st.caption(f"Times in {me.timezone}.")
