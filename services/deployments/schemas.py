"""Input and output shapes of the deployments service (pydantic in, plain dataclasses out).

The launcher page and the HTTP API both build a `LaunchInput`; the service validates it once more
against the operator's settings and the pricing in force, so both doors refuse the same things.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from services.pricing.service import ResourceSpec

# A name is a DNS label: it becomes part of host names on the nodes.
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$")
NAME_RULE = "Use 3 to 63 lowercase letters, digits and dashes; start with a letter, end with a letter or digit."

# An OCI image reference: [registry[:port]/]path[:tag][@sha256:digest], lowercase path components.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)"
IMAGE_RE = re.compile(
    rf"^{_REGISTRY}?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$"
)
IMAGE_RULE = "Give an image reference such as nginx:1.27 or ghcr.io/acme/api:2.1 (lowercase, no spaces)."

ANY_REGION = "any"
# Ceilings that keep numbers sane whatever the operator configures; the operator's own maxima (settings)
# are checked in the service and are what a person normally meets.
HARD_MAX = {"vcpu": 1_000_000, "ram_gb": 1_000_000, "disk_gb": 100_000_000, "gpu_count": 16, "replicas": 100}
LABELS = {
    "vcpu": "vCPU",
    "ram_gb": "RAM (GB)",
    "disk_gb": "Disk (GB)",
    "gpu_count": "GPU count",
    "replicas": "Replicas",
}


class SpecInput(BaseModel):
    """What to run and where (everything of a launch but the name): enough to price and place it."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    workload: str
    image: str | None = None
    vcpu: int
    ram_gb: int
    disk_gb: int
    gpu_model: str | None = None
    gpu_count: int = 0
    region: str = ANY_REGION
    replicas: int = 1
    backup_enabled: bool = False

    @field_validator("workload")
    @classmethod
    def _workload(cls, v: str) -> str:
        if not v:
            raise ValueError("Choose a workload from the catalog.")
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if len(v) > 300 or not IMAGE_RE.match(v):
            raise ValueError(IMAGE_RULE)
        return v

    @field_validator("vcpu", "ram_gb", "disk_gb", "replicas")
    @classmethod
    def _positive(cls, v: int, info) -> int:
        label = LABELS[info.field_name]
        if v < 1:
            raise ValueError(f"{label} must be at least 1.")
        if v > HARD_MAX[info.field_name]:
            raise ValueError(f"{label} must be at most {HARD_MAX[info.field_name]:,}.")
        return v

    @field_validator("gpu_count")
    @classmethod
    def _gpus(cls, v: int) -> int:
        if v < 0:
            raise ValueError("GPU count cannot be negative.")
        if v > HARD_MAX["gpu_count"]:
            raise ValueError(f"GPU count must be at most {HARD_MAX['gpu_count']}.")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        return (v or ANY_REGION).lower()

    @field_validator("gpu_model")
    @classmethod
    def _gpu_model(cls, v: str | None) -> str | None:
        return v or None

    @model_validator(mode="after")
    def _no_gpu_no_model(self) -> SpecInput:
        # A GPU model without GPUs means nothing; a count without a model is refused by the service.
        if self.gpu_count == 0:
            self.gpu_model = None
        return self

    @property
    def region_or_none(self) -> str | None:
        return None if self.region == ANY_REGION else self.region

    def spec(self) -> ResourceSpec:
        return ResourceSpec(
            vcpu=self.vcpu,
            ram_gb=self.ram_gb,
            disk_gb=self.disk_gb,
            gpu_model=self.gpu_model,
            gpu_count=self.gpu_count,
            replicas=self.replicas,
            backup_enabled=self.backup_enabled,
        )


class LaunchInput(SpecInput):
    """What a person asks for when launching a deployment."""

    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v:
            raise ValueError("Give the deployment a name.")
        if not NAME_RE.match(v):
            raise ValueError(NAME_RULE)
        return v


class ScaleInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replicas: int

    @field_validator("replicas")
    @classmethod
    def _replicas(cls, v: int) -> int:
        if v < 1:
            raise ValueError("Replicas must be at least 1.")
        if v > HARD_MAX["replicas"]:
            raise ValueError(f"Replicas must be at most {HARD_MAX['replicas']}.")
        return v


@dataclass(frozen=True)
class PlacedInstance:
    """One replica (slot 0..n-1) or the backup VM (slot -1) on one node, and why that node."""

    slot: int
    role: str  # replica | backup
    node_id: int
    node_name: str
    provider_id: int
    provider_name: str
    region: str
    price_factor_pct: int
    uptime_pct: float | None  # online share over 30 days; None: no metrics yet
    free_vcpu: int  # free before this instance
    free_ram_gb: int
    reason: str


@dataclass(frozen=True)
class Estimate:
    """The price of a launch request as it would be stored, and where it would run."""

    currency: str
    pricing_version: int
    instances: int
    price_per_hour_cents: int  # exactly what `launch` stores and metering charges per hour
    price_per_month_cents: int  # hourly x 730
    platform_fee_bp: int
    platform_fee_per_hour_cents: int
    provider_share_per_hour_cents: int
    list_price_per_hour_cents: int  # at list rates (price factor 100 %), for comparison
    placement: list[PlacedInstance] = field(default_factory=list)
    placement_error: str | None = None  # why no placement fits right now (price shown is then the list price)
    placement_error_field: str | None = None


@dataclass(frozen=True)
class DeploymentRow:
    """One line of "My deployments"."""

    id: int
    name: str
    workload: str
    status: str
    region: str | None  # requested region (None: any)
    nodes: str  # node names, replicas first
    node_regions: str
    replicas: int
    backup_enabled: bool
    price_per_hour_cents: int
    currency: str
    cost_so_far_cents: int
    created_at: datetime
    started_at: datetime | None


@dataclass(frozen=True)
class DeploymentEventRow:
    ts: datetime
    kind: str
    status: str | None
    message: str
    actor: str


@dataclass(frozen=True)
class DailyCost:
    day: datetime  # start of the UTC day
    cost_cents: int


@dataclass(frozen=True)
class DeploymentDetail:
    id: int
    name: str
    workload: str
    image: str | None
    vcpu: int
    ram_gb: int
    disk_gb: int
    gpu_model: str | None
    gpu_count: int
    region: str | None
    replicas: int
    backup_enabled: bool
    status: str
    price_per_hour_cents: int
    platform_fee_bp: int
    currency: str
    pricing_version_id: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    deleted_at: datetime | None
    cost_so_far_cents: int
    placements: list[PlacedInstance]
    events: list[DeploymentEventRow]
    daily_costs: list[DailyCost]


@dataclass(frozen=True)
class Page:
    rows: list[DeploymentRow]
    total: int
    limit: int
    offset: int
