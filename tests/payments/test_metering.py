"""Metering on SQLite and PostgreSQL: one charge per deployment per hour, fee split, stops, notices, invariants."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, func, select

from services import metering
from services.db.engine import get_engine
from services.deployments.models import Deployment, DeploymentEvent
from services.ledger.models import LedgerEntry, LedgerTransaction, UsageCharge
from services.notifications.models import Notification
from services.payments.models import Subscription
from services.pricing.models import PricingVersion
from services.pricing.service import DEFAULT_RATES, ResourceSpec, quote
from tests.payments.world import (
    assert_ledger_invariants,
    balance_of_provider,
    balance_of_user,
    give_credits,
    launch,
    make_provider,
)
from tests.support.people import make_person

T0 = datetime(2031, 3, 4, 10, 17, tzinfo=UTC)


@dataclass(frozen=True)
class Charge:
    hour_start: datetime
    amount_cents: int
    provider_id: int | None


def _charges(uow, dep_id: int) -> list[Charge]:
    with uow:
        rows = uow.session.scalars(select(UsageCharge).where(UsageCharge.deployment_id == dep_id))
        return [Charge(c.hour_start, c.amount_cents, c.provider_id) for c in rows]


def _status(uow, dep_id: int) -> str:
    with uow:
        return uow.session.get(Deployment, dep_id).status


def test_running_deployments_are_charged_once_per_hour_and_the_provider_gets_charge_less_fee(db, uow):
    provider_id, nodes = make_provider(uow)
    alice = make_person(uow)
    give_credits(uow, alice.user_id, 10_000)
    a = launch(uow, alice, [nodes[0]], price=137)
    b = launch(uow, alice, [nodes[1]], price=250, fee_bp=2000)
    stopped = launch(uow, alice, [nodes[0]], status="stopped")
    pending = launch(uow, alice, [nodes[0]], status="pending")

    first = metering.run_tick(uow, at=T0)
    again = metering.run_tick(uow, at=T0 + timedelta(minutes=30))

    assert (first.charged, first.charged_cents) == (2, 387)
    assert first.fee_cents == 14 + 50  # 10 % of 137 rounded half-up, 20 % of 250
    assert (again.charged, again.charged_cents) == (0, 0)
    assert balance_of_user(uow, alice.user_id) == 10_000 - 387
    assert balance_of_provider(uow, provider_id) == (137 - 14) + (250 - 50)
    assert [c.hour_start for c in _charges(uow, a)] == [datetime(2031, 3, 4, 10, tzinfo=UTC)]
    assert len(_charges(uow, b)) == 1
    assert _charges(uow, stopped) == [] and _charges(uow, pending) == []
    with uow:
        txn = uow.session.scalar(select(LedgerTransaction).where(LedgerTransaction.deployment_id == a))
        assert txn.kind == "usage" and txn.idempotency_key == f"meter:{a}:2031030410"
        legs = sorted(uow.session.scalars(select(LedgerEntry.amount_cents).where(LedgerEntry.transaction_id == txn.id)))
        assert legs == [-137, 14, 123]

    next_hour = metering.run_tick(uow, at=T0 + timedelta(hours=1))
    assert next_hour.charged == 2
    assert balance_of_user(uow, alice.user_id) == 10_000 - 2 * 387
    assert_ledger_invariants(uow)


def test_two_meters_at_once_charge_each_hour_once(db, uow):
    _, nodes = make_provider(uow)
    people = [make_person(uow) for _ in range(3)]
    deps = []
    for p in people:
        give_credits(uow, p.user_id, 5_000)
        deps += [launch(uow, p, [nodes[0]], price=111), launch(uow, p, [nodes[1]], price=222)]
    results: list[metering.TickResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def meter() -> None:
        try:
            barrier.wait()
            results.append(metering.run_tick(at=T0))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=meter) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(r.charged for r in results) == [0, len(deps)]
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(UsageCharge)) == len(deps)
    for p in people:
        assert balance_of_user(uow, p.user_id) == 5_000 - 333
    assert_ledger_invariants(uow)


def test_a_tick_is_set_based_the_same_statements_for_3_or_30_deployments(db, uow):
    _, nodes = make_provider(uow)

    def statements_for(count: int, at: datetime, expect: int) -> int:
        owner = make_person(uow)
        give_credits(uow, owner.user_id, 1_000_000)
        for i in range(count):
            launch(uow, owner, [nodes[i % 2]], price=100 + i)
        seen: list[str] = []

        def count_it(conn, cursor, statement, *args):
            seen.append(statement)

        engine = get_engine()
        event.listen(engine, "before_cursor_execute", count_it)
        try:
            result = metering.run_tick(uow, at=at)
        finally:
            event.remove(engine, "before_cursor_execute", count_it)
        assert result.charged == expect
        return len(seen)

    metering.run_tick(uow, at=T0 - timedelta(hours=1))  # creates the platform accounts: not part of the count
    small = statements_for(3, T0, expect=3)
    # a later hour: the 3 charge again alongside 30 new ones
    large = statements_for(30, T0 + timedelta(hours=1), expect=33)
    assert small == large


def test_a_deployment_the_credits_cannot_cover_is_stopped_with_an_event_and_a_notice(db, uow):
    _, nodes = make_provider(uow)
    bob = make_person(uow)
    give_credits(uow, bob.user_id, 300)
    first = launch(uow, bob, [nodes[0]], price=137)
    second = launch(uow, bob, [nodes[1]], price=137)
    third = launch(uow, bob, [nodes[0]], price=137)

    result = metering.run_tick(uow, at=T0)

    assert (result.charged, result.stopped) == (2, 1)
    assert balance_of_user(uow, bob.user_id) == 300 - 274
    assert [_status(uow, d) for d in (first, second, third)] == ["running", "running", "stopped"]
    with uow:
        s = uow.session
        ev = s.scalars(select(DeploymentEvent).where(DeploymentEvent.deployment_id == third)).all()
        assert [(e.kind, e.status, e.actor) for e in ev] == [("stopped", "stopped", "metering")]
        assert "credits could not cover the next hour" in ev[0].message
        notes = s.scalars(select(Notification).where(Notification.user_id == bob.user_id)).all()
        assert [n.title for n in notes if n.kind == "deployment"] == ["Deployments stopped: credits ran out"]
        assert "stopped 1 running deployment" in [n.body for n in notes if n.kind == "deployment"][0]
        assert s.get(Deployment, third).stopped_at is not None

    # next hour: 26 cents left cannot cover either: both stop, nothing goes below zero
    later = metering.run_tick(uow, at=T0 + timedelta(hours=1))
    assert (later.charged, later.stopped) == (0, 2)
    assert balance_of_user(uow, bob.user_id) == 26
    assert [_status(uow, d) for d in (first, second, third)] == ["stopped"] * 3
    assert_ledger_invariants(uow)


def test_an_owner_without_any_credits_account_is_stopped_not_charged(db, uow):
    _, nodes = make_provider(uow)
    carol = make_person(uow)
    dep = launch(uow, carol, [nodes[0]])
    result = metering.run_tick(uow, at=T0)
    assert (result.charged, result.stopped) == (0, 1)
    assert _status(uow, dep) == "stopped"
    assert_ledger_invariants(uow)


def test_multi_provider_placement_splits_the_share_by_instances_remainder_to_the_main_provider(db, uow):
    prov_a, nodes_a = make_provider(uow, nodes=2)
    prov_b, nodes_b = make_provider(uow, nodes=1)
    dora = make_person(uow)
    give_credits(uow, dora.user_id, 10_000)
    # two replicas on A, one replica on B: A hosts 2 of 3 instances
    launch(uow, dora, [nodes_a[0], nodes_b[0], nodes_a[1]], price=101, fee_bp=1000)
    # one replica on B plus a backup VM on A: one instance each, the tie goes to the lower provider id
    tie = launch(uow, dora, [nodes_b[0]], backup_node=nodes_a[0], price=101, fee_bp=1000)

    metering.run_tick(uow, at=T0)

    # 101 - fee 10 = 91: first deployment 91*2//3 = 60 (+1 left over) to A, 91//3 = 30 to B;
    # tie: 45 each, the left-over cent to the lower provider id
    low, high = sorted((prov_a, prov_b))
    extra_tie = {low: 1, high: 0}
    assert balance_of_provider(uow, prov_a) == 61 + 45 + extra_tie[prov_a]
    assert balance_of_provider(uow, prov_b) == 30 + 45 + extra_tie[prov_b]
    assert _charges(uow, tie)[0].provider_id == low
    assert_ledger_invariants(uow)


def test_a_running_deployment_without_placement_books_the_share_to_platform_revenue(db, uow):
    from services.ledger import service as ledger

    eve = make_person(uow)
    give_credits(uow, eve.user_id, 1_000)
    launch(uow, eve, [], price=100)  # running, but placed on no node
    metering.run_tick(uow, at=T0)
    with uow:
        revenue = ledger.system_account(uow.session, "platform:revenue")
        assert revenue.balance_cents == 90
    assert balance_of_user(uow, eve.user_id) == 900
    assert_ledger_invariants(uow)


def test_low_balance_notice_once_a_day(db, uow):
    _, nodes = make_provider(uow)
    fay = make_person(uow)
    give_credits(uow, fay.user_id, 1_200)  # threshold is $10.00 by default
    launch(uow, fay, [nodes[0]], price=150)

    metering.run_tick(uow, at=T0)  # 1050 left: above the threshold
    metering.run_tick(uow, at=T0 + timedelta(hours=1))  # 900: below
    metering.run_tick(uow, at=T0 + timedelta(hours=2))  # 750: below again, same day
    metering.run_tick(uow, at=T0 + timedelta(days=1))  # next day: a new notice

    with uow:
        notes = uow.session.scalars(
            select(Notification.body).where(Notification.user_id == fay.user_id, Notification.kind == "low_balance")
        ).all()
    assert len(notes) == 2
    assert "below $10.00" in notes[0]
    assert_ledger_invariants(uow)


def test_running_follow_moves_running_deployments_to_the_new_price(db, uow):
    _, nodes = make_provider(uow)
    gus = make_person(uow)
    give_credits(uow, gus.user_id, 100_000)
    with uow:
        s = uow.session
        v1 = PricingVersion(version=1, effective_at=T0 - timedelta(days=10), **DEFAULT_RATES)
        s.add(v1)
        s.flush()
        v1_id = v1.id
        uow.commit()
    dep = launch(uow, gus, [nodes[0]], price=5)
    kept = launch(uow, gus, [nodes[1]], price=7)
    with uow:
        s = uow.session
        for d in (dep, kept):
            s.get(Deployment, d).pricing_version_id = v1_id
        rates = dict(DEFAULT_RATES) | {"vcpu_hour_millicents": 9_000, "platform_fee_bp": 1500}
        s.add(PricingVersion(version=2, effective_at=T0 - timedelta(hours=1), running_follow=True, **rates))
        s.get(Deployment, kept).status = "stopped"  # only running deployments follow
        uow.commit()
        v2 = s.scalar(select(PricingVersion).where(PricingVersion.version == 2))
        expected = quote(ResourceSpec(vcpu=2, ram_gb=4, disk_gb=40), v2).price_per_hour_cents
        v2_id = v2.id

    result = metering.run_tick(uow, at=T0)

    assert result.repriced == 1
    with uow:
        d = uow.session.get(Deployment, dep)
        assert (d.price_per_hour_cents, d.platform_fee_bp, d.pricing_version_id) == (expected, 1500, v2_id)
        assert uow.session.get(Deployment, kept).price_per_hour_cents == 7
        kinds = uow.session.scalars(select(DeploymentEvent.kind).where(DeploymentEvent.deployment_id == dep)).all()
        assert "repriced" in kinds
    assert [c.amount_cents for c in _charges(uow, dep)] == [expected]
    # a second tick does not reprice again
    assert metering.run_tick(uow, at=T0 + timedelta(hours=1)).repriced == 0
    assert_ledger_invariants(uow)


def test_a_deployment_paid_by_a_subscription_is_not_metered_for_the_paid_month(db, uow):
    _, nodes = make_provider(uow)
    hal = make_person(uow)
    give_credits(uow, hal.user_id, 1_000)
    covered = launch(uow, hal, [nodes[0]], price=100)
    with uow:
        uow.session.add(
            Subscription(
                user_id=hal.user_id,
                deployment_id=covered,
                monthly_cents=62_050,
                status="active",
                current_period_end=T0 + timedelta(days=20),
            )
        )
        uow.commit()
    assert metering.run_tick(uow, at=T0).charged == 0
    assert _status(uow, covered) == "running"
    assert metering.run_tick(uow, at=T0 + timedelta(days=21)).charged == 1
    assert_ledger_invariants(uow)


def test_metering_the_seeded_marketplace_keeps_the_ledger_exact(seeded_db, uow):
    with uow:
        running = uow.session.scalar(select(func.count()).where(Deployment.status == "running"))
    result = metering.run_tick(uow)
    assert result.charged + result.stopped == running
    assert result.charged > 0
    assert metering.run_tick(uow).charged == 0
    assert_ledger_invariants(uow)


def test_the_cron_command_meters_the_configured_database(sqlite_db, uow):
    _, nodes = make_provider(uow)
    ivy = make_person(uow)
    give_credits(uow, ivy.user_id, 1_000)
    launch(uow, ivy, [nodes[0]], price=100)
    env = dict(os.environ, MARKETPLACE_DATABASE_URL=sqlite_db)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "services.metering"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "charged 1 deployment(s) 1.00 USD" in out.stdout
    again = subprocess.run(
        [sys.executable, "-m", "services.metering"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert "charged 0 deployment(s)" in again.stdout
    assert balance_of_user(uow, ivy.user_id) == 900


def test_a_small_hourly_price_still_pays_the_platform_its_percentage_over_the_hours(db, uow):
    """$0.04/h at 10 %: 0.4 cent per hour would round to nothing each hour; accrued, 10 hours keep 4 cents."""
    provider_id, nodes = make_provider(uow)
    bob = make_person(uow)
    give_credits(uow, bob.user_id, 1_000)
    dep = launch(uow, bob, [nodes[0]], price=4)
    fees = []
    for h in range(10):
        fees.append(metering.run_tick(uow, at=T0 + timedelta(hours=h)).fee_cents)
    assert fees == [0, 1, 0, 1, 0, 0, 1, 0, 1, 0]  # cumulative fee = 10 % of the cumulative charge, rounded half-up
    assert sum(fees) == 4
    assert balance_of_user(uow, bob.user_id) == 1_000 - 40
    assert balance_of_provider(uow, provider_id) == 36
    with uow:
        d = uow.session.get(Deployment, dep)
        assert (d.metered_cents, d.metered_fee_cents) == (40, 4)
    assert_ledger_invariants(uow)


def test_following_a_new_price_prices_each_instance_at_its_own_node_as_a_launch_does(db, uow):
    from services.deployments.service import price_for_nodes
    from services.nodes.models import Node

    _, nodes = make_provider(uow, nodes=3)
    ivy = make_person(uow)
    give_credits(uow, ivy.user_id, 100_000)
    with uow:
        s = uow.session
        for node_id, factor in zip(nodes, (90, 120, 150), strict=True):
            s.get(Node, node_id).price_factor_pct = factor
        v1 = PricingVersion(version=1, effective_at=T0 - timedelta(days=10), **DEFAULT_RATES)
        s.add(v1)
        s.flush()
        v1_id = v1.id
        uow.commit()
    dep = launch(uow, ivy, nodes[:2], price=5, backup_node=nodes[2])  # two replicas and a backup VM
    with uow:
        s = uow.session
        s.get(Deployment, dep).pricing_version_id = v1_id
        rates = dict(DEFAULT_RATES) | {"vcpu_hour_millicents": 9_000}
        s.add(PricingVersion(version=2, effective_at=T0 - timedelta(hours=1), running_follow=True, **rates))
        uow.commit()
        v2 = s.scalar(select(PricingVersion).where(PricingVersion.version == 2))
        expected = price_for_nodes(ResourceSpec(vcpu=2, ram_gb=4, disk_gb=40), v2, [90, 120, 150]).price_per_hour_cents

    assert metering.run_tick(uow, at=T0).repriced == 1
    with uow:
        assert uow.session.get(Deployment, dep).price_per_hour_cents == expected
    assert [c.amount_cents for c in _charges(uow, dep)] == [expected]


def test_a_rerun_in_the_same_hour_charges_only_what_launched_since_split_as_the_webhook_splits(db, uow):
    """The second tick of an hour links only its own charges to its own transactions: the first tick's charges,
    entries and balances stay as they were, and a deployment spread over three providers gets the same split
    as `provider_shares` (the subscription webhook's split), left-over cents to the main provider."""
    prov_a, nodes_a = make_provider(uow, nodes=2)
    prov_b, nodes_b = make_provider(uow, nodes=1)
    prov_c, nodes_c = make_provider(uow, nodes=1)
    gus = make_person(uow)
    give_credits(uow, gus.user_id, 10_000)
    first = launch(uow, gus, [nodes_a[0]], price=200)
    assert metering.run_tick(uow, at=T0).charged == 1
    after_first = {p: balance_of_provider(uow, p) for p in (prov_a, prov_b, prov_c)}

    # A on two replicas, B and C one each: 4 instances; 103 - fee 10 = 93 -> 46 / 23 / 23, 1 cent left over to A
    spread = launch(uow, gus, [nodes_b[0], nodes_a[0], nodes_c[0], nodes_a[1]], price=103)
    rerun = metering.run_tick(uow, at=T0 + timedelta(minutes=40))

    assert (rerun.charged, rerun.charged_cents, rerun.fee_cents) == (1, 103, 10)
    assert [c.amount_cents for c in _charges(uow, first)] == [200]
    assert _charges(uow, spread) == [Charge(datetime(2031, 3, 4, 10, tzinfo=UTC), 103, prov_a)]
    with uow:
        expected = dict(metering.provider_shares(uow.session, spread, 93))
    assert expected == {prov_a: 47, prov_b: 23, prov_c: 23}
    for provider in (prov_a, prov_b, prov_c):
        assert balance_of_provider(uow, provider) - after_first[provider] == expected[provider]
    assert balance_of_user(uow, gus.user_id) == 10_000 - 200 - 103
    with uow:
        txn = uow.session.scalar(select(LedgerTransaction).where(LedgerTransaction.deployment_id == spread))
        assert txn.idempotency_key == f"meter:{spread}:2031030410"
        legs = sorted(uow.session.scalars(select(LedgerEntry.amount_cents).where(LedgerEntry.transaction_id == txn.id)))
        assert legs == [-103, 10, 23, 23, 47]
        d = uow.session.get(Deployment, spread)
        assert (d.metered_cents, d.metered_fee_cents) == (103, 10)
    assert_ledger_invariants(uow)
