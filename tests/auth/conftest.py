"""Fixtures for the sign-in and role tests."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import local_script_runner


@pytest.fixture
def navigation_menu(monkeypatch):
    """The navigation message of the latest run, as the browser gets it: [{title, section, hidden, url}]."""
    seen: list[list[dict]] = []
    original = local_script_runner.LocalScriptRunner.forward_msgs

    def forward_msgs(self):
        msgs = original(self)
        for m in msgs:
            if m.WhichOneof("type") == "navigation":
                seen.append(
                    [
                        {
                            "title": p.page_name,
                            "section": p.section_header,
                            "hidden": p.is_hidden,
                            "url": p.url_pathname,
                        }
                        for p in m.navigation.app_pages
                    ]
                )
        return msgs

    monkeypatch.setattr(local_script_runner.LocalScriptRunner, "forward_msgs", forward_msgs)
    return seen
