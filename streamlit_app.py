"""Builds the app: the Streamlit UI (ui.py) plus the HTTP API mounted under /api.

Run with `streamlit run streamlit_app.py` (what `make run` does) or `uvicorn streamlit_app:app`.
Nothing here touches the database at import time; startup work runs in the lifespan hook.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import streamlit as st
from starlette.routing import Mount
from streamlit.runtime.pages_manager import PagesManager

from api.app import create_api
from dashboard.identity import demo_mode
from services import metering
from services.bootstrap import check_demo_allowed, prepare_database
from services.config import get_settings
from services.nodes import retention, simulator
from services.scheduler import Scheduler

log = logging.getLogger("marketplace")
HERE = Path(__file__).resolve().parent


def _navigation_only() -> None:
    """Serve every page through ui.py's st.navigation, from the first request on.

    Streamlit treats a `pages/` folder beside the main script as old-style pages until the first
    st.navigation call in the process; a deep link as the very first request after a start would
    then run the page file alone (no identity gate, file names as navigation). st.navigation sets
    this same flag; setting it at start-up closes that window.
    """
    PagesManager.uses_pages_directory = False


def _startup() -> Scheduler:
    _navigation_only()
    demo = demo_mode()
    check_demo_allowed(auth_configured=not demo)  # refuses to serve production without sign-in
    prepare_database(demo=demo)
    scheduler = Scheduler()
    if demo:
        scheduler.add("demo-fleet", 30, simulator.tick)
    start_background_jobs(scheduler)
    scheduler.start()
    return scheduler


def start_background_jobs(scheduler: Scheduler) -> None:
    """Register the app's periodic jobs (metering and others add themselves here)."""
    settings = get_settings()
    if settings.metering_enabled:
        # idempotent per deployment and hour, so cron (`python -m services.metering`) may run it too
        scheduler.add("metering", max(10, settings.metering_interval_seconds), metering.tick_job, first_delay=5)
    # thins node metrics older than 2 days to one per 5 minutes, deletes those older than 35 days (idempotent)
    scheduler.add("metrics-retention", 3600, retention.prune_job, first_delay=60)


@asynccontextmanager
async def lifespan(_app):
    scheduler = await anyio.to_thread.run_sync(_startup)
    try:
        yield {}
    finally:
        scheduler.stop()


app = st.App(str(HERE / "ui.py"), routes=[Mount("/api", app=create_api())], lifespan=lifespan)
