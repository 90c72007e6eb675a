"""The only module that talks to Stripe: one small named function per call, plain dicts out.

The client comes from STRIPE_SECRET_KEY (and STRIPE_API_BASE, which tests point at localstripe), with
no automatic network retries: every caller decides what a failure means. SDK errors become the
services' own errors here (a declined card -> PaymentDeclined with Stripe's message; anything else ->
ExternalServiceError with a message a person can read; details go to the log, keys never do).

Shapes differ between API versions (localstripe answers in an old one): `expandable_id` reads an id
whether Stripe sent it as a string or as an expanded object.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import stripe

from services.config import get_settings
from services.errors import NotFound
from services.payments.errors import ExternalServiceError, PaymentDeclined, WebhookRejected, not_configured

log = logging.getLogger("marketplace.stripe")
T = TypeVar("T")
WEBHOOK_TOLERANCE_SECONDS = 300


@lru_cache(maxsize=4)
def _client_for(secret_key: str, api_base: str | None) -> stripe.StripeClient:
    base_addresses = {"api": api_base.rstrip("/")} if api_base else {}
    return stripe.StripeClient(secret_key, base_addresses=base_addresses, max_network_retries=0)  # type: ignore[arg-type]


def client() -> stripe.StripeClient:
    """The Stripe client for the configured key; PaymentsNotConfigured without one."""
    settings = get_settings()
    if not settings.stripe_secret_key:
        raise not_configured()
    return _client_for(settings.stripe_secret_key, settings.stripe_api_base)


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _call(what: str, fn: Callable[[], T], missing: str = "payment object") -> T:
    """Run one SDK call, translating its errors (a 404 becomes NotFound(`missing`))."""
    try:
        return fn()
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise NotFound(missing) from None
        log.warning("stripe %s refused: %s", what, exc.user_message or exc)
        raise ExternalServiceError(
            "The card processor refused the request" + (f": {exc.user_message}" if exc.user_message else ".")
        ) from None
    except stripe.CardError as exc:
        log.info("stripe %s: card refused (%s)", what, exc.code)
        raise PaymentDeclined(exc.user_message or "Your card was declined.", code=exc.code) from None
    except stripe.AuthenticationError:
        log.error("stripe %s: the secret key was refused", what)
        raise ExternalServiceError("Card payments are misconfigured: Stripe refused the marketplace's key.") from None
    except stripe.APIConnectionError as exc:
        log.warning("stripe %s: cannot connect: %s", what, exc)
        raise ExternalServiceError("The card processor could not be reached. Please try again.") from None
    except stripe.StripeError as exc:
        log.warning("stripe %s failed: %s %s", what, exc.http_status, exc.user_message or exc)
        raise ExternalServiceError(
            "The card processor refused the request" + (f": {exc.user_message}" if exc.user_message else ".")
        ) from None


def expandable_id(value: Any) -> str | None:
    """An object's id whether Stripe sent the id or the expanded object."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("id")
    return getattr(value, "id", None)


# --- customers


def create_customer(*, email: str | None, name: str, user_id: int) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "metadata": {"user_id": str(user_id)}}
    if email:
        params["email"] = email
    # the same key for the same user: a retried creation returns the first customer (on Stripe; localstripe
    # ignores idempotency keys)
    return _plain(
        _call(
            "create customer",
            lambda: client().v1.customers.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"marketplace-customer-{user_id}"},
            ),
        )
    )


def retrieve_customer(customer_id: str) -> dict[str, Any]:
    return _plain(_call("retrieve customer", lambda: client().v1.customers.retrieve(customer_id)))


def set_default_payment_method(customer_id: str, payment_method_id: str | None) -> dict[str, Any]:
    params = {"invoice_settings": {"default_payment_method": payment_method_id or ""}}
    return _plain(
        _call(
            "set default payment method",
            lambda: client().v1.customers.update(customer_id, params=params),  # type: ignore[arg-type]
        )
    )


# --- cards (payment methods) and setup intents


def create_setup_intent(*, customer_id: str, user_id: int) -> dict[str, Any]:
    params = {
        "customer": customer_id,
        "payment_method_types": ["card"],
        "usage": "off_session",
        "metadata": {"user_id": str(user_id)},
    }
    return _plain(
        _call("create setup intent", lambda: client().v1.setup_intents.create(params=params))  # type: ignore[arg-type]
    )


def retrieve_setup_intent(setup_intent_id: str) -> dict[str, Any]:
    return _plain(
        _call("retrieve setup intent", lambda: client().v1.setup_intents.retrieve(setup_intent_id), "card setup")
    )


def retrieve_payment_method(payment_method_id: str) -> dict[str, Any]:
    return _plain(
        _call("retrieve payment method", lambda: client().v1.payment_methods.retrieve(payment_method_id), "card")
    )


def attach_payment_method(payment_method_id: str, customer_id: str) -> dict[str, Any]:
    return _plain(
        _call(
            "attach payment method",
            lambda: client().v1.payment_methods.attach(payment_method_id, params={"customer": customer_id}),
        )
    )


def detach_payment_method(payment_method_id: str) -> dict[str, Any]:
    return _plain(_call("detach payment method", lambda: client().v1.payment_methods.detach(payment_method_id), "card"))


def list_cards(customer_id: str) -> list[dict[str, Any]]:
    result = _call(
        "list payment methods",
        lambda: client().v1.payment_methods.list(params={"customer": customer_id, "type": "card", "limit": 100}),
    )
    return [_plain(pm) for pm in result.data]


# --- payment intents (top-ups)


def create_payment_intent(
    *, amount_cents: int, currency: str, customer_id: str, payment_method_id: str, metadata: dict[str, str], key: str
) -> dict[str, Any]:
    params = {
        "amount": amount_cents,
        "currency": currency.lower(),
        "customer": customer_id,
        "payment_method": payment_method_id,
        "payment_method_types": ["card"],
        "metadata": metadata,
    }
    return _plain(
        _call(
            "create payment intent",
            lambda: client().v1.payment_intents.create(params=params, options={"idempotency_key": key}),  # type: ignore[arg-type]
        )
    )


def confirm_payment_intent(payment_intent_id: str) -> dict[str, Any]:
    return _plain(_call("confirm payment intent", lambda: client().v1.payment_intents.confirm(payment_intent_id)))


def retrieve_payment_intent(payment_intent_id: str) -> dict[str, Any]:
    return _plain(_call("retrieve payment intent", lambda: client().v1.payment_intents.retrieve(payment_intent_id)))


def cancel_payment_intent(payment_intent_id: str) -> dict[str, Any]:
    return _plain(_call("cancel payment intent", lambda: client().v1.payment_intents.cancel(payment_intent_id)))


# --- refunds


def create_refund(*, payment_intent_id: str, amount_cents: int, key: str, reason: str) -> dict[str, Any]:
    params = {"payment_intent": payment_intent_id, "amount": amount_cents, "metadata": {"reason": reason[:450]}}
    return _plain(
        _call(
            "create refund",
            lambda: client().v1.refunds.create(params=params, options={"idempotency_key": key}),  # type: ignore[arg-type]
        )
    )


def retrieve_charge(charge_id: str) -> dict[str, Any]:
    return _plain(_call("retrieve charge", lambda: client().v1.charges.retrieve(charge_id)))


# --- plans and subscriptions (Plans rather than Prices: localstripe knows Plans only, and Stripe still accepts them)


def create_monthly_plan(
    *, amount_cents: int, currency: str, product_name: str, metadata: dict[str, str]
) -> dict[str, Any]:
    params = {
        "amount": amount_cents,
        "currency": currency.lower(),
        "interval": "month",
        "product": {"name": product_name},
        "metadata": metadata,
    }
    return _plain(_call("create plan", lambda: client().v1.plans.create(params=params)))  # type: ignore[arg-type]


def create_subscription(*, customer_id: str, plan_id: str, metadata: dict[str, str], key: str) -> dict[str, Any]:
    params = {"customer": customer_id, "items": [{"plan": plan_id}], "metadata": metadata}
    return _plain(
        _call(
            "create subscription",
            lambda: client().v1.subscriptions.create(params=params, options={"idempotency_key": key}),  # type: ignore[arg-type]
        )
    )


def cancel_subscription_at_period_end(subscription_id: str) -> dict[str, Any]:
    return _plain(
        _call(
            "cancel subscription at period end",
            lambda: client().v1.subscriptions.update(subscription_id, params={"cancel_at_period_end": True}),
        )
    )


def cancel_subscription_now(subscription_id: str) -> dict[str, Any]:
    return _plain(_call("cancel subscription", lambda: client().v1.subscriptions.cancel(subscription_id)))


# --- webhooks


def verify_event(payload: bytes, signature_header: str | None, secret: str) -> dict[str, Any]:
    """The event in `payload` if `signature_header` proves Stripe signed these exact bytes with `secret`
    within the tolerance; WebhookRejected otherwise. The payload is parsed only after the check."""
    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        text = str(exc)
        reason = "its timestamp is outside the tolerance" if "tolerance" in text.lower() else "the signature is invalid"
        raise WebhookRejected(f"Webhook refused: {reason}.") from None
    try:
        event = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("Webhook refused: the body is not JSON.") from None
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise WebhookRejected("Webhook refused: the body is not a Stripe event.")
    return event
