"""What every way of starting the app does first: migrate, refuse a newer database, seed demo data."""

from __future__ import annotations

import logging
import threading

from services.config import get_settings, is_production
from services.db.migrate import upgrade

log = logging.getLogger("marketplace")
_done: set[str] = set()
_lock = threading.Lock()


class DemoModeRefused(RuntimeError):
    pass


def check_demo_allowed(auth_configured: bool) -> None:
    """Demo mode (no sign-in) must never serve production."""
    if not auth_configured and is_production():
        raise DemoModeRefused(
            "MARKETPLACE_ENV=production but no sign-in is configured, so the app would run in demo mode "
            "(anyone could act as any role). Configure [auth] and [auth.auth0] in .streamlit/secrets.toml "
            "(see README, 'Auth0 setup'), or unset MARKETPLACE_ENV."
        )


def prepare_database(*, demo: bool) -> None:
    """Bring the database to the current migration; in demo mode seed demo data if it has none. Once per process."""
    url = get_settings().database_url
    with _lock:
        if url in _done:
            return
        upgrade(url)
        if demo and get_settings().seed_demo:
            from services.seed import has_data, seed

            if not has_data(url):
                log.warning("empty database: seeding demo data")
                seed("demo", url, log=log.warning)
        _done.add(url)
