"""Usage metering: charge every running deployment for the current hour, set-based and idempotent.

Run by the app's in-process scheduler (MARKETPLACE_METERING_ENABLED, MARKETPLACE_METERING_INTERVAL_SECONDS)
and by cron: `python -m services.metering`. Any number of runs, in any number of processes, charge a
deployment at most once per hour: the `usage_charges` primary key (deployment, hour) is the unique key.

The rules (README, "Payments"):
- Hours are charged in advance. A tick at 10:17 charges the hour 10:00-11:00 to every deployment running at
  that moment that has no charge for that hour yet. An hour in which no tick ran at all (app and cron both
  down) is not charged afterwards: the meter never bills backwards.
- Price: the deployment's `price_per_hour_cents`, fixed at launch. When the newest pricing version in force
  that says `running_follow` is newer than the deployment's version, the deployment first moves to that
  version's price (the launch formula: each instance at its own node's price factor, summed, rounded once) and gets
  a "repriced" event.
- Split: the platform fee accrues: each hour's fee is `platform_fee_cents(charged so far + price, bp)` minus the
  fee already kept (`deployments.metered_cents` / `metered_fee_cents`, reset when the fee rate changes), so the
  platform keeps its percentage of the total to the cent even when an hour's share is under a cent; the first
  hour's fee is `platform_fee_cents(price, bp)`, as the launch quote shows. The rest goes to the
  providers hosting the deployment, in proportion to the instances (replicas and backup VM) each hosts. The
  cents left over by that integer division go to the provider hosting the most instances (the lowest
  provider id on a tie), who is also the charge's `provider_id`. A running deployment with no placement at
  all has its share booked to `platform:revenue`.
- Credits: each owner's deployments are charged oldest first while the owner's credits cover them. A
  deployment whose hour the remaining credits cannot cover is stopped, with a deployment event and a
  notification to its owner. Credits never go below zero.
- A deployment whose subscription is paid through a time after the hour's start is not metered: the paid
  invoice already bought that month (services/payments/service.py).
- Owners charged in a tick whose credits fall below the operator's low-balance threshold get one
  notification per day.

Every step is one SQL statement over all deployments (INSERT ... SELECT, UPDATE ... FROM), never a query per
deployment, and the whole tick is one database transaction. The tick decides once, into two temporary tables
(`metering_due`: each due deployment, its price and fee, and the id of the ledger transaction that charges it,
or none when it is stopped; `metering_shares`: each charge's provider share split by provider), and every later
statement reads those instead of deciding again; they are dropped before the commit. On PostgreSQL the
`deployments` and `ledger_accounts` pages keep room for the hourly updates of unindexed columns (fee accrual,
balances; migration 0002), so those stay heap-only instead of adding a new entry to every index. Concurrent
ticks are serialised by a row lock on the `platform:fees` account (SQLite: the database write lock that the
same statement takes), so the second one finds the hour already charged.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.audit import service as audit
from services.auth.identity import SYSTEM
from services.db.base import UTCDateTime, utcnow
from services.db.engine import UnitOfWork
from services.ledger import service as ledger
from services.payments.money import decimal_text, money_text
from services.pricing.models import PricingVersion
from services.pricing.service import HOURS_PER_MONTH
from services.settings import service as settings_service

log = logging.getLogger("marketplace.metering")

FEES = "platform:fees"
REVENUE = "platform:revenue"


@dataclass(frozen=True)
class TickResult:
    """What one metering tick did."""

    hour_start: datetime
    charged: int  # deployments charged for the hour
    charged_cents: int
    fee_cents: int
    stopped: int  # deployments stopped because their owner's credits could not cover the hour
    repriced: int  # running deployments moved to a running_follow pricing version
    low_balance_notices: int


def hour_floor(at: datetime) -> datetime:
    """The start of the clock hour containing `at` (UTC)."""
    return at.replace(minute=0, second=0, microsecond=0)


def _run(session: Session, sql: str, **params):
    """Execute one statement; `hour`, `now` and `*_at` parameters are bound as UTC timestamps."""
    stmt = text(sql)
    typed = [
        bindparam(name, type_=UTCDateTime())
        for name, value in params.items()
        if isinstance(value, datetime) and f":{name}" in sql
    ]
    if typed:
        stmt = stmt.bindparams(*typed)
    return session.execute(stmt, params)


def provider_shares(session: Session, deployment_id: int, share_cents: int) -> list[tuple[int | None, int]]:
    """The tick's split of one deployment's provider share, for one deployment: [(provider id, cents)], the
    main provider first; [(None, share)] when the deployment has no placement (booked to platform:revenue)."""
    from sqlalchemy import func

    from services.deployments.models import DeploymentPlacement
    from services.nodes.models import Node

    rows = session.execute(
        select(Node.provider_id, func.count())
        .select_from(DeploymentPlacement)
        .join(Node, Node.id == DeploymentPlacement.node_id)
        .where(DeploymentPlacement.deployment_id == deployment_id)
        .group_by(Node.provider_id)
    ).all()
    if not rows:
        return [(None, share_cents)] if share_cents else []
    ranked = sorted(((int(p), int(w)) for p, w in rows), key=lambda r: (-r[1], r[0]))
    total = sum(w for _, w in ranked)
    parts = [[provider, share_cents * w // total] for provider, w in ranked]
    parts[0][1] += share_cents - sum(c for _, c in parts)
    return [(p, c) for p, c in parts if c]


def _ensure_system_accounts(uow: UnitOfWork) -> dict[str, int]:
    """The ids of the accounts metering posts to, creating them once (a concurrent creator is fine)."""
    for _attempt in range(3):
        try:
            with uow:
                ids = {code: ledger.system_account(uow.session, code).id for code in (FEES, REVENUE)}
                uow.commit()
                return ids
        except IntegrityError:  # another process created one at the same moment: read it next time round
            continue
    raise RuntimeError("could not create the platform ledger accounts")


# The deployments that are running, priced, not charged for the hour and not covered by a paid subscription.
_DUE = """
    d.status = 'running' AND d.price_per_hour_cents > 0
    AND NOT EXISTS (SELECT 1 FROM usage_charges uc WHERE uc.deployment_id = d.id AND uc.hour_start = :hour)
    AND d.id NOT IN (
        SELECT s.deployment_id FROM subscriptions s
        WHERE s.deployment_id IS NOT NULL AND s.current_period_end IS NOT NULL AND s.current_period_end > :hour
    )
"""

# This tick's work, in two temporary tables that live for the tick's transaction:
# - metering_due: every due deployment with its price, fee and the ledger transaction id it is charged under
#   (NULL: the owner's credits cannot cover it, it is stopped);
# - metering_shares: the provider share of every charged deployment split by provider, in proportion to the
#   instances each hosts, the left-over cents on the main provider (rank 1: most instances, lowest id); a
#   deployment placed nowhere has one rank-1 row without a provider (booked to platform:revenue). Each row
#   carries the charge and its fee too, so the usage rows are written from the rank-1 rows alone.
_TEMP_TABLES = {
    "metering_due": """(
        deployment_id {deployment_id},
        owner_user_id BIGINT NOT NULL,
        owner_account_id BIGINT,
        amount_cents BIGINT NOT NULL,
        fee_cents BIGINT NOT NULL,
        transaction_id BIGINT
    )""",
    "metering_shares": """(
        deployment_id BIGINT NOT NULL,
        transaction_id BIGINT NOT NULL,
        charge_cents BIGINT NOT NULL,
        fee_cents BIGINT NOT NULL,
        provider_id BIGINT,
        provider_rank INTEGER NOT NULL,
        amount_cents BIGINT NOT NULL
    )""",
}

# The tick's ledger entries (transaction, account, cents): the owner pays, the platform keeps its fee, the
# providers (or platform:revenue for a deployment placed nowhere) get the rest. Written by one statement and
# summed by account for the cached balances by another, so both see the same rows.
_ENTRIES = """
    SELECT t.transaction_id, t.owner_account_id AS account_id, -t.amount_cents AS amount_cents
    FROM metering_due t WHERE t.transaction_id IS NOT NULL
    UNION ALL
    SELECT t.transaction_id, :fees, t.fee_cents
    FROM metering_due t WHERE t.transaction_id IS NOT NULL AND t.fee_cents <> 0
    UNION ALL
    SELECT s.transaction_id, CASE WHEN s.provider_id IS NULL THEN :revenue ELSE la.id END, s.amount_cents
    FROM metering_shares s LEFT JOIN ledger_accounts la ON la.provider_id = s.provider_id
    WHERE s.amount_cents <> 0
"""


def _lock(session: Session) -> None:
    """Serialise ticks: the first statement writes (SQLite takes its write lock) the fees account row."""
    _run(session, "UPDATE ledger_accounts SET balance_cents = balance_cents WHERE code = :code", code=FEES)
    if session.get_bind().dialect.name == "postgresql":
        # Refunds and adjustments lock a user's credits row before debiting it; lock the rows metering may
        # debit now, so the balances read below stay true until commit.
        _run(
            session,
            """
            SELECT count(*) FROM (
                SELECT la.id FROM ledger_accounts la
                WHERE la.kind = 'user_credits'
                  AND la.user_id IN (SELECT d.owner_user_id FROM deployments d WHERE d.status = 'running')
                FOR UPDATE
            ) locked
            """,
        )


def _reprice_followers(session: Session, now: datetime) -> int:
    """Move running deployments to the newest running_follow version in force, if theirs is older."""
    follow = session.scalar(
        select(PricingVersion)
        .where(PricingVersion.effective_at <= now, PricingVersion.running_follow.is_(True))
        .order_by(PricingVersion.version.desc())
        .limit(1)
    )
    if follow is None:
        return 0
    gpu_rates = sorted((follow.gpu_hour_millicents or {}).items())
    gpu_case = "0"
    params: dict = {}
    if gpu_rates:
        whens = []
        for i, (model, rate) in enumerate(gpu_rates):
            params[f"gm{i}"] = model
            params[f"gr{i}"] = int(rate)
            whens.append(f"WHEN :gm{i} THEN :gr{i}")
        gpu_case = f"CASE deployments.gpu_model {' '.join(whens)} ELSE 0 END"
    # pricing.service.instance_hour_millicents in SQL: one instance's list millicents, then at each node's
    # factor, summed over the deployment's placements and rounded half-up once, as a launch prices it
    # (deployments.service.price_for_nodes). All operands are non-negative integers: integer division floors.
    base = f"""(
        deployments.vcpu * :vcpu_rate + deployments.ram_gb * :ram_rate
        + (deployments.disk_gb * :disk_rate + {HOURS_PER_MONTH // 2}) / {HOURS_PER_MONTH}
        + deployments.gpu_count * {gpu_case})"""
    placed = f"""(
        SELECT SUM({base} * n.price_factor_pct / 100) FROM deployment_placements p JOIN nodes n ON n.id = p.node_id
        WHERE p.deployment_id = deployments.id)"""
    instances = "(deployments.replicas + CASE WHEN deployments.backup_enabled THEN 1 ELSE 0 END)"
    older = """
        deployments.status = 'running'
        AND (deployments.pricing_version_id IS NULL OR deployments.pricing_version_id IN (
            SELECT pv.id FROM pricing_versions pv WHERE pv.version < :follow_version))
    """
    params |= dict(
        vcpu_rate=follow.vcpu_hour_millicents,
        ram_rate=follow.ram_gb_hour_millicents,
        disk_rate=follow.disk_gb_month_millicents,
        follow_version=follow.version,
        follow_id=follow.id,
        fee_bp=follow.platform_fee_bp,
        now=now,
        message=f"Price follows pricing version {follow.version} (running deployments follow its prices).",
    )
    _run(
        session,
        f"""
        INSERT INTO deployment_events (deployment_id, ts, kind, status, message, actor)
        SELECT deployments.id, :now, 'repriced', deployments.status, :message, 'metering'
        FROM deployments WHERE {older}
        """,
        **params,
    )
    result = _run(
        session,
        f"""
        UPDATE deployments SET
            price_per_hour_cents = (COALESCE({placed}, {base} * {instances}) + 500) / 1000,
            platform_fee_bp = :fee_bp, pricing_version_id = :follow_id, updated_at = :now,
            metered_cents = 0, metered_fee_cents = 0
        WHERE {older}
        """,
        **params,
    )
    return int(result.rowcount or 0)


def _create_temp_tables(session: Session) -> None:
    """Create this tick's empty work tables (temporary: private to the connection, gone with the transaction)."""
    postgres = session.get_bind().dialect.name == "postgresql"
    for name, columns in _TEMP_TABLES.items():
        # SQLite looks deployments up in it by rowid (INTEGER PRIMARY KEY, no separate index); PostgreSQL only
        # hash-joins it, so an index there would be maintained for nothing.
        ddl = columns.format(deployment_id="BIGINT NOT NULL" if postgres else "INTEGER PRIMARY KEY")
        _run(session, f"CREATE TEMPORARY TABLE {name} {ddl}" + (" ON COMMIT DROP" if postgres else ""))


def _drop_temp_tables(session: Session) -> None:
    """Drop the work tables before commit (SQLite keeps a temporary table for the connection's life)."""
    for name in reversed(list(_TEMP_TABLES)):
        _run(session, f"DROP TABLE {name}")


def _next_transaction_id(session: Session, max_before: int) -> tuple[str, dict]:
    """SQL for the id of the next ledger transaction, one per covered charge, and its parameters.

    PostgreSQL: the table's own sequence, so concurrent writers of other transactions never collide.
    SQLite: the ids after the largest, numbered in deployment order; the tick holds the database's write lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        sequence = session.execute(text("SELECT pg_get_serial_sequence('ledger_transactions', 'id')")).scalar_one()
        return "nextval(CAST(:sequence AS regclass))", {"sequence": sequence}
    return ":max_before + ROW_NUMBER() OVER (PARTITION BY c.covered ORDER BY c.id)", {"max_before": max_before}


def run_tick(uow: UnitOfWork | None = None, *, at: datetime | None = None) -> TickResult:
    """Charge every due running deployment for the hour containing `at` (now), exactly once, in one
    transaction: usage rows, balanced ledger transactions, exact cached balances, stops and notices."""
    uow = uow or UnitOfWork()
    now = at or utcnow()
    hour = hour_floor(now)
    tag = f"{hour:%Y%m%d%H}"
    accounts = _ensure_system_accounts(uow)
    settings = settings_service.get(uow)
    with uow:
        s = uow.session
        _lock(s)
        repriced = _reprice_followers(s, now)
        max_before = int(s.execute(text("SELECT COALESCE(MAX(id), 0) FROM ledger_transactions")).scalar_one())
        next_id, id_params = _next_transaction_id(s, max_before)
        postgres = s.get_bind().dialect.name == "postgresql"
        if postgres:
            # A batch over every running deployment: sorts and hashes in memory rather than on disk, and no
            # just-in-time compilation (it costs more than it saves on statements that run once).
            s.execute(text("SET LOCAL work_mem = '64MB'"))
            s.execute(text("SET LOCAL jit = off"))
        _create_temp_tables(s)

        # 1. Decide: each owner's due deployments, oldest first, are covered while the owner's credits last. A
        #    covered deployment gets its ledger transaction id now, so everything below links to it directly.
        _run(
            s,
            f"""
            INSERT INTO metering_due (deployment_id, owner_user_id, owner_account_id, amount_cents, fee_cents,
                                      transaction_id)
            SELECT c.id, c.owner_user_id, c.account_id, c.price,
                   ((c.metered + c.price) * c.fee_bp + 5000) / 10000 - c.metered_fee,
                   CASE WHEN c.covered = 1 THEN {next_id} END
            FROM (
                SELECT d.id, d.owner_user_id, la.id AS account_id, d.price_per_hour_cents AS price,
                       d.platform_fee_bp AS fee_bp, d.metered_cents AS metered, d.metered_fee_cents AS metered_fee,
                       CASE WHEN SUM(d.price_per_hour_cents) OVER (
                                PARTITION BY d.owner_user_id ORDER BY d.id ROWS UNBOUNDED PRECEDING
                            ) <= la.balance_cents THEN 1 ELSE 0 END AS covered
                FROM deployments d LEFT JOIN ledger_accounts la ON la.user_id = d.owner_user_id
                WHERE {_DUE}
            ) c
            ORDER BY c.id
            """,
            hour=hour,
            **id_params,
        )
        # 2. Split each covered charge's provider share by provider: instances hosted, left-over cents to rank 1.
        _run(
            s,
            """
            INSERT INTO metering_shares (deployment_id, transaction_id, charge_cents, fee_cents, provider_id,
                                         provider_rank, amount_cents)
            SELECT r.deployment_id, r.transaction_id, r.charge_cents, r.fee_cents, r.provider_id, r.provider_rank,
                   r.part + CASE WHEN r.provider_rank = 1
                                 THEN r.share - CAST(SUM(r.part) OVER (PARTITION BY r.deployment_id) AS BIGINT)
                                 ELSE 0 END
            FROM (
                SELECT g.deployment_id, g.transaction_id, g.charge_cents, g.fee_cents, g.provider_id, g.share,
                       ROW_NUMBER() OVER (
                           PARTITION BY g.deployment_id ORDER BY g.instances DESC, g.provider_id) AS provider_rank,
                       g.share * g.instances
                           / CAST(SUM(g.instances) OVER (PARTITION BY g.deployment_id) AS BIGINT) AS part
                FROM (
                    SELECT t.deployment_id, t.transaction_id, t.amount_cents AS charge_cents, t.fee_cents,
                           t.amount_cents - t.fee_cents AS share, n.provider_id, COUNT(*) AS instances
                    FROM metering_due t
                    LEFT JOIN deployment_placements p ON p.deployment_id = t.deployment_id
                    LEFT JOIN nodes n ON n.id = p.node_id
                    WHERE t.transaction_id IS NOT NULL
                    GROUP BY t.deployment_id, t.transaction_id, t.amount_cents, t.fee_cents, n.provider_id
                ) g
            ) r
            """,
        )
        # 3. Provider accounts that do not exist yet.
        _run(
            s,
            """
            INSERT INTO ledger_accounts (code, kind, provider_id, currency, balance_cents, created_at)
            SELECT 'provider:' || CAST(pr.id AS VARCHAR(20)) || '\\:payable', 'provider_payable', pr.id, 'USD', 0, :now
            FROM providers pr
            WHERE pr.id IN (SELECT sh.provider_id FROM metering_shares sh)
              AND NOT EXISTS (SELECT 1 FROM ledger_accounts la WHERE la.provider_id = pr.id)
            """,
            now=now,
        )
        # 4. The ledger transactions, the usage rows linked to them, the fee accrual moved on by the charge.
        _run(
            s,
            """
            INSERT INTO ledger_transactions (id, kind, idempotency_key, memo, deployment_id, created_at)
            SELECT t.transaction_id, 'usage', 'meter:' || CAST(t.deployment_id AS VARCHAR(20)) || ':' || :tag, :memo,
                   t.deployment_id, :now
            FROM metering_due t WHERE t.transaction_id IS NOT NULL
            ORDER BY t.transaction_id
            """,
            tag=tag,
            memo=f"Usage {hour:%Y-%m-%d %H:00}-{hour + timedelta(hours=1):%H:00} UTC (1 h)",
            now=now,
        )
        _run(
            s,
            """
            INSERT INTO usage_charges (deployment_id, hour_start, amount_cents, fee_cents, provider_id, transaction_id,
                                       note)
            SELECT sh.deployment_id, :hour, sh.charge_cents, sh.fee_cents, sh.provider_id, sh.transaction_id, ''
            FROM metering_shares sh WHERE sh.provider_rank = 1
            ORDER BY sh.deployment_id
            """,
            hour=hour,
        )
        _run(
            s,
            """
            UPDATE deployments SET
                metered_cents = deployments.metered_cents + t.amount_cents,
                metered_fee_cents = deployments.metered_fee_cents + t.fee_cents
            FROM metering_due t
            WHERE deployments.id = t.deployment_id AND t.transaction_id IS NOT NULL
            """,
        )
        # 5. The entries, and the cached balances moved by exactly those entries (ordered by account: the account
        #    index takes them in key order instead of jumping around a big table).
        legs = dict(fees=accounts[FEES], revenue=accounts[REVENUE], now=now)
        insert_entries = f"""
            INSERT INTO ledger_entries (transaction_id, account_id, amount_cents, created_at)
            SELECT e.transaction_id, e.account_id, e.amount_cents, :now FROM ({_ENTRIES}) e
            ORDER BY e.account_id
        """
        move_balances = """
            UPDATE ledger_accounts SET balance_cents = ledger_accounts.balance_cents + x.delta
            FROM (SELECT e.account_id, SUM(e.amount_cents) AS delta FROM ({entries}) e GROUP BY e.account_id) x
            WHERE ledger_accounts.id = x.account_id
        """
        if postgres:  # one statement: the balances sum the rows the INSERT returns
            _run(
                s,
                f"WITH written AS ({insert_entries} RETURNING account_id, amount_cents) "
                + move_balances.format(entries="SELECT account_id, amount_cents FROM written"),
                **legs,
            )
        else:
            _run(s, insert_entries, **legs)
            _run(s, move_balances.format(entries=_ENTRIES), **legs)
        totals = _run(
            s,
            "SELECT COUNT(*), COALESCE(SUM(t.amount_cents), 0), COALESCE(SUM(t.fee_cents), 0) "
            "FROM metering_due t WHERE t.transaction_id IS NOT NULL",
        ).one()
        # 6. Stop what the owner's credits cannot cover, with an event and one notice per owner.
        _run(
            s,
            """
            INSERT INTO deployment_events (deployment_id, ts, kind, status, message, actor)
            SELECT t.deployment_id, :now, 'stopped', 'stopped', :message, 'metering'
            FROM metering_due t WHERE t.transaction_id IS NULL
            ORDER BY t.deployment_id
            """,
            now=now,
            message="Stopped: your credits could not cover the next hour. Top up your credits, then start it again.",
        )
        _run(
            s,
            """
            INSERT INTO notifications (user_id, kind, title, body, dedupe_key, created_at)
            SELECT t.owner_user_id, 'deployment', :title,
                   'Metering stopped ' || CAST(COUNT(*) AS VARCHAR(20)) || ' running deployment(s) because your '
                   || 'credits could not cover the next hour. Top up your credits, then start them again.',
                   'credits_stop:' || :tag || ':' || CAST(t.owner_user_id AS VARCHAR(20)), :now
            FROM metering_due t WHERE t.transaction_id IS NULL
            GROUP BY t.owner_user_id
            ON CONFLICT DO NOTHING
            """,
            title="Deployments stopped: credits ran out",
            tag=tag,
            now=now,
        )
        stopped = _run(
            s,
            """
            UPDATE deployments SET status = 'stopped', stopped_at = :now, updated_at = :now
            WHERE id IN (SELECT t.deployment_id FROM metering_due t WHERE t.transaction_id IS NULL)
            """,
            now=now,
        ).rowcount
        # 7. Low-balance notice, once per owner per day.
        low = _run(
            s,
            """
            INSERT INTO notifications (user_id, kind, title, body, dedupe_key, created_at)
            SELECT la.user_id, 'low_balance', :title, :body,
                   'low_balance:' || :day || ':' || CAST(la.user_id AS VARCHAR(20)), :now
            FROM ledger_accounts la
            WHERE la.kind = 'user_credits' AND la.balance_cents < :threshold
              AND la.id IN (SELECT t.owner_account_id FROM metering_due t WHERE t.transaction_id IS NOT NULL)
            ON CONFLICT DO NOTHING
            """,
            title="Your credits are running low",
            body=(
                f"Your credits fell below {money_text(settings.low_balance_threshold_cents)}. Top up to keep your "
                "deployments running: a deployment whose next hour your credits cannot cover is stopped."
            ),
            day=f"{hour:%Y%m%d}",
            threshold=settings.low_balance_threshold_cents,
            now=now,
        ).rowcount
        _drop_temp_tables(s)
        # Safety net: a tick that would leave anyone's credits negative is rolled back whole.
        negative = _run(
            s, "SELECT COUNT(*) FROM ledger_accounts WHERE kind = 'user_credits' AND balance_cents < 0"
        ).scalar_one()
        if negative:
            raise RuntimeError(f"metering would leave {negative} credit balance(s) below zero; tick rolled back")
        result = TickResult(
            hour_start=hour,
            charged=int(totals[0]),
            charged_cents=int(totals[1]),
            fee_cents=int(totals[2]),
            stopped=int(stopped or 0),
            repriced=repriced,
            low_balance_notices=int(low or 0),
        )
        if result.charged or result.stopped or result.repriced:
            audit.record(
                s,
                SYSTEM,
                "metering.tick",
                "usage_hour",
                tag,
                new={k: v for k, v in asdict(result).items() if k != "hour_start"},
            )
        uow.commit()
    if result.charged or result.stopped:
        log.info("metering %s: %s", tag, result)
    return result


def tick_job() -> None:
    """The scheduler's job: one tick on the configured database."""
    run_tick()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Charge running deployments for the current hour (idempotent).")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from services.db.migrate import upgrade

    upgrade()
    result = run_tick()
    print(
        f"metered {result.hour_start:%Y-%m-%d %H:00} UTC: charged {result.charged} deployment(s) "
        f"{decimal_text(result.charged_cents)} USD (fees {decimal_text(result.fee_cents)}), stopped {result.stopped}, "
        f"repriced {result.repriced}, low-balance notices {result.low_balance_notices}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
