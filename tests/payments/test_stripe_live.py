"""Cards, top-ups, subscriptions and refunds against localstripe, with its webhooks delivered to the real app.

The test process calls the same service functions the Billing page calls (on the app's database); the
browser's part (confirming a SetupIntent, 3-D Secure) is done with the requests localstripe's Stripe.js
sends. Credits land only when the app receives and verifies Stripe's event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select

from services import metering
from services.auth.permissions import Role
from services.db.engine import UnitOfWork
from services.errors import Conflict, InvalidInput, NotFound
from services.payments import history, stripe_api
from services.payments import service as payments
from services.payments.errors import PaymentDeclined
from services.payments.models import Payment, StripeEvent, Subscription
from tests.payments import events as ev
from tests.payments.conftest import PUBLISHABLE_KEY
from tests.payments.world import (
    assert_ledger_invariants,
    balance_of_provider,
    balance_of_user,
    give_credits,
    launch,
    make_provider,
)
from tests.support.api import assert_problem, field_names

VISA = "4242424242424242"
DECLINED_ON_CHARGE = "4000000000000341"
DECLINED_ON_SETUP = "4000000000000002"
THREE_D_SECURE = "4000002500003155"


def wait_for(check: Callable[[], bool], timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def add_card(localstripe, person, number: str = VISA, *, authenticate: bool = True) -> payments.CardInfo:
    setup = payments.start_card_setup(UnitOfWork(), person)
    localstripe.confirm_card_setup(setup.client_secret, number, PUBLISHABLE_KEY, authenticate=authenticate)
    return payments.finish_card_setup(UnitOfWork(), person, {"setup_intent_id": setup.id})


def payment(payment_id: int) -> Payment:
    """The payment row as stored now (detached, loaded)."""
    with UnitOfWork() as uow:
        row = uow.session.get(Payment, payment_id)
        uow.session.expunge(row)
        return row


def events_of(event_type: str) -> int:
    with UnitOfWork() as uow:
        return uow.session.scalar(select(func.count()).select_from(StripeEvent).where(StripeEvent.type == event_type))


def test_add_a_card_top_up_and_the_credits_land_when_stripe_says_so(stripe_world, localstripe):
    person = stripe_world.person()
    card = add_card(localstripe, person)
    assert (card.brand, card.last4, card.exp_month, card.exp_year, card.is_default) == ("visa", "4242", 12, 2034, True)
    assert payments.list_cards(UnitOfWork(), person) == [card]

    started = payments.create_topup(UnitOfWork(), person, {"amount_cents": 2500, "payment_method_id": card.id})

    assert started.status == "processing" and "appear as soon as Stripe confirms" in started.message
    wait_for(lambda: balance_of_user(UnitOfWork(), person.user_id) == 2500, what="the webhook's credit")
    settled = payment(started.payment_id)
    assert settled.status == "succeeded" and settled.stripe_charge_id.startswith("ch_")
    receipt = history.receipt(UnitOfWork(), person, started.payment_id)
    assert (receipt.amount_cents, receipt.card, receipt.stripe_charge_id) == (
        2500,
        "Visa •••• 4242",
        settled.stripe_charge_id,
    )
    assert payments.topup_status(UnitOfWork(), person, started.payment_id).status == "succeeded"
    assert_ledger_invariants(UnitOfWork())


def test_a_declined_card_says_so_and_adds_no_credits(stripe_world, localstripe):
    person = stripe_world.person()
    card = add_card(localstripe, person, DECLINED_ON_CHARGE)
    failures_before = events_of("payment_intent.payment_failed")

    with pytest.raises(PaymentDeclined) as declined:
        payments.create_topup(UnitOfWork(), person, {"amount_cents": 2500, "payment_method_id": card.id})

    assert declined.value.message == "Your card was declined. Nothing was charged; no credits were added."
    wait_for(lambda: events_of("payment_intent.payment_failed") > failures_before, what="the failure event")
    with UnitOfWork() as uow:
        (row,) = uow.session.scalars(select(Payment).where(Payment.user_id == person.user_id)).all()
        assert row.status == "failed" and "declined" in row.failure_message
    assert balance_of_user(UnitOfWork(), person.user_id) == 0


def test_a_card_refused_at_setup_is_not_saved(stripe_world, localstripe):
    person = stripe_world.person()
    with pytest.raises(PaymentDeclined) as refused:
        add_card(localstripe, person, DECLINED_ON_SETUP)
    assert "not saved" in refused.value.message
    assert payments.list_cards(UnitOfWork(), person) == []


def test_3d_secure_cancelled_by_the_person_charges_nothing(stripe_world, localstripe):
    person = stripe_world.person()
    card = add_card(localstripe, person, THREE_D_SECURE)
    started = payments.create_topup(UnitOfWork(), person, {"amount_cents": 3000, "payment_method_id": card.id})
    assert started.status == "requires_action" and started.client_secret

    localstripe.authenticate_payment(started.client_secret, PUBLISHABLE_KEY, success=False)
    ended = payments.complete_topup(UnitOfWork(), person, started.payment_id)

    assert ended.status == "canceled"
    assert ended.message == "3-D Secure authentication was not completed, so nothing was charged."
    assert (
        stripe_api.retrieve_payment_intent(payment(started.payment_id).stripe_payment_intent_id)["status"] == "canceled"
    )
    time.sleep(2)  # anything Stripe would send arrives within ~1 s
    assert balance_of_user(UnitOfWork(), person.user_id) == 0
    assert payment(started.payment_id).status == "canceled"


def test_3d_secure_completed_credits_after_the_webhook(stripe_world, localstripe):
    person = stripe_world.person()
    card = add_card(localstripe, person, THREE_D_SECURE)
    started = payments.create_topup(UnitOfWork(), person, {"amount_cents": 1500, "payment_method_id": card.id})
    localstripe.authenticate_payment(started.client_secret, PUBLISHABLE_KEY, success=True)
    assert payments.complete_topup(UnitOfWork(), person, started.payment_id).status in ("processing", "succeeded")
    wait_for(lambda: balance_of_user(UnitOfWork(), person.user_id) == 1500, what="the webhook's credit")


def test_a_top_up_left_waiting_for_3d_secure_can_be_abandoned(stripe_world, localstripe):
    person = stripe_world.person()
    card = add_card(localstripe, person, THREE_D_SECURE)
    started = payments.create_topup(UnitOfWork(), person, {"amount_cents": 1500, "payment_method_id": card.id})
    assert payments.cancel_topup(UnitOfWork(), person, started.payment_id).status == "canceled"
    assert balance_of_user(UnitOfWork(), person.user_id) == 0


@pytest.mark.parametrize("amount", [-500, 0, 499, 500_001, 10**15, 25.5, "2500", True])
def test_a_negative_tiny_absurd_or_malformed_amount_is_refused_and_nothing_is_written(
    stripe_world, localstripe, amount
):
    person = stripe_world.person()
    card = add_card(localstripe, person)
    with pytest.raises(InvalidInput) as refused:
        payments.create_topup(UnitOfWork(), person, {"amount_cents": amount, "payment_method_id": card.id})
    assert "amount_cents" in refused.value.errors
    with UnitOfWork() as uow:
        assert (
            uow.session.scalar(select(func.count()).select_from(Payment).where(Payment.user_id == person.user_id)) == 0
        )


def test_another_persons_card_cannot_be_used_made_default_or_removed(stripe_world, localstripe):
    owner, thief = stripe_world.person(), stripe_world.person()
    card = add_card(localstripe, owner)
    add_card(localstripe, thief)
    with pytest.raises(NotFound):
        payments.create_topup(UnitOfWork(), thief, {"amount_cents": 2500, "payment_method_id": card.id})
    with pytest.raises(NotFound):
        payments.set_default_card(UnitOfWork(), thief, {"payment_method_id": card.id})
    with pytest.raises(NotFound):
        payments.remove_card(UnitOfWork(), thief, {"payment_method_id": card.id})
    with pytest.raises(NotFound):
        payments.remove_card(UnitOfWork(), thief, {"payment_method_id": "pm_does_not_exist"})
    assert [c.id for c in payments.list_cards(UnitOfWork(), owner)] == [card.id]


def test_the_same_card_twice_is_kept_once(stripe_world, localstripe):
    person = stripe_world.person()
    first = add_card(localstripe, person)
    with pytest.raises(Conflict) as twice:
        add_card(localstripe, person)
    assert "already saved (Visa •••• 4242" in twice.value.message
    assert [c.id for c in payments.list_cards(UnitOfWork(), person)] == [first.id]


def test_cards_are_listed_made_default_and_removed(stripe_world, localstripe):
    person = stripe_world.person()
    first = add_card(localstripe, person)
    second = add_card(localstripe, person, "5555555555554444")
    assert [(c.id, c.is_default) for c in payments.list_cards(UnitOfWork(), person)] == [
        (first.id, True),
        (second.id, False),
    ]
    payments.set_default_card(UnitOfWork(), person, {"payment_method_id": second.id})
    assert payments.list_cards(UnitOfWork(), person)[0].id == second.id
    payments.remove_card(UnitOfWork(), person, {"payment_method_id": second.id})
    remaining = payments.list_cards(UnitOfWork(), person)
    assert [(c.id, c.is_default) for c in remaining] == [(first.id, True)]  # the other card became the default


def test_a_subscription_pays_the_month_through_the_invoice_webhook_and_cancels_at_period_end(stripe_world, localstripe):
    person = stripe_world.person()
    add_card(localstripe, person)
    provider_id, nodes = make_provider(UnitOfWork())
    dep = launch(UnitOfWork(), person, [nodes[0]], price=100, fee_bp=1000, name=f"committed-{person.user_id}")
    offer = next(o for o in payments.subscription_offers(UnitOfWork(), person) if o.deployment_id == dep)
    assert offer.list_monthly_cents == 73_000
    assert offer.monthly_cents == 73_000 * (10_000 - offer.term_discount_bp) // 10_000

    info = payments.subscribe(UnitOfWork(), person, {"deployment_id": dep})

    assert info.status == "active" and info.monthly_cents == offer.monthly_cents

    def paid() -> bool:
        with UnitOfWork() as uow:
            return uow.session.get(Subscription, info.id).current_period_end is not None

    wait_for(paid, what="invoice.payment_succeeded")
    fee = (offer.monthly_cents * 1000 + 5000) // 10000
    assert balance_of_provider(UnitOfWork(), provider_id) == offer.monthly_cents - fee
    give_credits(UnitOfWork(), person.user_id, 1_000)
    charged = metering.run_tick(UnitOfWork())
    assert dep not in _charged_deployments(charged)
    with pytest.raises(Exception, match="already has a subscription"):
        payments.subscribe(UnitOfWork(), person, {"deployment_id": dep})

    cancelled = payments.cancel_subscription(UnitOfWork(), person, info.id)
    assert cancelled.cancel_at_period_end and cancelled.paid_through is not None
    assert_ledger_invariants(UnitOfWork())


def _charged_deployments(_result) -> set[int]:
    from services.ledger.models import UsageCharge

    with UnitOfWork() as uow:
        return set(uow.session.scalars(select(UsageCharge.deployment_id)))


def test_a_subscription_whose_first_payment_is_declined_is_not_created(stripe_world, localstripe):
    person = stripe_world.person()
    add_card(localstripe, person, DECLINED_ON_CHARGE)
    _, nodes = make_provider(UnitOfWork())
    dep = launch(UnitOfWork(), person, [nodes[0]], price=100)
    with pytest.raises(PaymentDeclined) as declined:
        payments.subscribe(UnitOfWork(), person, {"deployment_id": dep})
    assert "no subscription was created" in declined.value.message
    (sub,) = payments.list_subscriptions(UnitOfWork(), person)
    assert sub.status in ("incomplete_expired", "canceled") and sub.paid_through is None


def test_an_operator_refund_goes_through_stripe_and_the_ledger_follows_charge_refunded(stripe_world, localstripe):
    person = stripe_world.person()
    operator = stripe_world.person(Role.OPERATOR)
    card = add_card(localstripe, person)
    started = payments.create_topup(UnitOfWork(), person, {"amount_cents": 5000, "payment_method_id": card.id})
    wait_for(lambda: balance_of_user(UnitOfWork(), person.user_id) == 5000, what="the top-up")

    asked = history.refund(
        UnitOfWork(), operator, {"payment_id": started.payment_id, "amount_cents": 2000, "reason": "asked by mail"}
    )
    assert asked.stripe_refund_id.startswith("re_") and "charge.refunded" in asked.message
    assert balance_of_user(UnitOfWork(), person.user_id) == 5000  # not before Stripe's event

    # localstripe does not send charge.* events: send the one Stripe would, built from the real charge
    charge = stripe_api.retrieve_charge(payment(started.payment_id).stripe_charge_id)
    assert charge["amount_refunded"] == 2000
    payload = ev.event("charge.refunded", charge)
    answer = httpx.post(
        f"{stripe_world.base}/v1/payments/webhook",
        content=payload,
        headers={"Stripe-Signature": ev.sign(payload), "Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200 and answer.json()["outcome"] == "applied"
    assert balance_of_user(UnitOfWork(), person.user_id) == 3000
    assert payment(started.payment_id).refunded_cents == 2000
    assert_ledger_invariants(UnitOfWork())


# --- the HTTP side: the webhook endpoint and the card API with bearer tokens


def post_event(base: str, payload: bytes, header: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return httpx.post(f"{base}/v1/payments/webhook", content=payload, headers=headers, timeout=30)


def pending_topup(person, amount: int = 2500) -> tuple[str, str, int]:
    from services.users.models import User

    with UnitOfWork() as uow:
        s = uow.session
        customer = f"cus_http_{person.user_id}"
        s.get(User, person.user_id).stripe_customer_id = customer
        row = Payment(
            user_id=person.user_id,
            kind="topup",
            amount_cents=amount,
            status="processing",
            stripe_payment_intent_id=f"pi_http_{person.user_id}",
        )
        s.add(row)
        uow.commit()
        return customer, f"pi_http_{person.user_id}", row.id


def test_the_webhook_endpoint_refuses_bad_signatures_and_applies_a_real_one_once(stripe_world):
    person = stripe_world.person()
    customer, pi, _ = pending_topup(person)
    payload = ev.event("payment_intent.succeeded", ev.intent(pi, customer, 2500))

    forged = post_event(stripe_world.base, payload, "t=1,v1=" + "0" * 64)
    missing = post_event(stripe_world.base, payload, None)
    tampered = post_event(stripe_world.base, payload.replace(b"2500", b"9999"), ev.sign(payload))
    assert_problem(forged, 400, "bad-request")
    assert_problem(missing, 400, "bad-request")
    assert_problem(tampered, 400, "bad-request")
    assert balance_of_user(UnitOfWork(), person.user_id) == 0

    header = ev.sign(payload)
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(2)

    def deliver() -> None:
        barrier.wait()
        answers.append(post_event(stripe_world.base, payload, header))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [a.status_code for a in answers] == [200, 200]
    assert sorted(a.json()["outcome"] for a in answers) == ["applied", "duplicate"]
    assert post_event(stripe_world.base, payload, header).json()["outcome"] == "duplicate"
    assert balance_of_user(UnitOfWork(), person.user_id) == 2500

    unknown = ev.event("radar.early_fraud_warning.created", {"id": "issfr_1"})
    answer = post_event(stripe_world.base, unknown, ev.sign(unknown))
    assert answer.status_code == 200 and answer.json()["outcome"] == "ignored:unhandled-type"


def test_the_card_api_adds_lists_charges_and_removes_cards_with_a_bearer_token(stripe_world, localstripe):
    person = stripe_world.person()
    other = stripe_world.person()
    api = stripe_world.as_(person)

    assert api.get("/v1/payments/methods").json() == []
    started = api.post("/v1/payments/methods/setup-intents")
    assert started.status_code == 201 and started.json()["publishable_key"] == PUBLISHABLE_KEY
    localstripe.confirm_card_setup(started.json()["client_secret"], VISA, PUBLISHABLE_KEY)
    saved = api.post("/v1/payments/methods", json={"setup_intent_id": started.json()["setup_intent_id"]})
    assert saved.status_code == 201, saved.text
    card = saved.json()
    assert (card["last4"], card["is_default"]) == ("4242", True)
    assert [c["id"] for c in api.get("/v1/payments/methods").json()] == [card["id"]]

    # someone else cannot save this person's SetupIntent, charge or remove the card
    thief = stripe_world.as_(other)
    assert_problem(
        thief.post("/v1/payments/methods", json={"setup_intent_id": started.json()["setup_intent_id"]}),
        404,
        "not-found",
    )
    assert_problem(
        thief.post("/v1/payments/intents", json={"amount_cents": 2500, "payment_method_id": card["id"]}),
        404,
        "not-found",
    )
    assert_problem(thief.delete(f"/v1/payments/methods/{card['id']}"), 404, "not-found")

    bad = api.post("/v1/payments/intents", json={"amount_cents": -2500, "payment_method_id": card["id"]})
    assert field_names(assert_problem(bad, 422, "invalid-input")) == {"amount_cents"}
    topup = api.post("/v1/payments/intents", json={"amount_cents": 2500, "payment_method_id": card["id"]})
    assert topup.status_code == 201 and topup.json()["status"] == "processing"
    wait_for(lambda: balance_of_user(UnitOfWork(), person.user_id) == 2500, what="the webhook's credit")
    assert api.get(f"/v1/payments/intents/{topup.json()['payment_id']}").json()["status"] == "succeeded"
    assert_problem(thief.get(f"/v1/payments/intents/{topup.json()['payment_id']}"), 404, "not-found")

    assert api.delete(f"/v1/payments/methods/{card['id']}").status_code == 204
    assert api.get("/v1/payments/methods").json() == []
    assert_problem(stripe_world.client().get("/v1/payments/methods"), 401, "not-authenticated")
