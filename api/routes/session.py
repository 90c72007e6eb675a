"""GET /api/v1/session: who the bearer token says you are, and your effective roles."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.auth import CurrentIdentity

router = APIRouter(prefix="/v1", tags=["session"])


class Session(BaseModel):
    sub: str
    email: str | None
    roles: list[str]


@router.get(
    "/session",
    response_model=Session,
    summary="The caller's subject, email and effective roles",
    responses={401: {"description": "No valid bearer token (generic message, `WWW-Authenticate: Bearer`)"}},
)
def get_session(me: CurrentIdentity) -> Session:
    return Session(sub=me.subject, email=me.email, roles=sorted(r.value for r in me.roles))
