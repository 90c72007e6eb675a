"""One real app for the API tests: `streamlit run streamlit_app.py` on loopback, a seeded SQLite copy,
a token issuer whose JWKS is served on loopback (tests/support/tokens.py), and Stripe pointed at a
localstripe server (so the payment endpoints answer for real, not "not configured").

localstripe runs in a child process here: its aiohttp app is a module global bound to the first event
loop that serves it, so a second in-process instance (the payments suite has its own) cannot start.
"""

from __future__ import annotations

import pytest

from tests.payments import events
from tests.support.api import LiveApi, live_api
from tests.support.stripe_process import StripePeer, localstripe_process
from tests.support.tokens import TokenIssuer


def stripe_env(localstripe: StripePeer) -> dict[str, str]:
    return {
        "STRIPE_SECRET_KEY": "sk_test_api_suite",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_api_suite",
        "STRIPE_WEBHOOK_SECRET": events.SECRET,
        "STRIPE_API_BASE": localstripe.url,
        "MARKETPLACE_STRIPE_JS_URL": localstripe.js_url,
    }


@pytest.fixture(scope="session")
def issuer():
    with TokenIssuer() as idp:
        yield idp


@pytest.fixture(scope="session")
def api_stripe():
    with localstripe_process() as peer:
        yield peer


@pytest.fixture(scope="session")
def api(tmp_path_factory, sqlite_template, issuer, api_stripe) -> LiveApi:
    with live_api(tmp_path_factory.mktemp("live-api"), sqlite_template, issuer, **stripe_env(api_stripe)) as live:
        yield live
