"""Headless Debian Chromium driven by Python playwright (no browser download: `executable_path`).

    with chromium() as browser:
        page = browser.new_page()

Without /usr/bin/chromium the test skips locally and FAILS under CI=true (CI must run the browser tests).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import pytest

from tests.support.db import IN_CI

CHROMIUM = os.environ.get("MARKETPLACE_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def require_tool(path_or_name: str, what: str) -> str:
    """The tool's path; otherwise skip (locally) or fail (CI=true)."""
    found = path_or_name if os.path.isfile(path_or_name) and os.access(path_or_name, os.X_OK) else None
    found = found or shutil.which(path_or_name)
    if found:
        return found
    msg = f"{what} not found ({path_or_name})"
    if IN_CI:
        pytest.fail(msg + ": required under CI=true")
    pytest.skip(msg)


@contextlib.contextmanager
def chromium() -> Iterator:
    """A headless Chromium browser (playwright), closed afterwards."""
    executable = require_tool(CHROMIUM, "Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
