"""Metrics retention: keep node metrics useful without letting them grow without end.

Agents report every 15 s by default, so a fleet of 50,000 nodes adds about 290 million samples a day.
What the pages read decides what is kept:

- The last RAW_KEEP (2 days): every sample. The node page shows raw samples for up to 6 hours and
  5-minute averages for up to 2 days.
- From 2 days to KEEP (35 days) old: one sample per node per 5-minute slot, an online one if the
  node reported online in that slot (else the slot's first). The node page's uptime counts
  5-minute slots in which the node reported online, so it is unchanged by this; the hourly averages
  of long charts are then averages of 5-minute samples.
- Older than KEEP: deleted. Nothing reads beyond 30 days (charts, uptime, placement ranking).

`prune` runs hourly in the app's scheduler (and from cron: `python -m services.nodes.retention`).
Each run thins the slots that turned 2 days old in the last CATCH_UP (3 hours) and deletes what
passed KEEP; both are idempotent, and a run after a long stop can thin further back with
`--catch-up-hours`. Work is done per range of node ids, one short transaction each, so heartbeats
keep flowing between them; every statement reads the metrics' primary key (node, time) by range.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.orm import Session

from services.db.base import utcnow
from services.db.dialect import epoch_seconds
from services.db.engine import UnitOfWork
from services.nodes.models import Node, NodeMetric

log = logging.getLogger("marketplace.retention")

RAW_KEEP = timedelta(days=2)
KEEP = timedelta(days=35)
CATCH_UP = timedelta(hours=3)
SLOT_SECONDS = 300
NODES_PER_TRANSACTION = 2_000


@dataclass(frozen=True)
class PruneResult:
    thinned: int  # samples removed from slots that had more than one
    expired: int  # samples older than KEEP removed


def _slot_floor(at: datetime) -> datetime:
    """`at` rounded down to a 5-minute slot boundary (slots are counted from 1970, as the node page counts them)."""
    seconds = int(at.timestamp())
    return at - timedelta(seconds=seconds % SLOT_SECONDS, microseconds=at.microsecond)


def _node_ranges(session: Session) -> list[tuple[int, int]]:
    ids = list(session.scalars(select(Node.id).order_by(Node.id)))
    return [
        (ids[i], ids[min(i + NODES_PER_TRANSACTION, len(ids)) - 1]) for i in range(0, len(ids), NODES_PER_TRANSACTION)
    ]


def _thin(session: Session, first: int, last: int, lo: datetime, hi: datetime) -> int:
    """Delete all but one sample of each (node, 5-minute slot) in [lo, hi) for nodes first..last."""
    in_range = (NodeMetric.node_id.between(first, last), NodeMetric.ts >= lo, NodeMetric.ts < hi)
    slot = epoch_seconds(session, NodeMetric.ts) // SLOT_SECONDS
    ranked = (
        select(
            NodeMetric.node_id,
            NodeMetric.ts,
            func.row_number()
            .over(partition_by=(NodeMetric.node_id, slot), order_by=(NodeMetric.online.desc(), NodeMetric.ts))
            .label("rn"),
        )
        .where(*in_range)
        .subquery()
    )
    extra = select(ranked.c.node_id, ranked.c.ts).where(ranked.c.rn > 1)
    stmt = delete(NodeMetric).where(*in_range, tuple_(NodeMetric.node_id, NodeMetric.ts).in_(extra))
    return int(session.execute(stmt).rowcount or 0)


def _expire(session: Session, first: int, last: int, cutoff: datetime) -> int:
    stmt = delete(NodeMetric).where(NodeMetric.node_id.between(first, last), NodeMetric.ts < cutoff)
    return int(session.execute(stmt).rowcount or 0)


def prune(uow: UnitOfWork | None = None, *, now: datetime | None = None, catch_up: timedelta = CATCH_UP) -> PruneResult:
    """Thin the samples that turned RAW_KEEP old in the last `catch_up`, and delete those older than KEEP."""
    uow = uow or UnitOfWork()
    now = now or utcnow()
    hi = _slot_floor(now - RAW_KEEP)
    lo = max(_slot_floor(hi - catch_up), _slot_floor(now - KEEP))
    cutoff = now - KEEP
    with uow:
        ranges = _node_ranges(uow.session)
    thinned = expired = 0
    for first, last in ranges:
        with uow:
            s = uow.session
            thinned += _thin(s, first, last, lo, hi) if lo < hi else 0
            expired += _expire(s, first, last, cutoff)
            uow.commit()
    result = PruneResult(thinned=thinned, expired=expired)
    if thinned or expired:
        log.info("metrics retention: %s", result)
    return result


def prune_job() -> None:
    """The scheduler's job: one pass on the configured database."""
    prune()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Thin and expire node metrics (idempotent; see the module docstring).")
    parser.add_argument(
        "--catch-up-hours",
        type=float,
        default=CATCH_UP.total_seconds() / 3600,
        help="thin the slots that turned 2 days old within this many hours (default: 3; e.g. 800 after a long stop)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = prune(catch_up=timedelta(hours=args.catch_up_hours))
    print(f"thinned {result.thinned:,} sample(s), expired {result.expired:,} sample(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
