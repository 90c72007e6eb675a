"""The operator overview: every KPI and series equals what independent SQL over the same database says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from services.auth.permissions import Role
from services.db.base import utcnow
from services.deployments.models import Deployment, DeploymentPlacement
from services.errors import PermissionDenied
from services.ledger import service as ledger
from services.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from services.nodes.models import Node
from services.providers.models import Provider, ProviderRequest
from services.stats import overview
from services.users.models import User
from tests.operators.helpers import olivia
from tests.support.people import make_person


def expected_kpis(uow, tz: str, now: datetime) -> dict:
    """The headline figures, each from its own query written without the service's helpers."""
    local = now.astimezone(ZoneInfo(tz))
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    fresh = now - timedelta(seconds=120)
    with uow:
        s = uow.session
        usage_debits = (
            select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
            .where(
                LedgerTransaction.kind.in_(("usage", "subscription")),
                LedgerAccount.kind == "user_credits",
                LedgerEntry.created_at >= month_start,
                LedgerEntry.created_at <= now,
            )
        )
        fee_credits = (
            select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
            .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
            .where(
                LedgerAccount.code == "platform:fees",
                LedgerEntry.amount_cents > 0,
                LedgerEntry.created_at >= month_start,
                LedgerEntry.created_at <= now,
            )
        )
        return dict(
            users=s.scalar(select(func.count(User.id))),
            providers=s.scalar(select(func.count(Provider.id)).where(Provider.status == "active")),
            nodes_total=s.scalar(select(func.count(Node.id)).where(Node.status != "decommissioned")),
            nodes_online=s.scalar(
                select(func.count(Node.id)).where(Node.status == "online", Node.last_heartbeat_at >= fresh)
            ),
            revenue=-int(s.scalar(usage_debits)),
            fees=int(s.scalar(fee_credits)),
            run_rate=int(
                s.scalar(
                    select(func.coalesce(func.sum(Deployment.price_per_hour_cents), 0)).where(
                        Deployment.status == "running"
                    )
                )
            )
            * 730,
            pending=s.scalar(select(func.count(ProviderRequest.id)).where(ProviderRequest.status == "pending")),
            by_status={
                k: v
                for k, v in s.execute(select(Deployment.status, func.count(Deployment.id)).group_by(Deployment.status))
            },
        )


def test_kpis_equal_what_the_database_says(seeded_db, uow):
    op = olivia(uow)
    now = utcnow()
    got = overview.overview(uow, op, now=now)
    want = expected_kpis(uow, op.timezone, now)
    k = got.kpis
    assert (k.users, k.providers, k.nodes_total, k.nodes_online) == (
        want["users"],
        want["providers"],
        want["nodes_total"],
        want["nodes_online"],
    )
    assert k.deployments_by_status == want["by_status"]
    assert k.revenue_month_cents == want["revenue"] > 0
    assert k.fees_month_cents == want["fees"] > 0
    assert k.run_rate_month_cents == want["run_rate"] > 0
    assert k.pending_requests == want["pending"] > 0
    assert k.month_start.astimezone(ZoneInfo(op.timezone)).day == 1


def _post_now(uow, *transactions: tuple[str, list[tuple[str, int]]]) -> None:
    """Post ledger transactions now: (kind, [(account, cents)]) with accounts "user", "provider", "fees", "stripe"."""
    with uow:
        s = uow.session
        accounts = {
            "user": ledger.user_account(s, 3),
            "provider": ledger.provider_account(s, 1),
            "fees": ledger.system_account(s, "platform:fees"),
            "stripe": ledger.system_account(s, "external:stripe"),
        }
        for n, (kind, legs) in enumerate(transactions):
            legs = [ledger.Leg(accounts[name].id, cents) for name, cents in legs]
            ledger.post(s, kind=kind, idempotency_key=f"test:{kind}:{n}", legs=legs)
        uow.commit()


def test_a_usage_charge_posted_now_shows_in_this_month(seeded_db, uow):
    op = olivia(uow)
    before = overview.kpis(uow, op)
    _post_now(uow, ("usage", [("user", -1_234), ("provider", 1_110), ("fees", 124)]))
    after = overview.kpis(uow, op)
    assert after.revenue_month_cents - before.revenue_month_cents == 1_234
    assert after.fees_month_cents - before.fees_month_cents == 124


def test_a_paid_subscription_month_counts_as_revenue_and_its_fee_as_fees(seeded_db, uow):
    """A subscription's month is charged from the user's credits by a `subscription` transaction, not by metering."""
    op = olivia(uow)
    before = overview.kpis(uow, op)
    _post_now(
        uow,
        ("subscription_payment", [("stripe", -7_300), ("user", 7_300)]),
        ("subscription", [("user", -7_300), ("provider", 6_570), ("fees", 730)]),
    )
    after = overview.kpis(uow, op)
    assert after.revenue_month_cents - before.revenue_month_cents == 7_300  # the card payment itself is not revenue
    assert after.fees_month_cents - before.fees_month_cents == 730


def test_series_add_up_to_what_the_database_says(seeded_db, uow):
    op = olivia(uow)
    now = utcnow()
    got = overview.overview(uow, op, now=now)
    tz = ZoneInfo(op.timezone)
    today = now.astimezone(tz).date()
    first = today - timedelta(days=overview.CHART_DAYS - 1)
    assert [p.day for p in got.revenue_per_day] == [first + timedelta(days=i) for i in range(overview.CHART_DAYS)]
    window_start = datetime.combine(first, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    with uow:
        s = uow.session
        created = s.scalar(select(func.count(Deployment.id)).where(Deployment.created_at >= window_start))
        usage = -s.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
            .where(
                LedgerTransaction.kind.in_(("usage", "subscription")),
                LedgerAccount.kind == "user_credits",
                LedgerEntry.created_at >= window_start,
                LedgerEntry.created_at <= now,
            )
        )
        last_usage = s.scalar(
            select(func.max(LedgerEntry.created_at))
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerTransaction.kind == "usage")
        )
    assert sum(p.value for p in got.deployments_per_day) == created
    assert sum(p.value for p in got.revenue_per_day) == usage > 0
    assert all(f.value <= r.value for f, r in zip(got.fees_per_day, got.revenue_per_day, strict=True))
    day_of_last = next(p for p in got.revenue_per_day if p.day == last_usage.astimezone(tz).date())
    assert day_of_last.value > 0


def test_capacity_per_region_equals_placements_and_online_nodes(seeded_db, uow):
    op = olivia(uow)
    now = utcnow()
    with uow:  # the seeded nodes that say online report now (the template may be older than two minutes)
        uow.session.execute(update(Node).where(Node.status == "online").values(last_heartbeat_at=now))
        uow.commit()
    got = {r.region: r for r in overview.overview(uow, op, now=now).capacity}
    with uow:
        s = uow.session
        used = dict(
            s.execute(
                select(Node.region, func.sum(Deployment.vcpu))
                .join(DeploymentPlacement, DeploymentPlacement.node_id == Node.id)
                .join(Deployment, Deployment.id == DeploymentPlacement.deployment_id)
                .where(Deployment.status.in_(["pending", "running"]))
                .group_by(Node.region)
            ).all()
        )
        online = dict(
            s.execute(
                select(Node.region, func.sum(Node.ram_gb))
                .where(Node.status == "online", Node.last_heartbeat_at >= now - timedelta(seconds=120))
                .group_by(Node.region)
            ).all()
        )
    assert used and online
    for region, vcpu in used.items():
        assert got[region].vcpu_used == vcpu
    for region, ram in online.items():
        assert got[region].ram_gb_online == ram


def test_an_empty_marketplace_shows_zeros(db, uow):
    op = make_person(uow, Role.OPERATOR)
    got = overview.overview(uow, op)
    assert (got.kpis.revenue_month_cents, got.kpis.fees_month_cents, got.kpis.providers) == (0, 0, 0)
    assert got.kpis.users == 1 and got.capacity == []
    assert len(got.revenue_per_day) == overview.CHART_DAYS and all(p.value == 0 for p in got.revenue_per_day)


@pytest.mark.parametrize(
    "tz, now, start",
    [
        ("Europe/Berlin", datetime(2026, 11, 26, 12, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 3, 1, 3, tzinfo=UTC), datetime(2026, 2, 1, 5, tzinfo=UTC)),
        ("UTC", datetime(2026, 1, 1, 0, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_this_month_starts_at_local_midnight(tz, now, start):
    assert overview.month_start(now, tz) == start
    assert overview.day_start(now, tz, 0).astimezone(ZoneInfo(tz)).time() == datetime.min.time()
    assert isinstance(overview.day_start(now, tz, 29).astimezone(ZoneInfo(tz)).date(), date)


def test_only_operators_see_the_overview(seeded_db, uow):
    with pytest.raises(PermissionDenied):
        overview.overview(uow, make_person(uow))
