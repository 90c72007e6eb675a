"""Real peers for the payment tests: localstripe in this process, and the real app on loopback with its
webhook endpoint registered at localstripe, so real deliveries are verified and applied."""

from __future__ import annotations

import pytest

from tests.payments import events as ev
from tests.payments.stripe_peer import LocalStripe
from tests.support.api import LiveApi, live_api
from tests.support.db import use_database
from tests.support.tokens import TokenIssuer

PUBLISHABLE_KEY = "pk_test_marketplace"
SECRET_KEY = "sk_test_marketplace"


def stripe_env(localstripe: LocalStripe) -> dict[str, str]:
    """The app's Stripe settings, pointed at localstripe (API and Stripe.js)."""
    return {
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
        "STRIPE_WEBHOOK_SECRET": ev.SECRET,
        "STRIPE_API_BASE": localstripe.url,
        "MARKETPLACE_STRIPE_JS_URL": localstripe.js_url,
    }


@pytest.fixture(scope="session")
def localstripe():
    server = LocalStripe()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def payments_issuer():
    with TokenIssuer() as idp:
        yield idp


@pytest.fixture(scope="session")
def live_payments(tmp_path_factory, sqlite_template, payments_issuer, localstripe) -> LiveApi:
    """The real app (streamlit run) on a seeded SQLite copy, with Stripe pointed at localstripe."""
    with live_api(
        tmp_path_factory.mktemp("live-payments"), sqlite_template, payments_issuer, **stripe_env(localstripe)
    ) as api:
        yield api


@pytest.fixture
def stripe_world(live_payments, localstripe, monkeypatch) -> LiveApi:
    """This test process on the live app's database and on localstripe; localstripe's events go to the app."""
    for name, value in stripe_env(localstripe).items():
        monkeypatch.setenv(name, value)
    use_database(live_payments.db_url, monkeypatch)
    localstripe.clear()
    localstripe.register_webhook("app", f"{live_payments.base}/v1/payments/webhook", ev.SECRET)
    return live_payments
