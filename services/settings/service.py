"""Operator settings: typed, validated, audited.

`MarketplaceSettings` is the one definition of every setting (type, bounds, default). Each key is
stored as its own row with a version, so two operators editing different settings never clash and
two editing the same one get "changed by X at T, reload" instead of a silent overwrite. Every
change writes an audit entry with the old and the new value.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.audit import service as audit
from services.auth.identity import Identity
from services.auth.permissions import Action
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.errors import Conflict, InvalidInput
from services.settings.models import OperatorSetting
from services.users.models import User

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,40}$")
MONEY_FIELDS = ("low_balance_threshold_cents", "topup_min_cents", "topup_max_cents")
DEFAULT_REGIONS = ["us-east", "us-west", "eu-west", "eu-central", "ap-south", "ap-northeast"]


class WorkloadTemplate(BaseModel):
    """One entry of the workload catalog users launch from."""

    model_config = ConfigDict(str_strip_whitespace=True)

    key: str
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=300)
    image: str | None = Field(default=None, max_length=300)  # None for "custom": the user gives the image
    vcpu: int = Field(ge=1, le=512)
    ram_gb: int = Field(ge=1, le=4096)
    disk_gb: int = Field(ge=1, le=65536)
    gpu_model: str | None = Field(default=None, max_length=64)
    gpu_count: int = Field(default=0, ge=0, le=16)

    @field_validator("key", mode="before")
    @classmethod
    def _key_text(cls, v: Any) -> Any:
        if isinstance(v, str) and not KEY_PATTERN.fullmatch(v.strip()):
            raise ValueError("use 2 to 41 lowercase letters, digits or dashes, e.g. ubuntu-vm")
        return v.strip() if isinstance(v, str) else v

    @field_validator("image", "gpu_model", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="after")
    def _gpu(self) -> WorkloadTemplate:
        if self.gpu_count and not self.gpu_model:
            raise ValueError("a GPU count needs a GPU model")
        if self.gpu_model and not self.gpu_count:
            raise ValueError("a GPU model needs a GPU count of at least 1")
        return self


DEFAULT_CATALOG = [
    WorkloadTemplate(
        key="ubuntu-vm",
        name="Ubuntu VM",
        description="Ubuntu 24.04 LTS virtual machine",
        image="ubuntu:24.04",
        vcpu=2,
        ram_gb=4,
        disk_gb=40,
    ),
    WorkloadTemplate(
        key="k8s-worker",
        name="Kubernetes worker",
        description="A worker node that joins your cluster",
        image="kubeadm-worker:1.31",
        vcpu=4,
        ram_gb=16,
        disk_gb=100,
    ),
    WorkloadTemplate(
        key="gpu-notebook",
        name="GPU notebook",
        description="JupyterLab with CUDA",
        image="jupyter/cuda:12",
        vcpu=8,
        ram_gb=32,
        disk_gb=200,
        gpu_model="A100",
        gpu_count=1,
    ),
    WorkloadTemplate(
        key="custom",
        name="Custom container image",
        description="Run any OCI image you name",
        image=None,
        vcpu=2,
        ram_gb=4,
        disk_gb=20,
    ),
]


class MarketplaceSettings(BaseModel):
    """Every operator setting, with its type, bounds and default."""

    marketplace_name: str = Field(default="Cloud Marketplace", min_length=1, max_length=80)
    allowed_regions: list[str] = Field(default_factory=lambda: list(DEFAULT_REGIONS))
    min_maintenance_notice_hours: int = Field(default=24, ge=0, le=24 * 30)
    max_maintenance_hours: int = Field(default=12, ge=1, le=24 * 14)
    workload_catalog: list[WorkloadTemplate] = Field(default_factory=lambda: list(DEFAULT_CATALOG))
    low_balance_threshold_cents: int = Field(default=1000, ge=0, le=10_000_000)
    topup_min_cents: int = Field(default=500, ge=50, le=1_000_000)
    topup_max_cents: int = Field(default=500_000, ge=100, le=100_000_000)
    max_replicas: int = Field(default=10, ge=1, le=100)
    max_vcpu_per_deployment: int = Field(default=256, ge=1, le=4096)
    max_ram_gb_per_deployment: int = Field(default=2048, ge=1, le=65536)
    max_disk_gb_per_deployment: int = Field(default=65536, ge=1, le=1_000_000)
    provider_applications_open: bool = True

    @field_validator("allowed_regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        cleaned = [r.strip() for r in v if r.strip()]
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("regions must not repeat")
        for r in cleaned:
            if not r.replace("-", "").isalnum() or len(r) > 64:
                raise ValueError(f"region {r!r} must be letters, digits and dashes")
        if not cleaned:
            raise ValueError("at least one region is required")
        return cleaned

    @field_validator("workload_catalog")
    @classmethod
    def _catalog(cls, v: list[WorkloadTemplate]) -> list[WorkloadTemplate]:
        if not v:
            raise ValueError("the catalog needs at least one workload")
        keys = [t.key for t in v]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"workload keys must be unique ({', '.join(repeated)} repeats)")
        return v

    @field_validator("topup_max_cents")
    @classmethod
    def _topup_range(cls, v: int, info: ValidationInfo) -> int:
        low = info.data.get("topup_min_cents")
        if low is not None and v < low:
            raise ValueError("must not be below the minimum top-up")
        return v


FIELDS = tuple(MarketplaceSettings.model_fields)


LABELS = {
    "marketplace_name": "Marketplace name",
    "allowed_regions": "Allowed regions",
    "min_maintenance_notice_hours": "Minimum maintenance notice (hours)",
    "max_maintenance_hours": "Maximum maintenance length (hours)",
    "workload_catalog": "Workload catalog",
    "low_balance_threshold_cents": "Low-balance threshold",
    "topup_min_cents": "Minimum top-up",
    "topup_max_cents": "Maximum top-up",
    "max_replicas": "Maximum replicas",
    "max_vcpu_per_deployment": "Maximum vCPU per deployment",
    "max_ram_gb_per_deployment": "Maximum RAM (GB) per deployment",
    "max_disk_gb_per_deployment": "Maximum disk (GB) per deployment",
    "provider_applications_open": "Provider applications open",
}
_TEMPLATE_LABELS = {
    "key": "key",
    "name": "name",
    "description": "description",
    "image": "image",
    "vcpu": "vCPU",
    "ram_gb": "RAM GB",
    "disk_gb": "disk GB",
    "gpu_model": "GPU model",
    "gpu_count": "GPU count",
}
log = logging.getLogger("marketplace.settings")


@dataclass(frozen=True)
class SettingState:
    """A setting's stored version and last change (version 0: never saved, the default applies)."""

    key: str
    version: int
    updated_by: str | None
    updated_at: datetime | None


def _validate_stored(stored: dict[str, Any]) -> MarketplaceSettings:
    """Stored values, each key falling back to its default if it no longer validates (never break reads)."""
    try:
        return MarketplaceSettings.model_validate(stored)
    except ValidationError as exc:
        bad = {str(e["loc"][0]) for e in exc.errors() if e.get("loc")}
        log.error("stored settings %s no longer validate; using their defaults", sorted(bad) or "(all)")
        kept = {k: v for k, v in stored.items() if k not in bad}
        try:
            return MarketplaceSettings.model_validate(kept)
        except ValidationError:
            return MarketplaceSettings()


def get(uow: UnitOfWork) -> MarketplaceSettings:
    """The current settings (defaults for keys never saved). Readable by every signed-in person."""
    with uow:
        rows = uow.session.execute(select(OperatorSetting.key, OperatorSetting.value)).all()
    stored = {k: v for k, v in rows if k in FIELDS}
    return _validate_stored(stored)


def versions(uow: UnitOfWork) -> dict[str, int]:
    """key -> version of each saved setting (for optimistic concurrency in forms)."""
    with uow:
        return dict(uow.session.execute(select(OperatorSetting.key, OperatorSetting.version)).all())


def states(uow: UnitOfWork, actor: Identity) -> dict[str, SettingState]:
    """Every setting's version and who changed it last, when (operators only)."""
    actor.require(Action.SETTINGS_EDIT)
    with uow:
        rows = uow.session.execute(
            select(
                OperatorSetting.key,
                OperatorSetting.version,
                OperatorSetting.updated_at,
                User.display_name,
                User.email,
            ).outerjoin(User, User.id == OperatorSetting.updated_by)
        ).all()
    out = {k: SettingState(k, 0, None, None) for k in FIELDS}
    for key, version, at, name, email in rows:
        if key in out:
            out[key] = SettingState(key, int(version), name or email or "system", at)
    return out


def _zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _field_errors(exc: ValidationError) -> InvalidInput:
    """Pydantic errors as one plain message per setting; catalog rows are named by number and key."""
    errors: dict[str, str] = {}
    for err in exc.errors():
        loc = [p for p in err.get("loc", ()) if p != "__root__"]
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        field = str(loc[0]) if loc else "input"
        if field == "workload_catalog" and len(loc) >= 2 and isinstance(loc[1], int):
            what = _TEMPLATE_LABELS.get(str(loc[2]), str(loc[2])) + ": " if len(loc) >= 3 else ""
            msg = f"row {loc[1] + 1}: {what}{msg}"
        elif field == "allowed_regions" and len(loc) >= 2:
            msg = f"item {int(loc[1]) + 1}: {msg}" if isinstance(loc[1], int) else msg
        errors.setdefault(field, msg)
    summary = "; ".join(f"{LABELS.get(k, k)}: {v}" for k, v in errors.items())
    return InvalidInput(summary or "Invalid settings", errors=errors)


def _cross_checks(s: MarketplaceSettings, changed: set[str]) -> None:
    """Rules that tie settings together; the message goes to the field the operator changed."""
    limits = (
        ("vcpu", "max_vcpu_per_deployment", "vCPU"),
        ("ram_gb", "max_ram_gb_per_deployment", "GB RAM"),
        ("disk_gb", "max_disk_gb_per_deployment", "GB disk"),
    )
    for attr, limit_field, unit in limits:
        limit = getattr(s, limit_field)
        for i, t in enumerate(s.workload_catalog, start=1):
            value = getattr(t, attr)
            if value > limit:
                if limit_field in changed and "workload_catalog" not in changed:
                    raise InvalidInput(
                        f"must be at least {value}: the catalog's {t.name} needs {value} {unit}",
                        field=limit_field,
                    )
                raise InvalidInput(
                    f"row {i}: {t.key} asks for {value} {unit}, above the per-deployment maximum of {limit}",
                    field="workload_catalog",
                )


def update(
    uow: UnitOfWork, actor: Identity, changes: dict[str, Any], *, expected_versions: dict[str, int] | None = None
) -> MarketplaceSettings:
    """Validate and save changed settings in one transaction, auditing each key (old and new).

    `expected_versions` (key -> version the editor loaded; 0 or missing = never saved) refuses a save
    over someone else's change with Conflict "changed by X at T; reload". Nothing is written unless
    every change is valid.
    """
    actor.require(Action.SETTINGS_EDIT)
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown setting: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    with uow:
        s = uow.session
        rows = {r.key: r for r in s.scalars(select(OperatorSetting).with_for_update())}
        current = _validate_stored({k: r.value for k, r in rows.items() if k in FIELDS})
        old_json = current.model_dump(mode="json")
        try:
            validated = MarketplaceSettings.model_validate(old_json | changes)
        except ValidationError as exc:
            raise _field_errors(exc) from exc
        new_json = validated.model_dump(mode="json")
        changed = [key for key in changes if new_json[key] != old_json[key]]
        _cross_checks(validated, set(changed))
        for key in changed:
            row = rows.get(key)
            if expected_versions is not None and row is not None and expected_versions.get(key, 0) != row.version:
                who = "system"
                if row.updated_by:
                    u = s.get(User, row.updated_by)
                    who = (u.display_name or u.email or who) if u else who
                at = row.updated_at.astimezone(_zone(actor.timezone)).strftime("%Y-%m-%d %H:%M %Z")
                raise Conflict(
                    f"{LABELS.get(key, key)} was changed by {who} at {at}; reload to see the new value.",
                    field=key,
                    changed_by=who,
                    changed_at=row.updated_at.isoformat(),
                )
            if row is None:
                row = OperatorSetting(key=key, value=new_json[key], version=1, updated_by=actor.user_id or None)
                s.add(row)
            else:
                row.value = new_json[key]
                row.version += 1
                row.updated_by = actor.user_id or None
                row.updated_at = utcnow()
            audit.record(
                s, actor, "settings.updated", "setting", key, old={key: old_json[key]}, new={key: new_json[key]}
            )
        try:
            s.flush()
        except IntegrityError:
            # Someone saved a never-saved key at the same moment (primary key on the key).
            raise Conflict("Settings were changed by someone else just now; reload to see the new values.") from None
        uow.commit()
        return validated


def _cents(value: Any) -> int:
    """'12.50' or '$1,000' -> cents; a clear ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value if value is not None else "").strip().lstrip("$").replace(",", "")
    if not text:
        raise ValueError("enter an amount, e.g. 10.00")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{str(value).strip()!r} is not an amount; enter e.g. 10.00") from None
    if not amount.is_finite():
        raise ValueError("enter an amount, e.g. 10.00")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("use at most 2 decimal places")
    return int(amount * 100)


def update_from_form(
    uow: UnitOfWork, actor: Identity, form: dict[str, Any], *, expected_versions: dict[str, int] | None = None
) -> MarketplaceSettings:
    """`update` for a form: money fields as amounts in currency units ("10.00"), regions as text
    (comma or line separated) or a list. Every field's message comes back at once; nothing is written
    unless all are valid; unchanged fields are not saved (and cannot conflict)."""
    actor.require(Action.SETTINGS_EDIT)
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    for key, value in form.items():
        if key in MONEY_FIELDS:
            try:
                changes[key] = _cents(value)
            except ValueError as exc:
                errors[key] = str(exc)
        elif key == "allowed_regions" and isinstance(value, str):
            changes[key] = [r.strip() for r in re.split(r"[,\n]", value) if r.strip()]
        else:
            changes[key] = value
    if errors:
        try:
            MarketplaceSettings.model_validate(get(uow).model_dump(mode="json") | changes)
        except ValidationError as exc:
            for key, msg in _field_errors(exc).errors.items():
                errors.setdefault(key, msg)
        raise InvalidInput("; ".join(f"{LABELS.get(k, k)}: {v}" for k, v in errors.items()), errors=errors)
    return update(uow, actor, changes, expected_versions=expected_versions)
