"""A node's effective status: "online" only while its heartbeats are fresh."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, case, literal

from services.config import get_settings
from services.db.base import utcnow
from services.nodes.models import Node


def online_cutoff(now: datetime | None = None) -> datetime:
    """Heartbeats older than this mean the node is offline (MARKETPLACE_NODE_OFFLINE_AFTER seconds)."""
    return (now or utcnow()) - timedelta(seconds=get_settings().node_offline_after)


def is_online_clause(now: datetime | None = None):
    """SQL condition: the node says online and its last heartbeat is recent."""
    return and_(Node.status == "online", Node.last_heartbeat_at >= online_cutoff(now))


def effective_status_expr(now: datetime | None = None):
    """SQL expression for the status a person should see (online with a stale heartbeat reads offline)."""
    return case(
        (and_(Node.status == "online", Node.last_heartbeat_at < online_cutoff(now)), literal("offline")),
        (and_(Node.status == "online", Node.last_heartbeat_at.is_(None)), literal("offline")),
        else_=Node.status,
    )


def effective_status(node: Node, now: datetime | None = None) -> str:
    if node.status == "online" and (node.last_heartbeat_at is None or node.last_heartbeat_at < online_cutoff(now)):
        return "offline"
    return node.status
