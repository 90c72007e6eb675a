"""Operator settings: typed, validated, audited."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select

from services.audit import service as audit
from services.auth.identity import Identity
from services.auth.permissions import Action
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.errors import Conflict, InvalidInput
from services.settings.models import OperatorSetting

DEFAULT_REGIONS = ["us-east", "us-west", "eu-west", "eu-central", "ap-south", "ap-northeast"]


class WorkloadTemplate(BaseModel):
    key: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")
    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    image: str | None = None  # None for "custom": the user gives the image
    vcpu: int = Field(ge=1, le=512)
    ram_gb: int = Field(ge=1, le=4096)
    disk_gb: int = Field(ge=1, le=65536)
    gpu_model: str | None = None
    gpu_count: int = Field(default=0, ge=0, le=16)


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
    allowed_regions: list[str] = Field(default_factory=lambda: list(DEFAULT_REGIONS), min_length=1)
    min_maintenance_notice_hours: int = Field(default=24, ge=0, le=24 * 30)
    max_maintenance_hours: int = Field(default=12, ge=1, le=24 * 14)
    workload_catalog: list[WorkloadTemplate] = Field(default_factory=lambda: list(DEFAULT_CATALOG), min_length=1)
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
        keys = [t.key for t in v]
        if len(set(keys)) != len(keys):
            raise ValueError("workload keys must be unique")
        return v

    @model_validator(mode="after")
    def _topup_range(self) -> MarketplaceSettings:
        if self.topup_min_cents > self.topup_max_cents:
            raise ValueError("the minimum top-up must not exceed the maximum")
        return self


FIELDS = tuple(MarketplaceSettings.model_fields)


def get(uow: UnitOfWork) -> MarketplaceSettings:
    """The current settings (defaults for keys never saved). Readable by every signed-in person."""
    with uow:
        rows = uow.session.execute(select(OperatorSetting.key, OperatorSetting.value)).all()
    stored = {k: v for k, v in rows if k in FIELDS}
    return MarketplaceSettings.model_validate(stored)


def versions(uow: UnitOfWork) -> dict[str, int]:
    """key -> version of each saved setting (for optimistic concurrency in forms)."""
    with uow:
        return dict(uow.session.execute(select(OperatorSetting.key, OperatorSetting.version)).all())


def update(
    uow: UnitOfWork, actor: Identity, changes: dict[str, Any], *, expected_versions: dict[str, int] | None = None
) -> MarketplaceSettings:
    """Validate and save changed settings in one transaction, auditing each key (old and new).

    `expected_versions` (key -> version the editor loaded) refuses a save over someone else's change.
    """
    actor.require(Action.SETTINGS_EDIT)
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown setting: {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    with uow:
        s = uow.session
        rows = {r.key: r for r in s.scalars(select(OperatorSetting).with_for_update())}
        current = MarketplaceSettings.model_validate({k: r.value for k, r in rows.items() if k in FIELDS})
        merged = current.model_dump(mode="json") | changes
        try:
            validated = MarketplaceSettings.model_validate(merged)
        except ValidationError as exc:
            raise InvalidInput.from_pydantic(exc) from exc
        new_json = validated.model_dump(mode="json")
        old_json = current.model_dump(mode="json")
        for key in changes:
            if new_json[key] == old_json[key]:
                continue
            row = rows.get(key)
            if expected_versions is not None and row is not None and expected_versions.get(key, 0) != row.version:
                raise Conflict(
                    f"'{key}' was changed by someone else at {row.updated_at:%Y-%m-%d %H:%M} UTC; reload and try again.",
                    field=key,
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
        uow.commit()
        return validated
