"""Pricing: the version in force, and what a deployment costs under it.

Rates are millicents; a deployment's hourly price is rounded half-up to whole cents once, at
launch, and that integer is exactly what metering charges each hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.db.base import utcnow
from services.errors import NotFound
from services.pricing.models import PricingVersion

HOURS_PER_MONTH = 730  # the cloud industry's convention (8760 / 12)


@dataclass(frozen=True)
class ResourceSpec:
    vcpu: int
    ram_gb: int
    disk_gb: int
    gpu_model: str | None = None
    gpu_count: int = 0
    replicas: int = 1
    backup_enabled: bool = False


@dataclass(frozen=True)
class Quote:
    pricing_version_id: int
    pricing_version: int
    currency: str
    per_instance_hour_millicents: int
    instances: int  # replicas + backup VM
    price_per_hour_cents: int  # what metering charges per hour for the whole deployment
    price_per_month_cents: int
    platform_fee_bp: int
    platform_fee_per_hour_cents: int
    provider_share_per_hour_cents: int


def _round_half_up(millicents: int) -> int:
    return (millicents + 500) // 1000


def platform_fee_cents(amount_cents: int, fee_bp: int) -> int:
    """The platform's cut of a charge, rounded half-up; the provider gets the rest."""
    return (amount_cents * fee_bp + 5000) // 10000


def instance_hour_millicents(spec: ResourceSpec, pricing: PricingVersion, price_factor_pct: int = 100) -> int:
    """One instance (replica) of `spec` for one hour, in millicents, at a node's price factor."""
    gpu_rate = (pricing.gpu_hour_millicents or {}).get(spec.gpu_model or "", 0) if spec.gpu_count else 0
    base = (
        spec.vcpu * pricing.vcpu_hour_millicents
        + spec.ram_gb * pricing.ram_gb_hour_millicents
        + (spec.disk_gb * pricing.disk_gb_month_millicents + HOURS_PER_MONTH // 2) // HOURS_PER_MONTH
        + spec.gpu_count * gpu_rate
    )
    return base * price_factor_pct // 100


def quote(spec: ResourceSpec, pricing: PricingVersion, price_factor_pct: int = 100) -> Quote:
    """The price of a deployment under `pricing` (list price unless a node factor is given)."""
    per_instance = instance_hour_millicents(spec, pricing, price_factor_pct)
    instances = spec.replicas + (1 if spec.backup_enabled else 0)
    hourly = _round_half_up(per_instance * instances)
    fee = platform_fee_cents(hourly, pricing.platform_fee_bp)
    return Quote(
        pricing_version_id=pricing.id,
        pricing_version=pricing.version,
        currency=pricing.currency,
        per_instance_hour_millicents=per_instance,
        instances=instances,
        price_per_hour_cents=hourly,
        price_per_month_cents=hourly * HOURS_PER_MONTH,
        platform_fee_bp=pricing.platform_fee_bp,
        platform_fee_per_hour_cents=fee,
        provider_share_per_hour_cents=hourly - fee,
    )


def current(session: Session, at: datetime | None = None) -> PricingVersion:
    """The pricing version in force at `at` (now by default): the newest whose effective time has come."""
    at = at or utcnow()
    row = session.scalar(
        select(PricingVersion)
        .where(PricingVersion.effective_at <= at)
        .order_by(PricingVersion.effective_at.desc(), PricingVersion.version.desc())
        .limit(1)
    )
    if row is None:
        raise NotFound("pricing version in force")
    return row


DEFAULT_RATES = dict(
    currency="USD",
    vcpu_hour_millicents=1_250,  # $0.0125 per vCPU-hour
    ram_gb_hour_millicents=300,  # $0.003 per GB RAM-hour
    disk_gb_month_millicents=8_000,  # $0.08 per GB-month
    gpu_hour_millicents={"A100": 110_000, "H100": 210_000, "L4": 45_000, "RTX4090": 40_000},
    platform_fee_bp=1_000,
    term_discount_bp=1_500,
)
