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
deployment, and the whole tick is one database transaction. Concurrent ticks are serialised by a row lock on
the `platform:fees` account (SQLite: the database write lock that the same statement takes), so the second
one finds the hour already charged.
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

# A charge whose deployment also has instances with a provider other than the charge's main provider.
_OTHER_PROVIDER = """EXISTS (
    SELECT 1 FROM deployment_placements op JOIN nodes onode ON onode.id = op.node_id
    WHERE op.deployment_id = u.deployment_id AND onode.provider_id <> u.provider_id)"""

# This tick's charges: rows for the hour linked to transactions created after `max_before`.
# (The ORDER BYs below make index inserts sweep in key order instead of jumping around a big table.)
_NEW = "u.hour_start = :hour AND u.transaction_id > :max_before"


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
        base = dict(hour=hour, now=now, max_before=max_before)

        # 1. Decide: charge each owner's due deployments, oldest first, while their credits cover them.
        _run(
            s,
            f"""
            INSERT INTO usage_charges (deployment_id, hour_start, amount_cents, fee_cents, provider_id, note)
            SELECT c.id, :hour, c.price, ((c.metered + c.price) * c.fee_bp + 5000) / 10000 - c.metered_fee,
                   c.primary_provider, ''
            FROM (
                SELECT d.id, d.price_per_hour_cents AS price, d.platform_fee_bp AS fee_bp,
                       d.metered_cents AS metered, d.metered_fee_cents AS metered_fee,
                       la.balance_cents AS balance,
                       SUM(d.price_per_hour_cents) OVER (
                           PARTITION BY d.owner_user_id ORDER BY d.id ROWS UNBOUNDED PRECEDING) AS running_total,
                       (SELECT CASE WHEN MIN(n.provider_id) = MAX(n.provider_id) THEN MIN(n.provider_id) ELSE (
                                   SELECT n2.provider_id FROM deployment_placements p2
                                   JOIN nodes n2 ON n2.id = p2.node_id WHERE p2.deployment_id = d.id
                                   GROUP BY n2.provider_id ORDER BY COUNT(*) DESC, n2.provider_id LIMIT 1) END
                        FROM deployment_placements p JOIN nodes n ON n.id = p.node_id
                        WHERE p.deployment_id = d.id) AS primary_provider
                FROM deployments d JOIN ledger_accounts la ON la.user_id = d.owner_user_id
                WHERE {_DUE}
            ) c
            WHERE c.running_total <= c.balance
            ORDER BY c.id
            ON CONFLICT DO NOTHING
            """,
            hour=hour,
        )
        # 1b. The fee accrual moves on by this hour's charge (new charges have no transaction yet).
        _run(
            s,
            """
            UPDATE deployments SET
                metered_cents = metered_cents + (SELECT u.amount_cents FROM usage_charges u
                    WHERE u.deployment_id = deployments.id AND u.hour_start = :hour),
                metered_fee_cents = metered_fee_cents + (SELECT u.fee_cents FROM usage_charges u
                    WHERE u.deployment_id = deployments.id AND u.hour_start = :hour)
            WHERE id IN (SELECT u.deployment_id FROM usage_charges u WHERE u.hour_start = :hour AND u.transaction_id IS NULL)
            """,
            hour=hour,
        )
        # 2. One ledger transaction per charge, then link the charge to it.
        _run(
            s,
            """
            INSERT INTO ledger_transactions (kind, idempotency_key, memo, deployment_id, created_at)
            SELECT 'usage', 'meter:' || CAST(u.deployment_id AS VARCHAR(20)) || ':' || :tag, :memo,
                   u.deployment_id, :now
            FROM usage_charges u WHERE u.hour_start = :hour AND u.transaction_id IS NULL
            ORDER BY u.deployment_id
            """,
            tag=tag,
            memo=f"Usage {hour:%Y-%m-%d %H:00}-{hour + timedelta(hours=1):%H:00} UTC (1 h)",
            hour=hour,
            now=now,
        )
        _run(
            s,
            """
            UPDATE usage_charges SET transaction_id = (
                SELECT t.id FROM ledger_transactions t
                WHERE t.idempotency_key = 'meter:' || CAST(usage_charges.deployment_id AS VARCHAR(20)) || ':' || :tag)
            WHERE hour_start = :hour AND transaction_id IS NULL
            """,
            tag=tag,
            hour=hour,
        )
        # 3. Provider accounts that do not exist yet.
        _run(
            s,
            f"""
            INSERT INTO ledger_accounts (code, kind, provider_id, currency, balance_cents, created_at)
            SELECT 'provider:' || CAST(pr.id AS VARCHAR(20)) || '\\:payable', 'provider_payable', pr.id, 'USD', 0, :now
            FROM providers pr
            WHERE pr.id IN (
                SELECT n.provider_id FROM usage_charges u
                JOIN deployment_placements p ON p.deployment_id = u.deployment_id JOIN nodes n ON n.id = p.node_id
                WHERE {_NEW})
              AND NOT EXISTS (SELECT 1 FROM ledger_accounts la WHERE la.provider_id = pr.id)
            """,
            **base,
        )
        # 4. Entries: the owner pays, the platform keeps its fee, the providers get the rest.
        _run(
            s,
            f"""
            INSERT INTO ledger_entries (transaction_id, account_id, amount_cents, created_at)
            SELECT u.transaction_id, la.id, -u.amount_cents, :now
            FROM usage_charges u JOIN deployments d ON d.id = u.deployment_id
            JOIN ledger_accounts la ON la.user_id = d.owner_user_id
            WHERE {_NEW}
            ORDER BY la.id
            """,
            **base,
        )
        _run(
            s,
            f"""
            INSERT INTO ledger_entries (transaction_id, account_id, amount_cents, created_at)
            SELECT u.transaction_id, :fees, u.fee_cents, :now FROM usage_charges u
            WHERE {_NEW} AND u.fee_cents <> 0
            """,
            fees=accounts[FEES],
            **base,
        )
        # Most deployments sit with one provider (their charge's provider_id): the whole share, no arithmetic.
        _run(
            s,
            f"""
            INSERT INTO ledger_entries (transaction_id, account_id, amount_cents, created_at)
            SELECT u.transaction_id, la.id, u.amount_cents - u.fee_cents, :now
            FROM usage_charges u JOIN ledger_accounts la ON la.provider_id = u.provider_id
            WHERE {_NEW} AND u.amount_cents - u.fee_cents <> 0 AND NOT {_OTHER_PROVIDER}
            ORDER BY la.id
            """,
            **base,
        )
        # Several providers: shares in proportion to the instances each hosts, the left-over cents to the main one.
        _run(
            s,
            f"""
            WITH weights AS (
                SELECT u.transaction_id, u.amount_cents - u.fee_cents AS share, n.provider_id, COUNT(*) AS w
                FROM usage_charges u
                JOIN deployment_placements p ON p.deployment_id = u.deployment_id JOIN nodes n ON n.id = p.node_id
                WHERE {_NEW} AND {_OTHER_PROVIDER}
                GROUP BY u.transaction_id, u.amount_cents, u.fee_cents, n.provider_id
            ),
            ranked AS (
                SELECT transaction_id, share, provider_id, w,
                       CAST(SUM(w) OVER (PARTITION BY transaction_id) AS BIGINT) AS total,
                       ROW_NUMBER() OVER (PARTITION BY transaction_id ORDER BY w DESC, provider_id) AS rn
                FROM weights
            ),
            parts AS (
                SELECT transaction_id, provider_id, rn, share, (share * w) / total AS part,
                       CAST(SUM((share * w) / total) OVER (PARTITION BY transaction_id) AS BIGINT) AS parts_sum
                FROM ranked
            )
            INSERT INTO ledger_entries (transaction_id, account_id, amount_cents, created_at)
            SELECT x.transaction_id, la.id, x.amount, :now
            FROM (
                SELECT transaction_id, provider_id,
                       part + CASE WHEN rn = 1 THEN share - parts_sum ELSE 0 END AS amount
                FROM parts
            ) x JOIN ledger_accounts la ON la.provider_id = x.provider_id
            WHERE x.amount <> 0
            ORDER BY la.id
            """,
            **base,
        )
        # Running but placed nowhere: the share stays with the platform.
        _run(
            s,
            f"""
            INSERT INTO ledger_entries (transaction_id, account_id, amount_cents, created_at)
            SELECT u.transaction_id, :revenue, u.amount_cents - u.fee_cents, :now FROM usage_charges u
            WHERE {_NEW} AND u.amount_cents - u.fee_cents <> 0 AND u.provider_id IS NULL
            """,
            revenue=accounts[REVENUE],
            **base,
        )
        # 5. Cached balances move by exactly this tick's entries.
        _run(
            s,
            f"""
            UPDATE ledger_accounts SET balance_cents = ledger_accounts.balance_cents + x.delta
            FROM (
                SELECT e.account_id, SUM(e.amount_cents) AS delta
                FROM ledger_entries e JOIN usage_charges u ON u.transaction_id = e.transaction_id
                WHERE {_NEW}
                GROUP BY e.account_id
            ) x
            WHERE ledger_accounts.id = x.account_id
            """,
            hour=hour,
            max_before=max_before,
        )
        totals = _run(
            s,
            f"SELECT COUNT(*), COALESCE(SUM(u.amount_cents), 0), COALESCE(SUM(u.fee_cents), 0) "
            f"FROM usage_charges u WHERE {_NEW}",
            hour=hour,
            max_before=max_before,
        ).one()
        # 6. Stop what the owner's credits cannot cover, with an event and one notice per owner.
        _run(
            s,
            f"""
            INSERT INTO deployment_events (deployment_id, ts, kind, status, message, actor)
            SELECT d.id, :now, 'stopped', 'stopped', :message, 'metering' FROM deployments d WHERE {_DUE}
            """,
            now=now,
            hour=hour,
            message="Stopped: your credits could not cover the next hour. Top up your credits, then start it again.",
        )
        _run(
            s,
            f"""
            INSERT INTO notifications (user_id, kind, title, body, dedupe_key, created_at)
            SELECT d.owner_user_id, 'deployment', :title,
                   'Metering stopped ' || CAST(COUNT(*) AS VARCHAR(20)) || ' running deployment(s) because your '
                   || 'credits could not cover the next hour. Top up your credits, then start them again.',
                   'credits_stop:' || :tag || ':' || CAST(d.owner_user_id AS VARCHAR(20)), :now
            FROM deployments d WHERE {_DUE}
            GROUP BY d.owner_user_id
            ON CONFLICT DO NOTHING
            """,
            title="Deployments stopped: credits ran out",
            tag=tag,
            now=now,
            hour=hour,
        )
        stopped = _run(
            s,
            f"""
            UPDATE deployments SET status = 'stopped', stopped_at = :now, updated_at = :now
            WHERE id IN (SELECT d.id FROM deployments d WHERE {_DUE})
            """,
            now=now,
            hour=hour,
        ).rowcount
        # 7. Low-balance notice, once per owner per day.
        low = _run(
            s,
            f"""
            INSERT INTO notifications (user_id, kind, title, body, dedupe_key, created_at)
            SELECT la.user_id, 'low_balance', :title, :body,
                   'low_balance:' || :day || ':' || CAST(la.user_id AS VARCHAR(20)), :now
            FROM ledger_accounts la
            WHERE la.kind = 'user_credits' AND la.balance_cents < :threshold
              AND la.user_id IN (
                  SELECT d.owner_user_id FROM usage_charges u JOIN deployments d ON d.id = u.deployment_id
                  WHERE {_NEW})
            ON CONFLICT DO NOTHING
            """,
            title="Your credits are running low",
            body=(
                f"Your credits fell below {money_text(settings.low_balance_threshold_cents)}. Top up to keep your "
                "deployments running: a deployment whose next hour your credits cannot cover is stopped."
            ),
            day=f"{hour:%Y%m%d}",
            threshold=settings.low_balance_threshold_cents,
            **base,
        ).rowcount
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
