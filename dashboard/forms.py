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


def refuse(errors_key: str, field: str, message: str) -> None:
    """Remember a refusal found in the page itself (e.g. an amount that does not parse), as `attempt` does."""
    st.session_state[errors_key] = {field: message}
    st.session_state[errors_key + ":message"] = message


def attempt(
    fn: Callable[[], T], *, errors_key: str, flash_key: str | None = None, success: str | None = None
) -> T | None:
    """Run `fn` and remember the outcome for the next script run (call it from an on_click callback, or
    before `st.rerun()`), so that field messages show next to their widgets on that run.

    On a ServiceError the field messages go under `errors_key` and the summary under
    `errors_key + ":message"` (shown by `form_message`); on success, `success` goes to `flash_key`.
    """
    st.session_state[errors_key] = {}
    st.session_state.pop(errors_key + ":message", None)
    try:
        result = fn()
    except ServiceError as exc:
        st.session_state[errors_key] = dict(exc.errors)
        st.session_state[errors_key + ":message"] = exc.message
        return None
    if flash_key and success:
        st.session_state[flash_key] = success
    return result


def form_message(errors_key: str) -> None:
    """The summary message of the last failed `attempt` under `errors_key`, if any."""
    msg = st.session_state.get(errors_key + ":message")
    if msg:
        st.error(msg, icon=":material/error:")


def flash(flash_key: str) -> None:
    """Show (once) the success message an `attempt` left under `flash_key`."""
    msg = st.session_state.pop(flash_key, None)
    if msg:
        st.success(msg, icon=":material/check_circle:")
