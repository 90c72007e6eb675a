"""Writing and reading in-app notifications."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.auth.identity import Identity
from services.auth.permissions import Action
from services.db.base import utcnow
from services.db.dialect import insert_ignore
from services.db.engine import UnitOfWork
from services.notifications.models import Notification


def notify(
    session: Session,
    user_ids: Iterable[int],
    *,
    kind: str,
    title: str,
    body: str = "",
    dedupe_prefix: str | None = None,
) -> int:
    """Add one notification per distinct user in the caller's transaction; with `dedupe_prefix`,
    a user who already has `<prefix>:<user id>` gets nothing new. Returns how many were written."""
    ids = sorted(set(user_ids))
    if not ids:
        return 0
    now = utcnow()
    rows = [
        dict(
            user_id=u,
            kind=kind,
            title=title,
            body=body,
            created_at=now,
            dedupe_key=f"{dedupe_prefix}:{u}" if dedupe_prefix else None,
        )
        for u in ids
    ]
    # Count what RETURNING gives back: with ON CONFLICT DO NOTHING only inserted rows come back, whereas
    # an executemany's rowcount is -1 on PostgreSQL (psycopg) and unreliable across drivers.
    table = Notification.__table__
    result = session.execute(insert_ignore(session, table).returning(table.c.id), rows)
    return len(result.all())


def list_own(
    uow: UnitOfWork, actor: Identity, *, unread_only: bool = False, limit: int = 50, offset: int = 0
) -> list[Notification]:
    """The actor's notifications, newest first."""
    actor.require(Action.NOTIFICATIONS_READ_OWN)
    q = select(Notification).where(Notification.user_id == actor.user_id)
    if unread_only:
        q = q.where(Notification.read_at.is_(None))
    with uow:
        rows = list(
            uow.session.scalars(
                q.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit).offset(offset)
            )
        )
        # Leaving the unit of work rolls back, which would expire these rows; detach them loaded instead.
        uow.session.expunge_all()
        return rows


def unread_count(uow: UnitOfWork, actor: Identity) -> int:
    """How many of the actor's notifications are unread."""
    with uow:
        return int(
            uow.session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.user_id == actor.user_id, Notification.read_at.is_(None))
            )
            or 0
        )


def mark_all_read(uow: UnitOfWork, actor: Identity) -> int:
    """Mark every unread notification of the actor as read; returns how many."""
    actor.require(Action.NOTIFICATIONS_READ_OWN)
    with uow:
        n = uow.session.execute(
            update(Notification)
            .where(Notification.user_id == actor.user_id, Notification.read_at.is_(None))
            .values(read_at=utcnow())
        ).rowcount
        uow.commit()
        return int(n or 0)
