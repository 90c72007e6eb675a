"""Deployments, where they are placed, and their status timeline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from services.db.base import Base, BigId, utcnow
from services.nodes.models import Node

STATUSES = ("pending", "running", "stopped", "failed", "deleted")


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (
        # A name is unique per owner among deployments that are not deleted.
        Index(
            "uq_deployments_owner_name_live",
            "owner_user_id",
            "name",
            unique=True,
            sqlite_where=text("status != 'deleted'"),
            postgresql_where=text("status != 'deleted'"),
        ),
        Index("ix_deployments_owner_created", "owner_user_id", "created_at"),
        Index("ix_deployments_status", "status"),
        Index("ix_deployments_created", "created_at"),  # deployments per day (operator overview)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(100))
    workload: Mapped[str] = mapped_column(String(64))  # catalog key, or "custom"
    image: Mapped[str | None] = mapped_column(String(300))
    vcpu: Mapped[int]
    ram_gb: Mapped[int]
    disk_gb: Mapped[int]
    gpu_model: Mapped[str | None] = mapped_column(String(64))
    gpu_count: Mapped[int] = mapped_column(default=0)
    region: Mapped[str | None] = mapped_column(String(64))  # None: any region
    replicas: Mapped[int] = mapped_column(default=1)
    backup_enabled: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    pricing_version_id: Mapped[int | None] = mapped_column(ForeignKey("pricing_versions.id"))
    # Fixed at launch (whole deployment: replicas and backup included), what metering charges per hour.
    price_per_hour_cents: Mapped[int] = mapped_column(default=0)
    platform_fee_bp: Mapped[int] = mapped_column(default=0)  # basis points of the charge kept by the platform
    # Metering's fee accrual since the fee rate last changed: cents charged and fee kept. Each hour's fee is
    # what brings the kept fee to the rounded percentage of everything charged, so a $0.04/h deployment
    # still pays its 10 % over time instead of rounding to nothing every hour.
    metered_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    metered_fee_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]


class DeploymentPlacement(Base):
    """One replica (or the backup VM) of a deployment on one node."""

    __tablename__ = "deployment_placements"
    __table_args__ = (Index("ix_deployment_placements_node", "node_id", "deployment_id"),)

    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True)
    slot: Mapped[int] = mapped_column(primary_key=True)  # 0..replicas-1; backup is slot -1
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"))
    role: Mapped[str] = mapped_column(String(16), default="replica")  # replica | backup
    reason: Mapped[str] = mapped_column(Text, default="")


class DeploymentEvent(Base):
    __tablename__ = "deployment_events"
    __table_args__ = (Index("ix_deployment_events_deployment_ts", "deployment_id", "ts"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))  # created, placed, started, stopped, scaled, failed, deleted, ...
    status: Mapped[str | None] = mapped_column(String(16))  # status after the event
    message: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(100), default="system")


# The scheduler's walk over nodes (services/deployments/placement.py): online nodes in price order,
# biggest first. With it the first batch of candidates is read straight off the index instead of
# sorting every online node. Declared here because the scheduler owns the query it serves.
Index(
    "ix_nodes_placement_order",
    Node.status,
    Node.price_factor_pct,
    Node.vcpu.desc(),
    Node.ram_gb.desc(),
    Node.id,
)
