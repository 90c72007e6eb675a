"""Make people with roles for service and page tests."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from services.auth.identity import Identity, identity_for_user
from services.auth.permissions import Role
from services.db.engine import UnitOfWork
from services.users.models import RoleGrant, User

_counter = itertools.count(1)


def make_person(uow: UnitOfWork, *roles: Role | str, email: str | None = None, name: str | None = None) -> Identity:
    """Create a user with database grants for `roles` and return their identity."""
    n = next(_counter)
    email = email or f"person{n}@test.example"
    with uow:
        s = uow.session
        user = User(subject=f"test:{email}", email=email, email_verified=True, display_name=name or f"Person {n}")
        s.add(user)
        s.flush()
        for role in roles:
            s.add(RoleGrant(user_id=user.id, role=Role(role).value))
        uow.commit()
        return identity_for_user(uow, user)


def demo_identity(uow: UnitOfWork, subject: str) -> Identity:
    """The identity of a seeded demo person (e.g. "demo:provider")."""
    with uow:
        user = uow.session.scalar(select(User).where(User.subject == subject))
        return identity_for_user(uow, user)
