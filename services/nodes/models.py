"""Nodes that providers offer, and their metrics time series."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from services.db.base import Base, BigId, utcnow


class Node(Base):
    __tablename__ = "nodes"
    __table_args__ = (
        Index("ix_nodes_provider_name", "provider_id", "name", unique=True),
        Index("ix_nodes_status_region", "status", "region"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    name: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(64))
    country: Mapped[str] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    vcpu: Mapped[int]
    ram_gb: Mapped[int]
    disk_gb: Mapped[int]
    gpu_model: Mapped[str | None] = mapped_column(String(64))
    gpu_count: Mapped[int] = mapped_column(default=0)
    bandwidth_mbps: Mapped[int] = mapped_column(default=1000)
    # Provider's price relative to the operator's list rates, in percent (100 = list price).
    price_factor_pct: Mapped[int] = mapped_column(default=100)
    # online | offline | draining | decommissioned. "online" with a stale heartbeat reads as offline.
    status: Mapped[str] = mapped_column(String(16), default="offline")
    last_heartbeat_at: Mapped[datetime | None]
    token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    token_rotated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NodeMetric(Base):
    """One sample from a node agent (or the seed). Percentages are 0..100; network in Mbit/s."""

    __tablename__ = "node_metrics"

    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    ts: Mapped[datetime] = mapped_column(primary_key=True)
    cpu_pct: Mapped[float]
    ram_pct: Mapped[float]
    disk_pct: Mapped[float]
    net_in_mbps: Mapped[float] = mapped_column(default=0.0)
    net_out_mbps: Mapped[float] = mapped_column(default=0.0)
    online: Mapped[bool] = mapped_column(default=True)
