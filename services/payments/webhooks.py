"""Stripe webhooks: verify, record once, apply in the same transaction.

`handle(uow, raw_body, signature_header)`:
1. verifies `Stripe-Signature` over the raw bytes with STRIPE_WEBHOOK_SECRET (5 minutes tolerance);
   anything else is refused (WebhookRejected -> HTTP 400) before the body is even parsed;
2. inserts the event id into `stripe_events` (primary key) as the first write of one transaction, so
   a second delivery of the same event, even at the same moment from another thread or process,
   finds it and changes nothing;
3. applies the event in that same transaction and stores the outcome with it.

Nothing in an event is trusted beyond the signature: the object must be one we created (a payment or
subscription row of ours), for the customer we stored for that user, for the amount and currency we
asked for. Otherwise the event is recorded as `rejected:<why>`, the ledger is untouched and Stripe gets
a 200 (retrying would not change the answer). Event types we do not handle are recorded as ignored.

Handled: payment_intent.succeeded (top-up credits), payment_intent.payment_failed, charge.refunded (the
ledger follows refunds made in Stripe or from the operator page), invoice.paid and
invoice.payment_succeeded (one invoice pays one month of a subscribed deployment; both types may arrive
for the same invoice and credit it once), invoice.payment_failed, customer.subscription.updated and
customer.subscription.deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services import metering
from services.audit import service as audit
from services.auth.identity import SYSTEM
from services.config import get_settings
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.deployments.models import Deployment
from services.errors import Conflict, PaymentsNotConfigured
from services.ledger import service as ledger
from services.ledger.models import LedgerAccount, LedgerTransaction
from services.notifications.service import notify
from services.payments import stripe_api
from services.payments.models import Payment, StripeEvent, Subscription
from services.payments.money import money_text
from services.payments.service import OPEN_STATUSES, epoch_to_utc
from services.pricing.service import platform_fee_cents
from services.users.models import User

log = logging.getLogger("marketplace.webhooks")

SUBSCRIPTION_STATUSES = {"incomplete", "incomplete_expired", "trialing", "active", "past_due", "unpaid", "canceled"}


class EventOutOfOrder(Conflict):
    """The event refers to something that is not settled yet here (e.g. a refund before the payment's own
    success): nothing is recorded, and the non-2xx answer makes Stripe deliver it again later."""


@dataclass(frozen=True)
class WebhookResult:
    event_id: str
    type: str
    outcome: str  # applied | duplicate | ignored:<why> | rejected:<why>


def handle(uow: UnitOfWork, payload: bytes, signature_header: str | None) -> WebhookResult:
    """Apply one signed Stripe event exactly once (a repeated or concurrent delivery changes nothing);
    WebhookRejected for anything not provably from Stripe."""
    secret = get_settings().stripe_webhook_secret
    if not secret:
        raise PaymentsNotConfigured("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET is not set).")
    event = stripe_api.verify_event(payload, signature_header, secret)
    event_id, event_type = event["id"][:255], event["type"][:64]
    obj: dict[str, Any] = event["data"]["object"]
    with uow:
        s = uow.session
        row = StripeEvent(id=event_id, type=event_type, outcome="processing")
        s.add(row)
        try:
            s.flush()  # the first write: the primary key admits one delivery, the others wait here and then fail
        except IntegrityError:
            return WebhookResult(event_id, event_type, "duplicate")
        handler = HANDLERS.get(event_type)
        outcome = handler(s, obj, event_id) if handler else "ignored:unhandled-type"
        if outcome.startswith("rejected"):
            log.warning("stripe event %s (%s) %s", event_id, event_type, outcome)
        row.outcome = outcome[:32]
        uow.commit()
    return WebhookResult(event_id, event_type, outcome)


# --- helpers


def _user_with_customer(s: Session, user_id: int, customer_id: Any) -> User | None:
    """The user if `customer_id` is the Stripe customer we stored for them."""
    user = s.get(User, user_id)
    customer = stripe_api.expandable_id(customer_id)
    if user is None or not user.stripe_customer_id or customer != user.stripe_customer_id:
        return None
    return user


def _amount_matches(obj_amount: Any, obj_currency: Any, cents: int, currency: str) -> bool:
    return (
        isinstance(obj_amount, int)
        and not isinstance(obj_amount, bool)
        and obj_amount == cents
        and isinstance(obj_currency, str)
        and obj_currency.upper() == currency.upper()
    )


def _recorded(s: Session, key: str) -> bool:
    return s.scalar(select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == key)) is not None


def _payment_for_intent(s: Session, intent: dict[str, Any]) -> Payment | None:
    """Our payment row for a PaymentIntent: by its id, or (a decline before we stored the id) by our metadata."""
    intent_id = intent.get("id")
    if not isinstance(intent_id, str):
        return None
    payment = s.scalar(select(Payment).where(Payment.stripe_payment_intent_id == intent_id).with_for_update())
    if payment is None:
        ours = (intent.get("metadata") or {}).get("payment_id")
        if isinstance(ours, str) and ours.isdigit():
            candidate = s.scalar(select(Payment).where(Payment.id == int(ours)).with_for_update())
            if candidate is not None and candidate.stripe_payment_intent_id is None and candidate.kind == "topup":
                payment = candidate
    return payment


def _charge_id(intent: dict[str, Any]) -> str | None:
    charge = stripe_api.expandable_id(intent.get("latest_charge"))
    if charge:
        return charge
    data = (intent.get("charges") or {}).get("data") or []
    return stripe_api.expandable_id(data[0]) if data else None


def _lock_credits(s: Session, user_id: int) -> LedgerAccount:
    """The user's credits account, row-locked until commit (PostgreSQL; SQLite's write lock covers it)."""
    ledger.user_account(s, user_id)
    return s.scalar(select(LedgerAccount).where(LedgerAccount.user_id == user_id).with_for_update())


# --- payment intents (top-ups)


def _intent_succeeded(s: Session, intent: dict[str, Any], event_id: str) -> str:
    payment = _payment_for_intent(s, intent)
    if payment is None:
        return "ignored:invoice-payment" if intent.get("invoice") else "rejected:unknown-payment"
    if payment.kind != "topup":
        return "ignored:invoice-payment"
    user = _user_with_customer(s, payment.user_id, intent.get("customer"))
    if user is None:
        return "rejected:customer-mismatch"
    if not _amount_matches(intent.get("amount"), intent.get("currency"), payment.amount_cents, payment.currency):
        return "rejected:amount-mismatch"
    key = f"topup:{intent['id']}"
    if _recorded(s, key):
        return "ignored:already-applied"
    credits = _lock_credits(s, user.id)
    clearing = ledger.system_account(s, "external:stripe")
    card = (
        f" ({payment.card_brand.title()} •••• {payment.card_last4})"
        if payment.card_last4 and payment.card_brand
        else ""
    )
    ledger.post(
        s,
        kind="topup",
        idempotency_key=key,
        legs=[ledger.Leg(clearing.id, -payment.amount_cents), ledger.Leg(credits.id, payment.amount_cents)],
        memo=f"Card top-up{card}",
        payment_id=payment.id,
    )
    payment.status = "succeeded"
    payment.succeeded_at = utcnow()
    payment.stripe_payment_intent_id = intent["id"]
    payment.stripe_charge_id = _charge_id(intent) or payment.stripe_charge_id
    payment.failure_message = None
    notify(
        s,
        [user.id],
        kind="payment",
        title=f"Top-up received: {money_text(payment.amount_cents, payment.currency)}",
        body="Your card payment succeeded and the amount was added to your credits.",
        dedupe_prefix=f"payment:{payment.id}:succeeded",
    )
    audit.record(
        s, SYSTEM, "payments.topup_succeeded", "payment", payment.id, new={"amount_cents": payment.amount_cents}
    )
    return "applied"


def _intent_failed(s: Session, intent: dict[str, Any], event_id: str) -> str:
    payment = _payment_for_intent(s, intent)
    if payment is None:
        return "ignored:invoice-payment" if intent.get("invoice") else "rejected:unknown-payment"
    if payment.kind != "topup":
        return "ignored:invoice-payment"
    if _user_with_customer(s, payment.user_id, intent.get("customer")) is None:
        return "rejected:customer-mismatch"
    if payment.status not in OPEN_STATUSES:
        return "ignored:already-settled"
    error = intent.get("last_payment_error") or {}
    payment.status = "failed"
    payment.stripe_payment_intent_id = intent["id"]
    payment.failure_message = f"{error.get('message') or 'The payment failed.'} Nothing was charged."
    notify(
        s,
        [payment.user_id],
        kind="payment",
        title=f"Top-up failed: {money_text(payment.amount_cents, payment.currency)}",
        body=payment.failure_message,
        dedupe_prefix=f"payment:{payment.id}:failed",
    )
    audit.record(s, SYSTEM, "payments.topup_failed", "payment", payment.id, note=payment.failure_message)
    return "applied"


# --- refunds


def _charge_refunded(s: Session, charge: dict[str, Any], event_id: str) -> str:
    charge_id = charge.get("id")
    intent_id = stripe_api.expandable_id(charge.get("payment_intent"))
    payment = None
    if intent_id:
        payment = s.scalar(select(Payment).where(Payment.stripe_payment_intent_id == intent_id).with_for_update())
    if payment is None and isinstance(charge_id, str):
        payment = s.scalar(select(Payment).where(Payment.stripe_charge_id == charge_id).with_for_update())
    if payment is None:
        return "rejected:unknown-payment"
    user = _user_with_customer(s, payment.user_id, charge.get("customer"))
    if user is None:
        return "rejected:customer-mismatch"
    refunded = charge.get("amount_refunded")
    if (
        not _amount_matches(charge.get("amount"), charge.get("currency"), payment.amount_cents, payment.currency)
        or not isinstance(refunded, int)
        or not 0 <= refunded <= payment.amount_cents
    ):
        return "rejected:amount-mismatch"
    if payment.status not in ("succeeded", "refunded"):
        raise EventOutOfOrder("The refunded payment has not been credited yet; deliver this event again later.")
    delta = refunded - payment.refunded_cents
    if delta <= 0:
        return "ignored:already-applied"
    credits = _lock_credits(s, user.id)
    from_credits = min(delta, max(0, credits.balance_cents))
    absorbed = delta - from_credits
    legs = [ledger.Leg(ledger.system_account(s, "external:stripe").id, delta)]
    if from_credits:
        legs.append(ledger.Leg(credits.id, -from_credits))
    if absorbed:
        # the credits were already spent: the marketplace carries the difference, no balance goes below zero
        legs.append(ledger.Leg(ledger.system_account(s, "platform:adjustments").id, -absorbed))
    memo = f"Refund to card of payment #{payment.id}"
    if absorbed:
        memo += f" ({money_text(absorbed, payment.currency)} carried by the marketplace: credits already spent)"
    ledger.post(
        s, kind="refund", idempotency_key=f"refund:{charge_id}:{refunded}", legs=legs, memo=memo, payment_id=payment.id
    )
    payment.refunded_cents = refunded
    if refunded == payment.amount_cents:
        payment.status = "refunded"
    notify(
        s,
        [user.id],
        kind="payment",
        title=f"Refund: {money_text(delta, payment.currency)} back to your card",
        body=f"{money_text(from_credits, payment.currency)} was taken from your credits for it.",
        dedupe_prefix=f"refund:{charge_id}:{refunded}",
    )
    audit.record(
        s,
        SYSTEM,
        "payments.refunded",
        "payment",
        payment.id,
        new={"refunded_cents": refunded, "from_credits": from_credits, "absorbed": absorbed},
    )
    return "applied"


# --- invoices and subscriptions


def _invoice_subscription_id(invoice: dict[str, Any]) -> str | None:
    sub = stripe_api.expandable_id(invoice.get("subscription"))
    if sub:
        return sub
    parent = invoice.get("parent") or {}
    return stripe_api.expandable_id((parent.get("subscription_details") or {}).get("subscription"))


def _subscription(s: Session, stripe_subscription_id: str | None, customer: Any) -> Subscription | str:
    """Our subscription row for a Stripe subscription id, or the outcome explaining why there is none."""
    if not stripe_subscription_id:
        return "ignored:not-a-subscription"
    sub = s.scalar(
        select(Subscription).where(Subscription.stripe_subscription_id == stripe_subscription_id).with_for_update()
    )
    if sub is None:
        # created a moment ago and not stored yet (the creating request is still finishing): deliver again
        pending = s.scalar(
            select(Subscription.id)
            .join(User, User.id == Subscription.user_id)
            .where(
                User.stripe_customer_id == stripe_api.expandable_id(customer),
                Subscription.stripe_subscription_id.is_(None),
                Subscription.status == "incomplete",
            )
            .limit(1)
        )
        if pending is not None:
            raise EventOutOfOrder("The subscription is still being created; deliver this event again later.")
        return "rejected:unknown-subscription"
    if _user_with_customer(s, sub.user_id, customer) is None:
        return "rejected:customer-mismatch"
    return sub


def _invoice_paid(s: Session, invoice: dict[str, Any], event_id: str) -> str:
    found = _subscription(s, _invoice_subscription_id(invoice), invoice.get("customer"))
    if isinstance(found, str):
        return found
    sub = found
    invoice_id = invoice.get("id")
    if not isinstance(invoice_id, str):
        return "rejected:no-invoice-id"
    amount = invoice.get("amount_paid")
    if not _amount_matches(amount, invoice.get("currency"), sub.monthly_cents, "USD"):
        return "rejected:amount-mismatch"
    if _recorded(s, f"invoice:{invoice_id}"):
        return "ignored:already-applied"
    deployment = s.get(Deployment, sub.deployment_id) if sub.deployment_id else None
    # lock order shared with metering: the fees account first, then credits
    fees = ledger.system_account(s, "platform:fees")
    s.execute(
        update(LedgerAccount).where(LedgerAccount.id == fees.id).values(balance_cents=LedgerAccount.balance_cents)
    )
    credits = _lock_credits(s, sub.user_id)
    start = epoch_to_utc(invoice.get("period_start")) or utcnow()
    end = epoch_to_utc(invoice.get("period_end"))
    lines = ((invoice.get("lines") or {}).get("data")) or []
    if lines and isinstance(lines[0].get("period"), dict):
        start = epoch_to_utc(lines[0]["period"].get("start")) or start
        end = epoch_to_utc(lines[0]["period"].get("end")) or end
    if end is None or end <= start:
        end = start + timedelta(days=30)
    name = deployment.name if deployment else "deployment"
    payment = Payment(
        user_id=sub.user_id,
        kind="invoice",
        stripe_invoice_id=invoice_id,
        stripe_payment_intent_id=stripe_api.expandable_id(invoice.get("payment_intent")),
        stripe_charge_id=stripe_api.expandable_id(invoice.get("charge")),
        amount_cents=amount,
        currency="USD",
        status="succeeded",
        succeeded_at=utcnow(),
    )
    s.add(payment)
    s.flush()
    clearing = ledger.system_account(s, "external:stripe")
    ledger.post(
        s,
        kind="subscription_payment",
        idempotency_key=f"invoice:{invoice_id}",
        legs=[ledger.Leg(clearing.id, -amount), ledger.Leg(credits.id, amount)],
        memo=f"Card payment: monthly commitment for {name}",
        payment_id=payment.id,
    )
    fee = platform_fee_cents(amount, deployment.platform_fee_bp if deployment else 0)
    legs = [ledger.Leg(credits.id, -amount)]
    if fee:
        legs.append(ledger.Leg(fees.id, fee))
    shares = metering.provider_shares(s, deployment.id, amount - fee) if deployment else [(None, amount - fee)]
    for provider_id, cents in shares:
        account = (
            ledger.provider_account(s, provider_id)
            if provider_id is not None
            else ledger.system_account(s, "platform:revenue")
        )
        legs.append(ledger.Leg(account.id, cents))
    ledger.post(
        s,
        kind="subscription",
        idempotency_key=f"submonth:{invoice_id}",
        legs=[leg for leg in legs if leg.amount_cents],
        memo=f"Monthly commitment for {name}: {start:%Y-%m-%d} to {end:%Y-%m-%d}",
        deployment_id=deployment.id if deployment else None,
        payment_id=payment.id,
    )
    sub.current_period_end = max(end, sub.current_period_end) if sub.current_period_end else end
    if sub.status in ("incomplete", "past_due", "trialing"):
        sub.status = "active"
    notify(
        s,
        [sub.user_id],
        kind="payment",
        title=f"Subscription paid: {money_text(amount)}",
        body=f"{name} is paid until {end:%Y-%m-%d %H:%M} UTC; metering does not charge it until then.",
        dedupe_prefix=f"invoice:{invoice_id}",
    )
    audit.record(
        s, SYSTEM, "payments.invoice_paid", "subscription", sub.id, new={"invoice": invoice_id, "amount_cents": amount}
    )
    return "applied"


def _invoice_failed(s: Session, invoice: dict[str, Any], event_id: str) -> str:
    found = _subscription(s, _invoice_subscription_id(invoice), invoice.get("customer"))
    if isinstance(found, str):
        return found
    sub = found
    if sub.status == "active":
        sub.status = "past_due"
    notify(
        s,
        [sub.user_id],
        kind="payment",
        title="Subscription payment failed",
        body="Stripe could not charge your default card for your monthly commitment. Update your card on Billing.",
        dedupe_prefix=f"invoice-failed:{invoice.get('id')}",
    )
    audit.record(s, SYSTEM, "payments.invoice_failed", "subscription", sub.id, note=str(invoice.get("id")))
    return "applied"


def _subscription_changed(s: Session, obj: dict[str, Any], event_id: str) -> str:
    found = _subscription(s, obj.get("id"), obj.get("customer"))
    if isinstance(found, str):
        return found
    sub = found
    status = obj.get("status")
    old = {"status": sub.status, "cancel_at_period_end": sub.cancel_at_period_end}
    if isinstance(status, str) and status in SUBSCRIPTION_STATUSES:
        sub.status = status
    if isinstance(obj.get("cancel_at_period_end"), bool):
        sub.cancel_at_period_end = obj["cancel_at_period_end"]
    audit.record(
        s,
        SYSTEM,
        "payments.subscription_updated",
        "subscription",
        sub.id,
        old=old,
        new={"status": sub.status, "cancel_at_period_end": sub.cancel_at_period_end},
    )
    return "applied"


def _subscription_deleted(s: Session, obj: dict[str, Any], event_id: str) -> str:
    found = _subscription(s, obj.get("id"), obj.get("customer"))
    if isinstance(found, str):
        return found
    sub = found
    if sub.status == "canceled":
        return "ignored:already-applied"
    old = sub.status
    sub.status = "canceled"
    if old != "incomplete_expired":
        paid = f" It stays paid until {sub.current_period_end:%Y-%m-%d} UTC." if sub.current_period_end else ""
        notify(
            s,
            [sub.user_id],
            kind="payment",
            title="Subscription ended",
            body=f"Your monthly commitment ended; metering charges the deployment hourly again after the paid month.{paid}",
            dedupe_prefix=f"subscription-ended:{sub.id}",
        )
    audit.record(s, SYSTEM, "payments.subscription_ended", "subscription", sub.id, old={"status": old})
    return "applied"


HANDLERS: dict[str, Callable[[Session, dict[str, Any], str], str]] = {
    "payment_intent.succeeded": _intent_succeeded,
    "payment_intent.payment_failed": _intent_failed,
    "charge.refunded": _charge_refunded,
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_deleted,
}
