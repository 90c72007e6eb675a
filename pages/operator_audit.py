"""Audit log: who changed what and when, with the old and the new values; filtered and paginated in SQL."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import fmt, tables
from dashboard.identity import require, uow
from dashboard.pager import fetch_page, pager
from services.audit import service as audit
from services.auth.permissions import Action

PAGE_KEY = "au_page"
PAGE_SIZE = 50
ALL = "(all)"

me = require(Action.AUDIT_VIEW)
st.title("Audit log")
st.caption(f"Every change made through the app, newest first. Times in {me.timezone}.")

actions, object_types = audit.facets(uow(), me)
# A link from elsewhere may preselect a filter: ?action=settings.updated&object=setting
for param, key, options in (("action", "au_action", actions), ("object", "au_object_type", object_types)):
    value = st.query_params.get(param)
    if value and value in options:
        st.session_state[key] = value
        del st.query_params[param]

c1, c2, c3, c4 = st.columns([2, 2, 2, 2])
action = c1.selectbox("Action", [ALL, *actions], key="au_action")
object_type = c2.selectbox("Object", [ALL, *object_types], key="au_object_type")
object_id = c3.text_input("Object id", key="au_object_id", placeholder="e.g. 12 or allowed_regions")
who = c4.text_input("Who", key="au_who", placeholder="name or email contains…")


def _fetch(limit: int, offset: int):
    return audit.list_entries(
        uow(),
        me,
        action=None if action == ALL else action,
        object_type=None if object_type == ALL else object_type,
        object_id=object_id.strip() or None,
        actor_label=who.strip() or None,
        limit=limit,
        offset=offset,
    )


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= 160 else text[:157] + "…"


def _changes(old: dict | None, new: dict | None) -> str:
    """'key: old → new' for each key that differs (the whole value when one side is missing)."""
    old, new = old or {}, new or {}
    parts = []
    for key in dict.fromkeys([*old, *new]):
        if key in old and key in new and old[key] == new[key]:
            continue
        before = _short(old[key]) if key in old else "—"
        after = _short(new[key]) if key in new else "—"
        parts.append(f"{key}: {before} → {after}")
    return "; ".join(parts)


entries, total = fetch_page(PAGE_KEY, PAGE_SIZE, _fetch, lambda r: r[1])
if not entries:
    filtered = action != ALL or object_type != ALL or object_id.strip() or who.strip()
    st.info(
        "No audit entries match these filters."
        if filtered
        else "The audit log is empty: every change made through the app (prices, settings, reviews) appears here.",
        icon=":material/info:",
    )
else:
    frame = pd.DataFrame(
        [
            {
                "When": fmt.local(e.ts, me.timezone),
                "Who": e.actor_label,
                "Action": e.action,
                "Object": e.object_type,
                "Id": e.object_id or "",
                "Change (old → new)": _changes(e.old, e.new),
                "Note": e.note or "",
            }
            for e in entries
        ]
    )
    selection = st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "When": tables.time_column("When"),
            "Change (old → new)": st.column_config.TextColumn("Change (old → new)", width="large"),
        },
        on_select="rerun",
        selection_mode="single-row",
        key="au_table",
    )
    rows = selection.selection.rows if selection else []
    if rows:
        e = entries[rows[0]]
        with st.container(border=True):
            st.markdown(
                f"**{e.action}** on {e.object_type} {e.object_id or ''} by {e.actor_label}, "
                f"{fmt.when(e.ts, me.timezone)}" + (f" — “{e.note}”" if e.note else "")
            )
            a, b = st.columns(2)
            a.caption("Old")
            a.json(e.old or {}, expanded=True)
            b.caption("New")
            b.json(e.new or {}, expanded=True)
    else:
        st.caption("Select a row to see its old and new values in full.")
pager(PAGE_KEY, total, page_size=PAGE_SIZE, label="entries")
