"""Metrics retention (services/nodes/retention.py), on SQLite and PostgreSQL: recent samples stay as sent,
older ones keep one per 5-minute slot (so the node page's uptime does not move), the oldest go."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from services.db.base import utcnow
from services.nodes import retention
from services.nodes import service as nodes
from services.nodes.models import Node, NodeMetric
from tests.support.people import demo_identity

NODE = dict(name="retention-1", region="eu-west", country="DE", vcpu=8, ram_gb=32, disk_gb=200)


def _sample(node_id, ts, online=True, cpu=50.0) -> NodeMetric:
    return NodeMetric(node_id=node_id, ts=ts, cpu_pct=cpu, ram_pct=40.0, disk_pct=30.0, online=online)


def _stored(uow, node_id) -> list[tuple]:
    with uow:
        rows = uow.session.execute(
            select(NodeMetric.ts, NodeMetric.online).where(NodeMetric.node_id == node_id).order_by(NodeMetric.ts)
        )
        return [(ts, online) for ts, online in rows]


def test_retention_thins_old_slots_expires_the_oldest_and_keeps_uptime(seeded_db, uow):
    provider = demo_identity(uow, "demo:provider")
    node_id = nodes.register_node(uow, provider, NODE).node.id
    now = utcnow()
    hi = retention._slot_floor(now - retention.RAW_KEEP)
    busy = hi - timedelta(minutes=10)  # a slot that turned 2 days old within the catch-up window
    quiet = busy - timedelta(hours=1)
    expired = now - retention.KEEP - timedelta(days=1)
    recent = [now - timedelta(hours=1) + timedelta(seconds=15 * k) for k in range(12)]
    with uow:
        s = uow.session
        s.execute(update(Node).where(Node.id == node_id).values(created_at=now - timedelta(days=40)))
        s.add_all([_sample(node_id, expired + timedelta(minutes=k)) for k in range(3)])
        s.add_all(
            [
                _sample(node_id, busy, online=False),
                _sample(node_id, busy + timedelta(seconds=15), online=True),
                _sample(node_id, busy + timedelta(seconds=30), online=True),
                _sample(node_id, busy + timedelta(seconds=285), online=False),
                _sample(node_id, quiet, online=False),
                _sample(node_id, quiet + timedelta(seconds=60), online=False),
            ]
        )
        s.add_all([_sample(node_id, ts) for ts in recent])
        uow.commit()
    before = nodes.node_metrics(uow, provider, node_id)

    result = retention.prune(uow, now=now)

    assert result == retention.PruneResult(thinned=4, expired=3)
    kept = _stored(uow, node_id)
    assert (busy + timedelta(seconds=15), True) in kept  # the slot keeps an online sample: it counted as up
    assert (quiet, False) in kept and (quiet + timedelta(seconds=60), False) not in kept
    assert [ts for ts, _ in kept if ts >= recent[0]] == recent  # the last 2 days stay sample by sample
    assert all(ts >= now - retention.KEEP for ts, _ in kept)
    after = nodes.node_metrics(uow, provider, node_id)
    assert after.uptime_share == before.uptime_share is not None
    assert after.uptime_days == before.uptime_days
    assert retention.prune(uow, now=now) == retention.PruneResult(thinned=0, expired=0)  # idempotent


def test_retention_leaves_the_seeded_five_minute_history_alone(seeded_db, uow):
    """The seed's 30 days of one-sample-per-5-minutes metrics are already what retention keeps."""
    with uow:
        count = uow.session.query(NodeMetric).count()
    assert count > 0
    assert retention.prune(uow, catch_up=timedelta(days=30)).thinned == 0
    with uow:
        assert uow.session.query(NodeMetric).count() == count
