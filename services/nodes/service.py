"""A provider's nodes: register, list, edit, drain, decommission, rotate tokens, and their metrics.

Every function takes the acting person and works only on nodes of the provider that person owns;
a node of another provider is reported as not found. A node's agent token is returned once (from
`register_node` and `rotate_token`) and stored only as a hash (services/nodes/tokens.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import case, distinct, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.audit import service as audit
from services.auth.identity import Identity
from services.auth.permissions import Action
from services.db.base import utcnow
from services.db.dialect import epoch_seconds
from services.db.engine import UnitOfWork
from services.deployments.models import Deployment, DeploymentPlacement
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services.nodes.countries import COUNTRY_CODE_SET
from services.nodes.models import Node, NodeMetric
from services.nodes.status import effective_status, effective_status_expr, online_cutoff
from services.nodes.tokens import hash_token, new_token
from services.pricing import service as pricing_service
from services.providers.models import Provider
from services.settings import service as settings_service
from services.users.models import User
from services.validation import invalid_input

# Deployments in these states occupy a node: decommissioning waits for them, maintenance affects them.
ACTIVE_DEPLOYMENT_STATUSES = ("pending", "running")
NODE_STATUSES = ("online", "offline", "draining", "decommissioned")
SORTS = ("name", "region", "status", "last_heartbeat", "created", "deployments")
FIELD_LABELS = {
    "name": "Name",
    "region": "Region",
    "country": "Country",
    "vcpu": "vCPU",
    "ram_gb": "RAM",
    "disk_gb": "Disk",
    "gpu_model": "GPU model",
    "gpu_count": "GPUs",
    "bandwidth_mbps": "Bandwidth",
    "price_factor_pct": "Price factor",
}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
UPTIME_DAYS = 30
UPTIME_SLOT_SECONDS = 300  # uptime is counted in 5-minute slots in which the node reported online
RAW_METRICS_MAX_SPAN = timedelta(hours=6)
FINE_METRICS_MAX_SPAN = timedelta(days=2)


# --------------------------------------------------------------------------- input


class NodeInput(BaseModel):
    """A node as the provider describes it (registration and edits)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    region: str = Field(min_length=1, max_length=64)
    country: str = Field(min_length=2, max_length=2)
    vcpu: int = Field(ge=1, le=1024)
    ram_gb: int = Field(ge=1, le=32768)
    disk_gb: int = Field(ge=10, le=1_000_000)
    gpu_model: str | None = Field(default=None, max_length=64)
    gpu_count: int = Field(default=0, ge=0, le=16)
    bandwidth_mbps: int = Field(default=1000, ge=10, le=400_000)
    price_factor_pct: int = Field(default=100, ge=50, le=300)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("use letters, digits, dots, dashes and underscores, starting with a letter or digit")
        return v

    @field_validator("region", "country", mode="before")
    @classmethod
    def _chosen(cls, v: object, info) -> object:
        if v is None or (isinstance(v, str) and not v.strip()):
            raise ValueError("choose a region" if info.field_name == "region" else "choose the node's country")
        return v

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        v = v.upper()
        if v not in COUNTRY_CODE_SET:
            raise ValueError("enter a two-letter ISO country code, such as DE or US")
        return v

    @field_validator("gpu_model", mode="before")
    @classmethod
    def _gpu_model(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():
            return None
        return v


def _validated(data: NodeInput | dict, uow: UnitOfWork) -> NodeInput:
    """Field rules (pydantic), then the rules that need the marketplace's settings and prices."""
    try:
        form = data if isinstance(data, NodeInput) else NodeInput.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc, FIELD_LABELS) from exc
    errors: dict[str, str] = {}
    regions = _allowed_regions(uow)
    if form.region not in regions:
        errors["region"] = f"choose one of the marketplace's regions: {', '.join(regions)}"
    if form.gpu_count and not form.gpu_model:
        errors["gpu_model"] = "name the GPU model of the node's GPUs (or set the GPU count to 0)"
    elif form.gpu_model and not form.gpu_count:
        errors["gpu_count"] = "a node with a GPU model needs at least one GPU (or clear the GPU model)"
    elif form.gpu_model:
        known = gpu_models_priced(uow.session)
        if known and form.gpu_model not in known:
            errors["gpu_model"] = f"the marketplace rents out these GPU models: {', '.join(known)}"
    if errors:
        raise _field_errors(errors)
    return form


def _allowed_regions(uow: UnitOfWork) -> list[str]:
    return list(settings_service.get(uow).allowed_regions)  # joins the caller's open transaction


def gpu_models_priced(session: Session) -> list[str]:
    """GPU models the pricing in force has a rate for (empty when no pricing exists yet)."""
    try:
        pricing = pricing_service.current(session)
    except NotFound:
        return []
    return sorted((pricing.gpu_hour_millicents or {}).keys())


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class NodeView:
    id: int
    name: str
    region: str
    country: str
    vcpu: int
    ram_gb: int
    disk_gb: int
    gpu_model: str | None
    gpu_count: int
    bandwidth_mbps: int
    price_factor_pct: int
    status: str  # effective: "online" only with a fresh heartbeat
    stored_status: str
    last_heartbeat_at: datetime | None
    token_rotated_at: datetime | None
    created_at: datetime
    active_deployments: int = 0

    def as_input(self) -> NodeInput:
        return NodeInput(
            name=self.name,
            region=self.region,
            country=self.country,
            vcpu=self.vcpu,
            ram_gb=self.ram_gb,
            disk_gb=self.disk_gb,
            gpu_model=self.gpu_model,
            gpu_count=self.gpu_count,
            bandwidth_mbps=self.bandwidth_mbps,
            price_factor_pct=self.price_factor_pct,
        )


@dataclass(frozen=True)
class NodePage:
    rows: list[NodeView]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class RegisteredNode:
    """The new node and its agent token. The token is shown this once; only its hash is kept."""

    node: NodeView
    token: str = field(repr=False)


@dataclass(frozen=True)
class PlacedDeployment:
    deployment_id: int
    name: str
    status: str
    role: str
    slot: int
    owner_name: str
    vcpu: int
    ram_gb: int
    gpu_count: int
    started_at: datetime | None


@dataclass(frozen=True)
class MetricPoint:
    ts: datetime
    cpu_pct: float
    ram_pct: float
    disk_pct: float
    net_in_mbps: float
    net_out_mbps: float


@dataclass(frozen=True)
class UptimeDay:
    day: date
    share: float | None  # 0..1 of the day's measured 5-minute slots; None: not measured that day


@dataclass(frozen=True)
class NodeMetrics:
    node: NodeView
    since: datetime
    bucket_seconds: int  # 0: raw samples
    points: list[MetricPoint]
    uptime_days: list[UptimeDay]
    uptime_share: float | None  # over the last 30 days (from the node's first report in that time)
    deployments: list[PlacedDeployment]
    deployments_total: int


def _view(node: Node, active: int = 0, now: datetime | None = None) -> NodeView:
    return NodeView(
        id=node.id,
        name=node.name,
        region=node.region,
        country=node.country,
        vcpu=node.vcpu,
        ram_gb=node.ram_gb,
        disk_gb=node.disk_gb,
        gpu_model=node.gpu_model,
        gpu_count=node.gpu_count,
        bandwidth_mbps=node.bandwidth_mbps,
        price_factor_pct=node.price_factor_pct,
        status=effective_status(node, now),
        stored_status=node.status,
        last_heartbeat_at=node.last_heartbeat_at,
        token_rotated_at=node.token_rotated_at,
        created_at=node.created_at,
        active_deployments=active,
    )


# --------------------------------------------------------------------------- helpers


def _own_provider(session: Session, actor: Identity, *, for_change: bool = False) -> Provider:
    provider = session.scalar(select(Provider).where(Provider.owner_user_id == actor.user_id))
    if provider is None:
        raise PermissionDenied(
            "Your account has no provider profile yet. Apply under “Become a provider”, or ask an operator."
        )
    if for_change and provider.status != "active":
        raise Conflict(
            f"Your provider account is {provider.status}; nodes cannot be changed until an operator lifts it."
        )
    return provider


def require_provider(session: Session, actor: Identity, action: Action, *, for_change: bool = False) -> Provider:
    """The provider the actor owns, after checking they may take `action` (shared with maintenance)."""
    actor.require(action)
    return _own_provider(session, actor, for_change=for_change)


def _own_node(session: Session, provider_id: int, node_id: int, *, lock: bool = False) -> Node:
    q = select(Node).where(Node.id == node_id, Node.provider_id == provider_id)
    if lock:
        q = q.with_for_update()
    node = session.scalar(q)
    if node is None:
        raise NotFound("node", node_id)
    return node


def _active_counts(session: Session, node_ids: list[int]) -> dict[int, int]:
    if not node_ids:
        return {}
    rows = session.execute(
        select(DeploymentPlacement.node_id, func.count(distinct(DeploymentPlacement.deployment_id)))
        .join(Deployment, Deployment.id == DeploymentPlacement.deployment_id)
        .where(DeploymentPlacement.node_id.in_(node_ids), Deployment.status.in_(ACTIVE_DEPLOYMENT_STATUSES))
        .group_by(DeploymentPlacement.node_id)
    ).all()
    return {int(n): int(c) for n, c in rows}


def _active_count_expr():
    """Correlated count of a node's pending/running deployments (for selecting beside Node)."""
    return (
        select(func.count(distinct(DeploymentPlacement.deployment_id)))
        .join(Deployment, Deployment.id == DeploymentPlacement.deployment_id)
        .where(DeploymentPlacement.node_id == Node.id, Deployment.status.in_(ACTIVE_DEPLOYMENT_STATUSES))
        .correlate(Node)
        .scalar_subquery()
    )


def active_deployments_on(session: Session, node_ids: list[int]) -> list[tuple[int, str, int]]:
    """(deployment id, name, owner user id) of pending/running deployments placed on these nodes."""
    if not node_ids:
        return []
    rows = session.execute(
        select(Deployment.id, Deployment.name, Deployment.owner_user_id)
        .join(DeploymentPlacement, DeploymentPlacement.deployment_id == Deployment.id)
        .where(DeploymentPlacement.node_id.in_(node_ids), Deployment.status.in_(ACTIVE_DEPLOYMENT_STATUSES))
        .distinct()
        .order_by(Deployment.id)
    ).all()
    return [(int(i), str(n), int(o)) for i, n, o in rows]


def _name_taken(session: Session, provider_id: int, name: str, *, except_id: int | None = None) -> bool:
    q = select(Node.id).where(Node.provider_id == provider_id, func.lower(Node.name) == name.lower())
    if except_id is not None:
        q = q.where(Node.id != except_id)
    return session.scalar(q.limit(1)) is not None


def _field_errors(errors: dict[str, str]) -> InvalidInput:
    """Field messages as they show under each field, with a summary that names the fields by label."""
    if len(errors) == 1:
        field, msg = next(iter(errors.items()))
        return InvalidInput(f"{FIELD_LABELS.get(field, field)}: {msg}", errors=errors)
    return InvalidInput("Please check: " + ", ".join(FIELD_LABELS.get(f, f) for f in errors) + ".", errors=errors)


def _name_error(name: str) -> InvalidInput:
    return _field_errors({"name": f"you already have a node named {name}"})


def _fields(node_input: NodeInput) -> dict:
    return node_input.model_dump()


# --------------------------------------------------------------------------- reads


def list_for_provider(
    uow: UnitOfWork,
    actor: Identity,
    *,
    status: str | None = None,
    region: str | None = None,
    search: str | None = None,
    sort: str = "name",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> NodePage:
    """One page of the actor's nodes (filtered and sorted in SQL) with effective status and active deployments."""
    if sort not in SORTS:
        raise InvalidInput(f"sort: choose one of {', '.join(SORTS)}", field="sort")
    if status is not None and status not in NODE_STATUSES:
        raise InvalidInput(f"status: choose one of {', '.join(NODE_STATUSES)}", field="status")
    limit = max(1, min(int(limit), 500))
    offset = max(0, int(offset))
    actor.require(Action.NODE_MANAGE)
    now = utcnow()
    with uow:
        s = uow.session
        eff = effective_status_expr(now) if status or sort == "status" else None
        # The provider is joined (looked up alone only when no row comes back) and the total is a window
        # count over the filtered rows: one query for the page, one for its active deployments.
        q = (
            select(Node, func.count().over().label("total"))
            .join(Provider, Provider.id == Node.provider_id)
            .where(Provider.owner_user_id == actor.user_id)
        )
        if status:
            q = q.where(eff == status)
        if region:
            q = q.where(Node.region == region)
        if search:
            q = q.where(func.lower(Node.name).contains(search.strip().lower(), autoescape=True))
        key = {  # the deployments count is built only when sorting by it (building it costs ~0.5 ms)
            "name": lambda: Node.name,
            "region": lambda: Node.region,
            "status": lambda: eff,
            "last_heartbeat": lambda: Node.last_heartbeat_at,
            "created": lambda: Node.created_at,
            "deployments": _active_count_expr,
        }[sort]()
        order = [key.desc() if descending else key.asc(), Node.id.desc() if descending else Node.id.asc()]
        if sort == "last_heartbeat":
            order[0] = order[0].nulls_last()
        found = s.execute(q.order_by(*order).limit(limit).offset(offset)).all()
        if found:
            total = int(found[0].total)
        else:  # nothing matches, past the last page, or no provider profile (PermissionDenied)
            _own_provider(s, actor)
            total = int(s.scalar(select(func.count()).select_from(q.with_only_columns(Node.id).subquery())) or 0)
        counts = _active_counts(s, [n.id for n, _ in found])
        rows = [_view(n, counts.get(n.id, 0), now) for n, _ in found]
    return NodePage(rows=rows, total=total, limit=limit, offset=offset)


def get_for_provider(uow: UnitOfWork, actor: Identity, node_id: int) -> NodeView:
    """The actor's node with this id; another provider's node is NotFound."""
    with uow:
        s = uow.session
        provider = require_provider(s, actor, Action.NODE_MANAGE)
        node = _own_node(s, provider.id, node_id)
        return _view(node, _active_counts(s, [node.id]).get(node.id, 0))


def node_choices(uow: UnitOfWork, actor: Identity, *, limit: int = 5000) -> list[NodeView]:
    """The actor's nodes that are not decommissioned, by name, with active deployments (for pickers)."""
    actor.require(Action.NODE_MANAGE)
    now = utcnow()
    with uow:
        s = uow.session
        rows = s.execute(
            select(Node, _active_count_expr())
            .join(Provider, Provider.id == Node.provider_id)
            .where(Provider.owner_user_id == actor.user_id, Node.status != "decommissioned")
            .order_by(Node.name)
            .limit(limit)
        ).all()
        if not rows:
            _own_provider(s, actor)  # no provider profile: PermissionDenied, as before
        return [_view(n, int(a or 0), now) for n, a in rows]


def regions(uow: UnitOfWork) -> list[str]:
    """The regions a node may be registered in (operator setting)."""
    return _allowed_regions(uow)


def gpu_models(uow: UnitOfWork) -> list[str]:
    """GPU models the marketplace prices (what a node's GPU model must be one of)."""
    with uow:
        return gpu_models_priced(uow.session)


def _from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def _metric_points(session: Session, node_id: int, since: datetime, now: datetime) -> tuple[int, list[MetricPoint]]:
    span = now - since - timedelta(minutes=1)  # "the last 2 days" asked a moment ago is still 2 days
    where = (NodeMetric.node_id == node_id, NodeMetric.ts >= since)
    if span <= RAW_METRICS_MAX_SPAN:
        rows = session.execute(
            select(
                NodeMetric.ts,
                NodeMetric.cpu_pct,
                NodeMetric.ram_pct,
                NodeMetric.disk_pct,
                NodeMetric.net_in_mbps,
                NodeMetric.net_out_mbps,
            )
            .where(*where)
            .order_by(NodeMetric.ts)
            .limit(20_000)
        ).all()
        return 0, [MetricPoint(*r) for r in rows]
    # Long ranges are averaged in the database so a chart never pulls thousands of raw samples.
    bucket_seconds = 300 if span <= FINE_METRICS_MAX_SPAN else 3600
    bucket = (epoch_seconds(session, NodeMetric.ts) // bucket_seconds) * bucket_seconds
    rows = session.execute(
        select(
            bucket.label("bucket"),
            func.avg(NodeMetric.cpu_pct),
            func.avg(NodeMetric.ram_pct),
            func.avg(NodeMetric.disk_pct),
            func.avg(NodeMetric.net_in_mbps),
            func.avg(NodeMetric.net_out_mbps),
        )
        .where(*where)
        .group_by(bucket)
        .order_by(bucket)
    ).all()
    points = [
        MetricPoint(_from_epoch(b), float(c or 0), float(r or 0), float(d or 0), float(i or 0), float(o or 0))
        for b, c, r, d, i, o in rows
    ]
    return bucket_seconds, points


def _uptime(session: Session, node: Node, now: datetime) -> tuple[list[UptimeDay], float | None]:
    """Per UTC day, the share of 5-minute slots in which the node reported online.

    Measured from the later of: 30 days ago, the node's registration, its first report in that time
    (before its first report a node has no measurements, not zero uptime). A slot with no report at
    all counts as down once measuring has started.
    """
    window_start = now - timedelta(days=UPTIME_DAYS)
    first = session.scalar(
        select(func.min(NodeMetric.ts)).where(NodeMetric.node_id == node.id, NodeMetric.ts >= window_start)
    )
    days_out: list[UptimeDay] = []
    first_day = window_start.date()
    if first is None:
        return [UptimeDay(first_day + timedelta(days=k), None) for k in range(UPTIME_DAYS + 1)], None
    start = max(window_start, node.created_at, first)
    slot = epoch_seconds(session, NodeMetric.ts) // UPTIME_SLOT_SECONDS
    day = epoch_seconds(session, NodeMetric.ts) // 86400
    rows = session.execute(
        select(day.label("day"), func.count(distinct(case((NodeMetric.online.is_(True), slot), else_=None))))
        .where(NodeMetric.node_id == node.id, NodeMetric.ts >= start)
        .group_by(day)
    ).all()
    online_by_day = {int(d): int(c) for d, c in rows}
    start_slot = int(start.timestamp()) // UPTIME_SLOT_SECONDS
    end_slot = int(now.timestamp()) // UPTIME_SLOT_SECONDS + 1
    per_day = 86400 // UPTIME_SLOT_SECONDS
    total_expected = total_online = 0
    for k in range(UPTIME_DAYS + 1):
        d = first_day + timedelta(days=k)
        day_index = int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) // 86400
        lo = max(start_slot, day_index * per_day)
        hi = min(end_slot, (day_index + 1) * per_day)
        expected = hi - lo
        if expected <= 0:
            days_out.append(UptimeDay(d, None))
            continue
        online = min(online_by_day.get(day_index, 0), expected)
        total_expected += expected
        total_online += online
        days_out.append(UptimeDay(d, online / expected))
    share = total_online / total_expected if total_expected else None
    return days_out, share


def _placed(session: Session, node_id: int, *, limit: int = 200) -> tuple[list[PlacedDeployment], int]:
    base = (
        select(DeploymentPlacement, Deployment, User.display_name)
        .join(Deployment, Deployment.id == DeploymentPlacement.deployment_id)
        .join(User, User.id == Deployment.owner_user_id)
        .where(DeploymentPlacement.node_id == node_id, Deployment.status != "deleted")
    )
    total = int(session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    active_first = case((Deployment.status.in_(ACTIVE_DEPLOYMENT_STATUSES), 0), else_=1)
    rows = session.execute(
        base.order_by(active_first, Deployment.id.desc(), DeploymentPlacement.slot).limit(limit)
    ).all()
    out = [
        PlacedDeployment(
            deployment_id=d.id,
            name=d.name,
            status=d.status,
            role=p.role,
            slot=p.slot,
            owner_name=owner or "—",
            vcpu=d.vcpu,
            ram_gb=d.ram_gb,
            gpu_count=d.gpu_count,
            started_at=d.started_at,
        )
        for p, d, owner in rows
    ]
    return out, total


def node_metrics(uow: UnitOfWork, actor: Identity, node_id: int, since: datetime | None = None) -> NodeMetrics:
    """Charts and context for one of the actor's nodes: utilisation since `since`, 30-day uptime, deployments."""
    now = utcnow()
    since = since or now - timedelta(days=1)
    if since.tzinfo is None:
        raise InvalidInput("since: give a timezone-aware time", field="since")
    since = max(since, now - timedelta(days=90))
    with uow:
        s = uow.session
        provider = require_provider(s, actor, Action.NODE_MANAGE)
        node = _own_node(s, provider.id, node_id)
        bucket_seconds, points = _metric_points(s, node.id, since, now)
        days, share = _uptime(s, node, now)
        placed, placed_total = _placed(s, node.id)
        view = _view(node, _active_counts(s, [node.id]).get(node.id, 0), now)
    return NodeMetrics(
        node=view,
        since=since,
        bucket_seconds=bucket_seconds,
        points=points,
        uptime_days=days,
        uptime_share=share,
        deployments=placed,
        deployments_total=placed_total,
    )


# --------------------------------------------------------------------------- changes


def register_node(uow: UnitOfWork, actor: Identity, data: NodeInput | dict) -> RegisteredNode:
    """Add a node to the actor's provider (offline until its agent reports) and return its token once."""
    actor.require(Action.NODE_MANAGE)
    with uow:
        s = uow.session
        provider = _own_provider(s, actor, for_change=True)
        form = _validated(data, uow)
        if _name_taken(s, provider.id, form.name):
            raise _name_error(form.name)
        token = new_token()
        now = utcnow()
        node = Node(
            provider_id=provider.id,
            status="offline",
            token_hash=hash_token(token),
            token_rotated_at=now,
            created_at=now,
            **_fields(form),
        )
        s.add(node)
        try:
            s.flush()
        except IntegrityError as exc:  # a concurrent registration took the name
            raise _name_error(form.name) from exc
        audit.record(s, actor, "node.registered", "node", node.id, new=_fields(form))
        uow.commit()
        return RegisteredNode(node=_view(node), token=token)


def update_node(uow: UnitOfWork, actor: Identity, node_id: int, data: NodeInput | dict) -> NodeView:
    """Change a node's description; region and country stay put while deployments run on it."""
    actor.require(Action.NODE_MANAGE)
    with uow:
        s = uow.session
        provider = _own_provider(s, actor, for_change=True)
        node = _own_node(s, provider.id, node_id, lock=True)
        if node.status == "decommissioned":
            raise Conflict(f"{node.name} is decommissioned and can no longer be changed.")
        form = _validated(data, uow)
        old = {k: getattr(node, k) for k in NodeInput.model_fields}
        new = _fields(form)
        changed = {k: v for k, v in new.items() if old[k] != v}
        if not changed:
            return _view(node, _active_counts(s, [node.id]).get(node.id, 0))
        if "name" in changed and _name_taken(s, provider.id, form.name, except_id=node.id):
            raise _name_error(form.name)
        if {"region", "country"} & changed.keys():
            active = active_deployments_on(s, [node.id])
            if active:
                raise _field_errors(
                    {
                        "region" if "region" in changed else "country": (
                            f"{node.name} hosts {len(active)} active deployment(s); its region and country "
                            "cannot change until they have stopped"
                        )
                    }
                )
        for k, v in changed.items():
            setattr(node, k, v)
        try:
            s.flush()
        except IntegrityError as exc:
            raise _name_error(form.name) from exc
        audit.record(s, actor, "node.updated", "node", node.id, old={k: old[k] for k in changed}, new=changed)
        uow.commit()
        return _view(node, _active_counts(s, [node.id]).get(node.id, 0))


def drain(uow: UnitOfWork, actor: Identity, node_id: int) -> NodeView:
    """Mark the node draining: it keeps what runs on it and takes no new placements."""
    actor.require(Action.NODE_MANAGE)
    with uow:
        s = uow.session
        provider = _own_provider(s, actor)
        node = _own_node(s, provider.id, node_id, lock=True)
        if node.status in ("draining", "decommissioned"):
            raise Conflict(f"{node.name} is already {node.status}.")
        old = node.status
        node.status = "draining"
        audit.record(s, actor, "node.drained", "node", node.id, old={"status": old}, new={"status": "draining"})
        uow.commit()
        return _view(node, _active_counts(s, [node.id]).get(node.id, 0))


def resume(uow: UnitOfWork, actor: Identity, node_id: int) -> NodeView:
    """End draining: the node takes placements again once it is online."""
    actor.require(Action.NODE_MANAGE)
    now = utcnow()
    with uow:
        s = uow.session
        provider = _own_provider(s, actor)
        node = _own_node(s, provider.id, node_id, lock=True)
        if node.status != "draining":
            raise Conflict(f"{node.name} is not draining (it is {effective_status(node, now)}).")
        fresh = node.last_heartbeat_at is not None and node.last_heartbeat_at >= online_cutoff(now)
        node.status = "online" if fresh else "offline"
        audit.record(s, actor, "node.resumed", "node", node.id, old={"status": "draining"}, new={"status": node.status})
        uow.commit()
        return _view(node, _active_counts(s, [node.id]).get(node.id, 0), now)


def decommission(uow: UnitOfWork, actor: Identity, node_id: int) -> NodeView:
    """Retire the node for good and revoke its token; refused while pending/running deployments are on it."""
    actor.require(Action.NODE_MANAGE)
    with uow:
        s = uow.session
        provider = _own_provider(s, actor)
        node = _own_node(s, provider.id, node_id, lock=True)
        if node.status == "decommissioned":
            raise Conflict(f"{node.name} is already decommissioned.")
        active = active_deployments_on(s, [node.id])
        if active:
            named = ", ".join(f"{name} (#{i})" for i, name, _o in active[:10])
            more = f" and {len(active) - 10} more" if len(active) > 10 else ""
            raise Conflict(
                f"{node.name} cannot be decommissioned while {len(active)} deployment(s) are pending or running "
                f"on it: {named}{more}. Drain the node and wait for them to stop or move first."
            )
        old = node.status
        node.status = "decommissioned"
        node.token_hash = None  # the agent's token stops working with the node
        audit.record(
            s, actor, "node.decommissioned", "node", node.id, old={"status": old}, new={"status": "decommissioned"}
        )
        uow.commit()
        return _view(node)


def rotate_token(uow: UnitOfWork, actor: Identity, node_id: int) -> RegisteredNode:
    """Give the node a new agent token (returned once); the old one stops working at once."""
    actor.require(Action.NODE_MANAGE)
    with uow:
        s = uow.session
        provider = _own_provider(s, actor)
        node = _own_node(s, provider.id, node_id, lock=True)
        if node.status == "decommissioned":
            raise Conflict(f"{node.name} is decommissioned; it has no token to rotate.")
        token = new_token()
        node.token_hash = hash_token(token)
        node.token_rotated_at = utcnow()
        # The token itself is never audited or logged; the entry says only that it changed.
        audit.record(
            s, actor, "node.token_rotated", "node", node.id, new={"token_rotated_at": str(node.token_rotated_at)}
        )
        uow.commit()
        return RegisteredNode(node=_view(node, _active_counts(s, [node.id]).get(node.id, 0)), token=token)
