"""Node management through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from services.audit.models import AuditEntry
from services.auth.permissions import Role
from services.db.base import utcnow
from services.db.models import Base
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services.nodes import service as nodes
from services.nodes.models import Node, NodeMetric
from services.nodes.tokens import find_node_by_token, hash_token
from tests.providers.helpers import active_deployments_by_node, count, nodes_of, provider_id_of
from tests.support.people import demo_identity, make_person

GOOD = dict(
    name="gpu-fra-01",
    region="eu-central",
    country="de",
    vcpu=64,
    ram_gb=256,
    disk_gb=2000,
    gpu_model="A100",
    gpu_count=4,
    bandwidth_mbps=10_000,
    price_factor_pct=110,
)


@pytest.fixture
def priya(seeded_db, uow):
    return demo_identity(uow, "demo:provider")


@pytest.fixture
def max_multi(seeded_db, uow):
    return demo_identity(uow, "demo:multi")


def test_register_returns_the_token_once_and_stores_only_its_hash(priya, uow):
    registered = nodes.register_node(uow, priya, GOOD)
    token = registered.token
    assert token.startswith("cmn_") and len(token) > 40
    assert registered.node.name == "gpu-fra-01" and registered.node.country == "DE"
    assert registered.node.status == "offline"  # until its agent reports
    assert token not in repr(registered)

    with uow:
        node = uow.session.get(Node, registered.node.id)
        assert node.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert find_node_by_token(uow.session, token).id == node.id
        # The plain token appears nowhere in the database: every text value of every table is checked.
        for table in Base.metadata.sorted_tables:
            for row in uow.session.execute(select(table)):
                assert all(token not in str(value) for value in row), f"token found in {table.name}"
        entry = uow.session.scalar(select(AuditEntry).where(AuditEntry.action == "node.registered"))
        assert entry.object_id == str(node.id) and entry.new["name"] == "gpu-fra-01"

    # Reading the node back never returns a token.
    view = nodes.get_for_provider(uow, priya, registered.node.id)
    assert not hasattr(view, "token")


def test_rotation_invalidates_the_old_token_at_once(priya, uow):
    first = nodes.register_node(uow, priya, GOOD)
    second = nodes.rotate_token(uow, priya, first.node.id)
    assert second.token != first.token
    with uow:
        assert find_node_by_token(uow.session, first.token) is None
        assert find_node_by_token(uow.session, second.token).id == first.node.id
        assert uow.session.scalar(select(AuditEntry).where(AuditEntry.action == "node.token_rotated")) is not None


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "is required"),
        ({"name": "bad name!"}, "name", "letters, digits"),
        ({"region": "mars-north"}, "region", "marketplace's regions"),
        ({"country": "XX"}, "country", "ISO country code"),
        ({"country": ""}, "country", "choose the node's country"),
        ({"region": ""}, "region", "choose a region"),
        ({"country": "Germany"}, "country", "must be at most 2 characters"),
        ({"vcpu": 0}, "vcpu", "must be at least 1"),
        ({"ram_gb": 100_000}, "ram_gb", "must be at most"),
        ({"disk_gb": 5}, "disk_gb", "must be at least 10"),
        ({"bandwidth_mbps": 1}, "bandwidth_mbps", "must be at least 10"),
        ({"gpu_count": 17}, "gpu_count", "must be at most 16"),
        ({"gpu_model": None, "gpu_count": 2}, "gpu_model", "name the GPU model"),
        ({"gpu_model": "A100", "gpu_count": 0}, "gpu_count", "at least one GPU"),
        ({"gpu_model": "Voodoo2", "gpu_count": 1}, "gpu_model", "rents out these GPU models"),
        ({"price_factor_pct": 500}, "price_factor_pct", "must be at most 300"),
    ],
)
def test_bad_node_input_is_refused_with_a_field_message_and_writes_nothing(priya, uow, changes, field, message):
    before = count(uow, Node)
    with pytest.raises(InvalidInput) as err:
        nodes.register_node(uow, priya, GOOD | changes)
    assert message in err.value.errors[field]
    assert count(uow, Node) == before
    assert count(uow, AuditEntry, AuditEntry.action == "node.registered") == 0


def test_a_node_name_is_unique_per_provider_not_across_providers(priya, max_multi, uow):
    nodes.register_node(uow, priya, GOOD)
    with pytest.raises(InvalidInput) as err:
        nodes.register_node(uow, priya, GOOD | {"name": "GPU-FRA-01"})
    assert "already have a node named" in err.value.errors["name"]
    nodes.register_node(uow, max_multi, GOOD)  # another provider may use the same name


def test_a_cpu_only_node_needs_no_gpu_model(priya, uow):
    view = nodes.register_node(uow, priya, GOOD | {"gpu_model": "", "gpu_count": 0}).node
    assert view.gpu_model is None and view.gpu_count == 0


def test_a_person_without_a_provider_profile_is_refused(seeded_db, uow):
    someone = make_person(uow, Role.PROVIDER)
    with pytest.raises(PermissionDenied, match="no provider profile"):
        nodes.register_node(uow, someone, GOOD)
    plain_user = make_person(uow)
    with pytest.raises(PermissionDenied):
        nodes.list_for_provider(uow, plain_user)


def test_list_is_paginated_filtered_and_shows_only_own_nodes(priya, uow):
    pid = provider_id_of(uow, priya.user_id)
    own = nodes_of(uow, pid)
    page1 = nodes.list_for_provider(uow, priya, limit=2, offset=0)
    page2 = nodes.list_for_provider(uow, priya, limit=2, offset=2)
    assert page1.total == len(own) and len(page1.rows) == 2
    assert {n.id for n in page1.rows}.isdisjoint({n.id for n in page2.rows})
    everything = nodes.list_for_provider(uow, priya, limit=500)
    assert {n.id for n in everything.rows} == {n.id for n in own}
    assert [n.name for n in everything.rows] == sorted(n.name for n in own)
    beyond = nodes.list_for_provider(uow, priya, limit=2, offset=len(own) + 10)  # past the last page
    assert beyond.rows == [] and beyond.total == len(own)

    active = active_deployments_by_node(uow, pid)
    assert {n.id: n.active_deployments for n in everything.rows} == {n.id: len(active.get(n.id, ())) for n in own}
    by_deployments = nodes.list_for_provider(uow, priya, sort="deployments", descending=True, limit=500)
    counts = [n.active_deployments for n in by_deployments.rows]
    assert counts == sorted(counts, reverse=True)

    # A node whose last heartbeat is stale shows offline, and the filter uses that effective status.
    stale = own[0]
    with uow:
        uow.session.execute(
            update(Node)
            .where(Node.id == stale.id)
            .values(status="online", last_heartbeat_at=utcnow() - timedelta(hours=1))
        )
        uow.commit()
    offline = nodes.list_for_provider(uow, priya, status="offline", limit=500)
    assert stale.id in {n.id for n in offline.rows}
    assert all(n.status == "offline" for n in offline.rows)
    found = nodes.list_for_provider(uow, priya, search=stale.name[-4:], limit=500)
    assert stale.id in {n.id for n in found.rows}


def test_another_providers_node_is_not_found_for_every_action(priya, max_multi, uow):
    theirs = nodes.register_node(uow, max_multi, GOOD).node.id
    for call in (
        lambda: nodes.get_for_provider(uow, priya, theirs),
        lambda: nodes.update_node(uow, priya, theirs, GOOD | {"name": "stolen"}),
        lambda: nodes.drain(uow, priya, theirs),
        lambda: nodes.decommission(uow, priya, theirs),
        lambda: nodes.rotate_token(uow, priya, theirs),
        lambda: nodes.node_metrics(uow, priya, theirs),
    ):
        with pytest.raises(NotFound):
            call()
    assert nodes.get_for_provider(uow, max_multi, theirs).name == "gpu-fra-01"
    assert theirs not in {n.id for n in nodes.list_for_provider(uow, priya, limit=500).rows}


def test_decommission_is_refused_while_deployments_run_and_names_them(priya, uow):
    pid = provider_id_of(uow, priya.user_id)
    active = active_deployments_by_node(uow, pid)
    busy_id = next(node_id for node_id, deps in active.items() if deps)
    with uow:
        from services.deployments.models import Deployment

        names = set(uow.session.scalars(select(Deployment.name).where(Deployment.id.in_(active[busy_id]))))
    with pytest.raises(Conflict) as err:
        nodes.decommission(uow, priya, busy_id)
    assert all(name in err.value.message for name in names)
    assert nodes.get_for_provider(uow, priya, busy_id).stored_status != "decommissioned"


def test_decommission_retires_the_node_and_its_token(priya, uow):
    registered = nodes.register_node(uow, priya, GOOD)
    view = nodes.decommission(uow, priya, registered.node.id)
    assert view.status == "decommissioned"
    with uow:
        assert find_node_by_token(uow.session, registered.token) is None
    with pytest.raises(Conflict):
        nodes.decommission(uow, priya, registered.node.id)
    with pytest.raises(Conflict):
        nodes.rotate_token(uow, priya, registered.node.id)
    assert registered.node.id not in {n.id for n in nodes.node_choices(uow, priya)}


def test_drain_and_resume(priya, uow):
    node_id = nodes.register_node(uow, priya, GOOD).node.id
    assert nodes.drain(uow, priya, node_id).status == "draining"
    with pytest.raises(Conflict, match="already draining"):
        nodes.drain(uow, priya, node_id)
    assert nodes.resume(uow, priya, node_id).status == "offline"  # no heartbeat yet
    with pytest.raises(Conflict, match="not draining"):
        nodes.resume(uow, priya, node_id)


def test_update_changes_fields_audits_and_guards_region_of_busy_nodes(priya, uow):
    node_id = nodes.register_node(uow, priya, GOOD).node.id
    view = nodes.update_node(uow, priya, node_id, GOOD | {"vcpu": 96, "name": "gpu-fra-02"})
    assert (view.vcpu, view.name) == (96, "gpu-fra-02")
    with uow:
        entry = uow.session.scalar(select(AuditEntry).where(AuditEntry.action == "node.updated"))
        assert entry.old == {"vcpu": 64, "name": "gpu-fra-01"} and entry.new == {"vcpu": 96, "name": "gpu-fra-02"}

    pid = provider_id_of(uow, priya.user_id)
    busy_id = next(i for i, deps in active_deployments_by_node(uow, pid).items() if deps)
    busy = nodes.get_for_provider(uow, priya, busy_id).as_input().model_dump()
    other_region = next(r for r in nodes.regions(uow) if r != busy["region"])
    with pytest.raises(InvalidInput) as err:
        nodes.update_node(uow, priya, busy_id, busy | {"region": other_region})
    assert "cannot change" in err.value.errors["region"]
    assert nodes.get_for_provider(uow, priya, busy_id).region == busy["region"]


def test_metrics_are_downsampled_in_sql_and_uptime_counts_slots(priya, uow):
    node_id = nodes.register_node(uow, priya, GOOD | {"gpu_model": None, "gpu_count": 0}).node.id
    now = utcnow()
    start = (now - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    samples = []
    t, k = start, 0
    while t < now:
        # 1 hour online, 1 hour offline, alternating; cpu follows the minute so hourly averages are known
        online = (k // 12) % 2 == 0
        samples.append(
            dict(
                node_id=node_id,
                ts=t,
                cpu_pct=float(t.minute) if online else 0.0,
                ram_pct=50.0,
                disk_pct=40.0,
                net_in_mbps=1.0,
                net_out_mbps=1.0,
                online=online,
            )
        )
        t += timedelta(minutes=5)
        k += 1
    with uow:
        uow.session.execute(NodeMetric.__table__.insert(), samples)
        uow.session.execute(update(Node).where(Node.id == node_id).values(created_at=start - timedelta(days=1)))
        uow.commit()

    m = nodes.node_metrics(uow, priya, node_id, since=now - timedelta(days=3))
    assert m.bucket_seconds == 3600
    assert len(m.points) in (72, 73)  # one point per hour (the first and last hour are partial)
    full_online_hours = [p for p in m.points[1:-1] if p.ram_pct == 50.0 and p.cpu_pct > 0]
    assert full_online_hours and all(p.cpu_pct == pytest.approx(27.5) for p in full_online_hours)

    fine = nodes.node_metrics(uow, priya, node_id, since=now - timedelta(days=1))
    assert fine.bucket_seconds == 300
    raw = nodes.node_metrics(uow, priya, node_id, since=now - timedelta(hours=2))
    assert raw.bucket_seconds == 0 and 20 <= len(raw.points) <= 25

    assert m.uptime_share == pytest.approx(0.5, abs=0.03)
    measured = [d for d in m.uptime_days if d.share is not None]
    assert 3 <= len(measured) <= 4
    assert all(0 <= d.share <= 1 for d in measured)
    assert m.deployments == [] and m.deployments_total == 0


def test_metrics_of_a_node_that_never_reported_are_empty(priya, uow):
    node_id = nodes.register_node(uow, priya, GOOD).node.id
    m = nodes.node_metrics(uow, priya, node_id, since=utcnow() - timedelta(days=30))
    assert m.points == [] and m.uptime_share is None


def test_seeded_node_shows_deployments_placed_on_it(priya, uow):
    pid = provider_id_of(uow, priya.user_id)
    active = active_deployments_by_node(uow, pid)
    busy_id = next(i for i, deps in active.items() if deps)
    m = nodes.node_metrics(uow, priya, busy_id)
    assert active[busy_id] <= {d.deployment_id for d in m.deployments}
    assert m.node.active_deployments == len(active[busy_id])


def test_find_node_by_token_rejects_garbage(seeded_db, uow):
    with uow:
        for junk in (None, "", "cmn_", "nope", "cmn_" + "x" * 500, 42):
            assert find_node_by_token(uow.session, junk) is None
        assert uow.session.execute(text("select 1")).scalar() == 1
    assert hash_token("a") != hash_token("b")
