"""Profile service on SQLite and PostgreSQL: valid changes are saved and audited, bad input writes nothing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from services.audit.models import AuditEntry
from services.auth.identity import Identity
from services.auth.permissions import Role
from services.errors import InvalidInput, PermissionDenied
from services.settings import service as settings_service
from services.users import service as users
from tests.support.people import make_person


def audit_actions(uow) -> list[SimpleNamespace]:
    with uow:
        rows = uow.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "profile.updated").order_by(AuditEntry.id)
        )
        return [SimpleNamespace(actor=e.actor_user_id, object_id=e.object_id, old=e.old, new=e.new) for e in rows]


def test_a_new_profile_has_every_email_kind_on(db, uow):
    me = make_person(uow, name="Pat Person")
    profile = users.get_profile(uow, me)
    assert profile.display_name == "Pat Person"
    assert profile.timezone == "UTC"
    assert profile.default_region is None
    assert profile.notification_prefs == dict.fromkeys(users.NOTIFICATION_KINDS, True)


def test_saving_changes_stores_them_and_audits_only_what_changed(db, uow):
    me = make_person(uow, name="Pat Person")
    region = settings_service.get(uow).allowed_regions[0]
    saved = users.update_profile(
        uow,
        me,
        {
            "display_name": "  Pat   P.  ",
            "timezone": "Europe/Berlin",
            "default_region": region,
            "notification_prefs": {"low_balance": False},
        },
    )
    assert saved.display_name == "Pat P."
    again = users.get_profile(uow, me)
    assert again == saved
    assert again.timezone == "Europe/Berlin"
    assert again.default_region == region
    assert again.notification_prefs["low_balance"] is False
    assert again.notification_prefs["maintenance"] is True
    [entry] = audit_actions(uow)
    assert entry.actor == me.user_id
    assert entry.object_id == str(me.user_id)
    assert set(entry.new) == {"display_name", "timezone", "default_region", "notification_prefs"}
    assert entry.old["timezone"] == "UTC" and entry.new["timezone"] == "Europe/Berlin"
    # the same values again: nothing to save, nothing audited
    users.update_profile(uow, me, {"timezone": "Europe/Berlin"})
    assert len(audit_actions(uow)) == 1
    users.update_profile(uow, me, {"notification_prefs": {"payment": False}})
    last = audit_actions(uow)[-1]
    assert set(last.new) == {"notification_prefs"}
    assert users.get_profile(uow, me).notification_prefs["low_balance"] is False  # earlier choice kept


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "not a timezone"),
        ({"timezone": ""}, "timezone", "not a timezone"),
        ({"display_name": "   "}, "display_name", "name"),
        ({"display_name": "x" * 121}, "display_name", "120"),
        ({"default_region": "moon-1"}, "default_region", "not a region"),
        ({"notification_prefs": {"spam": True}}, "notification_prefs", "unknown notification kind"),
        ({"email": "new@example.com"}, "email", "not permitted"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(db, uow, changes, field, words):
    me = make_person(uow, name="Pat Person")
    before = users.get_profile(uow, me)
    with pytest.raises(InvalidInput) as err:
        users.update_profile(uow, me, {"display_name": "Changed too", **changes})
    assert field in err.value.errors
    assert words in err.value.errors[field].lower()
    assert users.get_profile(uow, me) == before
    assert audit_actions(uow) == []


def test_a_region_the_operators_removed_can_be_kept_but_not_chosen(db, uow):
    me = make_person(uow)
    operator = make_person(uow, Role.OPERATOR)
    users.update_profile(uow, me, {"default_region": "eu-west"})
    settings_service.update(uow, operator, {"allowed_regions": ["us-east"]})
    users.update_profile(uow, me, {"display_name": "Renamed"})  # the old region stays without complaint
    assert users.get_profile(uow, me).default_region == "eu-west"
    with pytest.raises(InvalidInput):
        users.update_profile(uow, me, {"default_region": "ap-south"})
    users.update_profile(uow, me, {"default_region": None})
    assert users.get_profile(uow, me).default_region is None


def test_someone_without_the_user_role_cannot_read_or_edit(db, uow):
    me = make_person(uow)
    nobody = Identity(user_id=me.user_id, subject=me.subject, email=me.email, name="x", roles=frozenset())
    with pytest.raises(PermissionDenied):
        users.get_profile(uow, nobody)
    with pytest.raises(PermissionDenied):
        users.update_profile(uow, nobody, {"display_name": "y"})


def test_email_preferences_default_to_on():
    assert users.email_enabled({}, "maintenance") is True
    assert users.email_enabled(None, "payment") is True
    assert users.email_enabled({"payment": False}, "payment") is False
