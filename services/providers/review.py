"""The operator's side of provider applications: the review queue, approval and rejection.

Approval creates the provider and grants `cloud-provider` exactly once: the request moves out of
`pending` with a conditional UPDATE (so of two reviewers at once only one wins), a person owns at
most one provider (unique owner) and a role is granted at most once (unique user + role).
The applicant is notified either way and sees the decision and its note on their application.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from services.audit import service as audit
from services.auth.identity import Identity
from services.auth.permissions import Action, Role
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.errors import Conflict, InvalidInput, NotFound
from services.notifications.service import notify
from services.providers.models import Provider, ProviderRequest
from services.users.models import RoleGrant, User

STATUSES = ("pending", "approved", "rejected")


@dataclass(frozen=True)
class RequestView:
    id: int
    status: str
    company: str
    contact_name: str
    contact_email: str
    regions: tuple[str, ...]
    expected_capacity: str
    website: str | None
    applicant_user_id: int
    applicant_name: str
    applicant_email: str | None
    created_at: datetime
    review_note: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    provider_id: int | None


class ReviewInput(BaseModel):
    """An operator's decision note."""

    model_config = ConfigDict(str_strip_whitespace=True)

    note: str = Field(default="", max_length=2000)


def _zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _note(note: str | None, *, required: bool) -> str:
    try:
        text = ReviewInput(note=note or "").note
    except ValidationError as exc:
        raise InvalidInput.from_pydantic(exc) from exc
    if required and not text:
        raise InvalidInput("Say why, so the applicant knows what to change.", field="note")
    return text


def _query():
    applicant = aliased(User)
    reviewer = aliased(User)
    return (
        select(
            ProviderRequest,
            applicant.display_name,
            applicant.email,
            reviewer.display_name,
            reviewer.email,
        )
        .join(applicant, applicant.id == ProviderRequest.applicant_user_id)
        .outerjoin(reviewer, reviewer.id == ProviderRequest.reviewed_by)
    )


def _view(r: ProviderRequest, a_name: str | None, a_email: str | None, r_name: str | None, r_email: str | None):
    return RequestView(
        id=r.id,
        status=r.status,
        company=r.company,
        contact_name=r.contact_name,
        contact_email=r.contact_email,
        regions=tuple(r.regions or ()),
        expected_capacity=r.expected_capacity or "",
        website=r.website,
        applicant_user_id=r.applicant_user_id,
        applicant_name=a_name or a_email or f"user {r.applicant_user_id}",
        applicant_email=a_email,
        created_at=r.created_at,
        review_note=r.review_note,
        reviewed_by=(r_name or r_email) if r.reviewed_by else None,
        reviewed_at=r.reviewed_at,
        provider_id=r.provider_id,
    )


def status_counts(uow: UnitOfWork, actor: Identity) -> dict[str, int]:
    """How many requests there are in each status (operators only)."""
    actor.require(Action.PROVIDER_REQUEST_REVIEW)
    with uow:
        rows = uow.session.execute(select(ProviderRequest.status, func.count()).group_by(ProviderRequest.status))
        counts = {k: int(v) for k, v in rows}
    return {s: counts.get(s, 0) for s in STATUSES}


def list_requests(
    uow: UnitOfWork, actor: Identity, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[RequestView], int]:
    """A page of provider requests (operators only): pending first, oldest waiting first; then the decided
    ones, most recently decided first. `status`: pending, approved, rejected, decided (both) or None (all).
    Also returns the total matching count."""
    actor.require(Action.PROVIDER_REQUEST_REVIEW)
    if status is not None and status not in (*STATUSES, "decided"):
        raise InvalidInput(f"Unknown status {status!r}; one of {', '.join(STATUSES)} or decided.", field="status")
    q = _query()
    count_q = select(func.count()).select_from(ProviderRequest)
    if status:
        cond = ProviderRequest.status != "pending" if status == "decided" else ProviderRequest.status == status
        q = q.where(cond)
        count_q = count_q.where(cond)
    pending_first = case((ProviderRequest.status == "pending", 0), else_=1)
    # Pending: oldest first (a queue). Decided: newest decision first.
    waiting_order = case((ProviderRequest.status == "pending", ProviderRequest.created_at), else_=None)
    q = q.order_by(
        pending_first,
        waiting_order.asc(),
        ProviderRequest.reviewed_at.desc(),
        ProviderRequest.created_at.desc(),
        ProviderRequest.id.desc(),
    )
    with uow:
        s = uow.session
        total = int(s.scalar(count_q) or 0)
        rows = s.execute(q.limit(limit).offset(offset)).all()
        return [_view(*row) for row in rows], total


def get_request(uow: UnitOfWork, actor: Identity, request_id: int) -> RequestView:
    """One provider request with its applicant and review (operators only)."""
    actor.require(Action.PROVIDER_REQUEST_REVIEW)
    with uow:
        row = uow.session.execute(_query().where(ProviderRequest.id == request_id)).first()
        if row is None:
            raise NotFound("provider request", request_id)
        return _view(*row)


def _decided(s: Session, actor: Identity, request_id: int) -> Conflict | NotFound:
    """Why a request could not move out of pending: it does not exist, or someone decided it already."""
    s.rollback()
    row = s.execute(_query().where(ProviderRequest.id == request_id)).first()
    if row is None:
        return NotFound("provider request", request_id)
    r = _view(*row)
    when = r.reviewed_at.astimezone(_zone(actor.timezone)).strftime("%Y-%m-%d %H:%M %Z") if r.reviewed_at else "?"
    return Conflict(
        f"This application was already {r.status} by {r.reviewed_by or 'someone'} at {when}; reload the queue.",
        status=r.status,
    )


def _claim(s: Session, actor: Identity, request_id: int, status: str, note: str) -> ProviderRequest:
    """Move the request from pending to `status` (one winner among concurrent reviewers) and load it."""
    now = utcnow()
    moved = s.execute(
        update(ProviderRequest)
        .where(ProviderRequest.id == request_id, ProviderRequest.status == "pending")
        .values(status=status, review_note=note, reviewed_by=actor.user_id or None, reviewed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise _decided(s, actor, request_id)
    return s.get(ProviderRequest, request_id, populate_existing=True)


def approve(uow: UnitOfWork, actor: Identity, request_id: int, note: str = "") -> RequestView:
    """Approve a pending application: create the provider, grant cloud-provider, notify the applicant.

    Exactly once: a decided request is refused with Conflict, and nothing is created twice.
    """
    actor.require(Action.PROVIDER_REQUEST_REVIEW)
    text = _note(note, required=False)
    with uow:
        s = uow.session
        req = _claim(s, actor, request_id, "approved", text)
        if req.applicant_user_id == actor.user_id:
            raise InvalidInput("You cannot review your own application; ask another operator.", field="note")
        owner = s.scalar(select(Provider).where(Provider.owner_user_id == req.applicant_user_id))
        if owner is not None:
            raise Conflict(
                f"The applicant already runs a provider ({owner.company}); reject this application instead.",
                field="note",
            )
        provider = Provider(
            owner_user_id=req.applicant_user_id,
            company=req.company,
            contact_email=req.contact_email,
            website=req.website,
            regions=list(req.regions or []),
            status="active",
        )
        try:
            with s.begin_nested():
                s.add(provider)
                s.flush()
        except IntegrityError:
            raise _decided(s, actor, request_id) from None
        req.provider_id = provider.id
        has_role = s.scalar(
            select(RoleGrant.id).where(
                RoleGrant.user_id == req.applicant_user_id, RoleGrant.role == Role.PROVIDER.value
            )
        )
        if has_role is None:
            s.add(RoleGrant(user_id=req.applicant_user_id, role=Role.PROVIDER.value, granted_by=actor.user_id or None))
        audit.record(
            s,
            actor,
            "provider_request.approved",
            "provider_request",
            req.id,
            old={"status": "pending"},
            new={"status": "approved", "provider_id": provider.id, "company": req.company, "role": Role.PROVIDER.value},
            note=text,
        )
        notify(
            s,
            [req.applicant_user_id],
            kind="provider_request",
            title=f"Welcome aboard: {req.company} is now a provider",
            body=(text + "\n\n" if text else "") + "You can now register nodes on the Nodes page.",
            dedupe_prefix=f"provider_request:{req.id}:decided",
        )
        s.flush()
        view = _view_in(s, req.id)
        uow.commit()
        return view


def reject(uow: UnitOfWork, actor: Identity, request_id: int, note: str) -> RequestView:
    """Reject a pending application with a reason (required), kept on the request; notify the applicant."""
    actor.require(Action.PROVIDER_REQUEST_REVIEW)
    text = _note(note, required=True)
    with uow:
        s = uow.session
        req = _claim(s, actor, request_id, "rejected", text)
        if req.applicant_user_id == actor.user_id:
            raise InvalidInput("You cannot review your own application; ask another operator.", field="note")
        audit.record(
            s,
            actor,
            "provider_request.rejected",
            "provider_request",
            req.id,
            old={"status": "pending"},
            new={"status": "rejected", "review_note": text},
            note=text,
        )
        notify(
            s,
            [req.applicant_user_id],
            kind="provider_request",
            title=f"Your provider application for {req.company} was not approved",
            body=text,
            dedupe_prefix=f"provider_request:{req.id}:decided",
        )
        s.flush()
        view = _view_in(s, req.id)
        uow.commit()
        return view


def _view_in(s: Session, request_id: int) -> RequestView:
    """The request as a view, inside the caller's transaction."""
    row = s.execute(_query().where(ProviderRequest.id == request_id)).first()
    if row is None:
        raise NotFound("provider request", request_id)
    return _view(*row)
