"""Amounts in messages written by the services (notifications, errors, receipts, CSV): integer cents in, text out.

The same output as dashboard.fmt.money ("$1,234.56", "-$0.05"), which the pages use; this one exists
because services/ may not import dashboard/.
"""

from __future__ import annotations

from decimal import Decimal

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money_text(cents: int, currency: str = "USD") -> str:
    """12345 -> "$123.45"; negative amounts get a leading minus."""
    sign = "-" if cents < 0 else ""
    amount = Decimal(abs(int(cents))) / 100
    symbol = SYMBOLS.get(currency.upper())
    return f"{sign}{symbol}{amount:,.2f}" if symbol else f"{sign}{amount:,.2f} {currency.upper()}"


def decimal_text(cents: int) -> str:
    """12345 -> "123.45", -5 -> "-0.05" (for CSV: a plain decimal number)."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{Decimal(abs(int(cents))) / 100:.2f}"
