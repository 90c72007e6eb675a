"""Signing in (AppTest): the sign-in page, roles from claims and database grants applied on the next
page load, operator bootstrap by verified email, and demo mode's picker and menu."""

from __future__ import annotations

from pathlib import PurePath

import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from dashboard.navigation import PAGES
from services.auth.identity import identity_from_claims
from services.auth.permissions import PERMISSIONS, Role
from services.config import get_settings
from services.db.engine import UnitOfWork
from services.users import roles as role_service
from tests.auth.nav import NOT_ALLOWED, assert_refused, menu_titles, open_address
from tests.support.apptest import UI, _v2_navigation_only, app_as, demo_app, texts
from tests.support.people import make_person


def pages_only_for(role: Role):
    """Registered pages that exactly this role may open (e.g. the provider's pages)."""
    return [s for s in PAGES if s.action is not None and PERMISSIONS[s.action] == frozenset({role})]


def test_a_visitor_sees_the_sign_in_page_and_sign_in_goes_to_auth0(sqlite_db, monkeypatch, navigation_menu):
    calls = []
    monkeypatch.setattr(streamlit, "login", lambda provider=None: calls.append(provider))
    monkeypatch.setenv("MARKETPLACE_DEMO_MODE", "false")
    get_settings.cache_clear()
    _v2_navigation_only(monkeypatch)
    at = AppTest.from_file(UI, default_timeout=30)
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert "Sign in to launch deployments" in texts(at)
    assert "Sign up" in texts(at)
    assert menu_titles(navigation_menu[-1]) == {("", "Sign in")}, "no page of the app is offered before sign-in"
    # a deep link to any page shows the same sign-in screen, not the page
    for spec in (s for s in PAGES if not s.default):
        open_address(at, PurePath(spec.path).stem)
        assert not at.exception, at.exception
        assert "Sign in to launch deployments" in texts(at), spec.path
        assert NOT_ALLOWED not in texts(at)
    at.button(key="sign_in").click().run()
    assert calls == ["auth0"]


def test_a_database_grant_applies_on_the_next_page_load_and_a_revocation_too(
    seeded_sqlite, monkeypatch, navigation_menu
):
    provider_pages = pages_only_for(Role.PROVIDER)
    assert provider_pages, "no provider page is registered yet"
    page = provider_pages[0]
    at = app_as(monkeypatch, sub="auth0|gina", email="gina@example.com", roles=[])
    assert (page.group, page.title) not in menu_titles(navigation_menu[-1])
    gina = identity_from_claims(UnitOfWork(), {"sub": "auth0|gina"})
    operator = make_person(UnitOfWork(), Role.OPERATOR)

    role_service.grant(UnitOfWork(), operator, user_id=gina.user_id, role=Role.PROVIDER)
    at.run()  # the next page load, same browser session (the sign-in cookie still says no roles)
    assert not at.exception
    assert (page.group, page.title) in menu_titles(navigation_menu[-1])
    at.switch_page(page.path).run()
    assert not at.exception, at.exception
    assert NOT_ALLOWED not in texts(at)

    role_service.revoke(UnitOfWork(), operator, user_id=gina.user_id, role=Role.PROVIDER)
    at.run()  # still on the provider page: refused now
    assert_refused(at, page)
    assert (page.group, page.title) not in menu_titles(navigation_menu[-1])


def test_operator_emails_make_verified_people_operators(seeded_sqlite, monkeypatch, navigation_menu):
    monkeypatch.setenv("MARKETPLACE_OPERATOR_EMAILS", "ops@example.com,boss@example.com")
    at = app_as(monkeypatch, sub="auth0|boss", email="Boss@Example.com", roles=[])
    assert not at.exception
    assert "roles: cloud-operator, cloud-user" in texts(at)
    for spec in pages_only_for(Role.OPERATOR):
        assert (spec.group, spec.title) in menu_titles(navigation_menu[-1])


def test_operator_emails_ignore_unverified_addresses(seeded_sqlite, monkeypatch, navigation_menu):
    monkeypatch.setenv("MARKETPLACE_OPERATOR_EMAILS", "boss@example.com")
    at = app_as(monkeypatch, sub="auth0|impostor", email="boss@example.com", roles=[])
    at.user = dict(at.user) | {"email_verified": False}
    at.run()
    assert not at.exception
    assert "roles: cloud-user" in texts(at)
    for spec in pages_only_for(Role.OPERATOR):
        assert (spec.group, spec.title) not in menu_titles(navigation_menu[-1])


def test_roles_claim_name_is_configurable(seeded_sqlite, monkeypatch):
    monkeypatch.setenv("MARKETPLACE_ROLES_CLAIM", "https://example.org/claims/roles")
    at = app_as(monkeypatch, sub="auth0|c", email="c@example.com", roles=["cloud-provider"])
    assert at.user["https://example.org/claims/roles"] == ["cloud-provider"]
    assert "roles: cloud-provider, cloud-user" in texts(at)


def test_unknown_role_names_in_the_claim_are_ignored(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, sub="auth0|d", email="d@example.com", roles=["admin", "cloud-operator ", "root"])
    assert not at.exception
    assert "roles: cloud-user" in texts(at)


@pytest.mark.parametrize("person", ["Priya Provider", "Max Multirole", "Uma User"])
def test_demo_mode_menu_follows_the_picked_person(seeded_sqlite, monkeypatch, navigation_menu, person):
    at = demo_app(monkeypatch)
    picker = at.sidebar.selectbox(key="demo_user_id")
    picker.select_index(next(i for i, o in enumerate(picker.options) if person in str(o))).run()
    assert not at.exception
    assert "Demo mode" in texts(at)
    menu = menu_titles(navigation_menu[-1])
    assert ("Account", "Sign out") not in menu  # nothing to sign out of
    assert ("Account", "Profile") in menu
    has_provider = person in ("Priya Provider", "Max Multirole")
    for spec in pages_only_for(Role.PROVIDER):
        assert ((spec.group, spec.title) in menu) == has_provider
    has_operator = person == "Max Multirole"
    for spec in pages_only_for(Role.OPERATOR):
        assert ((spec.group, spec.title) in menu) == has_operator


def test_demo_mode_in_production_says_what_to_configure_and_shows_nothing_else(
    seeded_sqlite, monkeypatch, navigation_menu
):
    monkeypatch.setenv("MARKETPLACE_ENV", "production")
    at = demo_app(monkeypatch)
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "MARKETPLACE_ENV=production" in message and "[auth]" in message
    assert "Demo mode" not in texts(at)
    assert not at.sidebar.selectbox  # no picker: nobody can act as anyone
    assert menu_titles(navigation_menu[-1]) == {("", "Not available")}
