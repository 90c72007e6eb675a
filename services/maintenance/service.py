"""Maintenance windows: a provider plans downtime for some of its nodes and the affected users are told.

Rules (operator settings): a window starts in the future with at least `min_maintenance_notice_hours`
notice, lasts at most `max_maintenance_hours`, and does not overlap another scheduled window of the
same node. "Affected" means the deployments pending or running on the window's nodes and their owners;
each owner gets one notification per window (and one when it is cancelled), never two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from services.audit import service as audit
from services.auth.identity import Identity
from services.auth.permissions import Action
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.deployments.models import Deployment, DeploymentPlacement
from services.errors import Conflict, InvalidInput, NotFound
from services.maintenance.models import MaintenanceWindow, MaintenanceWindowNode
from services.nodes.models import Node
from services.nodes.service import ACTIVE_DEPLOYMENT_STATUSES, require_provider
from services.notifications import service as notifications
from services.notifications.models import Notification
from services.providers.models import Provider
from services.settings import service as settings_service
from services.users.models import User
from services.validation import invalid_input

FIELD_LABELS = {"node_ids": "Nodes", "starts_at": "Start", "ends_at": "End", "reason": "Reason"}
PHASES = ("upcoming", "active", "past")
MAX_NODES_PER_WINDOW = 500


class WindowInput(BaseModel):
    """A maintenance window as the provider plans it (times timezone-aware; stored in UTC)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    node_ids: list[int] = Field(min_length=1, max_length=MAX_NODES_PER_WINDOW)
    starts_at: datetime
    ends_at: datetime
    reason: str = Field(min_length=3, max_length=500)

    @field_validator("node_ids", mode="before")
    @classmethod
    def _nodes(cls, v: object) -> object:
        if isinstance(v, list | tuple) and not v:
            raise ValueError("choose at least one node")
        return v

    @field_validator("node_ids")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        return list(dict.fromkeys(v))

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("give a time with its timezone")
        return v


@dataclass(frozen=True)
class AffectedDeployment:
    deployment_id: int
    name: str
    status: str
    owner_user_id: int
    owner_name: str
    node_names: tuple[str, ...]


@dataclass(frozen=True)
class AffectedUser:
    user_id: int
    name: str
    deployments: int


@dataclass(frozen=True)
class Impact:
    node_names: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    deployments: list[AffectedDeployment]
    users: list[AffectedUser]


@dataclass(frozen=True)
class WindowView:
    id: int
    starts_at: datetime
    ends_at: datetime
    reason: str
    status: str  # scheduled | cancelled
    phase: str  # upcoming | active | past
    node_names: tuple[str, ...]
    created_at: datetime
    cancelled_at: datetime | None


@dataclass(frozen=True)
class ScheduledWindow:
    window: WindowView
    impact: Impact
    notified: int


@dataclass(frozen=True)
class WindowPage:
    rows: list[WindowView]
    total: int
    limit: int
    offset: int


def _phase(w: MaintenanceWindow, now: datetime) -> str:
    if w.status == "cancelled" or w.ends_at <= now:
        return "past"
    return "active" if w.starts_at <= now else "upcoming"


def _fmt(ts: datetime, actor: Identity) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(actor.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return ts.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _hours(h: float) -> str:
    return f"{h:g} hour" + ("" if h == 1 else "s")


def _notify_in_own_timezones(
    session: Session,
    user_ids: set[int] | list[int],
    *,
    title: str,
    body: str,
    starts_at: datetime,
    ends_at: datetime,
    dedupe_prefix: str,
) -> int:
    """One notification per user, its times written in that user's timezone; returns how many were written.

    `body` has `{when}` where the time range goes.
    """
    ids = sorted(set(user_ids))
    if not ids:
        return 0
    zones = dict(session.execute(select(User.id, User.timezone).where(User.id.in_(ids))).all())
    by_zone: dict[str, list[int]] = {}
    for uid in ids:
        by_zone.setdefault(zones.get(uid) or "UTC", []).append(uid)
    written = 0
    for tz, members in by_zone.items():
        viewer = Identity(user_id=0, subject="", email=None, name="", timezone=tz)
        when = f"{_fmt(starts_at, viewer)} to {_fmt(ends_at, viewer)}"
        written += notifications.notify(
            session,
            members,
            kind="maintenance",
            title=title,
            body=body.replace("{when}", when, 1),
            dedupe_prefix=dedupe_prefix,
        )
    return written


def _validated(data: WindowInput | dict) -> WindowInput:
    try:
        return data if isinstance(data, WindowInput) else WindowInput.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc, FIELD_LABELS) from exc


def _check_times(uow: UnitOfWork, form: WindowInput, actor: Identity, now: datetime) -> None:
    """The operator's timing rules, each with its own message on the field it concerns."""
    settings = settings_service.get(uow)
    if form.ends_at <= form.starts_at:
        raise InvalidInput("The end must be after the start.", field="ends_at")
    if form.starts_at <= now:
        raise InvalidInput("The start is in the past; choose a time in the future.", field="starts_at")
    notice = timedelta(hours=settings.min_maintenance_notice_hours)
    if form.starts_at < now + notice:
        raise InvalidInput(
            f"Users must get at least {_hours(settings.min_maintenance_notice_hours)} notice: start at "
            f"{_fmt(now + notice, actor)} or later.",
            field="starts_at",
        )
    longest = timedelta(hours=settings.max_maintenance_hours)
    if form.ends_at - form.starts_at > longest:
        raise InvalidInput(
            f"A window may last at most {_hours(settings.max_maintenance_hours)}; this one lasts "
            f"{_hours(round((form.ends_at - form.starts_at).total_seconds() / 3600, 1))}.",
            field="ends_at",
        )


def _own_nodes(session: Session, provider_id: int, node_ids: list[int], *, lock: bool = False) -> list[Node]:
    q = select(Node).where(Node.id.in_(node_ids), Node.provider_id == provider_id).order_by(Node.name)
    if lock:
        # Serialises two windows planned for the same node at once, so the overlap check holds.
        q = q.with_for_update()
    nodes = list(session.scalars(q))
    found = {n.id for n in nodes}
    missing = [i for i in node_ids if i not in found]
    if missing:
        raise NotFound("node", ", ".join(str(i) for i in missing))
    gone = [n.name for n in nodes if n.status == "decommissioned"]
    if gone:
        raise InvalidInput(f"Decommissioned nodes need no maintenance: {', '.join(gone)}.", field="node_ids")
    return nodes


def _check_overlap(
    session: Session, nodes: list[Node], form: WindowInput, actor: Identity, *, except_id: int | None = None
) -> None:
    q = (
        select(MaintenanceWindow, Node.name)
        .join(MaintenanceWindowNode, MaintenanceWindowNode.window_id == MaintenanceWindow.id)
        .join(Node, Node.id == MaintenanceWindowNode.node_id)
        .where(
            MaintenanceWindowNode.node_id.in_([n.id for n in nodes]),
            MaintenanceWindow.status == "scheduled",
            MaintenanceWindow.starts_at < form.ends_at,
            MaintenanceWindow.ends_at > form.starts_at,
        )
        .order_by(MaintenanceWindow.starts_at, Node.name)
    )
    if except_id is not None:
        q = q.where(MaintenanceWindow.id != except_id)
    clash = session.execute(q.limit(1)).first()
    if clash:
        window, node_name = clash
        raise InvalidInput(
            f"{node_name} already has maintenance window #{window.id} “{window.reason}” from "
            f"{_fmt(window.starts_at, actor)} to {_fmt(window.ends_at, actor)}, which overlaps this time.",
            field="node_ids",
        )


def _impact(session: Session, nodes: list[Node], starts_at: datetime, ends_at: datetime) -> Impact:
    node_name = {n.id: n.name for n in nodes}
    rows = session.execute(
        select(
            Deployment.id,
            Deployment.name,
            Deployment.status,
            Deployment.owner_user_id,
            User.display_name,
            DeploymentPlacement.node_id,
        )
        .join(DeploymentPlacement, DeploymentPlacement.deployment_id == Deployment.id)
        .join(User, User.id == Deployment.owner_user_id)
        .where(DeploymentPlacement.node_id.in_(list(node_name)), Deployment.status.in_(ACTIVE_DEPLOYMENT_STATUSES))
        .order_by(Deployment.id)
    ).all()
    by_dep: dict[int, dict] = {}
    for dep_id, name, status, owner_id, owner_name, node_id in rows:
        d = by_dep.setdefault(
            dep_id, dict(name=name, status=status, owner=owner_id, owner_name=owner_name or "—", nodes=[])
        )
        if node_name[node_id] not in d["nodes"]:
            d["nodes"].append(node_name[node_id])
    deployments = [
        AffectedDeployment(i, d["name"], d["status"], d["owner"], d["owner_name"], tuple(sorted(d["nodes"])))
        for i, d in by_dep.items()
    ]
    per_user: dict[int, AffectedUser] = {}
    for d in deployments:
        u = per_user.get(d.owner_user_id)
        per_user[d.owner_user_id] = AffectedUser(d.owner_user_id, d.owner_name, (u.deployments if u else 0) + 1)
    users = sorted(per_user.values(), key=lambda u: (u.name.lower(), u.user_id))
    return Impact(tuple(n.name for n in nodes), starts_at, ends_at, deployments, users)


def _window_views(session: Session, windows: list[MaintenanceWindow], now: datetime) -> list[WindowView]:
    ids = [w.id for w in windows]
    names: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        for wid, name in session.execute(
            select(MaintenanceWindowNode.window_id, Node.name)
            .join(Node, Node.id == MaintenanceWindowNode.node_id)
            .where(MaintenanceWindowNode.window_id.in_(ids))
            .order_by(Node.name)
        ):
            names[wid].append(name)
    return [
        WindowView(
            id=w.id,
            starts_at=w.starts_at,
            ends_at=w.ends_at,
            reason=w.reason,
            status=w.status,
            phase=_phase(w, now),
            node_names=tuple(names[w.id]),
            created_at=w.created_at,
            cancelled_at=w.cancelled_at,
        )
        for w in windows
    ]


def preview(uow: UnitOfWork, actor: Identity, data: WindowInput | dict) -> Impact:
    """Check a planned window against every rule and say whom it affects; writes nothing."""
    form = _validated(data)
    now = utcnow()
    with uow:
        s = uow.session
        provider = require_provider(s, actor, Action.MAINTENANCE_MANAGE)
        nodes = _own_nodes(s, provider.id, form.node_ids)
        _check_times(uow, form, actor, now)
        _check_overlap(s, nodes, form, actor)
        return _impact(s, nodes, form.starts_at, form.ends_at)


def schedule(uow: UnitOfWork, actor: Identity, data: WindowInput | dict) -> ScheduledWindow:
    """Save a window that passes every rule and notify each affected user once, in one transaction."""
    form = _validated(data)
    now = utcnow()
    with uow:
        s = uow.session
        provider = require_provider(s, actor, Action.MAINTENANCE_MANAGE, for_change=True)
        nodes = _own_nodes(s, provider.id, form.node_ids, lock=True)
        _check_times(uow, form, actor, now)
        _check_overlap(s, nodes, form, actor)
        impact = _impact(s, nodes, form.starts_at, form.ends_at)
        window = MaintenanceWindow(
            provider_id=provider.id,
            starts_at=form.starts_at,
            ends_at=form.ends_at,
            reason=form.reason,
            status="scheduled",
            created_by=actor.user_id or None,
            created_at=now,
        )
        s.add(window)
        s.flush()
        s.add_all(MaintenanceWindowNode(window_id=window.id, node_id=n.id) for n in nodes)
        notified = _notify_in_own_timezones(
            s,
            [u.user_id for u in impact.users],
            title=f"Planned maintenance: {provider.company}",
            body=(
                "From {when}, nodes hosting your deployments will be under maintenance "
                + f"({form.reason}). "
                + "Your deployments on them may be unavailable during this time."
            ),
            starts_at=form.starts_at,
            ends_at=form.ends_at,
            dedupe_prefix=f"maintenance:{window.id}",
        )
        audit.record(
            s,
            actor,
            "maintenance.scheduled",
            "maintenance_window",
            window.id,
            new={
                "starts_at": form.starts_at.isoformat(),
                "ends_at": form.ends_at.isoformat(),
                "reason": form.reason,
                "nodes": [n.id for n in nodes],
                "affected_deployments": len(impact.deployments),
                "notified_users": notified,
            },
        )
        uow.commit()
        view = _window_views(s, [window], now)[0]
    return ScheduledWindow(window=view, impact=impact, notified=notified)


def list_windows(
    uow: UnitOfWork, actor: Identity, *, phase: str = "upcoming", limit: int = 20, offset: int = 0
) -> WindowPage:
    """One page of the actor's windows in a phase: upcoming (soonest first), active, or past (latest first)."""
    if phase not in PHASES:
        raise InvalidInput(f"phase: choose one of {', '.join(PHASES)}", field="phase")
    limit = max(1, min(int(limit), 200))
    offset = max(0, int(offset))
    now = utcnow()
    with uow:
        s = uow.session
        scheduled = MaintenanceWindow.status == "scheduled"
        cond = {
            "upcoming": and_(scheduled, MaintenanceWindow.starts_at > now),
            "active": and_(scheduled, MaintenanceWindow.starts_at <= now, MaintenanceWindow.ends_at > now),
            "past": or_(MaintenanceWindow.status == "cancelled", MaintenanceWindow.ends_at <= now),
        }[phase]
        # The provider is joined (looked up alone only when no row comes back) and the total is a window
        # count beside the page.
        actor.require(Action.MAINTENANCE_MANAGE)
        q = (
            select(MaintenanceWindow, func.count().over())
            .join(Provider, Provider.id == MaintenanceWindow.provider_id)
            .where(Provider.owner_user_id == actor.user_id, cond)
        )
        order = (
            [MaintenanceWindow.starts_at.asc(), MaintenanceWindow.id.asc()]
            if phase != "past"
            else [MaintenanceWindow.ends_at.desc(), MaintenanceWindow.id.desc()]
        )
        found = s.execute(q.order_by(*order).limit(limit).offset(offset)).all()
        windows = [w for w, _ in found]
        if found:
            total = int(found[0][1])
        else:  # nothing in this phase, past the last page, or no provider profile (PermissionDenied)
            require_provider(s, actor, Action.MAINTENANCE_MANAGE)
            total = int(
                s.scalar(select(func.count()).select_from(q.with_only_columns(MaintenanceWindow.id).subquery())) or 0
            )
        rows = _window_views(s, windows, now)
    return WindowPage(rows=rows, total=total, limit=limit, offset=offset)


def _own_window(session: Session, provider_id: int, window_id: int, *, lock: bool = False) -> MaintenanceWindow:
    q = select(MaintenanceWindow).where(MaintenanceWindow.id == window_id, MaintenanceWindow.provider_id == provider_id)
    if lock:
        q = q.with_for_update()
    window = session.scalar(q)
    if window is None:
        raise NotFound("maintenance window", window_id)
    return window


def window_impact(uow: UnitOfWork, actor: Identity, window_id: int) -> Impact:
    """Whom one of the actor's windows affects now (deployments currently on its nodes)."""
    with uow:
        s = uow.session
        provider = require_provider(s, actor, Action.MAINTENANCE_MANAGE)
        window = _own_window(s, provider.id, window_id)
        nodes = list(
            s.scalars(
                select(Node)
                .join(MaintenanceWindowNode, MaintenanceWindowNode.node_id == Node.id)
                .where(MaintenanceWindowNode.window_id == window.id)
                .order_by(Node.name)
            )
        )
        return _impact(s, nodes, window.starts_at, window.ends_at)


def cancel(uow: UnitOfWork, actor: Identity, window_id: int) -> ScheduledWindow:
    """Cancel one of the actor's upcoming windows and tell everyone who was (or would be) affected, once."""
    actor.require(Action.MAINTENANCE_MANAGE)
    now = utcnow()
    with uow:
        s = uow.session
        provider = require_provider(s, actor, Action.MAINTENANCE_MANAGE)
        window = _own_window(s, provider.id, window_id, lock=True)
        phase = _phase(window, now)
        if window.status == "cancelled":
            raise Conflict(f"Maintenance window #{window.id} is already cancelled.")
        if phase != "upcoming":
            raise Conflict(
                f"Maintenance window #{window.id} has already started; only upcoming windows can be cancelled."
                if phase == "active"
                else f"Maintenance window #{window.id} is over; only upcoming windows can be cancelled."
            )
        nodes = list(
            s.scalars(
                select(Node)
                .join(MaintenanceWindowNode, MaintenanceWindowNode.node_id == Node.id)
                .where(MaintenanceWindowNode.window_id == window.id)
                .order_by(Node.name)
            )
        )
        impact = _impact(s, nodes, window.starts_at, window.ends_at)
        # Everyone told about the window hears it is off, plus anyone placed on its nodes since.
        told = s.scalars(
            select(Notification.user_id).where(
                Notification.dedupe_key.like(f"maintenance:{window.id}:%"),
                Notification.dedupe_key.not_like(f"maintenance:{window.id}:cancelled:%"),
            )
        ).all()
        recipients = {int(u) for u in told} | {u.user_id for u in impact.users}
        window.status = "cancelled"
        window.cancelled_at = now
        notified = _notify_in_own_timezones(
            s,
            recipients,
            title=f"Maintenance cancelled: {provider.company}",
            body=("The maintenance planned from {when} " + f"({window.reason}) will not take place."),
            starts_at=window.starts_at,
            ends_at=window.ends_at,
            dedupe_prefix=f"maintenance:{window.id}:cancelled",
        )
        audit.record(
            s,
            actor,
            "maintenance.cancelled",
            "maintenance_window",
            window.id,
            old={"status": "scheduled"},
            new={"status": "cancelled", "notified_users": notified},
        )
        uow.commit()
        view = _window_views(s, [window], now)[0]
    return ScheduledWindow(window=view, impact=impact, notified=notified)
