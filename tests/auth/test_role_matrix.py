"""Who sees which page, generated from the page registry (dashboard.navigation.PAGES) and the permission
table (services.auth.permissions.PERMISSIONS): for every combination of roles, the navigation the browser
receives lists exactly the permitted pages, and opening any other page's address shows "Not allowed"
(the page's own gate), never the page and never an exception. Pages added later are covered as they
are registered."""

from __future__ import annotations

import itertools

import pytest

from dashboard.navigation import PAGES
from services.auth.permissions import Role, allowed
from tests.auth.nav import NOT_ALLOWED, assert_refused, menu_titles
from tests.support.apptest import app_as, texts

EXTRA_ROLES = [r for r in Role if r is not Role.USER]
# every signed-in person is a cloud-user; each combination of the other roles on top
COMBINATIONS = [
    frozenset({Role.USER, *combo})
    for n in range(len(EXTRA_ROLES) + 1)
    for combo in itertools.combinations(EXTRA_ROLES, n)
]


def permitted(spec, roles: frozenset[Role]) -> bool:
    return spec.action is None or allowed(roles, spec.action)


def combo_id(roles: frozenset[Role]) -> str:
    return "+".join(sorted(r.value.removeprefix("cloud-") for r in roles))


def test_the_matrix_covers_every_registered_page_and_role():
    assert len(COMBINATIONS) == 2 ** len(EXTRA_ROLES)
    assert {r for c in COMBINATIONS for r in c} == set(Role)
    assert any(spec.path == "pages/profile.py" for spec in PAGES)


@pytest.mark.parametrize("roles", COMBINATIONS, ids=combo_id)
def test_navigation_lists_exactly_the_permitted_pages(seeded_sqlite, monkeypatch, navigation_menu, roles):
    at = app_as(monkeypatch, sub=f"auth0|{combo_id(roles)}", email="m@example.com", roles=[r.value for r in roles])
    assert not at.exception, at.exception
    menu = navigation_menu[-1]
    expected = {(spec.group, spec.title) for spec in PAGES if permitted(spec, roles)}
    visible = menu_titles(menu)
    assert expected <= visible, f"missing from the menu: {expected - visible}"
    registered = {(spec.group, spec.title) for spec in PAGES}
    assert (visible & registered) == expected, f"shown but not permitted: {(visible & registered) - expected}"
    # every page is registered (hidden when not permitted), so a deep link reaches its own gate
    assert {(p["section"], p["title"]) for p in menu} >= registered
    # signed in (not demo): Profile and Sign out are in the menu
    assert ("Account", "Profile") in visible
    assert ("Account", "Sign out") in visible


@pytest.mark.parametrize("roles", COMBINATIONS, ids=combo_id)
def test_each_page_opens_for_the_permitted_and_refuses_the_rest(seeded_sqlite, monkeypatch, roles):
    at = app_as(monkeypatch, sub=f"auth0|{combo_id(roles)}", email="m@example.com", roles=[r.value for r in roles])
    assert not at.exception, at.exception
    for spec in PAGES:
        at.switch_page(spec.path).run()
        if permitted(spec, roles):
            assert not at.exception, f"{spec.path} failed for {combo_id(roles)}: {at.exception}"
            assert NOT_ALLOWED not in texts(at), f"{spec.path} refused {combo_id(roles)}"
        else:
            assert_refused(at, spec)
