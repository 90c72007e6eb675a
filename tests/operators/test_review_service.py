"""Provider-request review: the queue, approval exactly once, rejection with its note, what the applicant sees."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from services.auth.permissions import Role
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services.notifications import service as notifications
from services.providers import review
from services.providers import service as providers
from services.providers.models import Provider, ProviderRequest
from services.users.models import RoleGrant
from tests.operators.helpers import audit_rows, count, olivia, omar
from tests.support.people import demo_identity, make_person


def pending_of(uow, op, user_id: int) -> review.RequestView:
    """The pending request of one applicant."""
    rows, _ = review.list_requests(uow, op, status="pending", limit=100)
    [request] = [r for r in rows if r.applicant_user_id == user_id]
    return request


def test_the_queue_lists_pending_first_oldest_waiting_first(seeded_db, uow):
    op = olivia(uow)
    rows, total = review.list_requests(uow, op, limit=100)
    with uow:
        all_requests = uow.session.scalars(select(ProviderRequest)).all()
        uow.session.expunge_all()
    assert total == len(all_requests) == len(rows)
    statuses = [r.status for r in rows]
    pending = [r for r in rows if r.status == "pending"]
    assert statuses[: len(pending)] == ["pending"] * len(pending)
    assert [r.created_at for r in pending] == sorted(r.created_at for r in pending)
    assert review.status_counts(uow, op) == {
        s: sum(1 for r in all_requests if r.status == s) for s in ("pending", "approved", "rejected")
    }
    first_page, total_pending = review.list_requests(uow, op, status="pending", limit=1)
    assert total_pending == len(pending) and [r.id for r in first_page] == [pending[0].id]
    decided, total_decided = review.list_requests(uow, op, status="decided", limit=100)
    assert total_decided == total - len(pending) and all(r.status != "pending" for r in decided)
    andre = next(r for r in rows if r.applicant_email == "andre@applicant.demo")
    assert andre.company == "Applicant Hosting 1" and andre.regions and andre.expected_capacity


def test_approval_creates_the_provider_and_the_grant_exactly_once(seeded_db, uow):
    op, andre = olivia(uow), demo_identity(uow, "demo:applicant")
    request = pending_of(uow, op, andre.user_id)
    providers_before = count(uow, Provider)

    decided = review.approve(uow, op, request.id, note="Welcome aboard")
    assert decided.status == "approved" and decided.reviewed_by == op.name and decided.provider_id
    with pytest.raises(Conflict) as err:
        review.approve(uow, omar(uow), request.id, note="me too")
    assert "already approved by Olivia Operator" in err.value.message
    with pytest.raises(Conflict):
        review.reject(uow, op, request.id, note="changed my mind")

    assert count(uow, Provider) == providers_before + 1
    assert count(uow, RoleGrant, RoleGrant.user_id == andre.user_id, RoleGrant.role == Role.PROVIDER.value) == 1
    with uow:
        provider = uow.session.get(Provider, decided.provider_id)
        assert (provider.owner_user_id, provider.company, provider.contact_email, provider.website) == (
            andre.user_id,
            request.company,
            request.contact_email,
            request.website,
        )
        assert list(provider.regions) == list(request.regions)
        stored = uow.session.get(ProviderRequest, request.id)
        assert (stored.status, stored.review_note, stored.provider_id) == ("approved", "Welcome aboard", provider.id)
        provider_id = provider.id

    # What Andre sees: the provider role on his next page load, his application approved, a notification.
    andre_now = demo_identity(uow, "demo:applicant")
    assert andre_now.has(Role.PROVIDER)
    assert providers.provider_for(uow, andre_now).company == request.company
    mine = providers.my_applications(uow, andre_now)
    assert mine[0].status == "approved" and mine[0].review_note == "Welcome aboard"
    [note] = [n for n in notifications.list_own(uow, andre_now) if n.kind == "provider_request"]
    assert request.company in note.title and "Welcome aboard" in note.body

    [entry] = audit_rows(uow, "provider_request.approved")
    assert entry.object_id == str(request.id) and entry.actor_label == op.email
    assert entry.old == {"status": "pending"} and entry.new["status"] == "approved"
    assert entry.new["provider_id"] == provider_id and entry.note == "Welcome aboard"


def test_rejection_keeps_the_note_and_the_applicant_sees_it(seeded_db, uow):
    op, andre = olivia(uow), demo_identity(uow, "demo:applicant")
    request = pending_of(uow, op, andre.user_id)
    providers_before = count(uow, Provider)
    decided = review.reject(uow, op, request.id, note="  Please add a second region.  ")
    assert decided.status == "rejected" and decided.review_note == "Please add a second region."
    assert count(uow, Provider) == providers_before
    andre_now = demo_identity(uow, "demo:applicant")
    assert not andre_now.has(Role.PROVIDER)
    mine = providers.my_applications(uow, andre_now)
    assert (mine[0].status, mine[0].review_note) == ("rejected", "Please add a second region.")
    [note] = [n for n in notifications.list_own(uow, andre_now) if n.kind == "provider_request"]
    assert "not approved" in note.title and note.body == "Please add a second region."
    [entry] = audit_rows(uow, "provider_request.rejected")
    assert entry.old == {"status": "pending"}
    assert entry.new == {"status": "rejected", "review_note": "Please add a second region."}
    with pytest.raises(Conflict):
        review.approve(uow, op, request.id)


@pytest.mark.parametrize("note", ["", "   ", "x" * 2001])
def test_a_rejection_needs_a_short_reason_and_writes_nothing_without_one(seeded_db, uow, note):
    op = olivia(uow)
    request = review.list_requests(uow, op, status="pending", limit=1)[0][0]
    with pytest.raises(InvalidInput) as err:
        review.reject(uow, op, request.id, note=note)
    assert "note" in err.value.errors
    assert review.get_request(uow, op, request.id).status == "pending"
    assert audit_rows(uow, "provider_request.rejected") == []


def test_unknown_requests_and_non_operators_are_refused(seeded_db, uow):
    op, user = olivia(uow), make_person(uow)
    with pytest.raises(NotFound):
        review.approve(uow, op, 999_999)
    request = review.list_requests(uow, op, status="pending", limit=1)[0][0]
    for call in (
        lambda: review.list_requests(uow, user),
        lambda: review.approve(uow, user, request.id),
        lambda: review.reject(uow, user, request.id, note="no"),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert review.get_request(uow, op, request.id).status == "pending"


def test_an_operator_cannot_approve_their_own_application(db, uow):
    op = make_person(uow, Role.OPERATOR)
    with uow:
        req = ProviderRequest(
            applicant_user_id=op.user_id,
            company="Self Serve",
            contact_name="Me",
            contact_email="me@example.com",
            regions=["us-east"],
        )
        uow.session.add(req)
        uow.commit()
        req_id = req.id
    with pytest.raises(InvalidInput):
        review.approve(uow, op, req_id)
    assert count(uow, Provider) == 0
    assert review.get_request(uow, op, req_id).status == "pending"


def test_two_operators_approving_at_once_make_one_provider(seeded_db, uow):
    request = review.list_requests(uow, olivia(uow), status="pending", limit=1)[0][0]
    providers_before = count(uow, Provider)
    people = [olivia(uow), omar(uow)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(person):
        from services.db.engine import UnitOfWork

        barrier.wait()
        try:
            review.approve(UnitOfWork(seeded_db), person, request.id, note="ok")
            outcomes.append("approved")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=approve, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["approved", "conflict"]
    assert count(uow, Provider) == providers_before + 1
    assert len(audit_rows(uow, "provider_request.approved")) == 1
