"""Applying to become a provider, and the notifications inbox, through the service layer (both backends)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.audit.models import AuditEntry
from services.auth.permissions import Role
from services.errors import Conflict, InvalidInput
from services.notifications import service as notifications
from services.notifications.models import Notification
from services.providers import service as providers
from services.providers.models import ProviderRequest
from services.settings import service as settings_service
from tests.providers.helpers import count
from tests.support.people import demo_identity, make_person

GOOD = dict(
    company="Fjord Compute AS",
    contact_name="Ingrid Berg",
    contact_email="ops@fjord.example",
    regions=["eu-west", "eu-central"],
    expected_capacity="12 nodes, 64 vCPU each, 4 with A100",
    website="https://fjord.example",
)


def test_a_person_applies_once_and_sees_the_pending_application(seeded_db, uow):
    person = make_person(uow)
    assert providers.provider_for(uow, person) is None
    view = providers.submit_application(uow, person, GOOD)
    assert view.status == "pending" and view.regions == ("eu-west", "eu-central")
    assert [a.id for a in providers.my_applications(uow, person)] == [view.id]
    with uow:
        entry = uow.session.scalar(select(AuditEntry).where(AuditEntry.action == "provider_request.submitted"))
        assert entry.object_id == str(view.id) and entry.actor_user_id == person.user_id

    with pytest.raises(Conflict, match="already have a pending application for Fjord Compute AS"):
        providers.submit_application(uow, person, GOOD | {"company": "Other Co"})
    assert count(uow, ProviderRequest, ProviderRequest.applicant_user_id == person.user_id) == 1


def test_the_seeded_applicant_already_waits_and_a_provider_cannot_apply(seeded_db, uow):
    andre = demo_identity(uow, "demo:applicant")
    assert [a.status for a in providers.my_applications(uow, andre)][0] == "pending"
    with pytest.raises(Conflict, match="pending application"):
        providers.submit_application(uow, andre, GOOD)

    priya = demo_identity(uow, "demo:provider")
    assert providers.provider_for(uow, priya).company == "Stratus Compute 1"
    before = count(uow, ProviderRequest)
    with pytest.raises(Conflict, match="already a provider"):
        providers.submit_application(uow, priya, GOOD)
    assert count(uow, ProviderRequest) == before


def test_a_rejected_applicant_may_apply_again(seeded_db, uow):
    person = make_person(uow)
    first = providers.submit_application(uow, person, GOOD)
    with uow:
        uow.session.get(ProviderRequest, first.id).status = "rejected"
        uow.commit()
    second = providers.submit_application(uow, person, GOOD)
    assert [a.id for a in providers.my_applications(uow, person)] == [second.id, first.id]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"company": " "}, "company", "needs at least 2 characters"),
        ({"contact_name": ""}, "contact_name", "needs at least 2 characters"),
        ({"contact_email": "not-an-email"}, "contact_email", "email address"),
        ({"regions": []}, "regions", "choose at least one"),
        ({"regions": ["moon-base"]}, "regions", "not a marketplace region: moon-base"),
        ({"expected_capacity": ""}, "expected_capacity", "needs at least 2 characters"),
        ({"website": "fjord.example"}, "website", "https://"),
        ({"website": "ftp://fjord.example"}, "website", "https://"),
    ],
)
def test_bad_application_input_is_refused_per_field_and_writes_nothing(seeded_db, uow, changes, field, message):
    person = make_person(uow)
    before = count(uow, ProviderRequest)
    with pytest.raises(InvalidInput) as err:
        providers.submit_application(uow, person, GOOD | changes)
    assert message in err.value.errors[field]
    assert count(uow, ProviderRequest) == before


def test_applications_can_be_closed_by_the_operator(seeded_db, uow):
    operator = make_person(uow, Role.OPERATOR)
    settings_service.update(uow, operator, {"provider_applications_open": False})
    with pytest.raises(Conflict, match="closed"):
        providers.submit_application(uow, make_person(uow), GOOD)


def test_notify_counts_what_it_wrote_and_the_inbox_reads_and_marks(seeded_db, uow):
    a, b = make_person(uow), make_person(uow)
    with uow:
        assert (
            notifications.notify(
                uow.session, [a.user_id, b.user_id, a.user_id], kind="maintenance", title="T", dedupe_prefix="test:1"
            )
            == 2
        )
        assert (
            notifications.notify(
                uow.session, [a.user_id, b.user_id], kind="maintenance", title="T", dedupe_prefix="test:1"
            )
            == 0
        )
        uow.commit()
    assert notifications.unread_count(uow, a) == 1
    inbox = notifications.list_own(uow, a)
    assert [(n.title, n.read_at) for n in inbox] == [("T", None)]
    assert notifications.mark_all_read(uow, a) == 1
    assert notifications.unread_count(uow, a) == 0 and notifications.unread_count(uow, b) == 1
    assert count(uow, Notification, Notification.user_id == a.user_id) == 1
