"""The one money formatter and the one time formatter."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def money(cents: int | None, currency: str = "USD") -> str:
    """12345 -> "$123.45"; negative amounts get a leading minus."""
    if cents is None:
        return "—"
    sign = "-" if cents < 0 else ""
    amount = Decimal(abs(int(cents))) / 100
    sym = SYMBOLS.get(currency.upper())
    return f"{sign}{sym}{amount:,.2f}" if sym else f"{sign}{amount:,.2f} {currency.upper()}"


def zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(ts: datetime | None, tz: str | None) -> datetime | None:
    """A UTC time in the viewer's timezone."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(zone(tz))


def when(ts: datetime | None, tz: str | None, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    """A UTC time shown in the viewer's timezone."""
    t = local(ts, tz)
    return "—" if t is None else t.strftime(fmt)


def rate(millicents: int | None, currency: str = "USD") -> str:
    """A per-unit rate in millicents with the decimals it needs: 1250 -> "$0.0125", 8000 -> "$0.08"."""
    if millicents is None:
        return "—"
    amount = (Decimal(int(millicents)) / 100_000).normalize()
    if amount == amount.to_integral() or -amount.as_tuple().exponent < 2:
        amount = amount.quantize(Decimal("0.01"))
    sym = SYMBOLS.get(currency.upper())
    return f"{sym}{amount:,f}" if sym else f"{amount:,f} {currency.upper()}"
