"""Pricing: the version in force, and what a deployment costs under it.

Rates are millicents; a deployment's hourly price is rounded half-up to whole cents once, at
launch, and that integer is exactly what metering charges each hour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import case, func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.audit import service as audit
from services.auth.identity import Identity
from services.auth.permissions import Action
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.errors import Conflict, InvalidInput, NotFound
from services.pricing.models import PricingVersion
from services.users.models import User

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


# --- operators: versions, validation, saving with optimistic concurrency, cost-impact preview

MAX_VCPU_HOUR_MILLICENTS = 10_000_000  # $100 per vCPU-hour
MAX_RAM_GB_HOUR_MILLICENTS = 1_000_000  # $10 per GB-hour
MAX_DISK_GB_MONTH_MILLICENTS = 10_000_000  # $100 per GB-month
MAX_GPU_HOUR_MILLICENTS = 100_000_000  # $1,000 per GPU-hour
MAX_FEE_BP = 5_000  # 50 %
MAX_TERM_DISCOUNT_BP = 5_000
BACKDATE_GRACE = timedelta(minutes=1)  # "now" typed a moment ago is still now
MAX_SCHEDULE_AHEAD = timedelta(days=366)
# ISO 4217 currencies with two minor units (amounts are stored in cents).
CURRENCIES = frozenset(
    [
        "AED",
        "AUD",
        "BRL",
        "CAD",
        "CHF",
        "CNY",
        "CZK",
        "DKK",
        "EUR",
        "GBP",
        "HKD",
        "ILS",
        "INR",
        "MXN",
        "NOK",
        "NZD",
        "PLN",
        "SEK",
        "SGD",
        "THB",
        "TRY",
        "USD",
        "ZAR",
    ]
)
GPU_MODEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,31}$")
RATE_FIELDS = ("vcpu_hour_millicents", "ram_gb_hour_millicents", "disk_gb_month_millicents")


def rate_text(millicents: int, currency: str = "USD") -> str:
    """12_500 -> "0.125 USD": a rate with as many decimals as it needs (for messages)."""
    dollars = (Decimal(millicents) / 100_000).normalize()
    if dollars == dollars.to_integral():
        dollars = dollars.quantize(Decimal("0.01"))
    return f"{dollars:f} {currency}"


def _rate_in_range(value: int, maximum: int, unit: str) -> int:
    if value < 0:
        raise ValueError("must not be negative")
    if value > maximum:
        raise ValueError(f"must be at most {rate_text(maximum)} per {unit}")
    return value


class PricingInput(BaseModel):
    """A new pricing version as an operator (page or API) submits it. Rates in millicents."""

    model_config = ConfigDict(extra="forbid")

    currency: str = "USD"
    vcpu_hour_millicents: int
    ram_gb_hour_millicents: int
    disk_gb_month_millicents: int
    gpu_hour_millicents: dict[str, int] = Field(default_factory=dict)
    platform_fee_bp: int = 1_000
    term_discount_bp: int = 1_500
    running_follow: bool = False
    effective_at: datetime | None = None  # None: now
    note: str = Field(default="", max_length=500)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        code = v.strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise ValueError("must be a three-letter ISO 4217 code, e.g. USD")
        if code not in CURRENCIES:
            raise ValueError(
                f"{code} is not a supported ISO 4217 currency with cents ({', '.join(sorted(CURRENCIES))})"
            )
        return code

    @field_validator("vcpu_hour_millicents")
    @classmethod
    def _vcpu(cls, v: int) -> int:
        return _rate_in_range(v, MAX_VCPU_HOUR_MILLICENTS, "vCPU-hour")

    @field_validator("ram_gb_hour_millicents")
    @classmethod
    def _ram(cls, v: int) -> int:
        return _rate_in_range(v, MAX_RAM_GB_HOUR_MILLICENTS, "GB-hour")

    @field_validator("disk_gb_month_millicents")
    @classmethod
    def _disk(cls, v: int) -> int:
        return _rate_in_range(v, MAX_DISK_GB_MONTH_MILLICENTS, "GB-month")

    @field_validator("gpu_hour_millicents")
    @classmethod
    def _gpus(cls, v: dict[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for model, rate in v.items():
            name = model.strip()
            if not GPU_MODEL_PATTERN.fullmatch(name):
                raise ValueError(f"GPU model {model!r}: letters, digits, spaces, '.', '_' or '-', up to 32")
            if name in out:
                raise ValueError(f"GPU model {name} is listed twice")
            try:
                out[name] = _rate_in_range(rate, MAX_GPU_HOUR_MILLICENTS, "GPU-hour")
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return out

    @field_validator("platform_fee_bp")
    @classmethod
    def _fee(cls, v: int) -> int:
        if not 0 <= v <= MAX_FEE_BP:
            raise ValueError("must be between 0 % and 50 %")
        return v

    @field_validator("term_discount_bp")
    @classmethod
    def _discount(cls, v: int) -> int:
        if not 0 <= v <= MAX_TERM_DISCOUNT_BP:
            raise ValueError("must be between 0 % and 50 %")
        return v

    @field_validator("effective_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must include a timezone")
        return v

    def rates(self) -> dict:
        """The columns a PricingVersion takes from this input."""
        return self.model_dump(exclude={"effective_at", "note"})


def _parse_decimal(text: str | Decimal | float | int | None, *, places: int, what: str) -> Decimal:
    if text is None or (isinstance(text, str) and not text.strip()):
        raise ValueError(f"enter {what}")
    try:
        value = Decimal(str(text).strip().lstrip("$").replace(",", "")) if not isinstance(text, Decimal) else text
    except InvalidOperation:
        raise ValueError(f"{str(text).strip()!r} is not a number; enter {what}") from None
    if not value.is_finite():
        raise ValueError(f"enter {what}")
    if value != value.quantize(Decimal(1).scaleb(-places)):
        raise ValueError(f"use at most {places} decimal places")
    return value


def input_from_form(
    *,
    currency: str,
    vcpu_hour: str | Decimal,
    ram_gb_hour: str | Decimal,
    disk_gb_month: str | Decimal,
    gpu_hour: dict[str, str | Decimal | float | None],
    platform_fee_pct: str | Decimal,
    term_discount_pct: str | Decimal,
    running_follow: bool,
    effective_at: datetime | None,
    note: str = "",
) -> PricingInput:
    """Build a PricingInput from the operator form (rates in currency units, fee in percent).

    Raises InvalidInput with one message per field (keyed by PricingInput's field names).
    """
    errors: dict[str, str] = {}
    values: dict[str, object] = dict(
        currency=currency, running_follow=running_follow, effective_at=effective_at, note=note
    )

    def money(field: str, text, what: str) -> None:
        try:
            values[field] = int(_parse_decimal(text, places=5, what=what) * 100_000)
        except ValueError as exc:
            errors[field] = str(exc)

    def percent(field: str, text) -> None:
        try:
            values[field] = int(_parse_decimal(text, places=2, what="a percentage, e.g. 10") * 100)
        except ValueError as exc:
            errors[field] = str(exc)

    money("vcpu_hour_millicents", vcpu_hour, "a price per vCPU-hour, e.g. 0.0125")
    money("ram_gb_hour_millicents", ram_gb_hour, "a price per GB-hour, e.g. 0.003")
    money("disk_gb_month_millicents", disk_gb_month, "a price per GB-month, e.g. 0.08")
    gpus: dict[str, int] = {}
    for model, text in gpu_hour.items():
        try:
            gpus[model] = int(_parse_decimal(text, places=5, what=f"a price per GPU-hour for {model}") * 100_000)
        except ValueError as exc:
            errors.setdefault("gpu_hour_millicents", f"{model}: {exc}")
    values["gpu_hour_millicents"] = gpus
    percent("platform_fee_bp", platform_fee_pct)
    percent("term_discount_bp", term_discount_pct)
    try:
        data = PricingInput.model_validate(values)
    except ValidationError as exc:
        for field, msg in InvalidInput.from_pydantic(exc).errors.items():
            errors.setdefault(field.split(".")[0], msg)
        data = None
    if errors:
        raise InvalidInput("; ".join(f"{_FIELD_LABELS.get(k, k)}: {v}" for k, v in errors.items()), errors=errors)
    assert data is not None
    return data


_FIELD_LABELS = {
    "currency": "Currency",
    "vcpu_hour_millicents": "vCPU-hour",
    "ram_gb_hour_millicents": "RAM GB-hour",
    "disk_gb_month_millicents": "Disk GB-month",
    "gpu_hour_millicents": "GPU-hour",
    "platform_fee_bp": "Platform fee",
    "term_discount_bp": "Term discount",
    "effective_at": "Effective",
    "note": "Note",
}


@dataclass(frozen=True)
class PricingVersionView:
    id: int
    version: int
    effective_at: datetime
    currency: str
    vcpu_hour_millicents: int
    ram_gb_hour_millicents: int
    disk_gb_month_millicents: int
    gpu_hour_millicents: dict[str, int]
    platform_fee_bp: int
    term_discount_bp: int
    running_follow: bool
    note: str
    created_by: str
    created_at: datetime
    state: str  # "in force" | "scheduled" | "superseded"


def _view(row: PricingVersion, who: str, in_force_id: int | None, now: datetime) -> PricingVersionView:
    state = "in force" if row.id == in_force_id else ("scheduled" if row.effective_at > now else "superseded")
    return PricingVersionView(
        id=row.id,
        version=row.version,
        effective_at=row.effective_at,
        currency=row.currency,
        vcpu_hour_millicents=row.vcpu_hour_millicents,
        ram_gb_hour_millicents=row.ram_gb_hour_millicents,
        disk_gb_month_millicents=row.disk_gb_month_millicents,
        gpu_hour_millicents=dict(row.gpu_hour_millicents or {}),
        platform_fee_bp=row.platform_fee_bp,
        term_discount_bp=row.term_discount_bp,
        running_follow=bool(row.running_follow),
        note=row.note or "",
        created_by=who,
        created_at=row.created_at,
        state=state,
    )


def _in_force_id(session: Session, now: datetime) -> int | None:
    try:
        return current(session, now).id
    except NotFound:
        return None


def _author(session: Session, user_id: int | None) -> str:
    if not user_id:
        return "system"
    row = session.execute(select(User.display_name, User.email).where(User.id == user_id)).first()
    return (row[0] or row[1] or f"user {user_id}") if row else f"user {user_id}"


def list_versions(
    uow: UnitOfWork, actor: Identity, *, limit: int = 50, offset: int = 0
) -> tuple[list[PricingVersionView], int]:
    """The pricing history, newest version first, with who made each and its state; and the total count."""
    actor.require(Action.PRICING_EDIT)
    now = utcnow()
    with uow:
        s = uow.session
        total = s.scalar(select(func.count()).select_from(PricingVersion)) or 0
        rows = s.execute(
            select(PricingVersion, User.display_name, User.email)
            .outerjoin(User, User.id == PricingVersion.created_by)
            .order_by(PricingVersion.version.desc())
            .limit(limit)
            .offset(offset)
        ).all()
        in_force = _in_force_id(s, now)
        return [_view(r, (name or email or "system"), in_force, now) for r, name, email in rows], int(total)


def latest_version(uow: UnitOfWork, actor: Identity) -> PricingVersionView | None:
    """The newest version (in force or scheduled): what an editor starts from and must name when saving."""
    actor.require(Action.PRICING_EDIT)
    rows, _ = list_versions(uow, actor, limit=1)
    return rows[0] if rows else None


def in_force_version(uow: UnitOfWork, actor: Identity, at: datetime | None = None) -> PricingVersionView | None:
    """The version in force at `at` (now by default), or None before the first one."""
    actor.require(Action.PRICING_EDIT)
    now = utcnow()
    with uow:
        s = uow.session
        try:
            row = current(s, at or now)
        except NotFound:
            return None
        return _view(row, _author(s, row.created_by), _in_force_id(s, now), now)


def _version_audit(row: PricingVersion | None) -> dict | None:
    if row is None:
        return None
    return dict(
        version=row.version,
        effective_at=row.effective_at.isoformat(),
        currency=row.currency,
        vcpu_hour_millicents=row.vcpu_hour_millicents,
        ram_gb_hour_millicents=row.ram_gb_hour_millicents,
        disk_gb_month_millicents=row.disk_gb_month_millicents,
        gpu_hour_millicents=dict(row.gpu_hour_millicents or {}),
        platform_fee_bp=row.platform_fee_bp,
        term_discount_bp=row.term_discount_bp,
        running_follow=bool(row.running_follow),
    )


def _latest_row(session: Session) -> PricingVersion | None:
    """The newest version, locked (PostgreSQL) until the caller's transaction ends."""
    return session.scalar(select(PricingVersion).order_by(PricingVersion.version.desc()).limit(1).with_for_update())


def _stale(session: Session, actor: Identity) -> Conflict:
    row = session.scalar(select(PricingVersion).order_by(PricingVersion.version.desc()).limit(1))
    if row is None:  # pragma: no cover - a conflict always has a newer version
        return Conflict("Pricing changed meanwhile; reload.")
    who = _author(session, row.created_by)
    at = row.created_at.astimezone(_zone(actor.timezone)).strftime("%Y-%m-%d %H:%M %Z")
    return Conflict(
        f"Pricing was changed by {who} at {at} (now version {row.version}); reload to edit the latest prices.",
        field="expected_version",
        latest_version=row.version,
        changed_by=who,
        changed_at=row.created_at.isoformat(),
    )


def _zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def save_version(uow: UnitOfWork, actor: Identity, data: PricingInput, expected_version: int) -> PricingVersionView:
    """Add version expected_version + 1, or refuse with Conflict when the latest is no longer the one edited.

    Never overwrites: versions are numbered uniquely, so of two concurrent saves from the same
    version exactly one succeeds. Effective times never go back in time or before the latest
    version's. Audited with the previous latest version's values and the new ones.
    """
    actor.require(Action.PRICING_EDIT)
    if not isinstance(data, PricingInput):
        try:
            data = PricingInput.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput.from_pydantic(exc) from exc
    now = utcnow()
    effective = (data.effective_at or now).astimezone(UTC)
    if effective < now - BACKDATE_GRACE:
        raise InvalidInput("The effective time is in the past: choose now or a later time.", field="effective_at")
    if effective > now + MAX_SCHEDULE_AHEAD:
        raise InvalidInput("The effective time must be within a year.", field="effective_at")
    with uow:
        s = uow.session
        latest = _latest_row(s)
        latest_no = latest.version if latest else 0
        if latest_no != expected_version:
            raise _stale(s, actor)
        if latest is not None and effective < latest.effective_at:
            when = latest.effective_at.astimezone(_zone(actor.timezone)).strftime("%Y-%m-%d %H:%M %Z")
            raise InvalidInput(
                f"Version {latest.version} takes effect at {when}; a new version cannot take effect before it.",
                field="effective_at",
            )
        row = PricingVersion(
            version=latest_no + 1,
            effective_at=effective,
            note=data.note.strip(),
            created_by=actor.user_id or None,
            created_at=now,
            **data.rates(),
        )
        try:
            with s.begin_nested():
                s.add(row)
                s.flush()
        except IntegrityError:
            # Another save of the same version number committed between our read and our insert.
            raise _stale(s, actor) from None
        audit.record(
            s,
            actor,
            "pricing.version_created",
            "pricing_version",
            row.version,
            old=_version_audit(latest),
            new=_version_audit(row),
            note=row.note,
        )
        uow.commit()
        return _view(row, actor.name, _in_force_id(s, now), now)


@dataclass(frozen=True)
class WorkloadImpact:
    workload: str
    deployments: int
    before_month_cents: int  # what they pay now (their stored prices)
    at_new_rates_month_cents: int  # what they would pay at the new rates
    after_month_cents: int  # what they will pay once the version takes effect


@dataclass(frozen=True)
class CatalogPrice:
    workload: str
    name: str
    before_month_cents: int | None  # list price under the version in force (None: no version yet)
    after_month_cents: int


@dataclass(frozen=True)
class ImpactPreview:
    running_follow: bool
    currency: str
    running: int  # running deployments
    affected: int  # running deployments whose monthly cost changes when the version takes effect
    before_month_cents: int
    after_month_cents: int
    at_new_rates_month_cents: int
    fees_before_month_cents: int
    fees_after_month_cents: int
    by_workload: list[WorkloadImpact]
    catalog: list[CatalogPrice]
    explanation: str

    @property
    def change_month_cents(self) -> int:
        return self.after_month_cents - self.before_month_cents


def _new_price_expr(data: PricingInput, Deployment, Node):
    """SQL: one instance's millicents per hour at the new rates on its node, exactly as
    `instance_hour_millicents` computes it (integer arithmetic, floor division)."""
    gpu_rate = (
        case(
            *((Deployment.gpu_model == model, literal(rate)) for model, rate in data.gpu_hour_millicents.items()),
            else_=literal(0),
        )
        if data.gpu_hour_millicents
        else literal(0)
    )
    base = (
        Deployment.vcpu * data.vcpu_hour_millicents
        + Deployment.ram_gb * data.ram_gb_hour_millicents
        + (Deployment.disk_gb * data.disk_gb_month_millicents + HOURS_PER_MONTH // 2) // HOURS_PER_MONTH
        + Deployment.gpu_count * gpu_rate
    )
    return (base * func.coalesce(Node.price_factor_pct, 100)) // 100


def preview_impact(uow: UnitOfWork, actor: Identity, data: PricingInput) -> ImpactPreview:
    """What a new version would do to the monthly cost of the running deployments (nothing is written).

    Running deployments keep their launch price unless `running_follow` is set; the preview says
    which, and always shows what they would cost at the new rates. Each deployment is repriced in
    SQL as launching does it (every instance at its node's price factor, summed, rounded half-up
    once), and the totals per workload are one aggregate query.
    """
    from services.deployments.models import Deployment, DeploymentPlacement
    from services.nodes.models import Node
    from services.settings import service as settings_service

    actor.require(Action.PRICING_EDIT)
    if not isinstance(data, PricingInput):
        try:
            data = PricingInput.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput.from_pydantic(exc) from exc
    new = PricingVersion(id=0, version=0, **data.rates())
    per_deployment = (
        select(
            Deployment.workload.label("workload"),
            Deployment.price_per_hour_cents.label("old_price"),
            Deployment.platform_fee_bp.label("old_bp"),
            ((func.sum(_new_price_expr(data, Deployment, Node)) + 500) // 1000).label("new_price"),
        )
        .select_from(Deployment)
        .outerjoin(DeploymentPlacement, DeploymentPlacement.deployment_id == Deployment.id)
        .outerjoin(Node, Node.id == DeploymentPlacement.node_id)
        .where(Deployment.status == "running")
        .group_by(Deployment.id, Deployment.workload, Deployment.price_per_hour_cents, Deployment.platform_fee_bp)
        .subquery()
    )
    d = per_deployment.c
    fee_bp = literal(data.platform_fee_bp)
    with uow:
        s = uow.session
        rows = s.execute(
            select(
                d.workload,
                func.count(),
                func.sum(d.old_price),
                func.sum(d.new_price),
                func.sum(case((d.new_price != d.old_price, 1), else_=0)),
                func.sum((d.old_price * d.old_bp + 5000) // 10000),
                func.sum((d.new_price * fee_bp + 5000) // 10000),
            )
            .group_by(d.workload)
            .order_by(func.sum(d.old_price).desc(), d.workload)
        ).all()
        try:
            in_force = current(s)
        except NotFound:
            in_force = None
        catalog = [
            CatalogPrice(
                t.key,
                t.name,
                quote(spec, in_force).price_per_month_cents if in_force is not None else None,
                quote(spec, new).price_per_month_cents,
            )
            for t in settings_service.get(uow).workload_catalog
            for spec in [ResourceSpec(t.vcpu, t.ram_gb, t.disk_gb, t.gpu_model, t.gpu_count)]
        ]

    follow = data.running_follow
    by_workload = []
    running = affected = fees_before = fees_after = 0
    for workload, n, old, new_total, changed, old_fees, new_fees in rows:
        n, old, new_total = int(n), int(old or 0), int(new_total or 0)
        running += n
        affected += int(changed or 0) if follow else 0
        fees_before += int(old_fees or 0)
        fees_after += int(new_fees or 0) if follow else int(old_fees or 0)
        by_workload.append(
            WorkloadImpact(
                workload,
                n,
                old * HOURS_PER_MONTH,
                new_total * HOURS_PER_MONTH,
                (new_total if follow else old) * HOURS_PER_MONTH,
            )
        )
    when = "when this version takes effect" if data.effective_at is None else "at its effective time"
    if data.running_follow:
        explanation = (
            f"Running deployments follow: their price changes to the new rates {when} "
            f"({affected:,} of {running:,} change)."
        )
    else:
        explanation = (
            "Running deployments keep their launch price: their monthly cost does not change. "
            "Only deployments launched after the effective time pay the new rates; "
            "'at new rates' shows what the running ones would cost if they followed."
        )
    return ImpactPreview(
        running_follow=data.running_follow,
        currency=data.currency,
        running=running,
        affected=affected,
        before_month_cents=sum(w.before_month_cents for w in by_workload),
        after_month_cents=sum(w.after_month_cents for w in by_workload),
        at_new_rates_month_cents=sum(w.at_new_rates_month_cents for w in by_workload),
        fees_before_month_cents=fees_before * HOURS_PER_MONTH,
        fees_after_month_cents=fees_after * HOURS_PER_MONTH,
        by_workload=by_workload,
        catalog=catalog,
        explanation=explanation,
    )
