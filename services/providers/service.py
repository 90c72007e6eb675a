"""Providers as their owners see them, and applications to become one.

The operator's side of applications (queue, approve, reject) lives in services/providers/review.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select

from services.audit import service as audit
from services.auth.identity import Identity
from services.auth.permissions import Action
from services.db.engine import UnitOfWork
from services.errors import Conflict, InvalidInput
from services.providers.models import Provider, ProviderRequest
from services.settings import service as settings_service
from services.users.models import User
from services.validation import invalid_input

FIELD_LABELS = {
    "company": "Company",
    "contact_name": "Contact name",
    "contact_email": "Contact email",
    "regions": "Regions",
    "expected_capacity": "Expected capacity",
    "website": "Website",
}
# Deliberately simple: one @, a dot in the domain, no spaces. Deliverability is the operator's check.
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


@dataclass(frozen=True)
class ProviderView:
    id: int
    company: str
    contact_email: str
    website: str | None
    regions: tuple[str, ...]
    status: str
    created_at: datetime


@dataclass(frozen=True)
class ApplicationView:
    id: int
    company: str
    contact_name: str
    contact_email: str
    regions: tuple[str, ...]
    expected_capacity: str
    website: str | None
    status: str
    review_note: str | None
    reviewed_at: datetime | None
    created_at: datetime


def _provider_view(p: Provider) -> ProviderView:
    return ProviderView(
        id=p.id,
        company=p.company,
        contact_email=p.contact_email,
        website=p.website,
        regions=tuple(p.regions or ()),
        status=p.status,
        created_at=p.created_at,
    )


def _application_view(r: ProviderRequest) -> ApplicationView:
    return ApplicationView(
        id=r.id,
        company=r.company,
        contact_name=r.contact_name,
        contact_email=r.contact_email,
        regions=tuple(r.regions or ()),
        expected_capacity=r.expected_capacity,
        website=r.website,
        status=r.status,
        review_note=r.review_note,
        reviewed_at=r.reviewed_at,
        created_at=r.created_at,
    )


class ApplicationInput(BaseModel):
    """What a person fills in to become a provider."""

    model_config = ConfigDict(str_strip_whitespace=True)

    company: str = Field(min_length=2, max_length=200)
    contact_name: str = Field(min_length=2, max_length=200)
    contact_email: str = Field(max_length=320)
    regions: list[str] = Field(min_length=1, max_length=50)
    expected_capacity: str = Field(min_length=2, max_length=2000)
    website: str = Field(max_length=500)

    @field_validator("contact_email")
    @classmethod
    def _email(cls, v: str) -> str:
        if not EMAIL_RE.match(v):
            raise ValueError("enter an email address like ops@example.com")
        return v

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(r.strip() for r in v if r.strip()))
        if not cleaned:
            raise ValueError("choose at least one region")
        return cleaned

    @field_validator("website")
    @classmethod
    def _website(cls, v: str) -> str:
        parts = urlsplit(v)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or "." not in host or " " in v:
            raise ValueError("enter a web address starting with https:// (or http://)")
        return v


def provider_for(uow: UnitOfWork, actor: Identity) -> ProviderView | None:
    """The provider the actor owns, or None (a person owns at most one)."""
    with uow:
        p = uow.session.scalar(select(Provider).where(Provider.owner_user_id == actor.user_id))
        return _provider_view(p) if p else None


def my_applications(uow: UnitOfWork, actor: Identity, *, limit: int = 20) -> list[ApplicationView]:
    """The actor's own provider applications, newest first."""
    actor.require(Action.PROVIDER_APPLY)
    with uow:
        rows = uow.session.scalars(
            select(ProviderRequest)
            .where(ProviderRequest.applicant_user_id == actor.user_id)
            .order_by(ProviderRequest.created_at.desc(), ProviderRequest.id.desc())
            .limit(limit)
        ).all()
        return [_application_view(r) for r in rows]


def submit_application(uow: UnitOfWork, actor: Identity, data: ApplicationInput | dict) -> ApplicationView:
    """Create one pending provider request for the actor, unless they are a provider or already waiting."""
    actor.require(Action.PROVIDER_APPLY)
    try:
        form = data if isinstance(data, ApplicationInput) else ApplicationInput.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc, FIELD_LABELS) from exc
    settings = settings_service.get(uow)
    if not settings.provider_applications_open:
        raise Conflict("Provider applications are closed at the moment. Please try again later.")
    unknown = [r for r in form.regions if r not in settings.allowed_regions]
    if unknown:
        msg = f"not a marketplace region: {', '.join(unknown)}; choose from {', '.join(settings.allowed_regions)}"
        raise InvalidInput(f"Regions: {msg}", errors={"regions": msg})
    with uow:
        s = uow.session
        # Lock the applicant's row so two submits at once cannot both pass the "one pending" check.
        s.scalar(select(User.id).where(User.id == actor.user_id).with_for_update())
        provider = s.scalar(select(Provider).where(Provider.owner_user_id == actor.user_id))
        if provider is not None:
            raise Conflict(f"You are already a provider ({provider.company}); there is nothing to apply for.")
        pending = s.scalar(
            select(ProviderRequest).where(
                ProviderRequest.applicant_user_id == actor.user_id, ProviderRequest.status == "pending"
            )
        )
        if pending is not None:
            raise Conflict(
                f"You already have a pending application for {pending.company} "
                f"(submitted {pending.created_at:%Y-%m-%d}). An operator will review it; you can apply again "
                "only after a decision."
            )
        req = ProviderRequest(
            applicant_user_id=actor.user_id,
            company=form.company,
            contact_name=form.contact_name,
            contact_email=form.contact_email,
            regions=form.regions,
            expected_capacity=form.expected_capacity,
            website=form.website,
            status="pending",
        )
        s.add(req)
        s.flush()
        audit.record(
            s,
            actor,
            "provider_request.submitted",
            "provider_request",
            req.id,
            new={"company": form.company, "regions": form.regions},
        )
        uow.commit()
        return _application_view(req)
