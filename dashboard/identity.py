"""Who is using the page: Streamlit's sign-in (Auth0) or, without [auth], the demo picker.

`ui.py` calls `resolve()` once per run; pages call `require(action)` to get the identity or stop
with a clear "not allowed" message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath

import streamlit as st

from services.auth.identity import Identity, identity_for_user_id
from services.auth.permissions import Action
from services.bootstrap import DemoModeRefused, check_demo_allowed
from services.config import get_settings
from services.db.engine import UnitOfWork
from services.errors import ServiceError
from services.settings import service as settings_service
from services.users.service import demo_people

_KEY = "identity"
AUTH_PROVIDER = "auth0"


def auth_configured() -> bool:
    """True when .streamlit/secrets.toml (or st.App secrets) has an [auth] section."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def demo_mode() -> bool:
    forced = get_settings().demo_mode
    return (not auth_configured()) if forced is None else forced


def uow() -> UnitOfWork:
    return UnitOfWork()


def _demo_identity() -> Identity:
    people = demo_people(uow())
    if not people:
        st.error("Demo mode is on but the database has no demo people. Run `python -m services.seed --scale demo`.")
        st.stop()
    by_id = {p.user_id: p for p in people}
    if st.session_state.get("demo_user_id") not in by_id:
        st.session_state["demo_user_id"] = people[0].user_id
    with st.sidebar:
        st.selectbox(
            "Demo: act as",
            options=list(by_id),
            format_func=lambda uid: (
                f"{by_id[uid].name} ({', '.join(r.removeprefix('cloud-') for r in by_id[uid].roles)})"
            ),
            key="demo_user_id",
            help="Demo mode: sign-in is off. Pick a seeded person to see the app with their roles.",
        )
    return identity_for_user_id(uow(), st.session_state["demo_user_id"])


def _only(draw: Callable[[], None], title: str = "Sign in") -> None:
    """Show `draw` at every address of the app, with no navigation, then stop the run.

    Used before anyone is signed in (and for start-up errors): without an st.navigation call Streamlit
    would list the files in pages/ in the sidebar; here every registered page's address (a deep link)
    shows the same screen, and nothing of the app is offered.
    """
    from dashboard.navigation import PAGES

    pages = [st.Page(draw, title=title, icon=":material/login:", url_path="sign-in", default=True)]
    pages += [
        st.Page(draw, title=spec.title, url_path=PurePath(spec.path).stem, visibility="hidden")
        for spec in PAGES
        if not spec.default  # the default page's address is "/", already the sign-in page's
    ]
    st.navigation(pages, position="hidden").run()
    st.stop()


def _draw_sign_in() -> None:
    _, middle, _ = st.columns([1, 2, 1])
    with middle, st.container(border=True):
        st.title(get_marketplace_name(), anchor=False)
        st.subheader("Sign in to launch deployments, offer nodes, or run the marketplace.", anchor=False)
        st.write("You will be sent to our sign-in page. New here? Choose **Sign up** there to create an account.")
        if st.button("Sign in", type="primary", key="sign_in", icon=":material/login:", width="stretch"):
            st.login(AUTH_PROVIDER)


def _sign_in_page() -> None:
    _only(_draw_sign_in)


def get_marketplace_name() -> str:
    try:
        return settings_service.get(uow()).marketplace_name
    except Exception:  # the database is not reachable yet: the sign-in page still works
        return "Cloud Marketplace"


def _sign_in_problem(message: str) -> None:
    st.error(f"Sign-in problem: {message}", icon=":material/error:")
    if st.button("Sign out", key="sign_out_after_problem"):
        st.logout()


def resolve() -> Identity:
    """The identity for this run (recomputed every run, so role grants and revocations apply at once)."""
    demo = demo_mode()
    try:
        check_demo_allowed(auth_configured=not demo)
    except DemoModeRefused as exc:
        refusal = str(exc)
        _only(lambda: st.error(refusal, icon=":material/lock:"), title="Not available")
    if demo:
        me = _demo_identity()
        st.warning(
            "**Demo mode**: authentication is off. Use the picker in the sidebar to act as any demo person.",
            icon=":material/science:",
        )
    else:
        if not st.user.is_logged_in:
            _sign_in_page()
        from services.auth.identity import identity_from_claims

        try:
            me = identity_from_claims(uow(), st.user.to_dict())
        except ServiceError as exc:
            problem = str(exc)
            _only(lambda: _sign_in_problem(problem))
    st.session_state[_KEY] = me
    return me


def current() -> Identity:
    """The identity resolved for this run by ui.py."""
    me = st.session_state.get(_KEY)
    if me is None:
        me = resolve()
    return me


def require(action: Action) -> Identity:
    """The identity if it may take `action`; otherwise a clear "not allowed" message and stop."""
    me = current()
    if not me.can(action):
        st.error(
            "**Not allowed.** Your account does not have access to this page. If you think it should, ask an operator.",
            icon=":material/block:",
        )
        st.stop()
    return me
