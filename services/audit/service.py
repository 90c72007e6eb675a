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
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """A page of the audit log, newest first, and the total count (operators only)."""
    actor.require(Action.AUDIT_VIEW)
    q = select(AuditEntry)
    if action:
        q = q.where(AuditEntry.action == action)
    if object_type:
        q = q.where(AuditEntry.object_type == object_type)
    with uow:
        total = uow.session.scalar(select(func.count()).select_from(q.subquery()))
        rows = uow.session.scalars(
            q.order_by(AuditEntry.ts.desc(), AuditEntry.id.desc()).limit(limit).offset(offset)
        ).all()
        return list(rows), int(total or 0)
