"""Small UI helpers shared by the billing pages: reading a typed dollar amount, labelling payments."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

KIND_LABELS = {"topup": "Top-up", "invoice": "Subscription invoice"}


def parse_dollars(text: str) -> int:
    """ "25", "25.5", "$1,250.00" -> cents (int); ValueError with a message for anything else."""
    cleaned = (text or "").strip().replace("$", "").replace(",", "").replace(" ", "")
    if not cleaned:
        raise ValueError("Enter an amount, like 25 or 25.50.")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("Enter an amount in dollars, like 25 or 25.50.") from None
    if not amount.is_finite() or amount.as_tuple().exponent < -2:
        raise ValueError("Use at most two decimals (cents).")
    if abs(amount) > Decimal(10) ** 12:
        raise ValueError("That amount is far too large.")
    return int(amount * 100)
