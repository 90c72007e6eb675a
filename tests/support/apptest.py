"""AppTest helpers: run ui.py as a signed-in person (claims in at.user, as Streamlit's login would set)."""

from __future__ import annotations

from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from services.config import get_settings


def _v2_navigation_only(monkeypatch) -> None:
    """Keep AppTest on st.navigation (v2) for every rerun.

    AppTest resets `PagesManager.uses_pages_directory` before each run, and a `pages/` folder beside
    ui.py then turns it on again, so a rerun would execute the page file alone, without ui.py (the
    identity gate and navigation). The real server sets it off at the first st.navigation call and
    keeps it off; this makes AppTest do the same.
    """
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


UI = str(Path(__file__).resolve().parents[2] / "ui.py")


def app_as(
    monkeypatch,
    *,
    sub: str,
    email: str,
    roles: list[str] | tuple[str, ...] = (),
    name: str = "Test Person",
    page: str | None = None,
    timeout: float = 30,
) -> AppTest:
    """An AppTest of the UI signed in with these ID-token claims (demo mode off); runs it once.

    If `page` is given ("pages/x.py"), switches to it and runs again.
    """
    monkeypatch.setenv("MARKETPLACE_DEMO_MODE", "false")
    get_settings.cache_clear()
    _v2_navigation_only(monkeypatch)
    at = AppTest.from_file(UI, default_timeout=timeout)
    at.user = {
        "is_logged_in": True,
        "sub": sub,
        "email": email,
        "email_verified": True,
        "name": name,
        get_settings().roles_claim: list(roles),
    }
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def demo_app(monkeypatch, *, timeout: float = 30) -> AppTest:
    """An AppTest of the UI in demo mode (no sign-in)."""
    monkeypatch.setenv("MARKETPLACE_DEMO_MODE", "true")
    get_settings.cache_clear()
    _v2_navigation_only(monkeypatch)
    at = AppTest.from_file(UI, default_timeout=timeout)
    at.run()
    return at


def texts(at: AppTest) -> str:
    """Everything the page shows as text (markdown, titles, metrics, messages), for `in` assertions."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success", "text"):
        parts.extend(str(getattr(e, "value", "")) for e in getattr(at, kind))
    for m in at.metric:
        parts.append(f"{m.label}: {m.value}")
    return "\n".join(parts)
