"""The operator's overview: marketplace KPIs and chart series, all from aggregate queries.

Built to stay quick on the `--scale large` data (500k deployments, 5M ledger entries): every figure
is one grouped SQL aggregate over an index range; nothing loads rows into Python.

Definitions (money from the ledger, never from prices):
- revenue = what users were charged for compute: the debits of user credit accounts by `usage`
  transactions (metered hours) and `subscription` transactions (a paid month of a subscription);
- platform fees = credits to the `platform:fees` account;
- "this month" and "per day" are calendar days in the viewer's timezone. On PostgreSQL days follow
  the zone exactly; SQLite has no zone database, so days there use the zone's offset at the time of
  the query (a day next to a daylight-saving change can lean by an hour).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from services.auth.identity import Identity
from services.auth.permissions import Action
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.deployments.models import Deployment, DeploymentPlacement
from services.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction
from services.nodes.models import Node
from services.nodes.status import is_online_clause
from services.pricing.service import HOURS_PER_MONTH
from services.providers.models import Provider, ProviderRequest
from services.users.models import User

CHART_DAYS = 30
LIVE_STATUSES = ("pending", "running")  # deployments that hold capacity
FEES_ACCOUNT = "platform:fees"
REVENUE_KINDS = ("usage", "subscription")  # ledger transactions that charge users for compute


@dataclass(frozen=True)
class OverviewKpis:
    users: int
    providers: int
    nodes_online: int
    nodes_total: int
    deployments_by_status: dict[str, int]
    revenue_month_cents: int
    fees_month_cents: int
    run_rate_month_cents: int  # what the running deployments charge per month at their current prices
    pending_requests: int
    month_start: datetime  # UTC instant of the viewer's month start
    currency: str = "USD"


@dataclass(frozen=True)
class DayPoint:
    day: date
    value: int


@dataclass(frozen=True)
class RegionCapacity:
    region: str
    vcpu_used: int
    vcpu_online: int
    ram_gb_used: int
    ram_gb_online: int
    nodes_online: int


@dataclass(frozen=True)
class Overview:
    kpis: OverviewKpis
    deployments_per_day: list[DayPoint] = field(default_factory=list)
    revenue_per_day: list[DayPoint] = field(default_factory=list)
    fees_per_day: list[DayPoint] = field(default_factory=list)
    capacity: list[RegionCapacity] = field(default_factory=list)
    timezone: str = "UTC"
    computed_at: datetime = field(default_factory=utcnow)


def _zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def month_start(now: datetime, tz: str | None) -> datetime:
    """The UTC instant at which the calendar month containing `now` begins in zone `tz`."""
    local = now.astimezone(_zone(tz))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def day_start(now: datetime, tz: str | None, days_back: int) -> datetime:
    """The UTC instant of local midnight `days_back` days before today in zone `tz`."""
    local = now.astimezone(_zone(tz)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (local - timedelta(days=days_back)).astimezone(UTC)  # wall-clock arithmetic: stays at midnight


def _day_bucket(session: Session, column, tz: str | None, now: datetime):
    """SQL expression: the local calendar day of a UTC timestamp column."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone(_zone(tz).key, column))
    offset = now.astimezone(_zone(tz)).utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    return func.date(column, f"{minutes:+d} minutes")


def _as_date(value) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _fill_days(rows: dict[date, int], first: date, last: date) -> list[DayPoint]:
    out, d = [], first
    while d <= last:
        out.append(DayPoint(d, int(rows.get(d, 0))))
        d += timedelta(days=1)
    return out


def kpis(uow: UnitOfWork, actor: Identity, *, now: datetime | None = None) -> OverviewKpis:
    """Headline figures for operators; money this month comes from ledger entries."""
    return overview(uow, actor, now=now, charts=False).kpis


def overview(uow: UnitOfWork, actor: Identity, *, now: datetime | None = None, charts: bool = True) -> Overview:
    """KPIs and chart series for the operator overview (operators only), from aggregate queries."""
    actor.require(Action.OVERVIEW_VIEW)
    now = now or utcnow()
    tz = actor.timezone
    m_start = month_start(now, tz)
    series_start = day_start(now, tz, CHART_DAYS - 1)
    window_start = min(m_start, series_start) if charts else m_start
    today = now.astimezone(_zone(tz)).date()
    first_day = today - timedelta(days=CHART_DAYS - 1)

    with uow:
        s = uow.session
        users = s.scalar(select(func.count()).select_from(User)) or 0
        providers = s.scalar(select(func.count()).select_from(Provider).where(Provider.status == "active")) or 0
        nodes_total = s.scalar(select(func.count()).select_from(Node).where(Node.status != "decommissioned")) or 0
        nodes_online = s.scalar(select(func.count()).select_from(Node).where(is_online_clause(now))) or 0
        by_status = {
            k: int(v) for k, v in s.execute(select(Deployment.status, func.count()).group_by(Deployment.status))
        }
        run_rate_hour = (
            s.scalar(
                select(func.coalesce(func.sum(Deployment.price_per_hour_cents), 0)).where(
                    Deployment.status == "running"
                )
            )
            or 0
        )
        pending_requests = (
            s.scalar(select(func.count()).select_from(ProviderRequest).where(ProviderRequest.status == "pending")) or 0
        )

        rev_rows, fee_rows = _ledger_by_day(s, tz, now, window_start, m_start)

        deployments_per_day: list[DayPoint] = []
        capacity: list[RegionCapacity] = []
        if charts:
            created = _deployments_by_day(s, tz, now, series_start)
            deployments_per_day = _fill_days(created, first_day, today)
            capacity = _capacity(s, now)

    revenue = {d: total for d, (total, _m) in rev_rows.items()}
    fees = {d: total for d, (total, _m) in fee_rows.items()}
    k = OverviewKpis(
        users=int(users),
        providers=int(providers),
        nodes_online=int(nodes_online),
        nodes_total=int(nodes_total),
        deployments_by_status=by_status,
        revenue_month_cents=sum(m for _t, m in rev_rows.values()),
        fees_month_cents=sum(m for _t, m in fee_rows.values()),
        run_rate_month_cents=int(run_rate_hour) * HOURS_PER_MONTH,
        pending_requests=int(pending_requests),
        month_start=m_start,
    )
    return Overview(
        kpis=k,
        deployments_per_day=deployments_per_day,
        revenue_per_day=_fill_days(revenue, first_day, today) if charts else [],
        fees_per_day=_fill_days(fees, first_day, today) if charts else [],
        capacity=capacity,
        timezone=_zone(tz).key,
        computed_at=now,
    )


# Per-day sums of days that are over, per database and day boundaries. Ledger entries are append-only
# and stamped when posted, and a deployment's creation time never changes, so a closed day's sum never
# changes: only today is summed again on each call. (A loader that writes into past days, like the seed,
# runs before the app serves.)
_CLOSED_DAYS: OrderedDict[tuple, tuple[dict, dict]] = OrderedDict()
_CLOSED_DAYS_LOCK = threading.Lock()
_CLOSED_DAYS_MAX = 32

DaySums = dict[date, tuple[int, int]]  # day -> (total, part inside the month)


def _ledger_sums(s: Session, tz: str | None, now: datetime, start: datetime, end: datetime, m_start: datetime):
    """(revenue, fees) per local day for entries in [start, end]: usage and subscription debits of user accounts, and
    credits to platform:fees; each with the part at or after `m_start`."""
    day = _day_bucket(s, LedgerEntry.created_at, tz, now)
    in_month = LedgerEntry.created_at >= m_start
    in_range = (LedgerEntry.created_at >= start, LedgerEntry.created_at <= end)
    # Driven by the covering (account, time, amount, transaction) index of the user accounts'
    # entries; the kind of each entry's transaction is one primary-key probe.
    user_accounts = select(LedgerAccount.id).where(LedgerAccount.kind == "user_credits")
    is_usage = (
        select(LedgerTransaction.id)
        .where(LedgerTransaction.id == LedgerEntry.transaction_id, LedgerTransaction.kind.in_(REVENUE_KINDS))
        .exists()
    )
    revenue = s.execute(
        select(
            day,
            func.sum(-LedgerEntry.amount_cents),
            func.sum(case((in_month, -LedgerEntry.amount_cents), else_=literal(0))),
        )
        .where(LedgerEntry.account_id.in_(user_accounts), LedgerEntry.amount_cents < 0, *in_range, is_usage)
        .group_by(day)
    ).all()
    fees: list = []
    fees_account = s.scalar(select(LedgerAccount.id).where(LedgerAccount.code == FEES_ACCOUNT))
    if fees_account is not None:
        fees = s.execute(
            select(
                day,
                func.sum(LedgerEntry.amount_cents),
                func.sum(case((in_month, LedgerEntry.amount_cents), else_=literal(0))),
            )
            .where(LedgerEntry.account_id == fees_account, LedgerEntry.amount_cents > 0, *in_range)
            .group_by(day)
        ).all()

    def as_dict(rows) -> DaySums:
        return {_as_date(d): (int(t or 0), int(m or 0)) for d, t, m in rows}

    return as_dict(revenue), as_dict(fees)


def _merge(*parts: DaySums) -> DaySums:
    out: DaySums = {}
    for part in parts:
        for d, (t, m) in part.items():
            ot, om = out.get(d, (0, 0))
            out[d] = (ot + t, om + m)
    return out


def _with_closed_days(s: Session, what: str, tz: str | None, now: datetime, start: datetime, compute, merge):
    """`compute(s, start, end)` for [start, now]: the closed days' part from the cache, today's part afresh."""
    today_start = day_start(now, tz, 0)
    offset = now.astimezone(_zone(tz)).utcoffset()
    key = (what, str(s.get_bind().url), _zone(tz).key, offset, start, today_start)
    with _CLOSED_DAYS_LOCK:
        closed = _CLOSED_DAYS.get(key)
    if closed is None:
        closed = compute(s, start, today_start - timedelta(microseconds=1))
        with _CLOSED_DAYS_LOCK:
            _CLOSED_DAYS[key] = closed
            while len(_CLOSED_DAYS) > _CLOSED_DAYS_MAX:
                _CLOSED_DAYS.popitem(last=False)
    return merge(closed, compute(s, max(today_start, start), now))


def _ledger_by_day(s: Session, tz: str | None, now: datetime, window_start: datetime, m_start: datetime):
    """Revenue and fees per local day from `window_start` to `now`, each with the month-to-date part."""
    return _with_closed_days(
        s,
        f"ledger:{m_start.isoformat()}",
        tz,
        now,
        window_start,
        lambda s, start, end: _ledger_sums(s, tz, now, start, end, m_start),
        lambda a, b: (_merge(a[0], b[0]), _merge(a[1], b[1])),
    )


def _deployments_by_day(s: Session, tz: str | None, now: datetime, start: datetime) -> dict[date, int]:
    """Deployments created per local day from `start` to `now`."""

    def compute(s: Session, lo: datetime, hi: datetime) -> dict[date, int]:
        day = _day_bucket(s, Deployment.created_at, tz, now)
        rows = s.execute(
            select(day, func.count()).where(Deployment.created_at >= lo, Deployment.created_at <= hi).group_by(day)
        ).all()
        return {_as_date(d): int(n) for d, n in rows}

    def merge(a: dict[date, int], b: dict[date, int]) -> dict[date, int]:
        return {d: a.get(d, 0) + b.get(d, 0) for d in a.keys() | b.keys()}

    return _with_closed_days(s, "deployments", tz, now, start, compute, merge)


def _capacity(s: Session, now: datetime) -> list[RegionCapacity]:
    """Per region: vCPU/RAM placed for pending and running deployments vs the online nodes' capacity."""
    used_rows = s.execute(
        select(
            Node.region,
            func.sum(Deployment.vcpu),
            func.sum(Deployment.ram_gb),
        )
        .select_from(Deployment)
        .join(DeploymentPlacement, DeploymentPlacement.deployment_id == Deployment.id)
        .join(Node, Node.id == DeploymentPlacement.node_id)
        .where(Deployment.status.in_(LIVE_STATUSES))
        .group_by(Node.region)
    ).all()
    online_rows = s.execute(
        select(Node.region, func.sum(Node.vcpu), func.sum(Node.ram_gb), func.count())
        .where(and_(is_online_clause(now)))
        .group_by(Node.region)
    ).all()
    used = {r: (int(v or 0), int(m or 0)) for r, v, m in used_rows}
    online = {r: (int(v or 0), int(m or 0), int(n)) for r, v, m, n in online_rows}
    out = []
    for region in sorted(set(used) | set(online)):
        uv, um = used.get(region, (0, 0))
        ov, om, on = online.get(region, (0, 0, 0))
        out.append(RegionCapacity(region, uv, ov, um, om, on))
    return out
