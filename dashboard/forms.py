"""Running a service call from a form: errors become messages, typed values stay."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from services.errors import ServiceError

T = TypeVar("T")


def run_action(fn: Callable[[], T], *, success: str | None = None, errors_key: str | None = None) -> T | None:
    """Call `fn`; on a ServiceError show its message (and keep field messages under `errors_key`).

    Widgets keep their values because nothing here clears them; nothing is written on error because
    each service function is one transaction.
    """
    if errors_key:
        st.session_state[errors_key] = {}
    try:
        result = fn()
    except ServiceError as exc:
        if errors_key:
            st.session_state[errors_key] = dict(exc.errors)
        st.error(exc.message, icon=":material/error:")
        return None
    if success:
        st.success(success, icon=":material/check_circle:")
    return result


def field_error(errors_key: str, field: str) -> None:
    """Show the message for `field` (from the last failed submit) right under its widget."""
    msg = st.session_state.get(errors_key, {}).get(field)
    if msg:
        st.caption(f":red[{msg}]")
