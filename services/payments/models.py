"""Card payments through Stripe: payments (top-ups, invoices), subscriptions, processed webhook events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.db.base import Base, BigId, utcnow


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16), default="topup")  # topup | invoice
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(64))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    refunded_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    # created | requires_action | processing | succeeded | failed | canceled
    status: Mapped[str] = mapped_column(String(24), default="created")
    card_brand: Mapped[str | None] = mapped_column(String(24))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    failure_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    succeeded_at: Mapped[datetime | None]


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_plan_id: Mapped[str | None] = mapped_column(String(64))
    monthly_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(24), default="incomplete")
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    current_period_end: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StripeEvent(Base):
    """A processed webhook event; the primary key makes a second delivery a no-op."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32), default="applied")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
