"""Maintenance windows through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.audit.models import AuditEntry
from services.auth.permissions import Role
from services.db.base import utcnow
from services.deployments.models import Deployment, DeploymentPlacement
from services.errors import Conflict, InvalidInput, NotFound
from services.maintenance import service as maintenance
from services.maintenance.models import MaintenanceWindow, MaintenanceWindowNode
from services.nodes import service as nodes
from services.notifications import service as notifications
from services.notifications.models import Notification
from services.settings import service as settings_service
from services.users.models import User
from tests.providers.helpers import active_deployments_by_node, count, nodes_of, provider_id_of
from tests.support.people import demo_identity, make_person


@pytest.fixture
def priya(seeded_db, uow):
    return demo_identity(uow, "demo:provider")


@pytest.fixture
def max_multi(seeded_db, uow):
    return demo_identity(uow, "demo:multi")


def _hour(days: float) -> datetime:
    return (utcnow() + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)


def _place(uow, owner_id: int, node_ids: list[int], name: str, status: str = "running") -> int:
    """A deployment of `owner_id` with one replica on each node (written directly, as the launcher would)."""
    with uow:
        s = uow.session
        dep = Deployment(owner_user_id=owner_id, name=name, workload="ubuntu-vm", vcpu=2, ram_gb=4, disk_gb=40)
        dep.status = status
        s.add(dep)
        s.flush()
        for slot, node_id in enumerate(node_ids):
            s.add(DeploymentPlacement(deployment_id=dep.id, slot=slot, node_id=node_id, role="replica"))
        uow.commit()
        return dep.id


def _window_counts(uow) -> tuple[int, int]:
    return count(uow, MaintenanceWindow), count(uow, Notification)


def _free_nodes(uow, priya) -> list[int]:
    """Priya's nodes that no seeded window covers."""
    pid = provider_id_of(uow, priya.user_id)
    with uow:
        covered = set(uow.session.scalars(select(MaintenanceWindowNode.node_id)))
    return [n.id for n in nodes_of(uow, pid) if n.id not in covered and n.status != "decommissioned"]


def _seeded_upcoming(uow, priya):
    """(id, starts_at, ends_at) of the seeded upcoming window of the demo provider."""
    with uow:
        return uow.session.execute(
            select(MaintenanceWindow.id, MaintenanceWindow.starts_at, MaintenanceWindow.ends_at).where(
                MaintenanceWindow.reason == "Kernel upgrade"
            )
        ).one()


def test_each_timing_rule_refuses_with_its_own_message_and_writes_nothing(priya, uow):
    node = _free_nodes(uow, priya)[0]
    settings = settings_service.get(uow)
    assert (settings.min_maintenance_notice_hours, settings.max_maintenance_hours) == (24, 12)
    start = _hour(2)
    cases = [
        (dict(starts_at=start, ends_at=start), "ends_at", "The end must be after the start"),
        (dict(starts_at=start, ends_at=start - timedelta(hours=1)), "ends_at", "The end must be after the start"),
        (
            dict(starts_at=utcnow() - timedelta(hours=1), ends_at=utcnow() + timedelta(hours=1)),
            "starts_at",
            "in the past",
        ),
        (
            dict(starts_at=utcnow() + timedelta(hours=3), ends_at=utcnow() + timedelta(hours=5)),
            "starts_at",
            "at least 24 hours notice",
        ),
        (dict(starts_at=start, ends_at=start + timedelta(hours=13)), "ends_at", "at most 12 hours"),
    ]
    before = _window_counts(uow)
    for times, field, message in cases:
        data = dict(node_ids=[node], reason="Firmware update", **times)
        for call in (maintenance.preview, maintenance.schedule):
            with pytest.raises(InvalidInput) as err:
                call(uow, priya, data)
            assert message in err.value.errors[field], (times, err.value.errors)
    assert _window_counts(uow) == before


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"node_ids": []}, "node_ids", "choose at least one node"),
        ({"reason": "x"}, "reason", "needs at least 3 characters"),
        ({"starts_at": datetime(2030, 1, 1, 10)}, "starts_at", "timezone"),
    ],
)
def test_missing_or_malformed_fields_are_refused(priya, uow, changes, field, message):
    start = _hour(2)
    data = dict(node_ids=_free_nodes(uow, priya)[:1], starts_at=start, ends_at=start + timedelta(hours=2), reason="Fix")
    before = _window_counts(uow)
    with pytest.raises(InvalidInput) as err:
        maintenance.schedule(uow, priya, data | changes)
    assert message in err.value.errors[field]
    assert _window_counts(uow) == before


def test_overlap_with_a_window_of_the_same_node_names_the_node_and_the_window(priya, uow):
    seeded = _seeded_upcoming(uow, priya)
    with uow:
        covered = list(
            uow.session.scalars(
                select(MaintenanceWindowNode.node_id).where(MaintenanceWindowNode.window_id == seeded.id)
            )
        )
    node_name = nodes.get_for_provider(uow, priya, covered[0]).name
    data = dict(
        node_ids=[covered[0]],
        starts_at=seeded.starts_at + timedelta(hours=1),
        ends_at=seeded.ends_at + timedelta(hours=1),
        reason="Disk swap",
    )
    before = _window_counts(uow)
    with pytest.raises(InvalidInput) as err:
        maintenance.schedule(uow, priya, data)
    assert node_name in err.value.errors["node_ids"] and f"#{seeded.id}" in err.value.errors["node_ids"]
    assert "Kernel upgrade" in err.value.message
    assert _window_counts(uow) == before
    # Back to back is not an overlap, and another node at the same time is fine.
    ok = maintenance.preview(
        uow, priya, data | {"starts_at": seeded.ends_at, "ends_at": seeded.ends_at + timedelta(hours=2)}
    )
    assert ok.node_names == (node_name,)
    free = _free_nodes(uow, priya)[0]
    assert maintenance.preview(uow, priya, data | {"node_ids": [free]}).node_names


def test_a_cancelled_window_no_longer_blocks_its_time(priya, uow):
    node = _free_nodes(uow, priya)[0]
    start = _hour(3)
    data = dict(node_ids=[node], starts_at=start, ends_at=start + timedelta(hours=2), reason="Fans")
    first = maintenance.schedule(uow, priya, data)
    with pytest.raises(InvalidInput):
        maintenance.schedule(uow, priya, data)
    maintenance.cancel(uow, priya, first.window.id)
    assert maintenance.schedule(uow, priya, data).window.id != first.window.id


def test_nodes_of_another_provider_are_not_found_and_nothing_is_written(priya, max_multi, uow):
    theirs = nodes_of(uow, provider_id_of(uow, max_multi.user_id))[0].id
    mine = _free_nodes(uow, priya)[0]
    start = _hour(2)
    before = _window_counts(uow)
    for node_ids in ([theirs], [mine, theirs]):
        with pytest.raises(NotFound):
            maintenance.schedule(
                uow, priya, dict(node_ids=node_ids, starts_at=start, ends_at=start + timedelta(hours=1), reason="Swap")
            )
    assert _window_counts(uow) == before


def test_preview_lists_the_affected_deployments_and_users(priya, uow):
    pid = provider_id_of(uow, priya.user_id)
    active = active_deployments_by_node(uow, pid)
    chosen = [n for n in _free_nodes(uow, priya) if active.get(n)][:2] or _free_nodes(uow, priya)[:2]
    expected = set().union(*(active.get(n, set()) for n in chosen))
    with uow:
        owners = set(uow.session.scalars(select(Deployment.owner_user_id).where(Deployment.id.in_(expected))))
    start = _hour(2)
    impact = maintenance.preview(
        uow, priya, dict(node_ids=chosen, starts_at=start, ends_at=start + timedelta(hours=2), reason="Upgrade")
    )
    assert {d.deployment_id for d in impact.deployments} == expected
    assert {u.user_id for u in impact.users} == owners
    assert all(d.status in ("pending", "running") for d in impact.deployments)


def test_scheduling_notifies_each_affected_user_once_and_rerunning_cannot_duplicate(priya, uow):
    a, b = _free_nodes(uow, priya)[:2]
    alice = make_person(uow, Role.USER, name="Alice")
    bob = make_person(uow, Role.USER, name="Bob")
    with uow:
        uow.session.get(User, bob.user_id).timezone = "Asia/Tokyo"
        uow.commit()
    _place(uow, alice.user_id, [a], "alice-web")
    _place(uow, alice.user_id, [a, b], "alice-db")  # two deployments, two nodes: still one notice
    _place(uow, bob.user_id, [b], "bob-api", status="pending")
    _place(uow, bob.user_id, [b], "bob-old", status="stopped")  # not active: not affected
    start = _hour(2)
    data = dict(node_ids=[a, b], starts_at=start, ends_at=start + timedelta(hours=3), reason="Rack move")

    impact = maintenance.preview(uow, priya, data)
    names = {d.name for d in impact.deployments}
    assert {"alice-web", "alice-db", "bob-api"} <= names and "bob-old" not in names
    alice_row = next(u for u in impact.users if u.user_id == alice.user_id)
    assert alice_row.deployments == 2

    done = maintenance.schedule(uow, priya, data)
    wid = done.window.id
    assert done.window.phase == "upcoming" and set(done.window.node_names) == set(done.impact.node_names)
    assert done.notified == len(impact.users)
    with uow:
        rows = uow.session.execute(
            select(Notification.user_id, Notification.dedupe_key, Notification.title).where(
                Notification.dedupe_key.like(f"maintenance:{wid}:%")
            )
        ).all()
        assert sorted(r.user_id for r in rows) == sorted(u.user_id for u in impact.users)
        assert all("Planned maintenance" in r.title for r in rows)
        audit_entry = uow.session.scalar(select(AuditEntry).where(AuditEntry.action == "maintenance.scheduled"))
        assert audit_entry.object_id == str(wid) and audit_entry.new["notified_users"] == len(rows)
    # Alice sees exactly one notice in her inbox; each person reads the times in their own timezone.
    inbox = [n for n in notifications.list_own(uow, alice) if n.kind == "maintenance"]
    assert len(inbox) == 1 and "Rack move" in inbox[0].body and "UTC" in inbox[0].body
    bob_notice = next(n for n in notifications.list_own(uow, bob) if n.kind == "maintenance")
    tokyo = start.astimezone(ZoneInfo("Asia/Tokyo"))
    assert f"From {tokyo:%Y-%m-%d %H:%M} JST" in bob_notice.body

    # Re-running the notification step (a retry) writes nothing new; scheduling the same again is refused.
    with uow:
        again = notifications.notify(
            uow.session,
            [u.user_id for u in impact.users],
            kind="maintenance",
            title="x",
            dedupe_prefix=f"maintenance:{wid}",
        )
        uow.commit()
    assert again == 0
    with pytest.raises(InvalidInput):
        maintenance.schedule(uow, priya, data)
    assert count(uow, Notification, Notification.dedupe_key.like(f"maintenance:{wid}:%")) == len(rows)


def test_windows_are_split_into_upcoming_active_and_past_and_paginated(priya, max_multi, uow):
    pid = provider_id_of(uow, priya.user_id)
    node = _free_nodes(uow, priya)[0]
    with uow:  # an active window cannot be scheduled (its start is past), so write one directly
        w = MaintenanceWindow(
            provider_id=pid,
            starts_at=utcnow() - timedelta(hours=1),
            ends_at=utcnow() + timedelta(hours=1),
            reason="Now",
        )
        uow.session.add(w)
        uow.session.flush()
        uow.session.add(MaintenanceWindowNode(window_id=w.id, node_id=node))
        uow.commit()
    for k in range(3):
        start = _hour(4 + k)
        maintenance.schedule(
            uow, priya, dict(node_ids=[node], starts_at=start, ends_at=start + timedelta(hours=1), reason=f"Patch {k}")
        )
    upcoming = maintenance.list_windows(uow, priya, phase="upcoming", limit=2)
    assert upcoming.total == 4 and len(upcoming.rows) == 2
    assert [r.starts_at for r in upcoming.rows] == sorted(r.starts_at for r in upcoming.rows)
    rest = maintenance.list_windows(uow, priya, phase="upcoming", limit=2, offset=2)
    assert {r.id for r in rest.rows}.isdisjoint({r.id for r in upcoming.rows}) and rest.total == 4
    beyond = maintenance.list_windows(uow, priya, phase="upcoming", limit=2, offset=10)  # past the last page
    assert beyond.rows == [] and beyond.total == 4
    active = maintenance.list_windows(uow, priya, phase="active")
    assert [r.reason for r in active.rows] == ["Now"] and active.rows[0].phase == "active"
    past = maintenance.list_windows(uow, priya, phase="past")
    assert "Switch replacement" in {r.reason for r in past.rows}
    # Another provider sees none of them.
    assert sum(maintenance.list_windows(uow, max_multi, phase=p).total for p in maintenance.PHASES) == 0


def test_cancel_an_upcoming_window_notifies_once_and_other_phases_are_refused(priya, max_multi, uow):
    a = _free_nodes(uow, priya)[0]
    carol = make_person(uow, Role.USER, name="Carol")
    _place(uow, carol.user_id, [a], "carol-app")
    start = _hour(2)
    done = maintenance.schedule(
        uow, priya, dict(node_ids=[a], starts_at=start, ends_at=start + timedelta(hours=2), reason="Power work")
    )
    wid = done.window.id

    # Another provider can neither see nor cancel it.
    with pytest.raises(NotFound):
        maintenance.cancel(uow, max_multi, wid)
    with pytest.raises(NotFound):
        maintenance.window_impact(uow, max_multi, wid)

    cancelled = maintenance.cancel(uow, priya, wid)
    assert cancelled.window.status == "cancelled" and cancelled.window.phase == "past"
    assert carol.user_id in {u.user_id for u in cancelled.impact.users}
    titles = [n.title for n in notifications.list_own(uow, carol) if n.kind == "maintenance"]
    assert sorted(titles) == sorted(
        ["Maintenance cancelled: Stratus Compute 1", "Planned maintenance: Stratus Compute 1"]
    )
    with pytest.raises(Conflict, match="already cancelled"):
        maintenance.cancel(uow, priya, wid)
    assert count(uow, Notification, Notification.user_id == carol.user_id) == 2

    with uow:
        past_id = uow.session.scalar(
            select(MaintenanceWindow.id).where(MaintenanceWindow.reason == "Switch replacement")
        )
    with pytest.raises(Conflict, match="over"):
        maintenance.cancel(uow, priya, past_id)
