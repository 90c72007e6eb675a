"""Card payments: a Stripe customer per user, saved cards, top-ups and monthly subscriptions.

Money moves in the ledger only when Stripe says it moved, through a verified webhook
(services/payments/webhooks.py), never because a browser or an API client says so. The functions
here prepare and start payments and keep the `payments` / `subscriptions` rows in step.

Stripe is called outside database transactions (no lock is held while the network answers): a
function writes what it is about to do in one short transaction, calls Stripe, and records the answer
in another. A status set by a webhook is never moved back by a late answer here.

Subscriptions: a user commits one of their deployments for a month at the operator's term discount
(`PricingVersion.term_discount_bp` in force): monthly price = hourly price x 730 h, less the discount,
rounded half-up to the cent. A Stripe Plan (localstripe knows Plans, not Prices) is created per
subscription. Each paid invoice pays the deployment's month: the invoice's money is credited and at
once spent on that month (the provider and the platform share it like usage), and metering does not
charge the deployment while it is paid through (services/metering.py). Cancelling stops renewal at the
end of the paid period.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select, update

from services.audit import service as audit
from services.auth.identity import Identity
from services.auth.permissions import Action
from services.config import get_settings
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.deployments.models import Deployment
from services.errors import Conflict, InvalidInput, NotFound, ServiceError
from services.ledger.models import LedgerAccount
from services.payments import stripe_api
from services.payments.errors import PaymentDeclined, not_configured
from services.payments.models import Payment, Subscription
from services.payments.money import money_text
from services.pricing import service as pricing
from services.settings import service as settings_service
from services.users.models import User

CURRENCY = "USD"
OPEN_STATUSES = ("created", "requires_action", "processing")
LIVE_SUBSCRIPTION_STATUSES = ("incomplete", "active", "trialing", "past_due")
PAYMENT_METHOD_ID = r"^(pm|card|src)_[A-Za-z0-9_]{1,200}$"


# --- shapes


@dataclass(frozen=True)
class StripePublicConfig:
    publishable_key: str
    js_url: str


@dataclass(frozen=True)
class BillingSummary:
    balance_cents: int
    currency: str
    low_balance_threshold_cents: int
    topup_min_cents: int
    topup_max_cents: int
    cards_enabled: bool


@dataclass(frozen=True)
class CardInfo:
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool

    @property
    def label(self) -> str:
        return f"{self.brand.title()} •••• {self.last4} (expires {self.exp_month:02d}/{self.exp_year})"


@dataclass(frozen=True)
class SetupIntentInfo:
    id: str
    client_secret: str


@dataclass(frozen=True)
class TopupResult:
    payment_id: int
    status: str  # requires_action | processing | succeeded | failed | canceled
    amount_cents: int
    message: str
    client_secret: str | None = None  # only while the bank asks the person to confirm (3-D Secure)


@dataclass(frozen=True)
class SubscriptionOffer:
    deployment_id: int
    deployment_name: str
    price_per_hour_cents: int
    list_monthly_cents: int
    term_discount_bp: int
    monthly_cents: int


@dataclass(frozen=True)
class SubscriptionInfo:
    id: int
    deployment_id: int | None
    deployment_name: str
    monthly_cents: int
    status: str
    cancel_at_period_end: bool
    paid_through: datetime | None
    created_at: datetime


class TopupInput(BaseModel):
    amount_cents: int = Field(strict=True, description="Amount in cents, within the operator's top-up limits")
    payment_method_id: str = Field(pattern=PAYMENT_METHOD_ID, description="A saved card (pm_...)")


class SetupIntentRef(BaseModel):
    setup_intent_id: str = Field(pattern=r"^seti_[A-Za-z0-9_]{1,200}$")


class CardRef(BaseModel):
    payment_method_id: str = Field(pattern=PAYMENT_METHOD_ID)


# --- configuration and balance


def cards_enabled() -> bool:
    """True when Stripe keys are configured (otherwise every card function says "not configured")."""
    return get_settings().stripe_enabled


def public_config() -> StripePublicConfig:
    """What the browser needs to load Stripe.js; PaymentsNotConfigured without keys."""
    settings = get_settings()
    if not settings.stripe_enabled:
        raise not_configured()
    return StripePublicConfig(publishable_key=settings.stripe_publishable_key or "", js_url=settings.stripe_js_url)


def _require_cards(actor: Identity) -> None:
    actor.require(Action.BILLING_MANAGE_OWN)
    if not cards_enabled():
        raise not_configured()


def validate_input(model: type[BaseModel], data: Any) -> Any:
    try:
        return data if isinstance(data, model) else model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput.from_pydantic(exc) from exc


def balance_cents(uow: UnitOfWork, actor: Identity) -> int:
    """The actor's credits (cached ledger balance, exact by construction)."""
    actor.require(Action.BILLING_MANAGE_OWN)
    with uow:
        value = uow.session.scalar(select(LedgerAccount.balance_cents).where(LedgerAccount.user_id == actor.user_id))
    return int(value or 0)


def summary(uow: UnitOfWork, actor: Identity) -> BillingSummary:
    """Balance, limits and whether cards work, for the billing page."""
    settings = settings_service.get(uow)
    return BillingSummary(
        balance_cents=balance_cents(uow, actor),
        currency=CURRENCY,
        low_balance_threshold_cents=settings.low_balance_threshold_cents,
        topup_min_cents=settings.topup_min_cents,
        topup_max_cents=settings.topup_max_cents,
        cards_enabled=cards_enabled(),
    )


# --- the Stripe customer


def ensure_customer(uow: UnitOfWork, actor: Identity) -> str:
    """The actor's Stripe customer id, created once and stored (two first uses at once keep one)."""
    _require_cards(actor)
    with uow:
        user = uow.session.get(User, actor.user_id)
        if user is None:
            raise NotFound("user", actor.user_id)
        if user.stripe_customer_id:
            return user.stripe_customer_id
        email, name = user.email, user.display_name or user.email or user.subject
    customer = stripe_api.create_customer(email=email, name=name, user_id=actor.user_id)
    with uow:
        s = uow.session
        won = s.execute(
            update(User)
            .where(User.id == actor.user_id, User.stripe_customer_id.is_(None))
            .values(stripe_customer_id=customer["id"])
        ).rowcount
        if won:
            audit.record(s, actor, "payments.customer_created", "user", actor.user_id, new={"customer": customer["id"]})
        uow.commit()
        stored = s.scalar(select(User.stripe_customer_id).where(User.id == actor.user_id))
    return stored or customer["id"]


def _customer_if_any(uow: UnitOfWork, actor: Identity) -> str | None:
    with uow:
        return uow.session.scalar(select(User.stripe_customer_id).where(User.id == actor.user_id))


# --- cards


def _card(pm: dict[str, Any], default_id: str | None) -> CardInfo:
    card = pm.get("card") or {}
    return CardInfo(
        id=pm["id"],
        brand=str(card.get("brand") or "card"),
        last4=str(card.get("last4") or "????"),
        exp_month=int(card.get("exp_month") or 0),
        exp_year=int(card.get("exp_year") or 0),
        is_default=pm["id"] == default_id,
    )


def _default_card_id(customer_id: str) -> str | None:
    customer = stripe_api.retrieve_customer(customer_id)
    return stripe_api.expandable_id((customer.get("invoice_settings") or {}).get("default_payment_method"))


def _own_card(customer_id: str, payment_method_id: str) -> dict[str, Any]:
    """The card if it is attached to this customer; NotFound for anyone else's (or no such card)."""
    pm = stripe_api.retrieve_payment_method(payment_method_id)
    if stripe_api.expandable_id(pm.get("customer")) != customer_id or pm.get("type") != "card":
        raise NotFound("card", payment_method_id)
    return pm


def start_card_setup(uow: UnitOfWork, actor: Identity) -> SetupIntentInfo:
    """A fresh SetupIntent for the actor's customer: the browser confirms it with the card the person types."""
    customer_id = ensure_customer(uow, actor)
    intent = stripe_api.create_setup_intent(customer_id=customer_id, user_id=actor.user_id)
    return SetupIntentInfo(id=intent["id"], client_secret=intent["client_secret"])


def finish_card_setup(uow: UnitOfWork, actor: Identity, data: Any) -> CardInfo:
    """Save the card of a SetupIntent the browser says it confirmed, after checking with Stripe that it did,
    for this person; the first card becomes the default."""
    ref: SetupIntentRef = validate_input(SetupIntentRef, data)
    customer_id = ensure_customer(uow, actor)
    intent = stripe_api.retrieve_setup_intent(ref.setup_intent_id)
    if stripe_api.expandable_id(intent.get("customer")) != customer_id:
        raise NotFound("card setup", ref.setup_intent_id)
    if intent.get("status") != "succeeded" or not intent.get("payment_method"):
        raise PaymentDeclined("The card was not confirmed, so it was not saved. Check the details and try again.")
    pm = stripe_api.retrieve_payment_method(stripe_api.expandable_id(intent["payment_method"]) or "")
    if stripe_api.expandable_id(pm.get("customer")) != customer_id:
        pm = stripe_api.attach_payment_method(pm["id"], customer_id)
    new = pm.get("card") or {}
    for other in stripe_api.list_cards(customer_id):
        same = other.get("card") or {}
        if (
            other["id"] != pm["id"]
            and new.get("fingerprint")
            and all(same.get(k) == new.get(k) for k in ("fingerprint", "exp_month", "exp_year"))
        ):
            stripe_api.detach_payment_method(pm["id"])  # keep one copy of a card
            raise Conflict(f"This card is already saved ({_card(other, None).label}).", field="card")
    default_id = _default_card_id(customer_id)
    if default_id is None:
        stripe_api.set_default_payment_method(customer_id, pm["id"])
        default_id = pm["id"]
    card = _card(pm, default_id)
    with uow:
        audit.record(
            uow.session, actor, "payments.card_added", "card", card.id, new={"brand": card.brand, "last4": card.last4}
        )
        uow.commit()
    return card


def list_cards(uow: UnitOfWork, actor: Identity) -> list[CardInfo]:
    """The actor's saved cards (brand, last 4, expiry), the default first."""
    _require_cards(actor)
    customer_id = _customer_if_any(uow, actor)
    if not customer_id:
        return []
    default_id = _default_card_id(customer_id)
    cards = [_card(pm, default_id) for pm in stripe_api.list_cards(customer_id)]
    return sorted(cards, key=lambda c: (not c.is_default, c.brand, c.last4, c.id))


def set_default_card(uow: UnitOfWork, actor: Identity, data: Any) -> None:
    """Make one of the actor's cards the one top-ups and subscriptions use by default."""
    ref: CardRef = validate_input(CardRef, data)
    _require_cards(actor)
    customer_id = _customer_if_any(uow, actor)
    if not customer_id:
        raise NotFound("card", ref.payment_method_id)
    pm = _own_card(customer_id, ref.payment_method_id)
    stripe_api.set_default_payment_method(customer_id, pm["id"])
    with uow:
        audit.record(uow.session, actor, "payments.card_default", "card", pm["id"])
        uow.commit()


def remove_card(uow: UnitOfWork, actor: Identity, data: Any) -> None:
    """Detach one of the actor's cards; if it was the default, another saved card (if any) becomes it."""
    ref: CardRef = validate_input(CardRef, data)
    _require_cards(actor)
    customer_id = _customer_if_any(uow, actor)
    if not customer_id:
        raise NotFound("card", ref.payment_method_id)
    pm = _own_card(customer_id, ref.payment_method_id)
    was_default = _default_card_id(customer_id) == pm["id"]
    stripe_api.detach_payment_method(pm["id"])
    if was_default:
        rest = stripe_api.list_cards(customer_id)
        stripe_api.set_default_payment_method(customer_id, rest[0]["id"] if rest else None)
    with uow:
        card = pm.get("card") or {}
        audit.record(
            uow.session,
            actor,
            "payments.card_removed",
            "card",
            pm["id"],
            old={"brand": card.get("brand"), "last4": card.get("last4")},
        )
        uow.commit()


# --- top-ups


def _set_status(uow: UnitOfWork, payment_id: int, status: str, **values: Any) -> None:
    """Move an open payment to `status`; a payment a webhook already settled is left alone."""
    with uow:
        uow.session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.status.in_(OPEN_STATUSES))
            .values(status=status, **values)
        )
        uow.commit()


def _result(uow: UnitOfWork, payment_id: int, client_secret: str | None = None) -> TopupResult:
    with uow:
        p = uow.session.get(Payment, payment_id)
        status, amount, failure = p.status, p.amount_cents, p.failure_message
    messages = {
        "created": "Starting the payment…",
        "requires_action": "Your bank asks you to confirm this payment (3-D Secure).",
        "processing": (
            f"Payment of {money_text(amount)} accepted. Your credits appear as soon as Stripe confirms it "
            "(usually within seconds)."
        ),
        "succeeded": f"Payment received: {money_text(amount)} added to your credits.",
        "refunded": "This payment was refunded.",
        "failed": failure or "The payment failed; nothing was charged.",
        "canceled": failure or "The payment was cancelled; nothing was charged.",
    }
    return TopupResult(
        payment_id=payment_id,
        status=status,
        amount_cents=amount,
        message=messages.get(status, status),
        client_secret=client_secret if status == "requires_action" else None,
    )


def _apply_intent_state(uow: UnitOfWork, payment_id: int, intent: dict[str, Any]) -> TopupResult:
    """Record what Stripe says about a top-up's PaymentIntent (never the ledger: the webhook does that)."""
    status = intent.get("status")
    if status == "requires_action":
        _set_status(uow, payment_id, "requires_action")
        return _result(uow, payment_id, intent.get("client_secret"))
    if status in ("succeeded", "processing"):
        _set_status(uow, payment_id, "processing")
    elif status == "canceled":
        _set_status(uow, payment_id, "canceled")
    elif status == "requires_payment_method":
        # declined, or 3-D Secure failed or was cancelled: end the intent so it can never be completed later
        error = intent.get("last_payment_error") or {}
        if error.get("code") == "payment_intent_authentication_failure":
            message = "3-D Secure authentication was not completed, so nothing was charged."
        else:
            message = error.get("message") or "Your card was declined; nothing was charged."
        # already ended, or Stripe unreachable: the payment is failed either way (and logged by stripe_api)
        with contextlib.suppress(ServiceError):
            stripe_api.cancel_payment_intent(intent["id"])
        _set_status(uow, payment_id, "canceled" if "3-D Secure" in message else "failed", failure_message=message)
    return _result(uow, payment_id)


@dataclass(frozen=True)
class _PaymentState:
    status: str
    intent_id: str | None


def _own_payment(uow: UnitOfWork, actor: Identity, payment_id: int) -> _PaymentState:
    """The state of one of the actor's payments; NotFound for anyone else's."""
    with uow:
        payment = uow.session.get(Payment, payment_id)
        if payment is None or payment.user_id != actor.user_id:
            raise NotFound("payment", payment_id)
        return _PaymentState(payment.status, payment.stripe_payment_intent_id)


def create_topup(uow: UnitOfWork, actor: Identity, data: Any) -> TopupResult:
    """Charge one of the actor's saved cards for an amount within the operator's limits. Credits land when
    Stripe's webhook says the payment succeeded; a declined card raises PaymentDeclined and credits nothing."""
    _require_cards(actor)
    form: TopupInput = validate_input(TopupInput, data)
    limits = settings_service.get(uow)
    if not limits.topup_min_cents <= form.amount_cents <= limits.topup_max_cents:
        raise InvalidInput(
            f"Choose an amount between {money_text(limits.topup_min_cents)} and {money_text(limits.topup_max_cents)}.",
            field="amount_cents",
        )
    customer_id = ensure_customer(uow, actor)
    pm = _own_card(customer_id, form.payment_method_id)
    card = pm.get("card") or {}
    with uow:
        s = uow.session
        payment = Payment(
            user_id=actor.user_id,
            kind="topup",
            amount_cents=form.amount_cents,
            currency=CURRENCY,
            status="created",
            card_brand=str(card.get("brand") or "")[:24] or None,
            card_last4=str(card.get("last4") or "")[:4] or None,
        )
        s.add(payment)
        s.flush()
        payment_id = payment.id
        audit.record(s, actor, "payments.topup_started", "payment", payment_id, new={"amount_cents": form.amount_cents})
        uow.commit()
    try:
        intent = stripe_api.create_payment_intent(
            amount_cents=form.amount_cents,
            currency=CURRENCY,
            customer_id=customer_id,
            payment_method_id=pm["id"],
            metadata={"payment_id": str(payment_id), "user_id": str(actor.user_id), "kind": "topup"},
            key=f"topup-{payment_id}",
        )
    except Exception as exc:
        _set_status(uow, payment_id, "failed", failure_message=getattr(exc, "message", "Could not start the payment."))
        raise
    with uow:
        uow.session.execute(
            update(Payment).where(Payment.id == payment_id).values(stripe_payment_intent_id=intent["id"])
        )
        uow.commit()
    try:
        intent = stripe_api.confirm_payment_intent(intent["id"])
    except PaymentDeclined as exc:
        _set_status(uow, payment_id, "failed", failure_message=f"{exc.message} Nothing was charged.")
        raise PaymentDeclined(f"{exc.message} Nothing was charged; no credits were added.", field="card") from None
    return _apply_intent_state(uow, payment_id, intent)


def complete_topup(uow: UnitOfWork, actor: Identity, payment_id: int) -> TopupResult:
    """After the browser's 3-D Secure step: read the PaymentIntent from Stripe (the browser's word is only a
    hint) and record its state; an unfinished or failed authentication ends the payment with nothing charged."""
    _require_cards(actor)
    payment = _own_payment(uow, actor, payment_id)
    if payment.status not in OPEN_STATUSES or not payment.intent_id:
        return _result(uow, payment_id)
    return _apply_intent_state(uow, payment_id, stripe_api.retrieve_payment_intent(payment.intent_id))


def cancel_topup(uow: UnitOfWork, actor: Identity, payment_id: int) -> TopupResult:
    """Abandon a top-up still waiting for the person's confirmation; nothing is charged."""
    _require_cards(actor)
    payment = _own_payment(uow, actor, payment_id)
    if payment.status in ("created", "requires_action") and payment.intent_id:
        intent = stripe_api.retrieve_payment_intent(payment.intent_id)
        if intent.get("status") in ("requires_action", "requires_payment_method", "requires_confirmation"):
            stripe_api.cancel_payment_intent(payment.intent_id)
            _set_status(
                uow, payment_id, "canceled", failure_message="Cancelled before confirmation; nothing was charged."
            )
            with uow:
                audit.record(uow.session, actor, "payments.topup_cancelled", "payment", payment_id)
                uow.commit()
        else:
            return _apply_intent_state(uow, payment_id, intent)
    return _result(uow, payment_id)


def topup_status(uow: UnitOfWork, actor: Identity, payment_id: int) -> TopupResult:
    """Where one of the actor's top-ups stands (as recorded; webhooks keep it current)."""
    actor.require(Action.BILLING_MANAGE_OWN)
    _own_payment(uow, actor, payment_id)
    return _result(uow, payment_id)


# --- subscriptions


def _monthly_price(price_per_hour_cents: int, discount_bp: int) -> int:
    return (price_per_hour_cents * pricing.HOURS_PER_MONTH * (10_000 - discount_bp) + 5_000) // 10_000


def _offer(s, deployment: Deployment) -> SubscriptionOffer:
    try:
        discount = pricing.current(s).term_discount_bp
    except NotFound:
        discount = 0
    list_monthly = deployment.price_per_hour_cents * pricing.HOURS_PER_MONTH
    return SubscriptionOffer(
        deployment_id=deployment.id,
        deployment_name=deployment.name,
        price_per_hour_cents=deployment.price_per_hour_cents,
        list_monthly_cents=list_monthly,
        term_discount_bp=discount,
        monthly_cents=_monthly_price(deployment.price_per_hour_cents, discount),
    )


def _live_or_paid(s, deployment_id: int) -> Subscription | None:
    now = utcnow()
    return s.scalar(
        select(Subscription)
        .where(
            Subscription.deployment_id == deployment_id,
            Subscription.status.in_(LIVE_SUBSCRIPTION_STATUSES)
            | (Subscription.current_period_end.is_not(None) & (Subscription.current_period_end > now)),
        )
        .limit(1)
    )


def subscription_offers(uow: UnitOfWork, actor: Identity) -> list[SubscriptionOffer]:
    """The actor's running deployments that could be committed for a month, with the discounted price."""
    actor.require(Action.BILLING_MANAGE_OWN)
    with uow:
        s = uow.session
        deployments = s.scalars(
            select(Deployment)
            .where(
                Deployment.owner_user_id == actor.user_id,
                Deployment.status == "running",
                Deployment.price_per_hour_cents > 0,
            )
            .order_by(Deployment.name)
            .limit(200)
        ).all()
        return [_offer(s, d) for d in deployments if _live_or_paid(s, d.id) is None]


def _subscription_info(s, sub: Subscription) -> SubscriptionInfo:
    name = ""
    if sub.deployment_id:
        name = s.scalar(select(Deployment.name).where(Deployment.id == sub.deployment_id)) or ""
    return SubscriptionInfo(
        id=sub.id,
        deployment_id=sub.deployment_id,
        deployment_name=name,
        monthly_cents=sub.monthly_cents,
        status=sub.status,
        cancel_at_period_end=sub.cancel_at_period_end,
        paid_through=sub.current_period_end,
        created_at=sub.created_at,
    )


def list_subscriptions(uow: UnitOfWork, actor: Identity) -> list[SubscriptionInfo]:
    """The actor's subscriptions, newest first."""
    actor.require(Action.BILLING_MANAGE_OWN)
    with uow:
        s = uow.session
        subs = s.scalars(
            select(Subscription)
            .where(Subscription.user_id == actor.user_id)
            .order_by(Subscription.created_at.desc(), Subscription.id.desc())
            .limit(200)
        ).all()
        return [_subscription_info(s, sub) for sub in subs]


class SubscribeInput(BaseModel):
    deployment_id: int = Field(strict=True, ge=1)


def subscribe(uow: UnitOfWork, actor: Identity, data: Any) -> SubscriptionInfo:
    """Commit one of the actor's running deployments for monthly payments at the term discount, paid by the
    default card. The month is paid (and metering pauses for it) when Stripe's invoice.paid arrives."""
    _require_cards(actor)
    form: SubscribeInput = validate_input(SubscribeInput, data)
    customer_id = ensure_customer(uow, actor)
    if _default_card_id(customer_id) is None:
        raise InvalidInput("Add a card first: subscriptions are paid with your default card.", field="card")
    with uow:
        s = uow.session
        deployment = s.get(Deployment, form.deployment_id)
        if deployment is None or deployment.owner_user_id != actor.user_id:
            raise NotFound("deployment", form.deployment_id)
        if deployment.status != "running" or deployment.price_per_hour_cents <= 0:
            raise InvalidInput("Only a running, priced deployment can be committed for a month.", field="deployment_id")
        if _live_or_paid(s, deployment.id) is not None:
            raise Conflict("This deployment already has a subscription.", field="deployment_id")
        offer = _offer(s, deployment)
        sub = Subscription(
            user_id=actor.user_id, deployment_id=deployment.id, monthly_cents=offer.monthly_cents, status="incomplete"
        )
        s.add(sub)
        s.flush()
        sub_id = sub.id
        audit.record(
            s,
            actor,
            "payments.subscription_started",
            "subscription",
            sub_id,
            new={"deployment_id": deployment.id, "monthly_cents": offer.monthly_cents},
        )
        uow.commit()
    metadata = {"subscription_id": str(sub_id), "user_id": str(actor.user_id), "deployment_id": str(form.deployment_id)}
    try:
        plan = stripe_api.create_monthly_plan(
            amount_cents=offer.monthly_cents,
            currency=CURRENCY,
            product_name=f"{offer.deployment_name}: monthly commitment",
            metadata=metadata,
        )
        stripe_sub = stripe_api.create_subscription(
            customer_id=customer_id, plan_id=plan["id"], metadata=metadata, key=f"subscription-{sub_id}"
        )
    except Exception as exc:
        _end_subscription_row(uow, sub_id, "incomplete_expired")
        if isinstance(exc, PaymentDeclined):
            raise PaymentDeclined(f"{exc.message} No subscription was created.", field="card") from None
        raise
    with uow:
        uow.session.execute(
            update(Subscription)
            .where(Subscription.id == sub_id)
            .values(stripe_subscription_id=stripe_sub["id"], stripe_plan_id=plan["id"])
        )
        uow.commit()
    if stripe_sub.get("status") not in ("active", "trialing"):
        # the first invoice was not paid (declined, or the bank wants 3-D Secure): do not leave it dangling
        try:
            stripe_api.cancel_subscription_now(stripe_sub["id"])
        finally:
            _end_subscription_row(uow, sub_id, "incomplete_expired")
        raise PaymentDeclined(
            "The first month's payment did not go through with your default card, so no subscription was created.",
            field="card",
        )
    with uow:
        s = uow.session
        # a webhook may already have moved it on (paid, or even cancelled): only the creation state is replaced
        s.execute(
            update(Subscription)
            .where(Subscription.id == sub_id, Subscription.status == "incomplete")
            .values(status=stripe_sub["status"])
        )
        uow.commit()
        return _subscription_info(s, s.get(Subscription, sub_id))


def _end_subscription_row(uow: UnitOfWork, sub_id: int, status: str) -> None:
    with uow:
        uow.session.execute(update(Subscription).where(Subscription.id == sub_id).values(status=status))
        uow.commit()


def cancel_subscription(uow: UnitOfWork, actor: Identity, subscription_id: int) -> SubscriptionInfo:
    """Stop renewing one of the actor's subscriptions at the end of the paid period (the month stays paid)."""
    _require_cards(actor)
    with uow:
        sub = uow.session.get(Subscription, subscription_id)
        if sub is None or sub.user_id != actor.user_id:
            raise NotFound("subscription", subscription_id)
        if sub.status not in LIVE_SUBSCRIPTION_STATUSES or not sub.stripe_subscription_id:
            raise Conflict("This subscription is not active.")
        stripe_id = sub.stripe_subscription_id
    stripe_sub = stripe_api.cancel_subscription_at_period_end(stripe_id)
    with uow:
        s = uow.session
        sub = s.get(Subscription, subscription_id)
        sub.cancel_at_period_end = bool(stripe_sub.get("cancel_at_period_end", True))
        audit.record(s, actor, "payments.subscription_cancelled", "subscription", subscription_id, note="at period end")
        uow.commit()
        return _subscription_info(s, sub)


def epoch_to_utc(value: Any) -> datetime | None:
    """Stripe's epoch seconds as an aware UTC datetime."""
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(int(value), tz=UTC)
    return None
