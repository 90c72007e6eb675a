"""Hand-built Stripe events, signed like Stripe signs them (for types localstripe does not send, and attacks)."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import stripe

from services.config import reload_settings

SECRET = "whsec_test_marketplace_payments"
_n = itertools.count(1)


def configure_webhook_secret(monkeypatch, secret: str = SECRET) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", secret)
    reload_settings()


def event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    """An event body as Stripe would send it (compact JSON bytes)."""
    body = {
        "id": event_id or f"evt_test_{next(_n)}_{int(time.time() * 1000)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "api_version": "2017-08-15",
        "data": {"object": obj},
    }
    return json.dumps(body).encode()


def sign(payload: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header for these exact bytes."""
    return stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp)


def intent(pi_id: str, customer: str, amount: int, *, currency: str = "usd", **extra: Any) -> dict[str, Any]:
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "currency": currency,
        "customer": customer,
        "status": "succeeded",
        "latest_charge": f"ch_for_{pi_id}",
        "metadata": {},
        **extra,
    }


def charge(charge_id: str, pi_id: str, customer: str, amount: int, refunded: int) -> dict[str, Any]:
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_refunded": refunded,
        "currency": "usd",
        "customer": customer,
        "payment_intent": pi_id,
        "refunded": refunded == amount,
    }


def invoice(invoice_id: str, sub_id: str, customer: str, amount: int, start: int, end: int) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": customer,
        "subscription": sub_id,
        "amount_paid": amount,
        "currency": "usd",
        "status": "paid",
        "period_start": start,
        "period_end": end,
        "payment_intent": f"pi_for_{invoice_id}",
    }
