"""AppTest of the billing pages and the operators' Payments page, without Stripe keys and with Stripe
(localstripe, webhooks delivered to the live app on the same database)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from dashboard import fmt
from services.config import reload_settings
from services.db.engine import UnitOfWork
from services.ledger.models import LedgerTransaction
from services.payments.models import Payment
from tests.payments.test_stripe_live import THREE_D_SECURE, add_card, wait_for
from tests.payments.world import balance_of_user
from tests.support.apptest import app_as, texts

UMA = dict(sub="demo:user", email="uma@user.demo")
OLIVIA = dict(sub="demo:operator", email="olivia@operator.demo")
STRIPE_VARIABLES = (
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "MARKETPLACE_STRIPE_JS_URL",
)


@pytest.fixture
def no_stripe(seeded_sqlite, monkeypatch):
    for name in STRIPE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    reload_settings()
    return seeded_sqlite


def button(at, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} in {[b.label for b in at.button]}"
    return matches[0]


def captions(at) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def payments_of(user_id: int) -> int:
    with UnitOfWork() as uow:
        return uow.session.scalar(select(func.count()).select_from(Payment).where(Payment.user_id == user_id))


# --- without Stripe keys: a clear notice, nothing crashes


def test_billing_without_stripe_keys_says_card_payments_are_not_configured(no_stripe, monkeypatch):
    at = app_as(monkeypatch, **UMA, page="pages/billing.py")
    assert not at.exception
    assert "Card payments are not configured on this marketplace" in texts(at)
    uma_id = _user_id("demo:user")
    assert metric(at, "Credits") == fmt.money(balance_of_user(UnitOfWork(), uma_id))
    assert not [t for t in at.text_input if t.key == "billing_topup_amount"]


def test_subscriptions_without_stripe_keys_say_so(no_stripe, monkeypatch):
    at = app_as(monkeypatch, **UMA, page="pages/billing_subscriptions.py")
    assert not at.exception
    assert "Card payments are not configured" in texts(at)


def test_transactions_list_usage_per_day_and_show_a_receipt(no_stripe, monkeypatch):
    at = app_as(monkeypatch, **UMA, page="pages/billing_history.py")
    assert not at.exception
    frame = at.dataframe[0].value
    assert {"Top-up", "Usage"} <= set(frame["Type"])
    assert any(d.startswith("Usage of ") for d in frame["Description"])
    assert "Receipt **R-" in texts(at)
    assert "Stripe reference: ch_seed_" in captions(at)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download CSV", "Download receipt"]

    at.multiselect(key="tx_kinds").set_value(["topup"]).run()
    assert set(at.dataframe[0].value["Type"]) == {"Top-up"}


def test_the_payments_page_is_for_operators_only(no_stripe, monkeypatch):
    at = app_as(monkeypatch, **UMA, page="pages/operator_payments.py")
    assert not at.exception
    assert "Not allowed" in "\n".join(str(e.value) for e in at.error)
    assert not at.dataframe


def test_an_operator_adjusts_credits_with_a_reason_and_bad_input_writes_nothing(no_stripe, monkeypatch):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_payments.py")
    assert not at.exception
    assert len(at.dataframe[0].value) > 0  # every payment, seeded top-ups included
    at.text_input(key="opay_person_query").input("uma@").run()
    before = balance_of_user(UnitOfWork(), _user_id("demo:user"))
    adjustments = _adjustments()

    at.text_input(key="opay_adjust_amount").input("ten dollars")
    at.text_input(key="opay_adjust_reason").input("Goodwill for the outage")
    button(at, "Record adjustment").click().run()
    assert "Enter an amount in dollars" in captions(at)
    at.text_input(key="opay_adjust_amount").input("10")
    at.text_input(key="opay_adjust_reason").input("no")
    button(at, "Record adjustment").click().run()
    assert "at least 5 characters" in captions(at)
    assert at.text_input(key="opay_adjust_amount").value == "10"  # what was typed stays
    assert _adjustments() == adjustments

    at.text_input(key="opay_adjust_reason").input("Goodwill for the outage")
    button(at, "Record adjustment").click().run()
    assert not at.exception
    assert "$10.00 added to the credits of uma@user.demo" in texts(at)
    assert balance_of_user(UnitOfWork(), _user_id("demo:user")) == before + 1000
    assert _adjustments() == adjustments + 1


def _user_id(subject: str) -> int:
    from services.users.models import User

    with UnitOfWork() as uow:
        return uow.session.scalar(select(User.id).where(User.subject == subject))


def _adjustments() -> int:
    with UnitOfWork() as uow:
        return uow.session.scalar(
            select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "adjustment")
        )


# --- with Stripe (localstripe), credits landing through the live app's webhook


def test_top_up_from_the_billing_page_bad_amounts_then_a_good_one(stripe_world, localstripe, monkeypatch):
    person = stripe_world.person()
    add_card(localstripe, person)
    at = app_as(monkeypatch, sub=person.subject, email=person.email, page="pages/billing.py")
    assert not at.exception
    assert "Visa •••• 4242" in str(at.dataframe[-1].value["Card"].tolist())
    assert metric(at, "Credits") == "$0.00"

    for typed, message in (
        ("-5", "Choose an amount between $5.00 and $5,000.00."),
        ("100000", "Choose an amount between $5.00 and $5,000.00."),
        ("abc", "Enter an amount in dollars, like 25 or 25.50."),
        ("12.345", "Use at most two decimals (cents)."),
    ):
        at.text_input(key="billing_topup_amount").input(typed)
        button(at, "Pay").click().run()
        assert message in captions(at), typed
        assert at.text_input(key="billing_topup_amount").value == typed
    assert payments_of(person.user_id) == 0

    at.text_input(key="billing_topup_amount").input("25")
    button(at, "Pay").click().run()
    assert not at.exception
    assert "Payment of $25.00 accepted" in texts(at)
    wait_for(lambda: balance_of_user(UnitOfWork(), person.user_id) == 2500, what="the webhook's credit")
    at.run()
    assert metric(at, "Credits") == "$25.00"


def test_a_payment_waiting_for_3d_secure_can_be_cancelled_from_the_page(stripe_world, localstripe, monkeypatch):
    person = stripe_world.person()
    add_card(localstripe, person, THREE_D_SECURE)
    at = app_as(monkeypatch, sub=person.subject, email=person.email, page="pages/billing.py")
    at.text_input(key="billing_topup_amount").input("30")
    button(at, "Pay").click().run()
    assert "Confirm your payment" in texts(at)
    assert "$30.00" in texts(at)

    button(at, "Cancel this payment").click().run()
    assert not at.exception
    assert "nothing was charged" in texts(at)
    assert "Confirm your payment" not in texts(at)
    time.sleep(1.5)
    assert balance_of_user(UnitOfWork(), person.user_id) == 0


def test_subscriptions_page_offers_running_deployments_at_the_discount(stripe_world, localstripe, monkeypatch):
    from tests.payments.world import launch, make_provider

    person = stripe_world.person()
    add_card(localstripe, person)
    _, nodes = make_provider(UnitOfWork())
    launch(UnitOfWork(), person, [nodes[0]], price=100, name="nightly-build")
    at = app_as(monkeypatch, sub=person.subject, email=person.email, page="pages/billing_subscriptions.py")
    assert not at.exception
    assert "You have no subscriptions yet." in texts(at)
    assert "List price $730.00 a month" in texts(at)
    button(at, "Subscribe").click().run()
    assert not at.exception
    assert "Subscribed: nightly-build" in texts(at)
    assert len(at.dataframe[0].value) == 1
