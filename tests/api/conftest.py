"""One real app for the API tests: `streamlit run streamlit_app.py` on loopback, a seeded SQLite copy,
and a token issuer whose JWKS is served on loopback (tests/support/tokens.py)."""

from __future__ import annotations

import pytest

from tests.support.api import LiveApi, live_api
from tests.support.tokens import TokenIssuer


@pytest.fixture(scope="session")
def issuer():
    with TokenIssuer() as idp:
        yield idp


@pytest.fixture(scope="session")
def api(tmp_path_factory, sqlite_template, issuer) -> LiveApi:
    with live_api(tmp_path_factory.mktemp("live-api"), sqlite_template, issuer) as live:
        yield live
