"""The signed-in person as the services see them, and how claims become one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from services.auth.permissions import Action, Role, allowed
from services.config import get_settings
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.errors import NotAuthenticated, PermissionDenied
from services.users.models import RoleGrant, User

ROLE_VALUES = {r.value for r in Role}


@dataclass(frozen=True)
class Identity:
    """Who is acting. Built per request/page load, so database grants apply at once."""

    user_id: int
    subject: str
    email: str | None
    name: str
    roles: frozenset[Role] = field(default_factory=lambda: frozenset({Role.USER}))
    timezone: str = "UTC"
    is_demo: bool = False

    @property
    def label(self) -> str:
        return self.email or self.name or self.subject

    def has(self, role: Role) -> bool:
        return role in self.roles

    def can(self, action: Action) -> bool:
        return allowed(self.roles, action)

    def require(self, action: Action) -> None:
        """Raise PermissionDenied unless this person may take `action`."""
        if not self.can(action):
            raise PermissionDenied("You are not allowed to do that.")


SYSTEM = Identity(user_id=0, subject="system", email=None, name="system", roles=frozenset(Role))


def roles_from_claim(value: Any) -> set[Role]:
    """Roles named in a claim value (a list, or a space/comma separated string); unknown names ignored."""
    if value is None:
        return set()
    if isinstance(value, str):
        items: Iterable[Any] = value.replace(",", " ").split()
    elif isinstance(value, Iterable):
        items = value
    else:
        return set()
    return {Role(v) for v in items if isinstance(v, str) and v in ROLE_VALUES}


def identity_for_user(uow: UnitOfWork, user: User, claim_roles: set[Role] | None = None) -> Identity:
    """Effective roles = claim roles ∪ database grants ∪ {cloud-user} ∪ bootstrap operator."""
    roles = {Role.USER} | set(claim_roles or ())
    grants = uow.session.scalars(select(RoleGrant.role).where(RoleGrant.user_id == user.id)).all()
    roles |= {Role(g) for g in grants if g in ROLE_VALUES}
    if user.email and user.email_verified and user.email.lower() in get_settings().operator_email_set:
        roles.add(Role.OPERATOR)
    return Identity(
        user_id=user.id,
        subject=user.subject,
        email=user.email,
        name=user.display_name or user.email or user.subject,
        roles=frozenset(roles),
        timezone=user.timezone or "UTC",
        is_demo=user.is_demo,
    )


def identity_from_claims(uow: UnitOfWork, claims: Mapping[str, Any]) -> Identity:
    """Find or create the user for an ID/access token's claims and return their identity.

    Email and name are refreshed from the claims; a display name the person set is kept.
    """
    subject = claims.get("sub")
    if not subject or not isinstance(subject, str):
        raise NotAuthenticated("The sign-in did not say who you are (no subject).")
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    verified = bool(claims.get("email_verified", False))
    name = claims.get("name") if isinstance(claims.get("name"), str) else None
    claim_roles = roles_from_claim(claims.get(get_settings().roles_claim))
    with uow:
        s = uow.session
        user = s.scalar(select(User).where(User.subject == subject))
        now = utcnow()
        if user is None:
            user = User(subject=subject, email=email, email_verified=verified, display_name=name or email or "")
            s.add(user)
        else:
            if email and (user.email != email or user.email_verified != verified):
                user.email, user.email_verified = email, verified
            if not user.display_name and name:
                user.display_name = name
        if user.last_seen_at is None or (now - user.last_seen_at).total_seconds() > 300:
            user.last_seen_at = now
        if s.new or s.dirty:
            uow.commit()
        return identity_for_user(uow, user, claim_roles)


def identity_for_user_id(uow: UnitOfWork, user_id: int) -> Identity:
    """The identity of a stored user (demo mode, scripts); database grants only."""
    with uow:
        user = uow.session.get(User, user_id)
        if user is None:
            raise NotAuthenticated("Unknown user.")
        return identity_for_user(uow, user)


def identity_for_demo_subject(uow: UnitOfWork, subject: str) -> Identity:
    """The identity of a seeded demo person by subject (`demo:<key>`); NotAuthenticated for anyone else."""
    with uow:
        user = uow.session.scalar(select(User).where(User.subject == subject, User.is_demo.is_(True)))
        if user is None:
            raise NotAuthenticated("Unknown demo person.")
        return identity_for_user(uow, user)
