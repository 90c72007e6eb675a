"""The real sign-in flow in a real browser: local OIDC provider -> the app -> Chromium.

Parts, all real and on loopback:
- npm `oauth2-mock-server` (tests/e2e/oidc_server.js), approving every login and adding the person's
  sub/email/name/roles claim to the tokens it signs;
- the unmodified app, `streamlit run streamlit_app.py`, with an `[auth]` / `[auth.auth0]` secrets file
  written under the test's tmp folder (handed over with --secrets.files; the repository's .streamlit
  is not touched) pointing at that provider;
- Debian's Chromium driven by Python playwright.

Per person: sign in, see the pages of one's roles and not the others', open the address of a page one
may not use and read "Not allowed", call the API with the provider's access token, sign out.
Page expectations come from the page registry and the permission table, so they follow new pages.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import PurePath

import httpx
import pytest
from playwright.sync_api import expect

from dashboard.navigation import PAGES
from services.auth.permissions import PERMISSIONS, Role, allowed
from services.config import get_settings
from tests.support.appserver import ROOT, free_port, run_app
from tests.support.browser import chromium, require_tool
from tests.support.db import IN_CI

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

AUDIENCE = "https://api.cloud-marketplace.test"
ROLES_CLAIM = get_settings().roles_claim
WAIT = 30_000  # ms: how long to wait for something to appear before failing (not a timing assertion)


def url_path(spec) -> str:
    return PurePath(spec.path).stem  # st.Page's default: the file name


def only_for(role: Role):
    return [s for s in PAGES if s.action is not None and PERMISSIONS[s.action] == frozenset({role})]


def permitted(spec, roles: set[Role]) -> bool:
    return spec.action is None or allowed(roles, spec.action)


@pytest.fixture
def oidc_provider(request):
    """Start the local OIDC provider with the claims of `request.param`; yields its issuer URL."""
    require_tool("node", "Node.js")
    if not (ROOT / "node_modules" / "oauth2-mock-server").is_dir():
        msg = "node_modules/oauth2-mock-server missing (run `npm ci`)"
        if IN_CI:
            pytest.fail(msg + ": required under CI=true")
        pytest.skip(msg)

    def start(claims: dict) -> str:
        env = {**os.environ, "OIDC_CLAIMS": json.dumps(claims), "OIDC_AUDIENCE": AUDIENCE}
        proc = subprocess.Popen(  # noqa: S603
            ["node", str(ROOT / "tests" / "e2e" / "oidc_server.js"), "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        request.addfinalizer(lambda: (proc.terminate(), proc.wait(timeout=10)))
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"oidc_server.js did not start: {proc.stderr.read()}")
        return json.loads(line)["issuer"]

    return start


def auth_secrets(app_port: int, issuer: str) -> dict:
    return {
        "auth": {
            "redirect_uri": f"http://127.0.0.1:{app_port}/oauth2callback",
            "cookie_secret": secrets.token_urlsafe(32),
            "auth0": {
                "client_id": "marketplace-e2e",
                "client_secret": secrets.token_urlsafe(16),
                "server_metadata_url": f"{issuer}/.well-known/openid-configuration",
            },
        }
    }


def sidebar_links(page) -> set[str]:
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.wait_for(timeout=WAIT)
    # each link reads "<icon name>\n\n<title>": keep the title
    return {t.strip().splitlines()[-1].strip() for t in nav.locator("a").all_inner_texts() if t.strip()}


def sign_in(page, base: str) -> None:
    page.goto(base)
    page.get_by_text("Sign in to launch deployments").wait_for(timeout=WAIT)
    page.get_by_role("button", name="Sign in").click()
    # the provider approves at once and sends the browser back to /oauth2callback, then home
    page.get_by_text("Signed in as").wait_for(timeout=WAIT)


def sign_out(page, base: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Sign out", exact=True).click()
    page.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)
    # the sign-in cookie is gone: a fresh visit asks to sign in again
    page.goto(base)
    page.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)
    assert page.get_by_text("Signed in as").count() == 0


def assert_refused_in_browser(page, base: str, spec) -> None:
    page.goto(f"{base}/{url_path(spec)}")
    page.get_by_text("Not allowed.").wait_for(timeout=WAIT)
    assert page.get_by_text("Page not found").count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0
    # nothing of the page itself: the main area holds just the refusal
    main = page.locator('[data-testid="stMain"]')
    assert main.locator('[data-testid="stHeading"]').count() == 0
    assert main.locator('[data-testid="stDataFrame"], [data-testid="stForm"], [data-testid="stMetric"]').count() == 0


PEOPLE = {
    "provider": {
        "sub": "oidc|priya-e2e",
        "email": "priya.e2e@example.com",
        "email_verified": True,
        "name": "Priya E2E",
        ROLES_CLAIM: ["cloud-provider"],
    },
    "operator": {
        "sub": "oidc|olivia-e2e",
        "email": "olivia.e2e@example.com",
        "email_verified": True,
        "name": "Olivia E2E",
        ROLES_CLAIM: ["cloud-operator"],
    },
}


@pytest.mark.parametrize("who", ["provider", "operator"])
def test_sign_in_see_own_pages_be_refused_elsewhere_and_sign_out(tmp_path, oidc_provider, who):
    claims = PEOPLE[who]
    roles = {Role.USER, *(Role(r) for r in claims[ROLES_CLAIM])}
    other = Role.OPERATOR if who == "provider" else Role.PROVIDER
    own_pages = [s for s in PAGES if permitted(s, roles)]
    forbidden = only_for(other)
    assert forbidden, f"no {other.value} page is registered yet: nothing to be refused"

    issuer = oidc_provider(claims)
    port = free_port()
    env = {
        "MARKETPLACE_DEMO_MODE": None,  # decided by the secrets: [auth] is configured, so sign-in is on
        "MARKETPLACE_ENV": "test",
        "MARKETPLACE_AUTH_ISSUER": issuer,
        "MARKETPLACE_AUTH_AUDIENCE": AUDIENCE,
        "MARKETPLACE_AUTH_JWKS_URL": f"{issuer}/jwks",
        "MARKETPLACE_OPERATOR_EMAILS": None,
        "MARKETPLACE_ROLES_CLAIM": ROLES_CLAIM,
    }
    with run_app(tmp_path, env=env, secrets=auth_secrets(port, issuer), port=port) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(page, base)
        assert page.get_by_text("Demo mode").count() == 0
        page.get_by_text(claims["name"]).first.wait_for(timeout=WAIT)

        links = sidebar_links(page)
        for spec in own_pages:
            assert spec.title in links, f"{spec.title} missing for the {who}: {links}"
        for spec in forbidden:
            assert spec.title not in links, f"{spec.title} shown to the {who}"
        assert {"Profile", "Sign out"} <= links

        assert_refused_in_browser(page, base, forbidden[0])
        # an own page still opens after the refusal
        page.goto(f"{base}/profile")
        page.get_by_text("Profile & settings").wait_for(timeout=WAIT)
        assert page.get_by_text("Not allowed.").count() == 0

        # the API accepts this provider's access token (RS256, its JWKS) and sees the same roles
        token = httpx.post(f"{issuer}/token", data={"grant_type": "client_credentials", "scope": "api"}).json()
        me = httpx.get(f"{base}/api/v1/session", headers={"Authorization": f"Bearer {token['access_token']}"})
        assert me.status_code == 200, me.text
        assert me.json() == {
            "sub": claims["sub"],
            "email": claims["email"],
            "roles": sorted(r.value for r in roles),
        }
        # with sign-in configured, demo tokens mean nothing
        demo = httpx.get(f"{base}/api/v1/session", headers={"Authorization": "Bearer demo:operator"})
        assert demo.status_code == 401

        sign_out(page, base)
        page.goto(f"{base}/{url_path(own_pages[-1])}")
        page.get_by_role("button", name="Sign in").wait_for(timeout=WAIT)


def test_sign_in_page_then_profile_is_saved_for_the_signed_in_person(tmp_path, oidc_provider):
    """The Profile page works through the real sign-in: the saved timezone is shown on the next visit."""
    claims = PEOPLE["provider"] | {"sub": "oidc|tz-e2e", "email": "tz.e2e@example.com", "name": "Tina Zone"}
    issuer = oidc_provider(claims)
    port = free_port()
    env = {"MARKETPLACE_DEMO_MODE": None, "MARKETPLACE_ENV": "test"}
    with run_app(tmp_path, env=env, secrets=auth_secrets(port, issuer), port=port) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(page, base)
        page.goto(f"{base}/profile")
        page.get_by_text("Profile & settings").wait_for(timeout=WAIT)
        name = page.get_by_label("Display name")
        expect(name).to_have_value("Tina Zone", timeout=WAIT)  # the page streams in: wait for the field
        name.fill("Tina Z.")
        page.get_by_role("button", name="Save").click()
        page.get_by_text("Saved.").wait_for(timeout=WAIT)
        page.reload()
        expect(page.get_by_label("Display name")).to_have_value("Tina Z.", timeout=WAIT)
