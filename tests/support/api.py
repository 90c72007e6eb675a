"""HTTP tests of the API against the real app on loopback, with real RS256 tokens.

    with live_api(tmp_path, sqlite_template, issuer) as api:     # the app served by `streamlit run`
        me = api.person(Role.PROVIDER)                            # a stored user with grants
        r = api.as_(me).get("/v1/provider/nodes")                 # httpx client, Bearer token signed by `issuer`

The database is a copy of the seeded test template; the test process writes set-up data through the
services with `api.uow()` (same SQLite file), and the app reads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.auth.identity import Identity, identity_for_user_id
from services.auth.permissions import Role
from services.db.engine import UnitOfWork
from services.nodes import simulator
from services.providers import review
from services.providers import service as providers
from tests.support.appserver import run_app
from tests.support.people import make_person
from tests.support.tokens import TokenIssuer

PROBLEM_BASE = "https://cloud-marketplace.example/problems/"


@dataclass
class LiveApi:
    base: str  # http://127.0.0.1:<port>/api
    db_url: str
    issuer: TokenIssuer
    _clients: list[httpx.Client] = field(default_factory=list)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.db_url)

    def person(self, *roles: Role | str, email: str | None = None) -> Identity:
        """A stored user holding these roles as database grants."""
        return make_person(self.uow(), *roles, email=email)

    def provider(self, *extra_roles: Role | str) -> Identity:
        """A person who became a provider the real way: applied, and an operator approved it."""
        person = self.person(*extra_roles)
        application = providers.submit_application(
            self.uow(),
            person,
            {
                "company": f"Test Hosting {person.user_id}",
                "contact_name": "Test Contact",
                "contact_email": f"ops{person.user_id}@hosting.example",
                "regions": ["eu-west"],
                "expected_capacity": "4 nodes",
                "website": "https://hosting.example",
            },
        )
        review.approve(self.uow(), self.person(Role.OPERATOR), application.id)
        return identity_for_user_id(self.uow(), person.user_id)

    def token_for(self, person: Identity, *, claim_roles: tuple[str, ...] = ()) -> str:
        return self.issuer.token(sub=person.subject, email=person.email, roles=list(claim_roles))

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        c = httpx.Client(base_url=self.base, headers=headers, timeout=30)
        self._clients.append(c)
        return c

    def as_(self, person: Identity) -> httpx.Client:
        """A client authenticated as `person` (a freshly signed token)."""
        return self.client(self.token_for(person))

    def refresh_fleet(self) -> None:
        """Fresh heartbeats for the seeded nodes (they have no agents), so placement sees them online."""
        simulator.tick(self.uow())

    def close(self) -> None:
        for c in self._clients:
            c.close()


def api_env(db_url: str, issuer: TokenIssuer, **extra: str) -> dict[str, str]:
    """Environment of an app that trusts `issuer` (real sign-in settings, demo mode off)."""
    return {
        "MARKETPLACE_DATABASE_URL": db_url,
        "MARKETPLACE_ENV": "test",
        "MARKETPLACE_DEMO_MODE": "false",
        "MARKETPLACE_AUTH_ISSUER": issuer.url,
        "MARKETPLACE_AUTH_AUDIENCE": issuer.audience,
        "MARKETPLACE_AUTH_JWKS_URL": issuer.jwks_url,
        "MARKETPLACE_METERING_ENABLED": "false",
        **extra,
    }


@contextlib.contextmanager
def live_api(tmp_path: Path, sqlite_template, issuer: TokenIssuer, **env: str) -> Iterator[LiveApi]:
    """Serve the real app on a seeded copy of the test database; yields a LiveApi."""
    db_url = sqlite_template.copy_to(tmp_path / "api.db", seeded=True)
    with run_app(tmp_path, env=api_env(db_url, issuer, **env)) as base:
        api = LiveApi(base=f"{base}/api", db_url=db_url, issuer=issuer)
        api.refresh_fleet()
        try:
            yield api
        finally:
            api.close()


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict:
    """The response is an RFC 9457 problem of this status and kind; returns its body."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers["content-type"]
    body = response.json()
    assert body["type"] == PROBLEM_BASE + kind, body
    assert body["status"] == status and body["title"], body
    return body


def field_names(problem: dict) -> set[str]:
    return {e["field"] for e in problem.get("errors") or []}
