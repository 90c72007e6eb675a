"""Providers and the applications (provider requests) that create them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.db.base import Base, BigId, utcnow


class Provider(Base):
    __tablename__ = "providers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    company: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str] = mapped_column(String(320))
    website: Mapped[str | None] = mapped_column(String(500))
    regions: Mapped[list] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | suspended
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProviderRequest(Base):
    __tablename__ = "provider_requests"
    __table_args__ = (Index("ix_provider_requests_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    applicant_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    company: Mapped[str] = mapped_column(String(200))
    contact_name: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str] = mapped_column(String(320))
    regions: Mapped[list] = mapped_column(default=list)
    expected_capacity: Mapped[str] = mapped_column(Text, default="")
    website: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | approved | rejected
    review_note: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None]
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
