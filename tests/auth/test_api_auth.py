"""The API's auth dependencies: `require(action)` gives 403 without the role, demo tokens only in demo mode,
and the real app (`streamlit run streamlit_app.py`) answers /api/v1/session over HTTP on loopback."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from services.auth import tokens
from services.auth.identity import Identity
from services.auth.permissions import PERMISSIONS, Action, Role
from services.config import get_settings
from tests.auth.app_api import app_api
from tests.support.appserver import run_app
from tests.support.tokens import TokenIssuer


@pytest.fixture
def idp(monkeypatch, sqlite_db):
    with TokenIssuer() as issuer:
        monkeypatch.setenv("MARKETPLACE_DEMO_MODE", "false")
        issuer.configure(monkeypatch)
        yield issuer
    tokens.reset_cache()


def _app_requiring(action: Action) -> TestClient:
    """A small FastAPI app with one route guarded by `require(action)` and the API's error handlers."""
    with app_api() as api:
        app = FastAPI()
        api.problems.install(app)

        @app.get("/guarded")
        def guarded(me: Identity = Depends(api.auth.require(action))) -> dict:
            return {"sub": me.subject}

    return TestClient(app)


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.value)
def test_require_lets_exactly_the_permitted_roles_through(idp, action):
    client = _app_requiring(action)
    for role in (Role.PROVIDER, Role.OPERATOR):
        # everyone is a cloud-user; the claim adds at most one more role here
        token = idp.token(sub=f"auth0|{role.value}", roles=[role.value])
        r = client.get("/guarded", headers={"Authorization": f"Bearer {token}"})
        permitted = bool(PERMISSIONS[action] & {Role.USER, role})
        if permitted:
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 403, r.text
            assert r.json()["title"] == "Forbidden"
            assert "not allowed" in r.json()["detail"].lower()
    assert client.get("/guarded").status_code == 401


# --- demo tokens


@pytest.fixture
def api_client(seeded_sqlite) -> TestClient:
    with app_api() as api:
        yield TestClient(api.app.create_api())


def test_demo_tokens_act_as_a_demo_person_in_demo_mode(api_client, monkeypatch):
    monkeypatch.setenv("MARKETPLACE_DEMO_MODE", "true")
    get_settings.cache_clear()
    r = api_client.get("/v1/session", headers={"Authorization": "Bearer demo:provider"})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "sub": "demo:provider",
        "email": "priya@provider.demo",
        "roles": ["cloud-provider", "cloud-user"],
    }
    # only seeded demo people: anyone else is refused like a bad token
    assert api_client.get("/v1/session", headers={"Authorization": "Bearer demo:nobody"}).status_code == 401


def test_demo_tokens_are_refused_outside_demo_mode(api_client, monkeypatch):
    monkeypatch.setenv("MARKETPLACE_DEMO_MODE", "false")
    get_settings.cache_clear()
    r = api_client.get("/v1/session", headers={"Authorization": "Bearer demo:operator"})
    assert r.status_code == 401
    assert "demo" not in r.text


def test_demo_tokens_are_refused_in_production_even_if_demo_mode_is_forced(api_client, monkeypatch):
    monkeypatch.setenv("MARKETPLACE_DEMO_MODE", "true")
    monkeypatch.setenv("MARKETPLACE_ENV", "production")
    get_settings.cache_clear()
    r = api_client.get("/v1/session", headers={"Authorization": "Bearer demo:operator"})
    assert r.status_code == 401


# --- the real app over HTTP


def test_the_real_app_verifies_tokens_over_http(tmp_path, monkeypatch, sqlite_db):
    """`streamlit run streamlit_app.py` with the API settings pointing at a JWKS on loopback."""
    with TokenIssuer() as idp:
        env = {
            "MARKETPLACE_DEMO_MODE": "false",
            "MARKETPLACE_AUTH_ISSUER": idp.url,
            "MARKETPLACE_AUTH_AUDIENCE": idp.audience,
            "MARKETPLACE_AUTH_JWKS_URL": None,
            "MARKETPLACE_ENV": "test",
        }
        with run_app(tmp_path, env=env) as base:
            url = f"{base}/api/v1/session"
            ok = httpx.get(url, headers={"Authorization": f"Bearer {idp.token(roles=['cloud-operator'])}"})
            assert ok.status_code == 200, ok.text
            assert ok.json() == {
                "sub": "auth0|alice",
                "email": "alice@example.com",
                "roles": ["cloud-operator", "cloud-user"],
            }
            none = httpx.get(url)
            assert none.status_code == 401
            assert none.headers["www-authenticate"].startswith("Bearer")
            assert none.headers["content-type"].startswith("application/problem+json")
            assert none.json()["detail"] == tokens.GENERIC
            expired = idp.token(exp=int(time.time()) - 300)
            bad = httpx.get(url, headers={"Authorization": f"Bearer {expired}"})
            assert bad.status_code == 401
            assert bad.json() == none.json() | {"detail": tokens.GENERIC}
            # no [auth] in the secrets but demo mode forced off: demo tokens are just bad tokens
            assert httpx.get(url, headers={"Authorization": "Bearer demo:operator"}).status_code == 401
            assert idp.jwks_requests == 1


def test_the_real_app_in_demo_mode_accepts_demo_tokens(tmp_path, seeded_sqlite):
    """No [auth] configured and no override: demo mode, as `make run` starts it."""
    env = {"MARKETPLACE_DEMO_MODE": None, "MARKETPLACE_DATABASE_URL": seeded_sqlite, "MARKETPLACE_ENV": "test"}
    with run_app(tmp_path, env=env) as base:
        r = httpx.get(f"{base}/api/v1/session", headers={"Authorization": "Bearer demo:multi"})
        assert r.status_code == 200, r.text
        assert r.json()["roles"] == ["cloud-operator", "cloud-provider", "cloud-user"]
