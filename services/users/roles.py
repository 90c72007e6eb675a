"""Roles granted in the database (united with the identity provider's claim on every page load and request)."""

from __future__ import annotations

from sqlalchemy import select

from services.audit import service as audit
from services.auth.identity import Identity
from services.auth.permissions import Action, Role
from services.db.engine import UnitOfWork
from services.errors import Conflict, InvalidInput, NotFound
from services.users.models import RoleGrant, User


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"Unknown role: {role!r}", field="role") from None


def granted_roles(uow: UnitOfWork, user_id: int) -> list[Role]:
    """The roles stored for a person in the database (not the claim's), sorted."""
    with uow:
        rows = uow.session.scalars(select(RoleGrant.role).where(RoleGrant.user_id == user_id)).all()
    return sorted(Role(r) for r in rows if r in {x.value for x in Role})


def grant(uow: UnitOfWork, actor: Identity, *, user_id: int, role: Role | str) -> None:
    """Store `role` for the person (operators only), audited; it applies from their next page load or request."""
    actor.require(Action.ROLE_GRANT)
    role = _role(role)
    if role is Role.USER:
        raise InvalidInput("Every signed-in person is already a cloud-user.", field="role")
    with uow:
        s = uow.session
        user = s.get(User, user_id)
        if user is None:
            raise NotFound("person", user_id)
        existing = s.scalar(select(RoleGrant).where(RoleGrant.user_id == user_id, RoleGrant.role == role.value))
        if existing is not None:
            raise Conflict(f"{user.email or user.subject} already has {role.value}.", field="role")
        s.add(RoleGrant(user_id=user_id, role=role.value, granted_by=actor.user_id or None))
        audit.record(s, actor, "role.granted", "user", user_id, new={"role": role.value})
        uow.commit()


def revoke(uow: UnitOfWork, actor: Identity, *, user_id: int, role: Role | str) -> None:
    """Remove a stored role (operators only), audited; it disappears from their next page load or request.

    A role that also comes from the identity provider's claim stays until it is removed there.
    """
    actor.require(Action.ROLE_GRANT)
    role = _role(role)
    with uow:
        s = uow.session
        if s.get(User, user_id) is None:
            raise NotFound("person", user_id)
        existing = s.scalar(select(RoleGrant).where(RoleGrant.user_id == user_id, RoleGrant.role == role.value))
        if existing is None:
            raise NotFound("role grant", role.value)
        s.delete(existing)
        audit.record(s, actor, "role.revoked", "user", user_id, old={"role": role.value})
        uow.commit()
