"""People: demo picker list, profile reads and updates."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select

from services.audit import service as audit
from services.auth.identity import Identity, identity_for_user
from services.auth.permissions import Action
from services.db.engine import UnitOfWork
from services.errors import InvalidInput, NotFound
from services.settings import service as settings_service
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


# --- profile and settings

# Notification kinds a person can switch email for (the `kind` of services/notifications), with labels.
NOTIFICATION_KINDS: dict[str, str] = {
    "maintenance": "Maintenance windows on nodes running my deployments",
    "low_balance": "My balance runs low",
    "deployment": "My deployments change status",
    "payment": "Payments and top-ups",
    "provider_request": "My provider application is reviewed",
}


@lru_cache(maxsize=1)
def timezones() -> tuple[str, ...]:
    """Every IANA timezone name this machine knows, sorted (what the profile accepts)."""
    return tuple(sorted(available_timezones()))


def email_enabled(prefs: dict[str, Any] | None, kind: str) -> bool:
    """Whether a person wants email for notifications of `kind` (on unless switched off)."""
    return bool((prefs or {}).get(kind, True))


@dataclass(frozen=True)
class Profile:
    user_id: int
    email: str | None
    email_verified: bool
    display_name: str
    timezone: str
    default_region: str | None
    # every kind in NOTIFICATION_KINDS -> email on/off
    notification_prefs: dict[str, bool] = field(default_factory=dict)


class ProfileUpdate(BaseModel):
    """What a person may change about themselves. Email and roles come from sign-in, not from here."""

    model_config = ConfigDict(extra="forbid")

    display_name: str = Field(min_length=1, max_length=120)
    timezone: str
    default_region: str | None = None
    notification_prefs: dict[str, bool] = Field(default_factory=dict)

    @field_validator("display_name", mode="before")
    @classmethod
    def _strip_name(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = " ".join(v.split())
            if not v:
                raise ValueError("enter the name others should see")
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        if v not in timezones():
            raise ValueError(f"{v!r} is not a timezone we know (pick one like Europe/Berlin or UTC)")
        return v

    @field_validator("default_region", mode="before")
    @classmethod
    def _blank_region(cls, v: Any) -> Any:
        return None if v in ("", None) else v

    @field_validator("notification_prefs")
    @classmethod
    def _known_kinds(cls, v: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(v) - set(NOTIFICATION_KINDS))
        if unknown:
            raise ValueError(f"unknown notification kind: {', '.join(unknown)}")
        return v


def _profile(user: User) -> Profile:
    prefs = {kind: email_enabled(user.notification_prefs, kind) for kind in NOTIFICATION_KINDS}
    return Profile(
        user_id=user.id,
        email=user.email,
        email_verified=bool(user.email_verified),
        display_name=user.display_name or "",
        timezone=user.timezone or "UTC",
        default_region=user.default_region,
        notification_prefs=prefs,
    )


def get_profile(uow: UnitOfWork, actor: Identity) -> Profile:
    """The actor's own profile and settings (every notification kind listed, on unless switched off)."""
    actor.require(Action.PROFILE_EDIT)
    with uow:
        user = uow.session.get(User, actor.user_id)
        if user is None:
            raise NotFound("person", actor.user_id)
        return _profile(user)


def update_profile(uow: UnitOfWork, actor: Identity, changes: dict[str, Any]) -> Profile:
    """Validate and save the actor's own profile in one transaction, auditing the changed fields.

    `changes` may name any of display_name, timezone, default_region, notification_prefs; the rest stay.
    The default region must be one the operators allow. Nothing is written when anything is invalid.
    """
    actor.require(Action.PROFILE_EDIT)
    allowed_regions = settings_service.get(uow).allowed_regions
    with uow:
        s = uow.session
        user = s.get(User, actor.user_id)
        if user is None:
            raise NotFound("person", actor.user_id)
        current = _profile(user)
        merged = {
            "display_name": current.display_name,
            "timezone": current.timezone,
            "default_region": current.default_region,
            "notification_prefs": current.notification_prefs,
        } | dict(changes)
        try:
            update = ProfileUpdate.model_validate(merged)
        except ValidationError as exc:
            raise InvalidInput.from_pydantic(exc) from exc
        region_changed = update.default_region != current.default_region
        if update.default_region is not None and region_changed and update.default_region not in allowed_regions:
            raise InvalidInput(
                f"{update.default_region!r} is not a region the marketplace offers "
                f"(choose one of {', '.join(allowed_regions)})",
                field="default_region",
            )
        prefs = current.notification_prefs | update.notification_prefs
        new = {
            "display_name": update.display_name,
            "timezone": update.timezone,
            "default_region": update.default_region,
            "notification_prefs": prefs,
        }
        old = {
            "display_name": current.display_name,
            "timezone": current.timezone,
            "default_region": current.default_region,
            "notification_prefs": current.notification_prefs,
        }
        changed = [k for k in new if new[k] != old[k]]
        if not changed:
            return current
        user.display_name = update.display_name
        user.timezone = update.timezone
        user.default_region = update.default_region
        user.notification_prefs = dict(prefs)  # a new dict, so the JSON column is seen as changed
        audit.record(
            s,
            actor,
            "profile.updated",
            "user",
            user.id,
            old={k: old[k] for k in changed},
            new={k: new[k] for k in changed},
        )
        uow.commit()
        return _profile(user)
