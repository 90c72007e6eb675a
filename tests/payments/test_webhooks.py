"""The webhook handler on SQLite and PostgreSQL with hand-built, Stripe-signed events: what it applies, what
it refuses, and that the ledger moves only when money really moved (and only once)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services import metering
from services.db.engine import UnitOfWork
from services.errors import PaymentsNotConfigured
from services.ledger.models import LedgerEntry, LedgerTransaction
from services.notifications.models import Notification
from services.payments import webhooks
from services.payments.errors import WebhookRejected
from services.payments.models import Payment, StripeEvent, Subscription
from services.users.models import User
from tests.payments import events as ev
from tests.payments.world import (
    assert_ledger_invariants,
    balance_of_provider,
    balance_of_user,
    give_credits,
    launch,
    make_provider,
)
from tests.support.people import make_person


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    ev.configure_webhook_secret(monkeypatch)


def customer_with_topup(uow, amount: int = 2500, status: str = "processing"):
    """A person with a stored Stripe customer and a top-up of `amount` waiting for Stripe's word."""
    person = make_person(uow)
    customer = f"cus_test_{person.user_id}"
    with uow:
        s = uow.session
        s.get(User, person.user_id).stripe_customer_id = customer
        payment = Payment(
            user_id=person.user_id,
            kind="topup",
            amount_cents=amount,
            status=status,
            stripe_payment_intent_id=f"pi_test_{person.user_id}",
            card_brand="visa",
            card_last4="4242",
        )
        s.add(payment)
        s.flush()
        payment_id = payment.id
        uow.commit()
    return person, customer, payment_id, f"pi_test_{person.user_id}"


def deliver(uow, payload: bytes, header: str | None = None) -> webhooks.WebhookResult:
    return webhooks.handle(uow, payload, ev.sign(payload) if header is None else header)


def ledger_rows(uow) -> tuple[int, int]:
    with uow:
        s = uow.session
        return (
            s.scalar(select(func.count()).select_from(LedgerTransaction)),
            s.scalar(select(func.count()).select_from(LedgerEntry)),
        )


def payment_row(uow, payment_id: int) -> tuple[str, int, str | None]:
    with uow:
        p = uow.session.get(Payment, payment_id)
        return p.status, p.refunded_cents, p.failure_message


def test_a_succeeded_top_up_is_credited_once_and_a_replay_changes_nothing(db, uow):
    person, customer, payment_id, pi = customer_with_topup(uow)
    payload = ev.event("payment_intent.succeeded", ev.intent(pi, customer, 2500))

    first = deliver(uow, payload)
    replay = deliver(uow, payload)  # the same event again (Stripe retries, or an attacker replays it)
    same_intent_new_event = deliver(uow, ev.event("payment_intent.succeeded", ev.intent(pi, customer, 2500)))

    assert (first.outcome, replay.outcome, same_intent_new_event.outcome) == (
        "applied",
        "duplicate",
        "ignored:already-applied",
    )
    assert balance_of_user(uow, person.user_id) == 2500
    status, _, _ = payment_row(uow, payment_id)
    assert status == "succeeded"
    with uow:
        titles = uow.session.scalars(select(Notification.title).where(Notification.user_id == person.user_id)).all()
        assert titles == ["Top-up received: $25.00"]
        assert uow.session.get(Payment, payment_id).stripe_charge_id == f"ch_for_{pi}"
    assert_ledger_invariants(uow)


@pytest.mark.parametrize(
    "attack",
    ["forged signature", "tampered body", "old timestamp", "wrong secret", "no signature", "not json"],
)
def test_an_event_not_provably_from_stripe_is_refused_and_nothing_changes(db, uow, attack):
    person, customer, payment_id, pi = customer_with_topup(uow)
    payload = ev.event("payment_intent.succeeded", ev.intent(pi, customer, 2500))
    header = ev.sign(payload)
    if attack == "forged signature":
        header = header.split(",v1=")[0] + ",v1=" + "0" * 64
    elif attack == "tampered body":
        payload = payload.replace(b'"amount": 2500', b'"amount": 2500000')  # signed for the original bytes
    elif attack == "old timestamp":
        header = ev.sign(payload, timestamp=int(time.time()) - 3600)
    elif attack == "wrong secret":
        header = ev.sign(payload, secret="whsec_someone_else")
    elif attack == "no signature":
        header = ""
    elif attack == "not json":
        payload = b"not json at all"
        header = ev.sign(payload)
    before = ledger_rows(uow)

    with pytest.raises(WebhookRejected) as refused:
        webhooks.handle(uow, payload, header or None)

    expected = {"old timestamp": "outside the tolerance", "not json": "not JSON"}.get(attack, "signature is invalid")
    assert expected in refused.value.message
    assert refused.value.status == 400
    assert ledger_rows(uow) == before
    assert payment_row(uow, payment_id)[0] == "processing"
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(StripeEvent)) == 0


def test_the_same_event_delivered_twice_at_once_is_applied_once(db, uow):
    person, customer, _, pi = customer_with_topup(uow)
    payload = ev.event("payment_intent.succeeded", ev.intent(pi, customer, 2500))
    header = ev.sign(payload)
    outcomes: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def delivery() -> None:
        try:
            barrier.wait()
            outcomes.append(webhooks.handle(UnitOfWork(), payload, header).outcome)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=delivery) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(outcomes) == ["applied", "duplicate"]
    assert balance_of_user(uow, person.user_id) == 2500
    assert_ledger_invariants(uow)


def test_an_event_for_an_unknown_customer_or_payment_changes_nothing(db, uow):
    person, customer, payment_id, pi = customer_with_topup(uow)
    before = ledger_rows(uow)

    wrong_customer = deliver(uow, ev.event("payment_intent.succeeded", ev.intent(pi, "cus_not_ours", 2500)))
    unknown = deliver(uow, ev.event("payment_intent.succeeded", ev.intent("pi_not_ours", "cus_not_ours", 2500)))

    assert wrong_customer.outcome == "rejected:customer-mismatch"
    assert unknown.outcome == "rejected:unknown-payment"
    assert ledger_rows(uow) == before
    assert balance_of_user(uow, person.user_id) == 0
    assert payment_row(uow, payment_id)[0] == "processing"
    with uow:  # recorded, so the same delivery again is a no-op too
        outcomes = set(uow.session.scalars(select(StripeEvent.outcome)))
        assert outcomes == {"rejected:customer-mismatch", "rejected:unknown-payment"}


@pytest.mark.parametrize("amount,currency", [(250_000, "usd"), (2499, "usd"), (2500, "eur")])
def test_an_amount_or_currency_that_does_not_match_what_we_asked_for_is_not_credited(db, uow, amount, currency):
    person, customer, payment_id, pi = customer_with_topup(uow, amount=2500)
    result = deliver(uow, ev.event("payment_intent.succeeded", ev.intent(pi, customer, amount, currency=currency)))
    assert result.outcome == "rejected:amount-mismatch"
    assert balance_of_user(uow, person.user_id) == 0
    assert payment_row(uow, payment_id)[0] == "processing"


def test_an_unknown_event_type_is_acknowledged_and_ignored(db, uow):
    before = ledger_rows(uow)
    result = deliver(uow, ev.event("customer.tax_id.created", {"id": "txi_1", "object": "tax_id"}))
    assert result.outcome == "ignored:unhandled-type"
    assert ledger_rows(uow) == before


def test_without_a_webhook_secret_the_endpoint_is_not_configured(db, uow, monkeypatch):
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET")
    ev.reload_settings()
    payload = ev.event("payment_intent.succeeded", {"id": "pi_x"})
    with pytest.raises(PaymentsNotConfigured):
        webhooks.handle(uow, payload, ev.sign(payload))


def test_a_failed_payment_is_marked_with_the_bank_message_and_credits_nothing(db, uow):
    person, customer, payment_id, pi = customer_with_topup(uow)
    failed = ev.intent(
        pi,
        customer,
        2500,
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "message": "Your card was declined."},
    )
    assert deliver(uow, ev.event("payment_intent.payment_failed", failed)).outcome == "applied"
    status, _, message = payment_row(uow, payment_id)
    assert status == "failed" and message.startswith("Your card was declined.")
    assert balance_of_user(uow, person.user_id) == 0


def test_refunds_follow_charge_refunded_and_never_take_credits_below_zero(db, uow):
    person, customer, payment_id, pi = customer_with_topup(uow, amount=5000)
    deliver(uow, ev.event("payment_intent.succeeded", ev.intent(pi, customer, 5000)))
    # spend most of it: 4000 used, 1000 left
    with uow:
        from services.ledger import service as ledger

        s = uow.session
        ledger.post(
            s,
            kind="usage",
            idempotency_key="spent",
            legs=[
                ledger.Leg(ledger.user_account(s, person.user_id).id, -4000),
                ledger.Leg(ledger.system_account(s, "platform:revenue").id, 4000),
            ],
        )
        uow.commit()
    charge_id = f"ch_for_{pi}"

    partial = deliver(uow, ev.event("charge.refunded", ev.charge(charge_id, pi, customer, 5000, 600)))
    assert partial.outcome == "applied"
    assert balance_of_user(uow, person.user_id) == 400
    assert payment_row(uow, payment_id)[:2] == ("succeeded", 600)

    # the rest: 4400 back to the card, 400 from credits, 4000 carried by the marketplace
    full = deliver(uow, ev.event("charge.refunded", ev.charge(charge_id, pi, customer, 5000, 5000)))
    assert full.outcome == "applied"
    assert balance_of_user(uow, person.user_id) == 0
    assert payment_row(uow, payment_id)[:2] == ("refunded", 5000)
    with uow:
        from services.ledger import service as ledger

        assert ledger.system_account(uow.session, "platform:adjustments").balance_cents == -4000
        assert ledger.system_account(uow.session, "external:stripe").balance_cents == 0

    # the same cumulative refund again (another event id) changes nothing
    again = deliver(uow, ev.event("charge.refunded", ev.charge(charge_id, pi, customer, 5000, 5000)))
    assert again.outcome == "ignored:already-applied"
    assert_ledger_invariants(uow)


def test_a_refund_for_more_than_was_paid_or_another_customer_is_rejected(db, uow):
    person, customer, payment_id, pi = customer_with_topup(uow, amount=1000)
    deliver(uow, ev.event("payment_intent.succeeded", ev.intent(pi, customer, 1000)))
    too_much = deliver(uow, ev.event("charge.refunded", ev.charge("ch_1", pi, customer, 1000, 5000)))
    wrong = deliver(uow, ev.event("charge.refunded", ev.charge("ch_1", pi, "cus_not_ours", 1000, 500)))
    assert (too_much.outcome, wrong.outcome) == ("rejected:amount-mismatch", "rejected:customer-mismatch")
    assert balance_of_user(uow, person.user_id) == 1000


def test_a_refund_before_the_payment_is_credited_is_not_recorded_so_stripe_delivers_it_again(db, uow):
    person, customer, payment_id, pi = customer_with_topup(uow, amount=1000)
    payload = ev.event("charge.refunded", ev.charge("ch_2", pi, customer, 1000, 1000))
    with pytest.raises(webhooks.EventOutOfOrder):
        deliver(uow, payload)
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(StripeEvent)) == 0
    deliver(uow, ev.event("payment_intent.succeeded", ev.intent(pi, customer, 1000)))
    assert deliver(uow, payload).outcome == "applied"  # the retry
    assert balance_of_user(uow, person.user_id) == 0
    assert_ledger_invariants(uow)


def subscribed(uow, monthly: int = 62_050):
    provider_id, nodes = make_provider(uow)
    person = make_person(uow)
    customer = f"cus_sub_{person.user_id}"
    with uow:
        uow.session.get(User, person.user_id).stripe_customer_id = customer
        uow.commit()
    dep = launch(uow, person, [nodes[0]], price=100, fee_bp=1000)
    with uow:
        sub = Subscription(
            user_id=person.user_id,
            deployment_id=dep,
            stripe_subscription_id=f"sub_test_{person.user_id}",
            monthly_cents=monthly,
            status="active",
        )
        uow.session.add(sub)
        uow.session.flush()
        sub_id = sub.id
        uow.commit()
    return person, customer, provider_id, dep, sub_id, f"sub_test_{person.user_id}"


def test_a_paid_invoice_pays_the_month_once_and_metering_leaves_the_deployment_alone(db, uow):
    person, customer, provider_id, dep, sub_id, stripe_sub = subscribed(uow)
    start = datetime(2031, 3, 1, tzinfo=UTC)
    end = datetime(2031, 4, 1, tzinfo=UTC)
    inv = ev.invoice("in_test_1", stripe_sub, customer, 62_050, int(start.timestamp()), int(end.timestamp()))

    paid = deliver(uow, ev.event("invoice.paid", inv))
    also = deliver(uow, ev.event("invoice.payment_succeeded", inv))  # Stripe sends both for one invoice

    assert (paid.outcome, also.outcome) == ("applied", "ignored:already-applied")
    assert balance_of_user(uow, person.user_id) == 0  # paid by card and spent on the month at once
    assert balance_of_provider(uow, provider_id) == 62_050 - 6_205
    with uow:
        s = uow.session
        sub = s.get(Subscription, sub_id)
        assert (sub.status, sub.current_period_end) == ("active", end)
        invoice_payment = s.scalar(select(Payment).where(Payment.stripe_invoice_id == "in_test_1"))
        assert (invoice_payment.kind, invoice_payment.amount_cents, invoice_payment.status) == (
            "invoice",
            62_050,
            "succeeded",
        )
    give_credits(uow, person.user_id, 1_000)
    assert metering.run_tick(uow, at=start + timedelta(days=3)).charged == 0  # paid through the month
    assert metering.run_tick(uow, at=end + timedelta(hours=1)).charged == 1  # then hourly again
    assert_ledger_invariants(uow)


def test_an_invoice_for_another_amount_or_customer_pays_nothing(db, uow):
    person, customer, provider_id, dep, sub_id, stripe_sub = subscribed(uow)
    now = int(time.time())
    short = deliver(uow, ev.event("invoice.paid", ev.invoice("in_a", stripe_sub, customer, 100, now, now + 86400)))
    other = deliver(uow, ev.event("invoice.paid", ev.invoice("in_b", stripe_sub, "cus_x", 62_050, now, now + 86400)))
    unknown = deliver(uow, ev.event("invoice.paid", ev.invoice("in_c", "sub_nope", "cus_x", 62_050, now, now + 86400)))
    assert (short.outcome, other.outcome, unknown.outcome) == (
        "rejected:amount-mismatch",
        "rejected:customer-mismatch",
        "rejected:unknown-subscription",
    )
    with uow:
        assert uow.session.get(Subscription, sub_id).current_period_end is None
    assert balance_of_provider(uow, provider_id) == 0


def test_subscription_failures_updates_and_deletion_change_its_state(db, uow):
    person, customer, provider_id, dep, sub_id, stripe_sub = subscribed(uow)
    now = int(time.time())
    failed = ev.invoice("in_f", stripe_sub, customer, 62_050, now, now + 86400) | {"status": "open", "amount_paid": 0}
    assert deliver(uow, ev.event("invoice.payment_failed", failed)).outcome == "applied"
    with uow:
        assert uow.session.get(Subscription, sub_id).status == "past_due"
    updated = {"id": stripe_sub, "object": "subscription", "customer": customer, "status": "active"}
    updated["cancel_at_period_end"] = True
    assert deliver(uow, ev.event("customer.subscription.updated", updated)).outcome == "applied"
    with uow:
        sub = uow.session.get(Subscription, sub_id)
        assert (sub.status, sub.cancel_at_period_end) == ("active", True)
    deleted = updated | {"status": "canceled"}
    assert deliver(uow, ev.event("customer.subscription.deleted", deleted)).outcome == "applied"
    with uow:
        assert uow.session.get(Subscription, sub_id).status == "canceled"
        titles = uow.session.scalars(select(Notification.title).where(Notification.user_id == person.user_id)).all()
        assert "Subscription payment failed" in titles and "Subscription ended" in titles
