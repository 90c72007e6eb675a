"""Double-entry ledger: accounts, transactions and entries (integer cents, signed).

A transaction's entries sum to zero. An account's balance is the sum of its entries;
`balance_cents` caches it, updated in the same statement as each posting and checked by
`ledger.service.verify_balances`.
Sign convention: a positive entry increases the account's balance as its owner sees it
(a user's credits go up on top-up; the external "stripe clearing" account goes negative).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.db.base import Base, BigId, utcnow

ACCOUNT_KINDS = (
    "user_credits",  # one per user
    "provider_payable",  # one per provider: what the marketplace owes them
    "platform_fees",  # the marketplace's cut
    "revenue",  # usage charged (gross) before the split, kept for reporting symmetry
    "stripe_clearing",  # money that came in (or went out) through Stripe
    "adjustments",  # operator's manual credits and debits
)


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)  # e.g. user:12:credits, platform:fees
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), unique=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"), unique=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    balance_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"
    __table_args__ = (
        Index("ix_ledger_transactions_kind_created", "kind", "created_at"),
        # A deployment's usage over time (cost so far, daily cost): without it SQLite walks every usage row.
        Index("ix_ledger_transactions_deployment_kind_created", "deployment_id", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # topup, usage, refund, adjustment, subscription, payout
    # Unique: the same movement can never be recorded twice (meter:<deployment>:<hour>, pi:<id>, ...).
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    memo: Mapped[str] = mapped_column(Text, default="")
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        # Covering (amount, transaction): per-account sums over a time range read only the index
        # (the operator overview's revenue and fees per day on millions of entries).
        Index("ix_ledger_entries_account_created", "account_id", "created_at", "amount_cents", "transaction_id"),
        Index("ix_ledger_entries_transaction", "transaction_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsageCharge(Base):
    """One metered hour of one deployment. The primary key makes metering idempotent."""

    __tablename__ = "usage_charges"
    __table_args__ = (Index("ix_usage_charges_hour", "hour_start"),)

    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    hour_start: Mapped[datetime] = mapped_column(primary_key=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    fee_cents: Mapped[int] = mapped_column(BigInteger)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"))
    transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    note: Mapped[str] = mapped_column(Text, default="")
