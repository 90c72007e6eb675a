"""Who may call what, generated: every endpoint that declares an action (x-required-action in
/api/openapi.json) is called with a token for every role combination, and the answer must follow
services/auth/permissions.py: refused with 403 exactly when no role of the token may take the action.

Roles come from the token's roles claim (as the identity provider would send them). A person whose
token says cloud-provider also owns a provider profile, made through the real application flow.
"""

from __future__ import annotations

import itertools

import httpx
import pytest
from sqlalchemy import delete

from services.auth.permissions import PERMISSIONS, Action, Role
from services.users.models import RoleGrant
from tests.support.api import assert_problem

# The issue's endpoint list (paths under /api). Each must exist in the OpenAPI document.
ISSUE_ENDPOINTS = {
    ("get", "/health"),
    ("get", "/v1/session"),
    ("get", "/v1/deployments"),
    ("post", "/v1/deployments"),
    ("get", "/v1/deployments/{deployment_id}"),
    ("post", "/v1/deployments/{deployment_id}/stop"),
    ("post", "/v1/deployments/{deployment_id}/start"),
    ("delete", "/v1/deployments/{deployment_id}"),
    ("post", "/v1/provider/register"),
    ("get", "/v1/provider/nodes"),
    ("post", "/v1/provider/nodes"),
    ("post", "/v1/provider/nodes/{node_id}/token"),
    ("get", "/v1/provider/maintenance"),
    ("post", "/v1/provider/maintenance"),
    ("delete", "/v1/provider/maintenance/{window_id}"),
    ("get", "/v1/operator/settings"),
    ("put", "/v1/operator/settings"),
    ("get", "/v1/operator/pricing"),
    ("put", "/v1/operator/pricing"),
    ("get", "/v1/operator/provider-requests"),
    ("post", "/v1/operator/provider-requests/{request_id}/approve"),
    ("post", "/v1/operator/provider-requests/{request_id}/reject"),
    ("post", "/v1/payments/intents"),
    ("get", "/v1/payments/methods"),
    ("post", "/v1/payments/methods"),
    ("delete", "/v1/payments/methods/{payment_method_id}"),
    ("post", "/v1/payments/webhook"),
    ("post", "/v1/agent/heartbeat"),
    ("get", "/v1/agent/assignments"),
    ("post", "/v1/agent/deployments/{deployment_id}/status"),
}
PERSON_AREAS = ("/v1/deployments", "/v1/provider/", "/v1/operator/", "/v1/payments/intents", "/v1/payments/methods")
COMBINATIONS = [
    frozenset(c) for n in range(3) for c in itertools.combinations((Role.PROVIDER, Role.OPERATOR), n)
]  # each with cloud-user, which every signed-in person is
MISSING_ID = 999_999_999


def _operations(schema: dict) -> list[tuple[str, str, dict]]:
    return [
        (method, path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "delete", "patch")
    ]


@pytest.fixture(scope="module")
def schema(api) -> dict:
    return httpx.get(f"{api.base}/openapi.json").json()


def test_every_endpoint_of_the_issue_is_served_and_documented(schema):
    served = {(m, p) for m, p, _ in _operations(schema)}
    assert ISSUE_ENDPOINTS - served == set()


def test_every_person_endpoint_declares_the_action_it_needs(schema):
    for method, path, op in _operations(schema):
        if path.startswith(PERSON_AREAS):
            action = op.get("x-required-action")
            assert action in {a.value for a in Action}, f"{method.upper()} {path} declares no action"
            assert op["x-allowed-roles"] == sorted(r.value for r in PERMISSIONS[Action(action)])
            assert {"PersonToken": []} in op.get("security", []), f"{method.upper()} {path} documents no token"


@pytest.fixture(scope="module")
def tokens(api) -> dict[frozenset[Role], str]:
    """A token per role combination (roles in the claim only; providers own a provider profile)."""
    out = {}
    for combo in COMBINATIONS:
        person = api.person()
        if Role.PROVIDER in combo:  # owns a provider profile; the role itself comes only from the claim
            person = api.provider()
            with api.uow() as uow:
                uow.session.execute(delete(RoleGrant).where(RoleGrant.user_id == person.user_id))
                uow.commit()
        out[combo] = api.token_for(person, claim_roles=tuple(r.value for r in combo))
    return out


def _cases(schema: dict):
    for method, path, op in _operations(schema):
        if "x-required-action" in op:
            yield method, path, Action(op["x-required-action"])


def test_role_matrix_from_the_permission_table(api, schema, tokens):
    checked = 0
    for method, path, action in _cases(schema):
        url = path.replace("{", "").replace("}", "")
        for name in ("deployment_id", "node_id", "window_id", "request_id", "payment_id"):
            url = url.replace(name, str(MISSING_ID))
        url = url.replace("payment_method_id", "pm_missing")
        body = {} if method in ("post", "put") else None
        for combo, token in tokens.items():
            roles = combo | {Role.USER}
            response = api.client(token).request(method.upper(), url, json=body)
            where = f"{method.upper()} {path} as {sorted(r.value for r in roles)}"
            if PERMISSIONS[action] & roles:
                assert response.status_code not in (401, 403), f"{where} refused: {response.text}"
                assert response.status_code < 500, f"{where}: {response.text}"
            else:
                body_ = assert_problem(response, 403, "forbidden")
                assert "role" in body_["detail"], where
            checked += 1
    assert checked >= 18 * len(COMBINATIONS)
