"""Demo fleet: keeps seeded nodes (those with no agent token) alive in demo mode.

Every tick it refreshes their heartbeat and, every 5 minutes, appends a metrics sample, so the
demo's "nodes online" figure and node charts stay live without real agents. Never used outside
demo mode; nodes registered through the app (which have a token) are left to their agents.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select, update

from services.db.base import utcnow
from services.db.dialect import insert_ignore
from services.db.engine import UnitOfWork
from services.nodes.models import Node, NodeMetric


def tick(uow: UnitOfWork | None = None) -> int:
    """Refresh simulated heartbeats; returns how many nodes were touched."""
    uow = uow or UnitOfWork()
    now = utcnow()
    with uow:
        s = uow.session
        touched = s.execute(
            update(Node).where(Node.status == "online", Node.token_hash.is_(None)).values(last_heartbeat_at=now)
        ).rowcount
        slot = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
        latest = s.scalar(select(NodeMetric.ts).order_by(NodeMetric.ts.desc()).limit(1))
        if latest is None or latest < slot - timedelta(seconds=1):
            ids = s.scalars(select(Node.id).where(Node.status == "online", Node.token_hash.is_(None)).limit(2000)).all()
            rng = random.Random(slot.timestamp())
            rows = [
                dict(
                    node_id=i,
                    ts=slot,
                    cpu_pct=rng.uniform(15, 85),
                    ram_pct=rng.uniform(20, 80),
                    disk_pct=rng.uniform(30, 60),
                    net_in_mbps=rng.uniform(5, 400),
                    net_out_mbps=rng.uniform(5, 300),
                    online=True,
                )
                for i in ids
            ]
            if rows:
                s.execute(insert_ignore(s, NodeMetric), rows)
        uow.commit()
    return touched
