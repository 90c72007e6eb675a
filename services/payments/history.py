"""Money history: a person's transactions (filters, CSV), receipts, and the operators' side (every payment,
refunds through Stripe, manual credit adjustments with a reason).

Transactions are read from the ledger: every entry on the person's credits account, except that hourly
usage charges are summed per deployment per UTC day (one row "usage of X on day D"). Refunds are asked
of Stripe here, but the ledger only moves when Stripe's `charge.refunded` event arrives
(services/payments/webhooks.py), so a refund that Stripe refuses or that was made in Stripe's own
dashboard is handled the same way.
"""

from __future__ import annotations

import csv
import html
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import func, literal, null, or_, select, union_all
from sqlalchemy.orm import Session

from services.audit import service as audit
from services.auth.identity import Identity
from services.auth.permissions import Action
from services.db.engine import UnitOfWork
from services.deployments.models import Deployment
from services.errors import Conflict, InvalidInput, NotFound
from services.ledger import service as ledger
from services.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from services.notifications.service import notify
from services.payments import stripe_api
from services.payments.models import Payment
from services.payments.money import decimal_text, money_text
from services.payments.service import validate_input
from services.settings import service as settings_service
from services.users.models import User

Kind = Literal["topup", "usage", "refund", "adjustment", "subscription_payment", "subscription"]
KIND_LABELS = {
    "topup": "Top-up",
    "usage": "Usage",
    "refund": "Refund",
    "adjustment": "Adjustment",
    "subscription_payment": "Subscription payment",
    "subscription": "Subscription month",
}
RECEIPT_STATUSES = ("succeeded", "refunded")
CSV_CHUNK = 2_000


# --- a person's transactions


class TransactionFilter(BaseModel):
    kinds: list[Kind] | None = None
    since: date | None = None
    until: date | None = None
    deployment_id: int | None = Field(default=None, ge=1)

    @field_validator("until")
    @classmethod
    def _order(cls, v: date | None, info) -> date | None:
        since = info.data.get("since")
        if v and since and v < since:
            raise ValueError("the end date must not be before the start date")
        return v


@dataclass(frozen=True)
class TransactionRow:
    at: datetime  # UTC; for usage: the latest charge of that day
    kind: str
    description: str
    amount_cents: int  # signed, as the person's credits moved
    deployment_id: int | None
    deployment_name: str | None
    payment_id: int | None
    charges: int  # usage: how many charges the row sums (1 otherwise)


def _day(session: Session, column):
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def _transactions_query(session: Session, account_id, f: TransactionFilter):
    """The person's rows; `account_id` is an id or a scalar subquery giving it."""
    t, e = LedgerTransaction, LedgerEntry
    conditions = [e.account_id == account_id]
    # Dates filter on the entry's time (always its transaction's): the (account, time) index then finds the
    # person's rows directly, instead of every usage transaction of the period (seconds at marketplace scale).
    if f.since:
        conditions.append(e.created_at >= datetime.combine(f.since, time.min, UTC))
    if f.until:
        conditions.append(e.created_at < datetime.combine(f.until + timedelta(days=1), time.min, UTC))
    if f.deployment_id:
        conditions.append(t.deployment_id == f.deployment_id)
    kinds = set(f.kinds or KIND_LABELS)
    parts = []
    if kinds - {"usage"}:
        parts.append(
            select(
                t.created_at.label("at"),
                t.kind.label("kind"),
                t.memo.label("memo"),
                t.deployment_id.label("deployment_id"),
                t.payment_id.label("payment_id"),
                e.amount_cents.label("amount"),
                literal(1).label("charges"),
                t.id.label("sort_id"),
            )
            .join(t, t.id == e.transaction_id)
            .where(*conditions, t.kind.in_(kinds - {"usage"}))
        )
    if "usage" in kinds:
        parts.append(
            select(
                func.max(t.created_at).label("at"),
                literal("usage").label("kind"),
                literal("").label("memo"),
                t.deployment_id.label("deployment_id"),
                null().label("payment_id"),
                func.sum(e.amount_cents).label("amount"),
                func.count().label("charges"),
                func.max(t.id).label("sort_id"),
            )
            .join(t, t.id == e.transaction_id)
            .where(*conditions, t.kind == "usage")
            .group_by(t.deployment_id, _day(session, t.created_at))
        )
    return union_all(*parts).subquery("rows") if len(parts) > 1 else parts[0].subquery("rows")


def _describe(kind: str, memo: str, at: datetime, deployment_name: str | None) -> str:
    if kind == "usage":
        return f"Usage of {deployment_name or 'a deployment'} on {at:%Y-%m-%d} (UTC)"
    return memo or KIND_LABELS.get(kind, kind)


def _rows(
    session: Session, account_id, f: TransactionFilter, limit: int, offset: int, *, with_total: bool = False
) -> tuple[list[TransactionRow], int | None]:
    """A page of rows; with `with_total`, also how many rows match (a window count in the same query)."""
    rows = _transactions_query(session, account_id, f)
    columns = [rows, Deployment.name] + ([func.count().over().label("total")] if with_total else [])
    q = (
        select(*columns)
        .outerjoin(Deployment, Deployment.id == rows.c.deployment_id)
        .order_by(rows.c.at.desc(), rows.c.sort_id.desc())
        .limit(limit)
        .offset(offset)
    )
    out = []
    total = None
    for r in session.execute(q):
        at = r.at if isinstance(r.at, datetime) else datetime.fromisoformat(str(r.at))
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        out.append(
            TransactionRow(
                at=at,
                kind=r.kind,
                description=_describe(r.kind, r.memo, at, r.name),
                amount_cents=int(r.amount),
                deployment_id=r.deployment_id,
                deployment_name=r.name,
                payment_id=r.payment_id,
                charges=int(r.charges),
            )
        )
        if with_total:
            total = int(r.total)
    return out, total


def _account_id(session: Session, user_id: int) -> int | None:
    return session.scalar(select(LedgerAccount.id).where(LedgerAccount.user_id == user_id))


def list_transactions(
    uow: UnitOfWork, actor: Identity, filters: Any = None, *, limit: int = 50, offset: int = 0
) -> tuple[list[TransactionRow], int]:
    """A page of the actor's transactions, newest first (usage summed per deployment per day), and the total."""
    actor.require(Action.BILLING_MANAGE_OWN)
    f: TransactionFilter = validate_input(TransactionFilter, filters or {})
    limit, offset = max(1, min(limit, 500)), max(0, offset)
    with uow:
        s = uow.session
        # The person's account as a subquery: one query gives the page and (window count) the total.
        account_id = select(LedgerAccount.id).where(LedgerAccount.user_id == actor.user_id).scalar_subquery()
        rows, total = _rows(s, account_id, f, limit, offset, with_total=True)
        if total is None and offset:  # past the last page: count alone
            total = s.scalar(select(func.count()).select_from(_transactions_query(s, account_id, f)))
        return rows, int(total or 0)


def transactions_csv(uow: UnitOfWork, actor: Identity, filters: Any = None) -> str:
    """Every transaction matching the filters as CSV (UTC times, amounts as decimal numbers)."""
    actor.require(Action.BILLING_MANAGE_OWN)
    f: TransactionFilter = validate_input(TransactionFilter, filters or {})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time_utc", "type", "description", "deployment", "amount", "currency", "payment_id"])
    with uow:
        s = uow.session
        account_id = _account_id(s, actor.user_id)
        offset = 0
        while account_id is not None:
            chunk, _ = _rows(s, account_id, f, CSV_CHUNK, offset)
            for r in chunk:
                writer.writerow(
                    [
                        r.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        KIND_LABELS.get(r.kind, r.kind),
                        r.description,
                        r.deployment_name or "",
                        decimal_text(r.amount_cents),
                        "USD",
                        r.payment_id or "",
                    ]
                )
            if len(chunk) < CSV_CHUNK:
                break
            offset += CSV_CHUNK
    return out.getvalue()


# --- receipts


@dataclass(frozen=True)
class Receipt:
    payment_id: int
    number: str
    marketplace_name: str
    customer_name: str
    customer_email: str | None
    description: str
    status: str
    amount_cents: int
    refunded_cents: int
    currency: str
    paid_at: datetime | None
    card: str | None
    stripe_payment_intent_id: str | None
    stripe_charge_id: str | None
    stripe_invoice_id: str | None


def receipt(uow: UnitOfWork, actor: Identity, payment_id: int) -> Receipt:
    """The receipt of one settled payment: the payer's own, or any for an operator."""
    actor.require(Action.BILLING_MANAGE_OWN)
    name = settings_service.get(uow).marketplace_name
    with uow:
        s = uow.session
        found = s.execute(
            select(Payment, User).join(User, User.id == Payment.user_id).where(Payment.id == payment_id)
        ).first()
        payment, user = found if found is not None else (None, None)
        if payment is None or (payment.user_id != actor.user_id and not actor.can(Action.PAYMENTS_ADMIN)):
            raise NotFound("receipt", payment_id)
        if payment.status not in RECEIPT_STATUSES:
            raise NotFound("receipt", payment_id)
        if payment.kind == "invoice":
            deployment = s.scalar(
                select(Deployment.name)
                .join(LedgerTransaction, LedgerTransaction.deployment_id == Deployment.id)
                .where(LedgerTransaction.payment_id == payment.id, LedgerTransaction.kind == "subscription")
                .limit(1)
            )
            description = f"Monthly commitment for {deployment or 'a deployment'}"
        else:
            description = "Credits top-up"
        card = (
            f"{payment.card_brand.title()} •••• {payment.card_last4}"
            if payment.card_brand and payment.card_last4
            else None
        )
        return Receipt(
            payment_id=payment.id,
            number=f"R-{payment.id:06d}",
            marketplace_name=name,
            customer_name=user.display_name or user.email or user.subject,
            customer_email=user.email,
            description=description,
            status=payment.status,
            amount_cents=payment.amount_cents,
            refunded_cents=payment.refunded_cents,
            currency=payment.currency,
            paid_at=payment.succeeded_at or payment.created_at,
            card=card,
            stripe_payment_intent_id=payment.stripe_payment_intent_id,
            stripe_charge_id=payment.stripe_charge_id,
            stripe_invoice_id=payment.stripe_invoice_id,
        )


def _zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def receipt_html(r: Receipt, tz: str | None = "UTC") -> str:
    """The receipt as a self-contained HTML page (what the download button saves)."""
    when = r.paid_at.astimezone(_zone(tz)).strftime("%Y-%m-%d %H:%M %Z") if r.paid_at else "—"
    rows = [
        ("Receipt", r.number),
        ("Paid", when),
        ("Paid by", f"{r.customer_name}" + (f" &lt;{html.escape(r.customer_email)}&gt;" if r.customer_email else "")),
        ("For", r.description),
        ("Amount", money_text(r.amount_cents, r.currency)),
    ]
    if r.refunded_cents:
        rows.append(("Refunded", money_text(r.refunded_cents, r.currency)))
    rows += [
        ("Card", r.card or "—"),
        ("Stripe reference", r.stripe_charge_id or r.stripe_payment_intent_id or "—"),
    ]
    if r.stripe_invoice_id:
        rows.append(("Stripe invoice", r.stripe_invoice_id))
    body = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{v if k == 'Paid by' else html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(r.marketplace_name)} receipt {r.number}</title>"
        "<style>body{font-family:sans-serif;max-width:36rem;margin:2rem auto}th{text-align:left;padding-right:2rem}"
        "td,th{padding:.3rem 0;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>{html.escape(r.marketplace_name)}</h1><h2>Receipt {r.number}</h2><table>{body}</table>"
        "<p>Thank you. Credits are in US dollars and are used for your deployments' hourly usage.</p>"
        "</body></html>"
    )


# --- operators: every payment, refunds, adjustments


@dataclass(frozen=True)
class PaymentRow:
    id: int
    user_id: int
    user_label: str
    kind: str
    status: str
    amount_cents: int
    refunded_cents: int
    card: str | None
    created_at: datetime
    succeeded_at: datetime | None
    stripe_reference: str | None
    failure_message: str | None

    @property
    def refundable_cents(self) -> int:
        return self.amount_cents - self.refunded_cents if self.status == "succeeded" else 0


def list_payments(
    uow: UnitOfWork,
    actor: Identity,
    *,
    statuses: list[str] | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[PaymentRow], int]:
    """A page of every payment (newest first), filtered by status and payer email/name, and the total."""
    actor.require(Action.PAYMENTS_ADMIN)
    q = select(Payment, User.email, User.display_name).join(User, User.id == Payment.user_id)
    if statuses:
        q = q.where(Payment.status.in_(statuses))
    if search and search.strip():
        like = f"%{search.strip().lower()[:100]}%"
        q = q.where(
            or_(
                func.lower(User.email).like(like),
                func.lower(User.display_name).like(like),
                Payment.stripe_payment_intent_id == search.strip(),
            )
        )
    with uow:
        s = uow.session
        total = s.scalar(select(func.count()).select_from(q.subquery()))
        rows = s.execute(
            q.order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(max(1, min(limit, 500)))
            .offset(max(0, offset))
        ).all()
        return [_payment_row(p, email or name or f"user {p.user_id}") for p, email, name in rows], int(total or 0)


def _payment_row(p: Payment, user_label: str) -> PaymentRow:
    """A payment as the payments lists show it."""
    return PaymentRow(
        id=p.id,
        user_id=p.user_id,
        user_label=user_label,
        kind=p.kind,
        status=p.status,
        amount_cents=p.amount_cents,
        refunded_cents=p.refunded_cents,
        card=f"{(p.card_brand or 'card').title()} •••• {p.card_last4}" if p.card_last4 else None,
        created_at=p.created_at,
        succeeded_at=p.succeeded_at,
        stripe_reference=p.stripe_charge_id or p.stripe_payment_intent_id or p.stripe_invoice_id,
        failure_message=p.failure_message,
    )


def list_own_payments(
    uow: UnitOfWork, actor: Identity, *, statuses: list[str] | None = None, limit: int = 20, offset: int = 0
) -> tuple[list[PaymentRow], int]:
    """A page of the actor's own payments (top-ups and subscription invoices), newest first, and the total."""
    actor.require(Action.BILLING_MANAGE_OWN)
    q = select(Payment).where(Payment.user_id == actor.user_id)
    if statuses:
        q = q.where(Payment.status.in_(statuses))
    with uow:
        s = uow.session
        # The total as a window count beside the page (counted alone only past the last page).
        found = s.execute(
            q.add_columns(func.count().over())
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(max(1, min(limit, 500)))
            .offset(max(0, offset))
        ).all()
        rows = [p for p, _ in found]
        total = found[0][1] if found else 0
        if not found and offset > 0:  # past the last page: count alone
            total = s.scalar(select(func.count()).select_from(q.subquery()))
        return [_payment_row(p, actor.label) for p in rows], int(total or 0)


class RefundInput(BaseModel):
    payment_id: int = Field(strict=True, ge=1)
    amount_cents: int = Field(strict=True, description="Cents to refund (partial or full)")
    reason: str = Field(min_length=3, max_length=500)
    request_key: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[A-Za-z0-9_-]{8,64}$")

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        v = v.strip()
        if len(v) < 3:
            raise ValueError("say why (at least 3 characters)")
        return v


@dataclass(frozen=True)
class RefundRequested:
    payment_id: int
    amount_cents: int
    stripe_refund_id: str
    message: str


def refund(uow: UnitOfWork, actor: Identity, data: Any) -> RefundRequested:
    """Ask Stripe to refund (part of) a settled card payment; the ledger follows Stripe's charge.refunded."""
    actor.require(Action.PAYMENTS_ADMIN)
    form: RefundInput = validate_input(RefundInput, data)
    with uow:
        payment = uow.session.get(Payment, form.payment_id)
        if payment is None:
            raise NotFound("payment", form.payment_id)
        if payment.status != "succeeded" or not payment.stripe_payment_intent_id:
            raise Conflict("Only a settled card payment can be refunded.", field="payment_id")
        refundable = payment.amount_cents - payment.refunded_cents
        intent_id, currency = payment.stripe_payment_intent_id, payment.currency
        already = payment.refunded_cents
    if not 1 <= form.amount_cents <= refundable:
        raise InvalidInput(
            f"Refund between {money_text(1, currency)} and {money_text(refundable, currency)}.", field="amount_cents"
        )
    try:
        result = stripe_api.create_refund(
            payment_intent_id=intent_id,
            amount_cents=form.amount_cents,
            key=f"refund-{form.payment_id}-{already}-{form.request_key}",
            reason=form.reason,
        )
    except NotFound:
        raise Conflict("Stripe has no record of this payment, so it cannot be refunded through Stripe.") from None
    with uow:
        audit.record(
            uow.session,
            actor,
            "payments.refund_requested",
            "payment",
            form.payment_id,
            new={"amount_cents": form.amount_cents, "refund": result.get("id")},
            note=form.reason,
        )
        uow.commit()
    return RefundRequested(
        payment_id=form.payment_id,
        amount_cents=form.amount_cents,
        stripe_refund_id=str(result.get("id")),
        message=(
            f"Refund of {money_text(form.amount_cents, currency)} requested from Stripe. The person's credits "
            "change when Stripe confirms it (charge.refunded)."
        ),
    )


class AdjustmentInput(BaseModel):
    user_id: int = Field(strict=True, ge=1)
    amount_cents: int = Field(strict=True, description="Positive adds credits, negative removes them")
    reason: str = Field(min_length=5, max_length=500)
    request_key: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[A-Za-z0-9_-]{8,64}$")

    @field_validator("amount_cents")
    @classmethod
    def _amount(cls, v: int) -> int:
        if v == 0:
            raise ValueError("enter an amount other than zero")
        if abs(v) > 100_000_000:
            raise ValueError("at most $1,000,000.00 per adjustment")
        return v

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        v = v.strip()
        if len(v) < 5:
            raise ValueError("say why (at least 5 characters)")
        return v


@dataclass(frozen=True)
class AdjustmentResult:
    user_id: int
    amount_cents: int
    balance_cents: int
    message: str


def adjust_credits(uow: UnitOfWork, actor: Identity, data: Any) -> AdjustmentResult:
    """Add or remove a person's credits with a reason, balanced against platform:adjustments, audited; never
    below zero, and one submission (request_key) is recorded once."""
    actor.require(Action.PAYMENTS_ADMIN)
    form: AdjustmentInput = validate_input(AdjustmentInput, data)
    with uow:
        s = uow.session
        user = s.get(User, form.user_id)
        if user is None:
            raise NotFound("person", form.user_id)
        ledger.user_account(s, user.id)
        credits = s.scalar(select(LedgerAccount).where(LedgerAccount.user_id == user.id).with_for_update())
        before = credits.balance_cents
        if before + form.amount_cents < 0:
            raise InvalidInput(
                f"That would take the balance below zero (the balance is {money_text(before)}).", field="amount_cents"
            )
        adjustments = ledger.system_account(s, "platform:adjustments")
        try:
            ledger.post(
                s,
                kind="adjustment",
                idempotency_key=f"adjust:{form.request_key}",
                legs=[ledger.Leg(credits.id, form.amount_cents), ledger.Leg(adjustments.id, -form.amount_cents)],
                memo=f"Adjustment by an operator: {form.reason}",
                created_by=actor.user_id or None,
            )
        except Conflict:
            raise Conflict("This adjustment was already recorded.") from None
        after = before + form.amount_cents
        audit.record(
            s,
            actor,
            "payments.credits_adjusted",
            "user",
            user.id,
            old={"balance_cents": before},
            new={"balance_cents": after, "amount_cents": form.amount_cents},
            note=form.reason,
        )
        verb = "added to" if form.amount_cents > 0 else "removed from"
        notify(
            s,
            [user.id],
            kind="payment",
            title=f"{money_text(abs(form.amount_cents))} {verb} your credits",
            body=f"An operator adjusted your credits: {form.reason}",
        )
        uow.commit()
    return AdjustmentResult(
        user_id=form.user_id,
        amount_cents=form.amount_cents,
        balance_cents=after,
        message=f"{money_text(abs(form.amount_cents))} {verb} the credits of {user.email or user.display_name}. "
        f"Balance now {money_text(after)}.",
    )


@dataclass(frozen=True)
class PersonBalance:
    user_id: int
    label: str
    balance_cents: int


def find_people(uow: UnitOfWork, actor: Identity, query: str, *, limit: int = 20) -> list[PersonBalance]:
    """People whose email or name contains `query` (operators), with their credits."""
    actor.require(Action.PAYMENTS_ADMIN)
    q = query.strip().lower()[:100]
    if len(q) < 2:
        return []
    with uow:
        rows = uow.session.execute(
            select(User.id, User.email, User.display_name, LedgerAccount.balance_cents)
            .outerjoin(LedgerAccount, LedgerAccount.user_id == User.id)
            .where(or_(func.lower(User.email).like(f"%{q}%"), func.lower(User.display_name).like(f"%{q}%")))
            .order_by(User.email)
            .limit(max(1, min(limit, 100)))
        ).all()
    return [
        PersonBalance(
            user_id=uid, label=f"{name or email} <{email}>" if email else name or str(uid), balance_cents=int(b or 0)
        )
        for uid, email, name, b in rows
    ]
