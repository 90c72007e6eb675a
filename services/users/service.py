"""People: demo picker list, profile reads and updates."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from services.auth.identity import identity_for_user
from services.db.engine import UnitOfWork
from services.users.models import User


@dataclass(frozen=True)
class DemoPerson:
    user_id: int
    name: str
    email: str | None
    roles: tuple[str, ...]


def demo_people(uow: UnitOfWork) -> list[DemoPerson]:
    """The seeded demo people, with their effective roles, for the demo-mode picker."""
    with uow:
        users = uow.session.scalars(select(User).where(User.is_demo.is_(True)).order_by(User.id)).all()
        out = []
        for u in users:
            ident = identity_for_user(uow, u)
            out.append(
                DemoPerson(u.id, u.display_name or u.subject, u.email, tuple(sorted(r.value for r in ident.roles)))
            )
        return out
