"""The scheduler on SQLite and PostgreSQL: where replicas and backups land, and why nothing fits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.db.base import utcnow
from services.deployments import placement
from services.deployments import service as deployments
from services.errors import InvalidInput
from services.pricing.service import ResourceSpec
from tests.deployments.fleet import (
    add_maintenance,
    add_metrics,
    add_node,
    add_pricing,
    add_provider,
    counts,
    occupy,
)
from tests.support.people import make_person

SMALL = ResourceSpec(vcpu=2, ram_gb=4, disk_gb=40)


@pytest.fixture(autouse=True)
def _fresh_uptime_cache():
    placement.clear_uptime_cache()
    yield
    placement.clear_uptime_cache()


def place(uow, spec=SMALL, **kw):
    with uow:
        return placement.place(uow.session, spec, **kw)


def names(placed):
    return [p.node_name for p in placed]


def test_places_on_the_cheapest_online_node_with_room(db, uow):
    p = add_provider(uow)
    add_node(uow, p, "list-price", factor=100)
    add_node(uow, p, "discounted", factor=90)
    add_node(uow, p, "stale-heartbeat", factor=70, heartbeat_age=timedelta(hours=1))
    add_node(uow, p, "offline", factor=70, status="offline")
    add_node(uow, p, "draining", factor=70, status="draining")
    add_node(uow, p, "too-small", factor=70, vcpu=1)
    suspended = add_provider(uow, status="suspended")
    add_node(uow, suspended, "suspended-provider", factor=50)

    placed = place(uow)

    assert names(placed) == ["discounted"]
    assert placed[0].role == "replica" and placed[0].slot == 0
    assert "90% of list price" in placed[0].reason


def test_region_filter(db, uow):
    p = add_provider(uow)
    add_node(uow, p, "cheap-us", region="us-east", factor=50)
    add_node(uow, p, "eu", region="eu-west", factor=100)
    assert names(place(uow, region="eu-west")) == ["eu"]
    assert names(place(uow)) == ["cheap-us"]


def test_no_fit_says_which_resource_and_where(db, uow):
    add_pricing(uow)
    p = add_provider(uow)
    add_node(uow, p, "eu-1", region="eu-west", vcpu=16, ram_gb=64, disk_gb=1000)
    add_node(uow, p, "us-big", region="us-east", vcpu=128, ram_gb=1024, disk_gb=8000)

    cases = [
        (ResourceSpec(32, 4, 40), "eu-west", "vcpu", ["vCPU", "region eu-west", "16"]),
        (ResourceSpec(2, 128, 40), "eu-west", "ram_gb", ["RAM", "region eu-west", "64 GB"]),
        (ResourceSpec(2, 4, 5000), "eu-west", "disk_gb", ["disk", "region eu-west", "1,000 GB"]),
        (ResourceSpec(2, 4, 40, "A100", 1), None, "gpu_model", ["A100", "any region"]),
        (SMALL, "ap-south", "region", ["No node is online", "region ap-south"]),
    ]
    for spec, region, field, words in cases:
        with pytest.raises(InvalidInput) as exc:
            place(uow, spec, region=region)
        assert field in exc.value.errors, (spec, exc.value.errors)
        for word in words:
            assert word in exc.value.message, (word, exc.value.message)

    # The same refusal through launch: nothing is written.
    me = make_person(uow)
    before = counts(uow)
    with pytest.raises(InvalidInput) as exc:
        deployments.launch(
            uow,
            me,
            dict(name="too-big", workload="ubuntu-vm", vcpu=32, ram_gb=4, disk_gb=40, region="eu-west"),
        )
    assert "Not enough vCPU in region eu-west" in exc.value.errors["vcpu"]
    assert counts(uow) == before


def test_capacity_used_by_other_deployments_is_respected(db, uow):
    p = add_provider(uow)
    cheap = add_node(uow, p, "cheap", vcpu=16, factor=80)
    pricier = add_node(uow, p, "pricier", vcpu=16, factor=100)

    occupy(uow, cheap, vcpu=12, status="running")
    assert names(place(uow, ResourceSpec(8, 4, 40))) == ["pricier"]  # 4 left on "cheap"
    assert names(place(uow, ResourceSpec(4, 4, 40))) == ["cheap"]  # exactly fits

    occupy(uow, cheap, vcpu=4, status="pending")  # pending holds capacity too: "cheap" is full now
    assert names(place(uow, ResourceSpec(1, 1, 10))) == ["pricier"]

    # Stopped, failed and deleted deployments hold nothing (they are not charged; start re-checks).
    p2 = add_provider(uow)
    spare = add_node(uow, p2, "spare", vcpu=8, factor=50)
    for status in ("stopped", "failed", "deleted"):
        occupy(uow, spare, vcpu=8, status=status)
    assert names(place(uow, ResourceSpec(8, 4, 40))) == ["spare"]

    occupy(uow, spare, vcpu=6, status="running")  # 2 free on "spare"
    occupy(uow, pricier, vcpu=12, status="running")  # 4 free on "pricier", none on "cheap"
    with pytest.raises(InvalidInput) as exc:
        place(uow, ResourceSpec(12, 4, 40))
    assert exc.value.errors.keys() == {"vcpu"}
    assert "taken by other deployments" in exc.value.message
    assert "the most free on one node is 4" in exc.value.message


def test_gpu_capacity(db, uow):
    p = add_provider(uow)
    gpu = add_node(uow, p, "gpu", gpu_model="A100", gpu_count=2)
    add_node(uow, p, "plain", factor=50)
    assert names(place(uow, ResourceSpec(2, 4, 40, "A100", 2))) == ["gpu"]
    occupy(uow, gpu, vcpu=1, gpus=1)
    with pytest.raises(InvalidInput) as exc:
        place(uow, ResourceSpec(2, 4, 40, "A100", 2))
    assert "gpu_count" in exc.value.errors and "A100" in exc.value.message


def test_maintenance_window_over_the_next_hour_excludes_a_node(db, uow):
    p = add_provider(uow)
    soon = add_node(uow, p, "maintenance-soon", factor=50)
    now_in = add_node(uow, p, "in-maintenance-now", factor=60)
    later = add_node(uow, p, "maintenance-later", factor=70)
    cancelled = add_node(uow, p, "maintenance-cancelled", factor=80)
    past = add_node(uow, p, "maintenance-over", factor=90)
    now = utcnow()
    add_maintenance(uow, p, [soon], now + timedelta(minutes=30), now + timedelta(hours=3))
    add_maintenance(uow, p, [now_in], now - timedelta(hours=1), now + timedelta(minutes=10))
    add_maintenance(uow, p, [later], now + timedelta(hours=2), now + timedelta(hours=4))
    add_maintenance(uow, p, [cancelled], now, now + timedelta(hours=4), status="cancelled")
    add_maintenance(uow, p, [past], now - timedelta(hours=3), now - timedelta(hours=1))

    assert names(place(uow)) == ["maintenance-later"]
    chosen = names(place(uow, ResourceSpec(2, 4, 40, replicas=3)))
    assert set(chosen) == {"maintenance-later", "maintenance-cancelled", "maintenance-over"}


def test_replicas_spread_across_nodes_and_providers(db, uow):
    big = add_provider(uow, "Big")
    for k in range(4):  # the four cheapest nodes all belong to one provider
        add_node(uow, big, f"big-{k}", factor=50)
    other_a, other_b = add_provider(uow, "A"), add_provider(uow, "B")
    add_node(uow, other_a, "a-0", factor=90)
    add_node(uow, other_b, "b-0", factor=100)

    placed = place(uow, ResourceSpec(2, 4, 40, replicas=3))
    assert [p.slot for p in placed] == [0, 1, 2]
    assert len({p.node_id for p in placed}) == 3
    assert {p.provider_name for p in placed} == {"Big", "A", "B"}
    assert placed[0].node_name.startswith("big-")  # the cheapest first

    # More replicas than providers: still one node per replica, providers repeat.
    placed = place(uow, ResourceSpec(2, 4, 40, replicas=5))
    assert len({p.node_id for p in placed}) == 5
    assert {p.provider_name for p in placed} == {"Big", "A", "B"}

    # More replicas than nodes with room: no fit, and it says so.
    with pytest.raises(InvalidInput) as exc:
        place(uow, ResourceSpec(2, 4, 40, replicas=7))
    assert "replicas" in exc.value.errors
    assert "Only 6 node(s)" in exc.value.message


def test_backup_vm_goes_to_another_provider(db, uow):
    cheap = add_provider(uow, "Cheap")
    add_node(uow, cheap, "cheap-0", factor=50)
    add_node(uow, cheap, "cheap-1", factor=50)
    dear = add_provider(uow, "Dear")
    add_node(uow, dear, "dear-0", factor=150)

    placed = place(uow, ResourceSpec(2, 4, 40, replicas=1, backup_enabled=True))
    replica, backup = placed
    assert (replica.role, replica.provider_name) == ("replica", "Cheap")
    assert (backup.role, backup.slot, backup.provider_name) == ("backup", -1, "Dear")
    assert "backup VM" in backup.reason

    # Two replicas and a backup over two providers: the replicas share one provider, the backup has the other.
    placed = place(uow, ResourceSpec(2, 4, 40, replicas=2, backup_enabled=True))
    replicas = [p for p in placed if p.role == "replica"]
    backup = next(p for p in placed if p.role == "backup")
    assert len({p.node_id for p in placed}) == 3
    assert backup.provider_id not in {p.provider_id for p in replicas}


def test_backup_without_a_second_provider_does_not_fit(db, uow):
    only = add_provider(uow, "Only")
    add_node(uow, only, "only-0")
    add_node(uow, only, "only-1")
    with pytest.raises(InvalidInput) as exc:
        place(uow, ResourceSpec(2, 4, 40, replicas=1, backup_enabled=True))
    assert "backup_enabled" in exc.value.errors
    assert "another provider" in exc.value.message


def test_ranking_price_then_uptime_then_free_capacity(db, uow):
    # One node per provider, so the spread does not reorder anything: slots follow the ranking.
    now = utcnow()
    nodes = {}
    for name, factor, vcpu, (up, down) in [
        ("reliable-roomy", 90, 64, (99, 1)),
        ("reliable", 90, 32, (99, 1)),
        ("flaky", 90, 64, (50, 50)),
        ("no-history", 90, 128, (0, 0)),
        ("cheapest-flaky", 80, 16, (10, 90)),
        ("dear-perfect", 120, 128, (100, 0)),
    ]:
        nodes[name] = add_node(uow, add_provider(uow), name, factor=factor, vcpu=vcpu)
        if up or down:
            add_metrics(uow, nodes[name], online=up, offline=down, now=now)

    placed = place(uow, ResourceSpec(2, 4, 40, replicas=6), now=now)
    assert names(placed) == ["cheapest-flaky", "reliable-roomy", "reliable", "flaky", "no-history", "dear-perfect"]
    by_name = {p.node_name: p for p in placed}
    assert by_name["reliable"].uptime_pct == 99.0
    assert by_name["no-history"].uptime_pct is None
    assert "no uptime history yet" in by_name["no-history"].reason
    assert "99.0% uptime" in by_name["reliable-roomy"].reason


def test_a_node_that_went_silent_ranks_by_the_time_it_was_up(db, uow):
    """Uptime counts 5-minute slots since the first report: slots without any report count as down."""
    now = utcnow()
    steady = add_node(uow, add_provider(uow), "steady", factor=90, vcpu=16)
    silent = add_node(uow, add_provider(uow), "went-silent", factor=90, vcpu=64)
    add_metrics(uow, steady, online=240, offline=0, now=now)
    # Reported online every 5 minutes for 10 hours, then nothing for 10 hours, then back a moment ago.
    add_metrics(uow, silent, online=120, offline=0, now=now - timedelta(hours=10))
    add_metrics(uow, silent, online=1, offline=0, now=now)

    first, second = place(uow, ResourceSpec(2, 4, 40, replicas=2), now=now)
    assert (first.node_name, first.uptime_pct) == ("steady", 100.0)
    assert second.node_name == "went-silent" and 49 < second.uptime_pct < 51  # 121 of 241 slots
