"""Profile & settings page (AppTest as a signed-in person): read-only identity, save, bad input kept."""

from __future__ import annotations

from services.auth.identity import identity_from_claims
from services.db.engine import UnitOfWork
from services.users import service as users
from tests.support.apptest import app_as, texts


def widget(elements, label: str):
    found = [w for w in elements if w.label == label]
    assert found, f"no widget labelled {label!r}"
    return found[0]


def profile_of(sub: str):
    me = identity_from_claims(UnitOfWork(), {"sub": sub})
    return users.get_profile(UnitOfWork(), me)


def open_profile(monkeypatch, sub="auth0|pat", roles=("cloud-provider",)):
    at = app_as(monkeypatch, sub=sub, email="pat@example.com", name="Pat Person", roles=roles, page="pages/profile.py")
    assert not at.exception, at.exception
    return at


def save(at):
    widget(at.button, "Save").click().run()
    assert not at.exception, at.exception


def test_email_and_roles_are_shown_read_only(seeded_sqlite, monkeypatch):
    at = open_profile(monkeypatch)
    assert "Profile & settings" in texts(at)
    email = widget(at.text_input, "Email")
    roles = widget(at.text_input, "Roles")
    assert email.value == "pat@example.com" and email.disabled
    assert roles.value == "cloud-provider, cloud-user" and roles.disabled
    assert widget(at.text_input, "Display name").value == "Pat Person"
    assert widget(at.selectbox, "Timezone").value == "UTC"
    assert all(t.value for t in at.toggle)
    assert {t.label for t in at.toggle} == set(users.NOTIFICATION_KINDS.values())


def test_saving_changes_the_profile_and_the_timezone_used_everywhere(seeded_sqlite, monkeypatch):
    at = open_profile(monkeypatch)
    widget(at.text_input, "Display name").input("Patricia")
    widget(at.selectbox, "Timezone").set_value("Asia/Tokyo")
    widget(at.selectbox, "Default region").set_value("eu-west")
    widget(at.toggle, users.NOTIFICATION_KINDS["low_balance"]).set_value(False)
    save(at)
    assert "Saved. Times are now shown in Asia/Tokyo." in texts(at)
    assert "times across the app are shown in Asia/Tokyo" in texts(at)
    stored = profile_of("auth0|pat")
    assert stored.display_name == "Patricia"
    assert stored.timezone == "Asia/Tokyo"
    assert stored.default_region == "eu-west"
    assert stored.notification_prefs["low_balance"] is False
    assert stored.notification_prefs["payment"] is True
    # the next visit shows what was saved
    again = open_profile(monkeypatch)
    assert widget(again.text_input, "Display name").value == "Patricia"
    assert widget(again.selectbox, "Timezone").value == "Asia/Tokyo"


def test_a_blank_name_is_refused_next_to_the_field_and_the_form_keeps_the_rest(seeded_sqlite, monkeypatch):
    at = open_profile(monkeypatch)
    widget(at.text_input, "Display name").input("   ")
    widget(at.selectbox, "Timezone").set_value("America/Chicago")
    save(at)
    assert any("enter the name others should see" in e.value for e in at.error)
    assert any("enter the name others should see" in c.value for c in at.caption)  # under the field
    assert widget(at.text_input, "Display name").value == "   "
    assert widget(at.selectbox, "Timezone").value == "America/Chicago"
    stored = profile_of("auth0|pat")
    assert stored.display_name == "Pat Person" and stored.timezone == "UTC"
