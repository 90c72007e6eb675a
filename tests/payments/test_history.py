"""Transactions, CSV, receipts, the operators' payments list and manual adjustments (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services import metering
from services.audit.models import AuditEntry
from services.auth.permissions import Role
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services.ledger.models import LedgerTransaction
from services.payments import history
from services.payments.models import Payment
from tests.payments.world import assert_ledger_invariants, balance_of_user, give_credits, launch, make_provider
from tests.support.people import make_person

DAY1 = datetime(2031, 5, 1, 9, 30, tzinfo=UTC)


def settled_payment(uow, user_id: int, amount: int = 2500, status: str = "succeeded") -> int:
    with uow:
        p = Payment(
            user_id=user_id,
            kind="topup",
            amount_cents=amount,
            status=status,
            stripe_payment_intent_id=f"pi_hist_{user_id}_{amount}_{status}",
            stripe_charge_id=f"ch_hist_{user_id}_{amount}",
            card_brand="visa",
            card_last4="4242",
            succeeded_at=DAY1 if status == "succeeded" else None,
        )
        uow.session.add(p)
        uow.session.flush()
        pid = p.id
        uow.commit()
        return pid


def test_transactions_sum_usage_per_deployment_per_day_with_filters_and_csv(db, uow):
    _, nodes = make_provider(uow)
    ann = make_person(uow)
    give_credits(uow, ann.user_id, 10_000)
    web = launch(uow, ann, [nodes[0]], price=100, name="web")
    db_dep = launch(uow, ann, [nodes[1]], price=50, name="db")
    for hour in range(3):  # three hours on day 1, one on day 2
        metering.run_tick(uow, at=DAY1 + timedelta(hours=hour))
    metering.run_tick(uow, at=DAY1 + timedelta(days=1))

    rows, total = history.list_transactions(uow, ann)
    usage = [r for r in rows if r.kind == "usage"]
    assert total == 5  # the top-up, then 2 deployments x 2 days
    assert sorted((r.deployment_name, r.at.date(), r.amount_cents, r.charges) for r in usage) == [
        ("db", date(2031, 5, 1), -150, 3),
        ("db", date(2031, 5, 2), -50, 1),
        ("web", date(2031, 5, 1), -300, 3),
        ("web", date(2031, 5, 2), -100, 1),
    ]
    assert "Usage of web on 2031-05-01 (UTC)" in [r.description for r in usage]
    assert rows[-1].kind == "topup" and rows[-1].amount_cents == 10_000

    only_web_day2, n = history.list_transactions(
        uow, ann, {"kinds": ["usage"], "deployment_id": web, "since": "2031-05-02", "until": "2031-05-02"}
    )
    assert n == 1 and only_web_day2[0].amount_cents == -100
    page2, total2 = history.list_transactions(uow, ann, limit=2, offset=2)
    assert len(page2) == 2 and total2 == 5
    beyond, total_beyond = history.list_transactions(uow, ann, limit=2, offset=10)  # past the last page
    assert beyond == [] and total_beyond == 5
    assert history.list_transactions(uow, make_person(uow)) == ([], 0)  # no account yet
    assert db_dep  # used above through the names

    table = list(csv.reader(io.StringIO(history.transactions_csv(uow, ann, {"kinds": ["usage"]}))))
    assert table[0] == ["time_utc", "type", "description", "deployment", "amount", "currency", "payment_id"]
    assert sorted(r[4] for r in table[1:]) == ["-0.50", "-1.00", "-1.50", "-3.00"]


def test_bad_filters_are_refused_with_the_field_named(db, uow):
    ann = make_person(uow)
    with pytest.raises(InvalidInput) as bad:
        history.list_transactions(uow, ann, {"since": "2031-05-02", "until": "2031-05-01"})
    assert "until" in bad.value.errors
    with pytest.raises(InvalidInput):
        history.list_transactions(uow, ann, {"kinds": ["bitcoin"]})


def test_a_receipt_is_the_payers_own_or_an_operators(db, uow):
    payer = make_person(uow, name="Pat Payer")
    stranger = make_person(uow)
    operator = make_person(uow, Role.OPERATOR)
    pid = settled_payment(uow, payer.user_id)
    failed = settled_payment(uow, payer.user_id, amount=700, status="failed")

    r = history.receipt(uow, payer, pid)
    assert (r.number, r.amount_cents, r.card, r.stripe_charge_id) == (
        f"R-{pid:06d}",
        2500,
        "Visa •••• 4242",
        f"ch_hist_{payer.user_id}_2500",
    )
    page = history.receipt_html(r, "Europe/Paris")
    assert "$25.00" in page and "Visa •••• 4242" in page and "2031-05-01 11:30 CEST" in page and "Pat Payer" in page
    assert history.receipt(uow, operator, pid).payment_id == pid
    with pytest.raises(NotFound):
        history.receipt(uow, stranger, pid)
    with pytest.raises(NotFound):
        history.receipt(uow, payer, failed)  # no receipt for money that never moved


def test_operators_list_every_payment_with_filters(db, uow):
    a = make_person(uow, email="alpha@pay.example")
    b = make_person(uow, email="beta@pay.example")
    operator = make_person(uow, Role.OPERATOR)
    settled_payment(uow, a.user_id)
    settled_payment(uow, b.user_id, amount=900, status="failed")
    rows, total = history.list_payments(uow, operator)
    assert total == 2 and {r.user_label for r in rows} == {"alpha@pay.example", "beta@pay.example"}
    failed, n = history.list_payments(uow, operator, statuses=["failed"])
    assert n == 1 and failed[0].amount_cents == 900 and failed[0].refundable_cents == 0
    found, n = history.list_payments(uow, operator, search="ALPHA")
    assert n == 1 and found[0].refundable_cents == 2500
    with pytest.raises(PermissionDenied):
        history.list_payments(uow, a)


def test_manual_adjustments_need_a_reason_never_go_below_zero_and_are_audited_once(db, uow):
    operator = make_person(uow, Role.OPERATOR)
    bea = make_person(uow)
    give_credits(uow, bea.user_id, 500)

    added = history.adjust_credits(
        uow,
        operator,
        {
            "user_id": bea.user_id,
            "amount_cents": 1_000,
            "reason": "Goodwill for the outage",
            "request_key": "k-00000001",
        },
    )
    assert added.balance_cents == 1_500
    with pytest.raises(Conflict):  # the same submission twice (a double click)
        history.adjust_credits(
            uow,
            operator,
            {
                "user_id": bea.user_id,
                "amount_cents": 1_000,
                "reason": "Goodwill for the outage",
                "request_key": "k-00000001",
            },
        )
    with pytest.raises(InvalidInput) as too_much:
        history.adjust_credits(
            uow, operator, {"user_id": bea.user_id, "amount_cents": -1_501, "reason": "Chargeback fix"}
        )
    assert "below zero" in too_much.value.errors["amount_cents"]
    for bad, field in (
        ({"amount_cents": 0, "reason": "Because"}, "amount_cents"),
        ({"amount_cents": 5, "reason": "no"}, "reason"),
    ):
        with pytest.raises(InvalidInput) as refused:
            history.adjust_credits(uow, operator, {"user_id": bea.user_id, **bad})
        assert field in refused.value.errors
    with pytest.raises(PermissionDenied):
        history.adjust_credits(uow, bea, {"user_id": bea.user_id, "amount_cents": 100, "reason": "I deserve it"})
    with pytest.raises(NotFound):
        history.adjust_credits(uow, operator, {"user_id": 999_999, "amount_cents": 100, "reason": "Nobody there"})

    removed = history.adjust_credits(
        uow, operator, {"user_id": bea.user_id, "amount_cents": -1_500, "reason": "Test credit returned"}
    )
    assert removed.balance_cents == 0 == balance_of_user(uow, bea.user_id)
    with uow:
        s = uow.session
        assert (
            s.scalar(select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "adjustment"))
            == 2
        )
        notes = s.scalars(select(AuditEntry.note).where(AuditEntry.action == "payments.credits_adjusted")).all()
        assert sorted(notes) == ["Goodwill for the outage", "Test credit returned"]
    assert_ledger_invariants(uow)


def test_refund_requests_are_checked_before_stripe_is_asked(db, uow, monkeypatch):
    operator = make_person(uow, Role.OPERATOR)
    payer = make_person(uow)
    pid = settled_payment(uow, payer.user_id, amount=2500)
    failed = settled_payment(uow, payer.user_id, amount=800, status="failed")
    for amount in (0, -5, 2501, 10**12):
        with pytest.raises(InvalidInput) as bad:
            history.refund(uow, operator, {"payment_id": pid, "amount_cents": amount, "reason": "customer asked"})
        assert "between $0.01 and $25.00" in bad.value.errors["amount_cents"]
    with pytest.raises(Conflict):
        history.refund(uow, operator, {"payment_id": failed, "amount_cents": 100, "reason": "customer asked"})
    with pytest.raises(NotFound):
        history.refund(uow, operator, {"payment_id": 987_654, "amount_cents": 100, "reason": "customer asked"})
    with pytest.raises(PermissionDenied):
        history.refund(uow, payer, {"payment_id": pid, "amount_cents": 100, "reason": "customer asked"})
