"""Declaring who may call an endpoint, once: the check (api.auth.require) and its OpenAPI record together.

    @router.get("/nodes", **needs(Action.NODE_MANAGE))
    def list_nodes(me: Caller[Action.NODE_MANAGE]) -> ...

`needs(action)` documents the action and its roles in the operation (`x-required-action`,
`x-allowed-roles`, from services/auth/permissions.py) and the bearer scheme; the role-matrix tests
read them from /api/openapi.json, so an endpoint cannot forget to say what it needs.
`Caller[action]` is the dependency that enforces it (401 without a valid token, 403 without the role).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Security
from fastapi.security import HTTPBearer

from api.auth import require
from services.auth.identity import Identity
from services.auth.permissions import PERMISSIONS, Action

# Documentation only (auto_error=False, the value is ignored): the token is checked by api.auth.current_identity.
person_token_scheme = HTTPBearer(
    scheme_name="PersonToken",
    bearerFormat="JWT",
    description="An access token from the marketplace's identity provider (RS256)",
    auto_error=False,
)


def needs(action: Action) -> dict[str, Any]:
    """Route decorator arguments that document `action` and the person-token scheme."""
    roles = sorted(r.value for r in PERMISSIONS[action])
    return {
        "dependencies": [Security(person_token_scheme)],
        "openapi_extra": {"x-required-action": action.value, "x-allowed-roles": roles},
    }


class _CallerFactory:
    """`Caller[Action.X]`: the caller's Identity, required to be allowed Action.X."""

    def __getitem__(self, action: Action) -> Any:
        return Annotated[Identity, Depends(require(action))]


Caller = _CallerFactory()
