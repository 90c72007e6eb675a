"""Posting to the double-entry ledger. Every money movement goes through `post`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.db.dialect import insert_ignore
from services.errors import Conflict, InvalidInput
from services.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction

# The marketplace's own accounts, created on first use.
SYSTEM_ACCOUNTS = {
    "platform:fees": "platform_fees",
    "platform:revenue": "revenue",
    "external:stripe": "stripe_clearing",
    "platform:adjustments": "adjustments",
}


@dataclass(frozen=True)
class Leg:
    account_id: int
    amount_cents: int


def _account(session: Session, code: str, kind: str, **owner: int) -> LedgerAccount:
    """The account with this code, created once even when two transactions ask at the same moment."""
    acct = session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
    if acct is None:
        # ON CONFLICT DO NOTHING: a concurrent creator wins quietly and we read its row
        session.execute(insert_ignore(session, LedgerAccount).values(code=code, kind=kind, balance_cents=0, **owner))
        acct = session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
    return acct


def system_account(session: Session, code: str) -> LedgerAccount:
    """The marketplace account with this code (platform:fees, external:stripe, ...), created once."""
    return _account(session, code, SYSTEM_ACCOUNTS[code])


def user_account(session: Session, user_id: int) -> LedgerAccount:
    """The user's credits account, created on first need."""
    return _account(session, f"user:{user_id}:credits", "user_credits", user_id=user_id)


def provider_account(session: Session, provider_id: int) -> LedgerAccount:
    """What the marketplace owes a provider, created on first need."""
    return _account(session, f"provider:{provider_id}:payable", "provider_payable", provider_id=provider_id)


def post(
    session: Session,
    *,
    kind: str,
    idempotency_key: str,
    legs: Sequence[Leg],
    memo: str = "",
    deployment_id: int | None = None,
    payment_id: int | None = None,
    created_by: int | None = None,
) -> LedgerTransaction:
    """Record one balanced transaction in the caller's transaction.

    Guarantees: the legs sum to zero, no leg is zero, the idempotency key is new (Conflict otherwise),
    and each account's cached balance moves by exactly its legs.
    """
    if not legs or any(leg.amount_cents == 0 for leg in legs):
        raise InvalidInput("A ledger transaction needs non-zero legs.")
    if any(not isinstance(leg.amount_cents, int) for leg in legs):
        raise InvalidInput("Ledger amounts are integer cents.")
    if sum(leg.amount_cents for leg in legs) != 0:
        raise InvalidInput("A ledger transaction must balance (its entries sum to zero).")
    txn = LedgerTransaction(
        kind=kind,
        idempotency_key=idempotency_key,
        memo=memo,
        deployment_id=deployment_id,
        payment_id=payment_id,
        created_by=created_by,
    )
    try:
        with session.begin_nested():
            session.add(txn)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"Already recorded: {idempotency_key}") from exc
    session.add_all(
        LedgerEntry(
            transaction_id=txn.id, account_id=leg.account_id, amount_cents=leg.amount_cents, created_at=txn.created_at
        )
        for leg in legs
    )
    for leg in legs:
        session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id == leg.account_id)
            .values(balance_cents=LedgerAccount.balance_cents + leg.amount_cents)
        )
    session.flush()
    return txn


def balance(session: Session, account_id: int) -> int:
    """The balance derived from entries (the source of truth)."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(LedgerEntry.account_id == account_id)
        )
    )


def unbalanced_transactions(session: Session) -> list[int]:
    """Ids of transactions whose entries do not sum to zero (should always be empty)."""
    q = (
        select(LedgerEntry.transaction_id)
        .group_by(LedgerEntry.transaction_id)
        .having(func.sum(LedgerEntry.amount_cents) != 0)
    )
    return list(session.scalars(q))


def drifted_balances(session: Session) -> list[tuple[int, int, int]]:
    """(account id, cached, derived) for every account whose cached balance differs from its entries."""
    sums = (
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_cents).label("total"))
        .group_by(LedgerEntry.account_id)
        .subquery()
    )
    q = select(LedgerAccount.id, LedgerAccount.balance_cents, func.coalesce(sums.c.total, 0)).outerjoin(
        sums, sums.c.account_id == LedgerAccount.id
    )
    return [(a, int(c), int(d)) for a, c, d in session.execute(q) if int(c) != int(d)]
