"""One metering tick over every running deployment, against one INSERT ... SELECT writing the same entries.

The tick runs exactly as the scheduler runs it (`services.metering.run_tick`), in a unit of work
whose commit is left out: leaving it rolls the tick back, so the data set stays as seeded and the
tick can be measured again. Everything else (every statement, every row written, the locks) is
the real tick. Peak memory is this process's peak resident set size (the interpreter and imports
included), read after the ticks.

The floor is the tick's essence as one statement: the three legs (owner debit, platform fee,
provider share) of one hour of usage for every running deployment, written to `ledger_entries` by a
single INSERT ... SELECT, also rolled back.
"""

from __future__ import annotations

import resource
import time

from sqlalchemy import bindparam, text

from bench.core import Row, current_rss_mb, failed_row, median, peak_rss_mb, ratio
from services.db.base import UTCDateTime, utcnow
from services.db.engine import UnitOfWork

TARGET = "≤ 20 s, ≤ 300 MB; ratio ≤ 2"
MAX_SECONDS = 20.0
MAX_MB = 300.0
MAX_RATIO = 2.0

FLOOR_SQL = """
INSERT INTO ledger_entries (transaction_id, account_id, amount_cents, created_at)
SELECT :txn, x.account_id, x.amount, :now FROM (
    SELECT la.id AS account_id, -d.price_per_hour_cents AS amount
    FROM deployments d JOIN ledger_accounts la ON la.user_id = d.owner_user_id
    WHERE d.status = 'running' AND d.price_per_hour_cents > 0
    UNION ALL
    SELECT fees.id, (d.price_per_hour_cents * d.platform_fee_bp + 5000) / 10000
    FROM deployments d JOIN ledger_accounts fees ON fees.code = 'platform:fees'
    WHERE d.status = 'running' AND d.price_per_hour_cents > 0
    UNION ALL
    SELECT pa.id, d.price_per_hour_cents - (d.price_per_hour_cents * d.platform_fee_bp + 5000) / 10000
    FROM deployments d
    JOIN deployment_placements p ON p.deployment_id = d.id AND p.slot = 0
    JOIN nodes n ON n.id = p.node_id
    JOIN ledger_accounts pa ON pa.provider_id = n.provider_id
    WHERE d.status = 'running' AND d.price_per_hour_cents > 0
) x
"""


class RolledBack(UnitOfWork):
    """A unit of work that never commits: leaving it rolls everything back (the data set stays as seeded)."""

    def commit(self) -> None:
        self.session.flush()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _tick(url: str) -> tuple[float, object, float]:
    """(seconds, result, CPU seconds of this process: on a shared machine, what the tick itself needed)."""
    from services.metering import run_tick

    cpu, start = _cpu(), time.perf_counter()
    result = run_tick(RolledBack(url), at=utcnow())
    return time.perf_counter() - start, result, _cpu() - cpu


def _floor(url: str) -> tuple[float, int]:
    uow = RolledBack(url)
    stmt = text(FLOOR_SQL).bindparams(bindparam("now", type_=UTCDateTime()))
    with uow:
        s = uow.session
        txn = s.execute(text("SELECT MAX(id) FROM ledger_transactions")).scalar_one()
        start = time.perf_counter()
        written = s.execute(stmt, {"txn": txn, "now": utcnow()}).rowcount
        return time.perf_counter() - start, int(written or 0)


def measure(ctx) -> list[Row]:
    """The tick's seconds (median of a few) and this process's peak RSS, against the floor's seconds."""
    what = "metering: one tick over every running deployment"
    runs = 1 if ctx.quick else 3
    rss_before = current_rss_mb()
    try:
        ticks = [_tick(ctx.url) for _ in range(runs)]
        floors = [_floor(ctx.url) for _ in range(runs)]
    except Exception as exc:
        return [failed_row(what, TARGET, f"{type(exc).__name__}: {exc}")]
    seconds = median([t for t, _, _ in ticks])
    cpu = median([c for _, _, c in ticks])
    floor_seconds = median([t for t, _ in floors])
    peak = peak_rss_mb()
    last = ticks[-1][1]
    r = ratio(seconds, floor_seconds)
    return [
        Row(
            what=what,
            figure=f"{seconds:.2f} s (CPU {cpu:.1f} s), peak RSS {peak:.0f} MB ({last.charged:,} charged)",
            floor=f"{floor_seconds:.2f} s ({floors[-1][1]:,} entries)",
            ratio=r,
            target=TARGET,
            met=seconds <= MAX_SECONDS and peak <= MAX_MB and r is not None and r <= MAX_RATIO,
            values={
                "seconds": round(seconds, 3),
                "runs": [round(t, 3) for t, _, _ in ticks],
                "cpu_seconds": round(cpu, 3),
                "peak_rss_mb": peak,
                "rss_before_mb": rss_before,
                "charged": last.charged,
                "stopped": last.stopped,
            },
            floor_values={"seconds": round(floor_seconds, 3), "entries": floors[-1][1]},
        )
    ]
