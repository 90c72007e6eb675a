"""The ledger invariant: every transaction sums to zero; cached balances equal the sum of entries."""

import pytest
from sqlalchemy import func, select

from services.errors import Conflict, InvalidInput
from services.ledger import service as ledger
from services.ledger.models import LedgerAccount, LedgerEntry
from tests.support.people import make_person


def test_balanced_posting_moves_both_balances(db, uow):
    alice = make_person(uow)
    with uow:
        s = uow.session
        credits = ledger.user_account(s, alice.user_id)
        stripe = ledger.system_account(s, "external:stripe")
        ledger.post(
            s, kind="topup", idempotency_key="t1", legs=[ledger.Leg(stripe.id, -2500), ledger.Leg(credits.id, 2500)]
        )
        uow.commit()
    with uow:
        s = uow.session
        assert ledger.balance(s, credits.id) == 2500
        assert s.get(LedgerAccount, credits.id).balance_cents == 2500
        assert s.get(LedgerAccount, stripe.id).balance_cents == -2500
        assert ledger.unbalanced_transactions(s) == []
        assert ledger.drifted_balances(s) == []


@pytest.mark.parametrize("legs", [[-100, 99], [100], [0, 0], [-100, 100, 1]])
def test_unbalanced_or_zero_legs_are_refused_and_nothing_is_written(db, uow, legs):
    who = make_person(uow)
    with uow:
        s = uow.session
        a = ledger.user_account(s, who.user_id)
        b = ledger.system_account(s, "platform:adjustments")
        accounts = [a, b, a]
        with pytest.raises(InvalidInput):
            ledger.post(
                s,
                kind="adjustment",
                idempotency_key="x",
                legs=[ledger.Leg(accounts[i].id, v) for i, v in enumerate(legs)],
            )
        uow.commit()
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def test_the_same_movement_cannot_be_recorded_twice(db, uow):
    who = make_person(uow)
    with uow:
        s = uow.session
        a = ledger.user_account(s, who.user_id)
        b = ledger.system_account(s, "external:stripe")
        ledger.post(s, kind="topup", idempotency_key="pi_1", legs=[ledger.Leg(b.id, -500), ledger.Leg(a.id, 500)])
        with pytest.raises(Conflict):
            ledger.post(s, kind="topup", idempotency_key="pi_1", legs=[ledger.Leg(b.id, -500), ledger.Leg(a.id, 500)])
        uow.commit()
    with uow:
        assert ledger.balance(uow.session, a.id) == 500
        assert uow.session.get(LedgerAccount, a.id).balance_cents == 500


def test_seeded_ledger_holds_the_invariant(seeded_db, uow):
    with uow:
        s = uow.session
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) > 100
        assert ledger.unbalanced_transactions(s) == []
        assert ledger.drifted_balances(s) == []
        # no user's credits went below zero in the seeded history
        assert s.scalar(select(func.min(LedgerAccount.balance_cents)).where(LedgerAccount.kind == "user_credits")) >= 0


def test_asking_for_an_account_twice_gives_the_same_account(db, uow):
    """Creation is insert-or-ignore on the unique code, so a second asker (even a concurrent one) reads the row."""
    from services.db.engine import UnitOfWork

    who = make_person(uow)
    first, second = UnitOfWork(db), UnitOfWork(db)
    with first:
        a = ledger.user_account(first.session, who.user_id)
        first.commit()
    with second:
        b = ledger.user_account(second.session, who.user_id)  # finds it
        second.commit()
    assert a.id == b.id
    with uow:
        n = uow.session.scalar(
            select(func.count()).select_from(LedgerAccount).where(LedgerAccount.user_id == who.user_id)
        )
    assert n == 1
