"""Heartbeat ingest and deployment status reports (services/nodes/heartbeat.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from services.db.base import utcnow
from services.deployments.models import Deployment, DeploymentEvent, DeploymentPlacement
from services.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, PermissionDenied
from services.nodes import heartbeat
from services.nodes import service as nodes
from services.nodes.models import Node, NodeMetric
from services.nodes.status import effective_status
from services.nodes.tokens import new_token
from services.notifications.models import Notification
from tests.support.people import demo_identity, make_person

NODE = dict(name="agent-test-1", region="eu-west", country="DE", vcpu=8, ram_gb=32, disk_gb=200)
SAMPLE = {"cpu_pct": 12.5, "ram_pct": 40.0, "disk_pct": 55.0, "net_in_mbps": 3.2, "net_out_mbps": 1.1}


@pytest.fixture
def node(seeded_db, uow):
    """A node registered through the providers' service, with its one-time token."""
    provider = demo_identity(uow, "demo:provider")
    registered = nodes.register_node(uow, provider, NODE)
    return provider, registered.node.id, registered.token


def _node(uow, node_id) -> Node:
    with uow:
        node = uow.session.get(Node, node_id)
        uow.session.expunge(node)  # keep its loaded values after the read-only transaction ends
        return node


def _metrics(uow, node_id) -> int:
    with uow:
        return uow.session.scalar(select(func.count()).select_from(NodeMetric).where(NodeMetric.node_id == node_id))


def test_a_heartbeat_marks_the_node_online_and_stores_its_sample(node, uow):
    _provider, node_id, token = node
    assert effective_status(_node(uow, node_id)) == "offline"
    out = heartbeat.record_heartbeat(uow, token, {"metrics": SAMPLE})
    assert out.node_id == node_id and out.status == "online" and out.metrics_recorded
    stored = _node(uow, node_id)
    assert effective_status(stored) == "online"
    assert stored.last_heartbeat_at == out.received_at
    with uow:
        metric = uow.session.scalar(select(NodeMetric).where(NodeMetric.node_id == node_id))
        assert (metric.cpu_pct, metric.ram_pct, metric.disk_pct, metric.net_in_mbps) == (12.5, 40.0, 55.0, 3.2)
        assert metric.online is True


def test_a_repeated_sample_time_is_stored_once(node, uow):
    _provider, node_id, token = node
    ts = utcnow().replace(microsecond=0)
    first = heartbeat.record_heartbeat(uow, token, {"ts": ts.isoformat(), "metrics": SAMPLE})
    again = heartbeat.record_heartbeat(uow, token, {"ts": ts.isoformat(), "metrics": SAMPLE})
    assert first.metrics_recorded and not again.metrics_recorded
    assert _metrics(uow, node_id) == 1


def test_concurrent_heartbeats_of_one_node_all_land_and_none_is_lost(node, seeded_db):
    from services.db.engine import UnitOfWork

    _provider, node_id, token = node
    base = utcnow() - timedelta(minutes=5)
    errors: list[Exception] = []

    def send(worker: int) -> None:
        try:
            for i in range(10):
                ts = base + timedelta(milliseconds=worker * 1000 + i)
                heartbeat.record_heartbeat(UnitOfWork(seeded_db), token, {"ts": ts.isoformat(), "metrics": SAMPLE})
        except Exception as exc:  # collected: an exception in a thread would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    uow = UnitOfWork(seeded_db)
    assert _metrics(uow, node_id) == 40
    assert effective_status(_node(uow, node_id)) == "online"


def test_a_draining_node_stays_draining_and_offline_is_reported(node, uow):
    provider, node_id, token = node
    heartbeat.record_heartbeat(uow, token, {})
    nodes.drain(uow, provider, node_id)
    assert heartbeat.record_heartbeat(uow, token, {"metrics": SAMPLE}).status == "draining"
    nodes.resume(uow, provider, node_id)
    assert heartbeat.record_heartbeat(uow, token, {"status": "offline"}).status == "offline"
    assert effective_status(_node(uow, node_id)) == "offline"


def test_no_heartbeat_for_the_offline_delay_reads_offline(node, uow, monkeypatch):
    _provider, node_id, token = node
    heartbeat.record_heartbeat(uow, token, {})
    seen = _node(uow, node_id)
    assert effective_status(seen, now=seen.last_heartbeat_at + timedelta(seconds=119)) == "online"
    assert effective_status(seen, now=seen.last_heartbeat_at + timedelta(seconds=121)) == "offline"


def test_unknown_rotated_and_decommissioned_tokens_are_refused(node, uow):
    provider, node_id, token = node
    with pytest.raises(NotAuthenticated):
        heartbeat.record_heartbeat(uow, new_token(), {})
    with pytest.raises(NotAuthenticated):
        heartbeat.record_heartbeat(uow, "cmn_short", {})
    rotated = nodes.rotate_token(uow, provider, node_id).token
    with pytest.raises(NotAuthenticated):
        heartbeat.record_heartbeat(uow, token, {})
    assert heartbeat.record_heartbeat(uow, rotated, {}).node_id == node_id
    nodes.decommission(uow, provider, node_id)
    with pytest.raises((NotAuthenticated, PermissionDenied)):
        heartbeat.record_heartbeat(uow, rotated, {})
    with pytest.raises((NotAuthenticated, PermissionDenied)):
        heartbeat.authenticate(uow, rotated)
    assert _metrics(uow, node_id) == 0


def test_a_decommissioned_node_that_still_has_its_token_is_refused_with_403(node, uow):
    _provider, node_id, token = node
    with uow:  # set-up: a node retired by other means than the service (which also clears the token)
        uow.session.get(Node, node_id).status = "decommissioned"
        uow.commit()
    with pytest.raises(PermissionDenied):
        heartbeat.record_heartbeat(uow, token, {"metrics": SAMPLE})
    with pytest.raises(PermissionDenied):
        heartbeat.authenticate(uow, token)
    assert _node(uow, node_id).last_heartbeat_at is None


@pytest.mark.parametrize(
    "body, field",
    [
        ({"metrics": {**SAMPLE, "cpu_pct": 101}}, "metrics.cpu_pct"),
        ({"metrics": {**SAMPLE, "net_in_mbps": -1}}, "metrics.net_in_mbps"),
        ({"metrics": {"cpu_pct": 1}}, "metrics.ram_pct"),
        ({"status": "exploded"}, "status"),
        ({"ts": "2020-01-01T00:00:00Z"}, "ts"),
        ({"ts": "2026-01-01T00:00:00"}, "ts"),
    ],
)
def test_bad_heartbeats_name_the_field_and_write_nothing(node, uow, body, field):
    _provider, node_id, token = node
    with pytest.raises(InvalidInput) as refused:
        heartbeat.record_heartbeat(uow, token, body)
    assert field in refused.value.errors
    assert _node(uow, node_id).last_heartbeat_at is None
    assert _metrics(uow, node_id) == 0


# ---------------------------------------------------------------- assignments and status reports


def _deployment_on(uow, node_id: int, owner_id: int, status: str = "pending", name: str = "agent-dep") -> int:
    """Set-up: a deployment placed on this node (as the scheduler would have written it)."""
    with uow:
        s = uow.session
        d = Deployment(
            owner_user_id=owner_id,
            name=name,
            workload="ubuntu-vm",
            image="ubuntu:24.04",
            vcpu=1,
            ram_gb=1,
            disk_gb=10,
            status=status,
            price_per_hour_cents=1,
        )
        s.add(d)
        s.flush()
        s.add(DeploymentPlacement(deployment_id=d.id, slot=0, node_id=node_id, role="replica"))
        uow.commit()
        return d.id


def _events(uow, deployment_id: int) -> list[tuple[str, str | None, str]]:
    with uow:
        rows = uow.session.execute(
            select(DeploymentEvent.kind, DeploymentEvent.status, DeploymentEvent.actor)
            .where(DeploymentEvent.deployment_id == deployment_id)
            .order_by(DeploymentEvent.id)
        ).all()
        return [tuple(r) for r in rows]


def _status(uow, deployment_id: int) -> str:
    with uow:
        return uow.session.get(Deployment, deployment_id).status


def test_assignments_list_what_is_placed_on_the_node_with_its_desired_state(node, uow):
    _provider, node_id, token = node
    owner = make_person(uow)
    pending = _deployment_on(uow, node_id, owner.user_id, "pending", "dep-a")
    stopped = _deployment_on(uow, node_id, owner.user_id, "stopped", "dep-b")
    _deployment_on(uow, node_id, owner.user_id, "deleted", "dep-c")
    me = heartbeat.authenticate(uow, token)
    listed = heartbeat.assignments(uow, me)
    assert [(a.deployment_id, a.desired_state) for a in listed] == [(pending, "running"), (stopped, "stopped")]
    assert heartbeat.assignments(uow, me, limit=1, after=(pending, 0))[0].deployment_id == stopped


def test_status_reports_move_the_deployment_and_append_events(node, uow):
    _provider, node_id, token = node
    owner = make_person(uow)
    dep = _deployment_on(uow, node_id, owner.user_id)
    me = heartbeat.authenticate(uow, token)

    assert heartbeat.report_status(uow, me, dep, {"status": "running"}).changed
    assert _status(uow, dep) == "running"
    repeat = heartbeat.report_status(uow, me, dep, {"status": "running"})
    assert repeat.changed is False
    with pytest.raises(InvalidInput) as no_reason:
        heartbeat.report_status(uow, me, dep, {"status": "failed"})
    assert "reason" in no_reason.value.errors
    heartbeat.report_status(uow, me, dep, {"status": "failed", "reason": "out of memory"})
    assert _status(uow, dep) == "failed"
    assert _events(uow, dep) == [("started", "running", f"node:{node_id}"), ("failed", "failed", f"node:{node_id}")]
    with uow:
        message = uow.session.scalar(
            select(DeploymentEvent.message).where(
                DeploymentEvent.deployment_id == dep, DeploymentEvent.kind == "failed"
            )
        )
        notes = uow.session.scalars(select(Notification.title).where(Notification.user_id == owner.user_id)).all()
    assert "out of memory" in message
    assert notes == ["Deployment agent-dep failed"]


def test_a_report_cannot_override_the_owner_or_touch_other_nodes_deployments(node, uow):
    _provider, node_id, token = node
    owner = make_person(uow)
    stopped = _deployment_on(uow, node_id, owner.user_id, "stopped", "dep-stopped")
    me = heartbeat.authenticate(uow, token)
    with pytest.raises(Conflict):
        heartbeat.report_status(uow, me, stopped, {"status": "running"})
    assert _status(uow, stopped) == "stopped" and _events(uow, stopped) == []
    with uow:
        elsewhere = uow.session.scalar(
            select(DeploymentPlacement.deployment_id).where(DeploymentPlacement.node_id != node_id).limit(1)
        )
    with pytest.raises(NotFound):
        heartbeat.report_status(uow, me, elsewhere, {"status": "stopped"})
    deleted = _deployment_on(uow, node_id, owner.user_id, "deleted", "dep-deleted")
    with pytest.raises(NotFound):
        heartbeat.report_status(uow, me, deleted, {"status": "stopped"})
