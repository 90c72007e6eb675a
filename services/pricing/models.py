"""Versioned pricing. Rates are in millicents (1/1000 cent) so that sub-cent hourly rates are exact."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.db.base import Base, BigId, utcnow


class PricingVersion(Base):
    __tablename__ = "pricing_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    effective_at: Mapped[datetime] = mapped_column(index=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    vcpu_hour_millicents: Mapped[int]
    ram_gb_hour_millicents: Mapped[int]
    disk_gb_month_millicents: Mapped[int]
    gpu_hour_millicents: Mapped[dict] = mapped_column(default=dict)  # GPU model -> millicents per GPU-hour
    platform_fee_bp: Mapped[int] = mapped_column(default=1000)  # basis points: 1000 = 10 %
    # True: running deployments move to this version's price when it takes effect.
    running_follow: Mapped[bool] = mapped_column(default=False)
    term_discount_bp: Mapped[int] = mapped_column(default=1500)  # monthly commitment discount
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
