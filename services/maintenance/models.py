"""Maintenance windows scheduled by providers for one or several nodes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.db.base import Base, BigId, utcnow


class MaintenanceWindow(Base):
    __tablename__ = "maintenance_windows"
    __table_args__ = (Index("ix_maintenance_windows_provider_start", "provider_id", "starts_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")  # scheduled | cancelled
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]


class MaintenanceWindowNode(Base):
    __tablename__ = "maintenance_window_nodes"
    __table_args__ = (Index("ix_maintenance_window_nodes_node", "node_id", "window_id"),)

    window_id: Mapped[int] = mapped_column(ForeignKey("maintenance_windows.id", ondelete="CASCADE"), primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
