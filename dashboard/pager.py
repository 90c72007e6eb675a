"""Paging for SQL-paginated tables: read the offset first, fetch, then show the pager under the table."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

T = TypeVar("T")


def _page(key: str) -> int:
    value = st.session_state.get(key, 1)
    return value if isinstance(value, int) and value >= 1 else 1


def fetch_page(key: str, page_size: int, fetch: Callable[[int, int], T], total_of: Callable[[T], int]) -> T:
    """Call fetch(limit, offset) for the page held under `key`; back to page 1 when filters shrank the list."""
    offset = (_page(key) - 1) * page_size
    result = fetch(page_size, offset)
    if offset and offset >= total_of(result):
        st.session_state[key] = 1
        result = fetch(page_size, 0)
    return result


def pager(key: str, total: int, *, page_size: int, label: str = "rows") -> None:
    """'Page n of m' under a table (a number input only when there is more than one page)."""
    pages = max(1, -(-total // page_size))
    if total == 1:
        label = label.removesuffix("s")
    if _page(key) > pages:
        st.session_state[key] = 1
    if pages == 1:
        st.caption(f"{total:,} {label}")
        return
    c1, c2 = st.columns([1, 5], vertical_alignment="bottom")
    page = c1.number_input("Page", min_value=1, max_value=pages, step=1, key=key)
    first = (page - 1) * page_size + 1
    c2.caption(f"Page {page} of {pages} · {first:,}–{min(total, page * page_size):,} of {total:,} {label}")
