"""The payments domain's errors: all of them are services.errors types, so pages and the API map them once."""

from __future__ import annotations

from services.errors import ExternalServiceError, PaymentsNotConfigured, ServiceError

__all__ = ["ExternalServiceError", "PaymentDeclined", "PaymentsNotConfigured", "WebhookRejected", "not_configured"]


class PaymentDeclined(ServiceError):
    """The card processor refused the card (declined, failed authentication); nothing was charged."""

    kind = "payment-declined"
    status = 402


class WebhookRejected(ServiceError):
    """A webhook delivery that is not provably from Stripe (signature, timestamp) or not an event at all."""

    kind = "bad-request"
    status = 400


def not_configured() -> PaymentsNotConfigured:
    return PaymentsNotConfigured(
        "Card payments are not configured on this marketplace (no Stripe keys). Ask the operator to set "
        "STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY."
    )
