"""Writing and reading the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.audit.models import AuditEntry
from services.auth.identity import Identity
from services.auth.permissions import Action


def record(
    session: Session,
    actor: Identity,
    action: str,
    object_type: str,
    object_id: Any = None,
    *,
    old: dict | None = None,
    new: dict | None = None,
    note: str = "",
) -> AuditEntry:
    """Add an audit entry to the caller's transaction (it commits with the change it describes)."""
    entry = AuditEntry(
        actor_user_id=actor.user_id or None,
        actor_label=actor.label,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        old=old,
        new=new,
        note=note,
    )
    session.add(entry)
    return entry


def list_entries(
    uow,
    actor: Identity,
    *,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    actor_label: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """A page of the audit log, newest first, and the total count (operators only).

    Filters: exact action, object type and object id; `actor_label` matches part of who acted.
    """
    actor.require(Action.AUDIT_VIEW)
    q = select(AuditEntry)
    if action:
        q = q.where(AuditEntry.action == action)
    if object_type:
        q = q.where(AuditEntry.object_type == object_type)
    if object_id:
        q = q.where(AuditEntry.object_id == str(object_id))
    if actor_label:
        q = q.where(func.lower(AuditEntry.actor_label).contains(actor_label.strip().lower(), autoescape=True))
    with uow:
        total = uow.session.scalar(select(func.count()).select_from(q.subquery()))
        rows = uow.session.scalars(
            q.order_by(AuditEntry.ts.desc(), AuditEntry.id.desc()).limit(limit).offset(offset)
        ).all()
        for row in rows:
            uow.session.expunge(row)  # loaded and detached: readable after the transaction ends
        return list(rows), int(total or 0)


def facets(uow, actor: Identity) -> tuple[list[str], list[str]]:
    """The distinct actions and object types in the log, sorted (for filter pickers; operators only)."""
    actor.require(Action.AUDIT_VIEW)
    with uow:
        actions = uow.session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)).all()
        types = uow.session.scalars(select(AuditEntry.object_type).distinct().order_by(AuditEntry.object_type)).all()
        return list(actions), list(types)
