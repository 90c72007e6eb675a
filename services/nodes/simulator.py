"""Demo fleet: plays the node agents of seeded nodes (those with no agent token) in demo mode.

Every tick it refreshes their heartbeat, every 5 minutes appends a metrics sample, and starts
pending deployments placed only on such nodes (as a real agent would report "running"), so the
demo's figures, node charts and metering stay live without real agents. Never used outside demo
mode; nodes registered through the app (which have a token) are left to their agents.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import and_, exists, insert, select, update

from services.db.base import utcnow
from services.db.dialect import insert_ignore
from services.db.engine import UnitOfWork
from services.deployments.models import Deployment, DeploymentEvent, DeploymentPlacement
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
        _start_pending(s, now)
        uow.commit()
    return touched


def _start_pending(session, now, limit: int = 500) -> int:
    """Mark pending deployments running when every placement is on a simulated online node."""
    foreign = (
        select(DeploymentPlacement.deployment_id)
        .join(Node, Node.id == DeploymentPlacement.node_id)
        .where(DeploymentPlacement.deployment_id == Deployment.id)
        .where((Node.token_hash.is_not(None)) | (Node.status != "online"))
    )
    placed = select(DeploymentPlacement.deployment_id).where(DeploymentPlacement.deployment_id == Deployment.id)
    ids = session.scalars(
        select(Deployment.id)
        .where(and_(Deployment.status == "pending", exists(placed), ~exists(foreign)))
        .order_by(Deployment.id)
        .limit(limit)
    ).all()
    if not ids:
        return 0
    session.execute(
        update(Deployment)
        .where(Deployment.id.in_(ids), Deployment.status == "pending")
        .values(status="running", started_at=now, updated_at=now)
    )
    session.execute(
        insert(DeploymentEvent),
        [
            dict(
                deployment_id=i,
                ts=now,
                kind="started",
                status="running",
                actor="demo fleet",
                message="Reported running by the demo fleet (demo mode plays the node agents).",
            )
            for i in ids
        ],
    )
    return len(ids)
