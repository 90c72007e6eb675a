"""Who is calling the API: FastAPI dependencies `current_identity` and `require(action)`.

`Authorization: Bearer <access token>`: the token is verified by services/auth/tokens.py (RS256,
issuer, audience, expiry against the provider's JWKS), then its claims become an `Identity` the same
way a browser sign-in does (roles = the roles claim ∪ database grants ∪ cloud-user), so the API and
the pages share one permission check (services/auth/permissions.py).

Demo tokens: only while the app runs in demo mode (no `[auth]` configured, or MARKETPLACE_DEMO_MODE=true)
and never when MARKETPLACE_ENV=production, `Authorization: Bearer demo:<key>` acts as the seeded demo
person with subject `demo:<key>` (e.g. `demo:provider`), like the demo picker does in the UI. In demo
mode the UI already lets anyone act as anyone, so this opens nothing new; outside it such a token is
just a malformed token.

Refusals: 401 with `WWW-Authenticate: Bearer` and a JSON body that never says which check failed;
403 when the person lacks the role for the action.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request, status

from services.auth import tokens
from services.auth.identity import Identity, identity_for_demo_subject, identity_from_claims
from services.auth.permissions import Action
from services.config import get_settings, is_production
from services.db.engine import UnitOfWork
from services.errors import NotAuthenticated

REALM = "cloud-marketplace"
DEMO_PREFIX = "demo:"


def _unauthorized(*, token_given: bool) -> HTTPException:
    # RFC 6750: no error code when no credentials were sent; "invalid_token" for any bad token
    challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if token_given else "")
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=tokens.GENERIC,
        headers={"WWW-Authenticate": challenge},
    )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise _unauthorized(token_given=True)
    return value.strip()


def demo_tokens_enabled() -> bool:
    """Demo tokens are honoured only in demo mode, and never in production."""
    if is_production():
        return False
    forced = get_settings().demo_mode
    if forced is not None:
        return forced
    return not _auth_configured()


def _auth_configured() -> bool:
    """The same test the UI uses for demo mode: is there an [auth] section in Streamlit's secrets?"""
    import streamlit as st  # only for reading secrets (file or st.App(secrets=...)); no UI here

    try:
        return "auth" in st.secrets
    except Exception:  # no secrets at all
        return False


def _identity_for(token: str) -> Identity:
    if token.startswith(DEMO_PREFIX) and demo_tokens_enabled():
        return identity_for_demo_subject(UnitOfWork(), token)
    claims = tokens.verify_access_token(token)
    return identity_from_claims(UnitOfWork(), claims)


async def current_identity(request: Request) -> Identity:
    """The caller's identity from `Authorization: Bearer ...`; 401 (generic JSON error) otherwise."""
    token = _bearer(request)
    if not token:
        raise _unauthorized(token_given=token is not None)
    try:
        # token checks may fetch the JWKS and the identity reads the database: keep the event loop free
        return await anyio.to_thread.run_sync(_identity_for, token)
    except NotAuthenticated:
        raise _unauthorized(token_given=True) from None


CurrentIdentity = Annotated[Identity, Depends(current_identity)]


def require(action: Action) -> Callable[..., Identity]:
    """A dependency: the caller's identity if they may take `action`; 403 otherwise.

    Usage: `def handler(me: Identity = Depends(require(Action.NODE_MANAGE)))`.
    """

    async def dependency(me: CurrentIdentity) -> Identity:
        if not me.can(action):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail="Not allowed: your account does not have the role this needs.",
            )
        return me

    dependency.__name__ = f"require_{action.name.lower()}"
    return dependency
