"""What node agents do: authenticate with a node token, send heartbeats, read assignments, report status.

Heartbeat ingest is the hot path (thousands per second across a fleet), so a batch of heartbeats is two
statements and loads no ORM objects; the HTTP route batches the heartbeats that arrive together into one
transaction (group commit, services/nodes/ingest.py), and `record_heartbeat` writes one alone:

1. `WITH seen(digest, seen_at, reported) AS (VALUES ...) UPDATE nodes SET last_heartbeat_at = ..., status
   = ... FROM seen WHERE token_hash = digest AND status != 'decommissioned' RETURNING token_hash, id,
   status`: authentication and the status write in one indexed statement. The database serialises
   concurrent heartbeats of the same node on the row, and nothing is read and written back, so two
   heartbeats cannot undo each other. A rotated token no longer matches any row, so it stops working at
   once with no cache to invalidate (which is why there is no token-hash cache: the lookup is the
   write). A digest that matched nothing is then looked up alone to say 401 or 403.
2. One multi-row `INSERT` of the samples, `ON CONFLICT DO NOTHING RETURNING node_id, ts`: a retried
   heartbeat carrying the same sample time is stored once, and its answer says so.

The effective online/offline state is derived at read time (services/nodes/status.py): a node whose
last heartbeat is older than MARKETPLACE_NODE_OFFLINE_AFTER reads as offline.

Deployment status reports are one conditional UPDATE (the allowed transitions are in its WHERE), an
event appended to the deployment's timeline and an audit entry, in one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from sqlalchemy import Insert, TextClause, and_, bindparam, exists, select, text, update

from services.audit import service as audit
from services.auth.identity import Identity
from services.config import get_settings
from services.db.base import UTCDateTime, utcnow
from services.db.dialect import insert_ignore
from services.db.engine import UnitOfWork
from services.deployments.models import Deployment, DeploymentEvent, DeploymentPlacement
from services.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, PermissionDenied, ServiceError
from services.nodes.models import Node, NodeMetric
from services.nodes.tokens import hash_token, looks_like_token
from services.notifications import service as notifications

# A sample time may lag the server (a retried heartbeat) or lead it a little (clock skew).
MAX_SAMPLE_AGE = timedelta(minutes=15)
MAX_SAMPLE_LEAD = timedelta(minutes=2)
NOT_AUTHENTICATED = "Not authenticated: a valid node token is required."
DECOMMISSIONED = "This node is decommissioned; its agent should be stopped."

HeartbeatStatus = Literal["online", "offline"]
ReportedStatus = Literal["running", "failed", "stopped"]


class Metrics(BaseModel):
    """One sample of host metrics. Percentages are 0..100; network rates in Mbit/s."""

    # Unknown fields are ignored, not refused: a newer agent (more metrics) keeps working with this server.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    cpu_pct: float = Field(ge=0, le=100)
    ram_pct: float = Field(ge=0, le=100)
    disk_pct: float = Field(ge=0, le=100)
    net_in_mbps: float = Field(default=0.0, ge=0, le=1_000_000)
    net_out_mbps: float = Field(default=0.0, ge=0, le=1_000_000)


class HeartbeatIn(BaseModel):
    """What an agent sends every interval (unknown fields are ignored, for newer agents)."""

    model_config = ConfigDict(extra="ignore")

    status: HeartbeatStatus = Field(
        default="online", description="`online` while serving; `offline` when the agent shuts down cleanly"
    )
    ts: datetime | None = Field(
        default=None,
        description="When the sample was taken (UTC). A repeat of the same time is stored once. Default: now.",
    )
    metrics: Metrics | None = Field(default=None, description="Host metrics; omit for a liveness-only heartbeat")
    agent_version: str | None = Field(default=None, max_length=40)

    @field_validator("ts")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a timezone (UTC), e.g. 2026-01-01T12:00:00Z")
        return value


class HeartbeatOut(BaseModel):
    node_id: int
    status: str = Field(description="The node's status after this heartbeat")
    received_at: datetime
    metrics_recorded: bool = Field(description="False when no metrics were sent or this sample time was seen before")


class StatusReport(BaseModel):
    """A node's report about one deployment placed on it."""

    model_config = ConfigDict(extra="forbid")

    status: ReportedStatus
    reason: str = Field(
        default="", max_length=500, validate_default=True, description="Required when `status` is `failed`"
    )

    @field_validator("reason")
    @classmethod
    def _reason_for_failures(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if info.data.get("status") == "failed" and not value:
            raise ValueError("say why the deployment failed")
        return value


class StatusReportOut(BaseModel):
    deployment_id: int
    status: str
    changed: bool = Field(description="False when the deployment already had this status (nothing recorded)")


class Assignment(BaseModel):
    """A deployment replica (or backup VM) placed on the calling node, and what it should be doing."""

    deployment_id: int
    slot: int
    role: str
    name: str
    workload: str
    image: str | None
    vcpu: int
    ram_gb: int
    disk_gb: int
    gpu_model: str | None
    gpu_count: int
    status: str = Field(description="The deployment's status as the marketplace records it")
    desired_state: Literal["running", "stopped"]
    updated_at: datetime


@dataclass(frozen=True)
class NodeCaller:
    """The node an agent request authenticated as."""

    node_id: int
    provider_id: int
    name: str
    status: str

    def actor(self) -> Identity:
        """The node as an audit actor (no person, no roles)."""
        return Identity(
            user_id=0, subject=f"node:{self.node_id}", email=None, name=f"node {self.name}", roles=frozenset()
        )


# SQLite has one writer at a time. Threads that queue for it inside SQLite wait in its busy handler,
# which sleeps in growing steps and wastes most of the time; queueing them here instead hands the
# file lock straight from one heartbeat to the next. PostgreSQL locks rows and needs nothing.
_sqlite_writer = threading.Lock()


def _writer(uow: UnitOfWork):
    url = uow.url or get_settings().database_url
    return _sqlite_writer if url.startswith("sqlite") else nullcontext()


def _digest_or_refuse(token: str | None) -> str:
    if not token or not looks_like_token(token):
        raise NotAuthenticated(NOT_AUTHENTICATED)
    return hash_token(token)


def _refusal(session, digest: str) -> Exception:
    """Why a token matched no usable node: decommissioned (403) or unknown/rotated (401)."""
    status = session.scalar(select(Node.status).where(Node.token_hash == digest))
    if status == "decommissioned":
        return PermissionDenied(DECOMMISSIONED)
    return NotAuthenticated(NOT_AUTHENTICATED)


def authenticate(uow: UnitOfWork, token: str | None) -> NodeCaller:
    """The node holding `token` (compared by hash); NotAuthenticated if none, PermissionDenied if decommissioned."""
    digest = _digest_or_refuse(token)
    with uow:
        row = uow.session.execute(
            select(Node.id, Node.provider_id, Node.name, Node.status).where(Node.token_hash == digest)
        ).first()
    if row is None:
        raise NotAuthenticated(NOT_AUTHENTICATED)
    if row.status == "decommissioned":
        raise PermissionDenied(DECOMMISSIONED)
    return NodeCaller(node_id=row.id, provider_id=row.provider_id, name=row.name, status=row.status)


# The two heartbeat statements, per batch: one UPDATE of every node in it (joined to a VALUES list of
# digests), one multi-row INSERT of their samples. Built once per batch size / dialect (bind parameters only).
# A provider's "draining" survives heartbeats; otherwise the agent's word sets online/offline.
_mark_seen_by_size: dict[int, TextClause] = {}


def _mark_seen(size: int) -> TextClause:
    """UPDATE nodes FROM a list of (digest, now, reported), RETURNING token_hash, id, status (SQLite and PostgreSQL)."""
    stmt = _mark_seen_by_size.get(size)
    if stmt is None:
        rows = ", ".join(f"(:d{i}, :n{i}, :r{i})" for i in range(size))
        stmt = text(
            f"WITH seen (digest, seen_at, reported) AS (VALUES {rows}) "
            "UPDATE nodes SET last_heartbeat_at = seen.seen_at, "
            "status = CASE WHEN nodes.status = 'draining' THEN nodes.status ELSE seen.reported END "
            "FROM seen WHERE nodes.token_hash = seen.digest AND nodes.status != 'decommissioned' "
            "RETURNING nodes.token_hash, nodes.id, nodes.status"
        ).bindparams(*(bindparam(f"n{i}", type_=UTCDateTime()) for i in range(size)))
        _mark_seen_by_size[size] = stmt
    return stmt


_SAMPLE_COLUMNS = ("node_id", "ts", "cpu_pct", "ram_pct", "disk_pct", "net_in_mbps", "net_out_mbps", "online")
_insert_sample_by_dialect: dict[str, Insert] = {}


def _insert_sample(session) -> Insert:
    """INSERT of a metrics sample, ON CONFLICT (node_id, ts) DO NOTHING, for the session's dialect.

    Executed with a list of samples, SQLAlchemy sends one multi-row INSERT ... RETURNING ("insertmanyvalues").
    """
    dialect = session.get_bind().dialect.name
    stmt = _insert_sample_by_dialect.get(dialect)
    if stmt is None:
        stmt = (
            insert_ignore(session, NodeMetric, ["node_id", "ts"])
            .values({c: bindparam(c, type_=NodeMetric.__table__.c[c].type) for c in _SAMPLE_COLUMNS})
            .returning(NodeMetric.node_id, NodeMetric.ts)
        )
        _insert_sample_by_dialect[dialect] = stmt
    return stmt


@dataclass(frozen=True)
class Accepted:
    """A heartbeat that passed the checks that need no database: ready to be written."""

    digest: str
    heartbeat: HeartbeatIn
    now: datetime
    sample_ts: datetime


def accept(token: str | None, heartbeat: HeartbeatIn | dict, now: datetime | None = None) -> Accepted:
    """Check a heartbeat before any database work: token shape (401), body (422), sample time (422)."""
    digest = _digest_or_refuse(token)
    if not isinstance(heartbeat, HeartbeatIn):
        try:
            heartbeat = HeartbeatIn.model_validate(heartbeat)
        except ValidationError as exc:
            raise InvalidInput.from_pydantic(exc) from None
    now = now or utcnow()
    sample_ts = heartbeat.ts or now
    if not (now - MAX_SAMPLE_AGE <= sample_ts <= now + MAX_SAMPLE_LEAD):
        skew = int((sample_ts - now).total_seconds())
        raise InvalidInput(
            f"The sample time is {skew:+d} s from the server's clock; check the node's clock (NTP) or omit ts.",
            field="ts",
        )
    return Accepted(digest=digest, heartbeat=heartbeat, now=now, sample_ts=sample_ts)


def write_heartbeats(uow: UnitOfWork, batch: Sequence[Accepted]) -> list[HeartbeatOut | ServiceError]:
    """Write accepted heartbeats in one transaction: per heartbeat, mark its node seen and store its sample once.

    Answers in the order given: a HeartbeatOut, or the refusal (401 unknown/rotated token, 403
    decommissioned) for a heartbeat whose token matches no usable node; a refusal writes nothing and
    does not disturb the others. One commit covers the batch (services/nodes/ingest.py batches them).
    """
    if not batch:
        return []
    with _writer(uow), uow:
        s = uow.session
        conn = s.connection()  # Core statements on the session's connection: no ORM work per heartbeat
        params: dict = {}
        for i, item in enumerate(batch):
            params |= {f"d{i}": item.digest, f"n{i}": item.now, f"r{i}": item.heartbeat.status}
        # A node twice in one batch is updated once (by either of its rows): both get its status.
        seen = {digest: (node_id, status) for digest, node_id, status in conn.execute(_mark_seen(len(batch)), params)}
        samples = [
            {
                "node_id": seen[item.digest][0],
                "ts": item.sample_ts,
                "cpu_pct": m.cpu_pct,
                "ram_pct": m.ram_pct,
                "disk_pct": m.disk_pct,
                "net_in_mbps": m.net_in_mbps,
                "net_out_mbps": m.net_out_mbps,
                "online": item.heartbeat.status == "online",
            }
            for item in batch
            if item.digest in seen and (m := item.heartbeat.metrics) is not None
        ]
        # The stored samples, by (node, time): a repeat (a retry, or the same sample twice in the batch) is not.
        stored = {(int(n), ts) for n, ts in conn.execute(_insert_sample(s), samples)} if samples else set()
        answers: list[HeartbeatOut | ServiceError] = []
        for item in batch:
            if item.digest not in seen:
                answers.append(_refusal(s, item.digest))
                continue
            node_id, status = seen[item.digest]
            key = (node_id, item.sample_ts)
            recorded = item.heartbeat.metrics is not None and key in stored
            stored.discard(key)  # the first of two identical samples in one batch is the one stored
            answers.append(
                HeartbeatOut(node_id=node_id, status=status, received_at=item.now, metrics_recorded=recorded)
            )
        uow.commit()
    return answers


def record_heartbeat(uow: UnitOfWork, token: str | None, heartbeat: HeartbeatIn | dict) -> HeartbeatOut:
    """Authenticate by token hash, mark the node seen (one UPDATE) and store its sample once, in one transaction."""
    (answer,) = write_heartbeats(uow, [accept(token, heartbeat)])
    if isinstance(answer, ServiceError):
        raise answer
    return answer


def _desired_state(status: str) -> Literal["running", "stopped"]:
    return "running" if status in ("pending", "running") else "stopped"


def assignments(
    uow: UnitOfWork, node: NodeCaller, *, limit: int = 200, after: tuple[int, int] | None = None
) -> list[Assignment]:
    """The live (not deleted) placements on `node`, ordered by (deployment, slot), after a keyset position."""
    q = (
        select(
            Deployment.id,
            DeploymentPlacement.slot,
            DeploymentPlacement.role,
            Deployment.name,
            Deployment.workload,
            Deployment.image,
            Deployment.vcpu,
            Deployment.ram_gb,
            Deployment.disk_gb,
            Deployment.gpu_model,
            Deployment.gpu_count,
            Deployment.status,
            Deployment.updated_at,
        )
        .join(Deployment, Deployment.id == DeploymentPlacement.deployment_id)
        .where(DeploymentPlacement.node_id == node.node_id, Deployment.status != "deleted")
        .order_by(Deployment.id, DeploymentPlacement.slot)
        .limit(limit)
    )
    if after is not None:
        dep_id, slot = after
        q = q.where((Deployment.id > dep_id) | and_(Deployment.id == dep_id, DeploymentPlacement.slot > slot))
    with uow:
        rows = uow.session.execute(q).all()
    return [
        Assignment(
            deployment_id=r.id,
            slot=r.slot,
            role=r.role,
            name=r.name,
            workload=r.workload,
            image=r.image,
            vcpu=r.vcpu,
            ram_gb=r.ram_gb,
            disk_gb=r.disk_gb,
            gpu_model=r.gpu_model,
            gpu_count=r.gpu_count,
            status=r.status,
            desired_state=_desired_state(r.status),
            updated_at=r.updated_at,
        )
        for r in rows
    ]


# reported status -> the deployment statuses it may follow (the same status is a no-op)
_ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "running": ("pending",),
    "failed": ("pending", "running"),
    "stopped": ("pending", "running"),
}
_EVENT_KIND = {"running": "started", "failed": "failed", "stopped": "stopped"}


def report_status(
    uow: UnitOfWork, node: NodeCaller, deployment_id: int, report: StatusReport | dict
) -> StatusReportOut:
    """Apply a node's report to a deployment placed on it (allowed transitions only), with an event and audit entry.

    running: from pending; failed (with a reason) and stopped: from pending or running. A report of
    the status the deployment already has changes nothing. A deployment not placed on this node, or
    deleted, is NotFound; a report that contradicts the owner (e.g. running after they stopped it) is
    a Conflict.
    """
    if not isinstance(report, StatusReport):
        try:
            report = StatusReport.model_validate(report)
        except ValidationError as exc:
            raise InvalidInput.from_pydantic(exc) from None
    now = utcnow()
    placed_here = exists().where(
        DeploymentPlacement.deployment_id == Deployment.id, DeploymentPlacement.node_id == node.node_id
    )
    values: dict = {"status": report.status, "updated_at": now}
    if report.status == "running":
        values["started_at"] = now
    else:
        values["stopped_at"] = now
    with uow:
        s = uow.session
        row = s.execute(
            update(Deployment)
            .where(
                Deployment.id == deployment_id,
                Deployment.status.in_(_ALLOWED_FROM[report.status]),
                placed_here,
            )
            .values(**values)
            .returning(Deployment.id, Deployment.owner_user_id, Deployment.name)
        ).first()
        if row is None:
            current = s.scalar(select(Deployment.status).where(Deployment.id == deployment_id, placed_here))
            if current is None or current == "deleted":
                raise NotFound("deployment on this node", deployment_id)
            if current == report.status:
                return StatusReportOut(deployment_id=deployment_id, status=current, changed=False)
            raise Conflict(
                f"The deployment is {current}; a node cannot report it {report.status}.", current_status=current
            )
        message = f"Node {node.name} reports {report.status}" + (f": {report.reason}" if report.reason else "")
        s.add(
            DeploymentEvent(
                deployment_id=deployment_id,
                ts=now,
                kind=_EVENT_KIND[report.status],
                status=report.status,
                message=message,
                actor=f"node:{node.node_id}",
            )
        )
        if report.status == "failed":
            notifications.notify(
                s,
                [row.owner_user_id],
                kind="deployment.failed",
                title=f"Deployment {row.name} failed",
                body=report.reason,
            )
        audit.record(
            s,
            node.actor(),
            f"deployment.{_EVENT_KIND[report.status]}",
            "deployment",
            deployment_id,
            new={"status": report.status, "reason": report.reason, "node_id": node.node_id},
        )
        uow.commit()
    return StatusReportOut(deployment_id=deployment_id, status=report.status, changed=True)
