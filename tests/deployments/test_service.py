"""Deployments service on SQLite and PostgreSQL: price = stored = metered, validation, lifecycle, lists."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from services import metering
from services.audit.models import AuditEntry
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.deployments import placement
from services.deployments import service as deployments
from services.deployments.models import Deployment, DeploymentEvent, DeploymentPlacement
from services.errors import Conflict, InvalidInput, NotFound
from services.ledger import service as ledger
from services.ledger.models import LedgerAccount, LedgerEntry, LedgerTransaction, UsageCharge
from services.pricing import service as pricing_service
from services.pricing.service import HOURS_PER_MONTH, ResourceSpec, platform_fee_cents
from tests.deployments.fleet import add_node, add_pricing, add_provider, counts, occupy
from tests.support.people import demo_identity, make_person

UBUNTU = dict(workload="ubuntu-vm", vcpu=2, ram_gb=4, disk_gb=40)


@pytest.fixture(autouse=True)
def _fresh_uptime_cache():
    placement.clear_uptime_cache()
    yield


@pytest.fixture
def fleet(db, uow):
    """Three providers in eu-west with different price factors, one in us-east."""
    add_pricing(uow)
    a, b, c, d = (add_provider(uow, name) for name in ("Alpha", "Beta", "Gamma", "Delta"))
    return {
        "a0": add_node(uow, a, "a0", factor=90),
        "a1": add_node(uow, a, "a1", factor=90),
        "b0": add_node(uow, b, "b0", factor=110),
        "c0": add_node(uow, c, "c0", factor=125),
        "d0": add_node(uow, d, "d0", factor=100, region="us-east"),
    }


def _pricing(uow):
    """The pricing version in force, loaded and detached so it can be used after the transaction."""
    with uow:
        pricing = pricing_service.current(uow.session)
        uow.session.expunge(pricing)
        return pricing


def _status(uow, deployment_id):
    with uow:
        return uow.session.get(Deployment, deployment_id).status


# --- price -------------------------------------------------------------------------------------------


def test_estimate_equals_stored_price_and_one_metered_hour(fleet, uow):
    me = make_person(uow)
    request = dict(UBUNTU, region="eu-west", replicas=2, backup_enabled=True)

    estimate = deployments.estimate(uow, me, request)
    # Instances on nodes at 90 %, 110 % and 125 %: each priced at its node's factor, summed, rounded once.
    pricing = _pricing(uow)
    spec = ResourceSpec(2, 4, 40, replicas=2, backup_enabled=True)
    factors = [p.price_factor_pct for p in estimate.placement]
    assert sorted(factors) == [90, 110, 125]
    millicents = sum(pricing_service.instance_hour_millicents(spec, pricing, f) for f in factors)
    assert estimate.price_per_hour_cents == (millicents + 500) // 1000
    assert estimate.price_per_month_cents == estimate.price_per_hour_cents * HOURS_PER_MONTH
    assert estimate.platform_fee_per_hour_cents == platform_fee_cents(estimate.price_per_hour_cents, 1000)
    assert (
        estimate.provider_share_per_hour_cents == estimate.price_per_hour_cents - estimate.platform_fee_per_hour_cents
    )

    detail = deployments.launch(uow, me, dict(request, name="priced"))
    assert detail.price_per_hour_cents == estimate.price_per_hour_cents
    assert [p.node_id for p in detail.placements] == [p.node_id for p in estimate.placement]

    # One hour of metering, computed as metering computes it...
    charged = detail.price_per_hour_cents
    assert platform_fee_cents(charged, detail.platform_fee_bp) == estimate.platform_fee_per_hour_cents
    # ...and by the real metering tick, once the node agent reports the deployment running.
    with uow:
        uow.session.get(Deployment, detail.id).status = "running"
        acct = ledger.user_account(uow.session, me.user_id)
        stripe = ledger.system_account(uow.session, "external:stripe")
        ledger.post(
            uow.session,
            kind="topup",
            idempotency_key="test:topup",
            legs=[ledger.Leg(stripe.id, -10_000), ledger.Leg(acct.id, 10_000)],
        )
        uow.commit()
    metering.run_tick(uow, at=utcnow())
    with uow:
        usage = uow.session.scalars(select(UsageCharge).where(UsageCharge.deployment_id == detail.id)).one()
        assert (usage.amount_cents, usage.fee_cents) == (
            estimate.price_per_hour_cents,
            estimate.platform_fee_per_hour_cents,
        )
    assert deployments.get_own(uow, me, detail.id).cost_so_far_cents == estimate.price_per_hour_cents


def test_uniform_factors_price_exactly_like_pricing_quote(fleet, uow):
    me = make_person(uow)
    p = add_provider(uow, "Solo")
    add_node(uow, p, "solo-0", factor=80, region="ap-south")
    add_node(uow, p, "solo-1", factor=80, region="ap-south")
    pricing = _pricing(uow)
    for replicas, region, factor in [(1, "eu-west", 90), (2, "ap-south", 80)]:
        estimate = deployments.estimate(uow, me, dict(UBUNTU, region=region, replicas=replicas))
        spec = ResourceSpec(2, 4, 40, replicas=replicas)
        quote = pricing_service.quote(spec, pricing, factor)
        assert [p.price_factor_pct for p in estimate.placement] == [factor] * replicas
        assert estimate.price_per_hour_cents == quote.price_per_hour_cents
        assert estimate.platform_fee_per_hour_cents == quote.platform_fee_per_hour_cents
        assert estimate.list_price_per_hour_cents == pricing_service.quote(spec, pricing).price_per_hour_cents


def test_estimate_without_a_fit_shows_the_list_price_and_the_reason(fleet, uow):
    me = make_person(uow)
    estimate = deployments.estimate(uow, me, dict(UBUNTU, vcpu=64, region="eu-west"))
    assert estimate.placement == []
    assert estimate.placement_error_field == "vcpu"
    assert "vCPU" in estimate.placement_error and "eu-west" in estimate.placement_error
    assert estimate.price_per_hour_cents == estimate.list_price_per_hour_cents > 0


# --- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        (dict(name=""), "name", "Give the deployment a name"),
        (dict(name="Bad Name!"), "name", "lowercase letters"),
        (dict(workload="mainframe"), "workload", "Unknown workload"),
        (dict(workload="custom"), "image", "needs an image"),
        (dict(workload="custom", image="Not An Image"), "image", "image reference"),
        (dict(vcpu=0), "vcpu", "at least 1"),
        (dict(ram_gb=0), "ram_gb", "at least 1"),
        (dict(disk_gb=-5), "disk_gb", "at least 1"),
        (dict(vcpu=10**9), "vcpu", "at most"),
        (dict(vcpu=300), "vcpu", "marketplace's limit"),
        (dict(ram_gb=5000), "ram_gb", "marketplace's limit"),
        (dict(region="mars-1"), "region", "Unknown region"),
        (dict(replicas=0), "replicas", "at least 1"),
        (dict(replicas=11), "replicas", "at most 10"),
        (dict(gpu_count=1), "gpu_model", "Choose a GPU model"),
        (dict(gpu_count=1, gpu_model="Z80"), "gpu_model", "Unknown GPU model"),
        (dict(gpu_count=-1), "gpu_count", "negative"),
    ],
)
def test_bad_launch_input_is_refused_with_a_field_message_and_writes_nothing(fleet, uow, changes, field, words):
    me = make_person(uow)
    before = counts(uow)
    with pytest.raises(InvalidInput) as exc:
        deployments.launch(uow, me, dict(UBUNTU, name="web-1") | changes)
    assert field in exc.value.errors, exc.value.errors
    assert words in exc.value.errors[field]
    assert counts(uow) == before


def test_names_are_unique_per_owner_among_live_deployments(fleet, uow):
    me, other = make_person(uow), make_person(uow)
    first = deployments.launch(uow, me, dict(UBUNTU, name="web"))
    before = counts(uow)
    with pytest.raises(InvalidInput) as exc:
        deployments.launch(uow, me, dict(UBUNTU, name="web"))
    assert "already have a deployment named 'web'" in exc.value.errors["name"]
    assert counts(uow) == before
    deployments.launch(uow, other, dict(UBUNTU, name="web"))  # another person's namespace
    deployments.delete(uow, me, first.id)
    assert deployments.launch(uow, me, dict(UBUNTU, name="web")).status == "pending"  # a deleted name is free


def test_custom_workload_keeps_its_image_and_catalog_ones_use_the_template(fleet, uow):
    me = make_person(uow)
    custom = deployments.launch(uow, me, dict(UBUNTU, workload="custom", image="ghcr.io/acme/api:2.1", name="api"))
    assert custom.image == "ghcr.io/acme/api:2.1"
    vm = deployments.launch(uow, me, dict(UBUNTU, image="evil:latest", name="vm-1"))
    assert vm.image == "ubuntu:24.04"


# --- launch and lifecycle -----------------------------------------------------------------------------


def test_launch_writes_deployment_placements_events_and_audit(fleet, uow):
    me = make_person(uow)
    d = deployments.launch(uow, me, dict(UBUNTU, name="web", region="eu-west", replicas=2, backup_enabled=True))
    assert d.status == "pending"
    assert [(p.slot, p.role) for p in d.placements] == [(0, "replica"), (1, "replica"), (-1, "backup")]
    assert [e.kind for e in d.events] == ["created", "placed"]
    assert "per hour" in d.events[1].message
    with uow:
        entry = uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "deployment.launched")).one()
        assert entry.object_id == str(d.id) and entry.actor_user_id == me.user_id
        assert entry.new["price_per_hour_cents"] == d.price_per_hour_cents


def test_stop_start_delete_leave_events_and_audit(fleet, uow):
    me = make_person(uow)
    d = deployments.launch(uow, me, dict(UBUNTU, name="web"))
    assert deployments.stop(uow, me, d.id).status == "stopped"
    with pytest.raises(Conflict):
        deployments.stop(uow, me, d.id)
    started = deployments.start(uow, me, d.id)
    assert started.status == "pending"
    assert [p.node_id for p in started.placements] == [p.node_id for p in d.placements]  # room was still there
    assert deployments.delete(uow, me, d.id).status == "deleted"
    with pytest.raises(Conflict):
        deployments.start(uow, me, d.id)
    kinds = [e.kind for e in deployments.get_own(uow, me, d.id).events]
    assert kinds == ["created", "placed", "stopped", "started", "deleted"]
    with uow:
        actions = uow.session.scalars(
            select(AuditEntry.action).where(AuditEntry.object_id == str(d.id)).order_by(AuditEntry.id)
        ).all()
    assert actions == ["deployment.launched", "deployment.stopped", "deployment.started", "deployment.deleted"]


def test_start_moves_an_instance_whose_node_filled_up_meanwhile(fleet, uow):
    me = make_person(uow)
    d = deployments.launch(uow, me, dict(UBUNTU, vcpu=8, name="web", region="eu-west"))
    node = d.placements[0].node_id
    deployments.stop(uow, me, d.id)
    occupy(uow, node, vcpu=12)  # 4 of 16 left: our 8 no longer fit there
    started = deployments.start(uow, me, d.id)
    assert started.placements[0].node_id != node
    assert "moved" in started.events[-1].message
    assert started.price_per_hour_cents > 0


def test_start_refuses_when_nothing_has_room_and_stays_stopped(fleet, uow):
    me = make_person(uow)
    d = deployments.launch(uow, me, dict(UBUNTU, vcpu=16, name="web", region="eu-west"))
    deployments.stop(uow, me, d.id)
    for key in ("a0", "a1", "b0", "c0"):
        occupy(uow, fleet[key], vcpu=1)
    before = counts(uow)
    with pytest.raises(InvalidInput) as exc:
        deployments.start(uow, me, d.id)
    assert "vCPU" in exc.value.message and "eu-west" in exc.value.message
    assert _status(uow, d.id) == "stopped"
    assert counts(uow) == before


def test_scale_up_and_down_replaces_placements_and_reprices(fleet, uow):
    me = make_person(uow)
    d = deployments.launch(uow, me, dict(UBUNTU, name="web", region="eu-west"))
    up = deployments.scale_replicas(uow, me, d.id, 3)
    assert up.replicas == 3
    assert [p.slot for p in up.placements] == [0, 1, 2]
    assert len({p.node_id for p in up.placements}) == 3
    assert up.placements[0].node_id == d.placements[0].node_id  # the first replica stays put
    pricing = _pricing(uow)
    factors = [p.price_factor_pct for p in up.placements]
    assert (
        up.price_per_hour_cents
        == deployments.price_for_nodes(ResourceSpec(2, 4, 40), pricing, factors).price_per_hour_cents
    )
    down = deployments.scale_replicas(uow, me, d.id, 1)
    assert [p.slot for p in down.placements] == [0]
    assert down.price_per_hour_cents == d.price_per_hour_cents
    assert [e.kind for e in down.events][-2:] == ["scaled", "scaled"]
    with pytest.raises(InvalidInput):
        deployments.scale_replicas(uow, me, d.id, 1)  # already 1
    with pytest.raises(InvalidInput) as exc:
        deployments.scale_replicas(uow, me, d.id, 9)  # only 4 nodes in eu-west
    assert "replicas" in exc.value.errors
    with pytest.raises(InvalidInput):
        deployments.scale_replicas(uow, me, d.id, 0)


def test_another_persons_deployment_is_not_found(fleet, uow):
    owner, stranger = make_person(uow), make_person(uow)
    d = deployments.launch(uow, owner, dict(UBUNTU, name="mine"))
    before = counts(uow)
    for action in (
        lambda: deployments.get_own(uow, stranger, d.id),
        lambda: deployments.stop(uow, stranger, d.id),
        lambda: deployments.start(uow, stranger, d.id),
        lambda: deployments.delete(uow, stranger, d.id),
        lambda: deployments.scale_replicas(uow, stranger, d.id, 2),
    ):
        with pytest.raises(NotFound):
            action()
    assert counts(uow) == before
    assert _status(uow, d.id) == "pending"
    assert deployments.list_own(uow, stranger).total == 0


# --- lists (seeded data) ----------------------------------------------------------------------------------


def test_list_own_pages_filters_and_costs_from_the_ledger(seeded_db, uow):
    uma = demo_identity(uow, "demo:user")
    page = deployments.list_own(uow, uma, limit=5)
    with uow:
        s = uow.session
        live = s.scalar(
            select(func.count())
            .select_from(Deployment)
            .where(Deployment.owner_user_id == uma.user_id, Deployment.status != "deleted")
        )
        spent = dict(
            s.execute(
                select(LedgerTransaction.deployment_id, -func.sum(LedgerEntry.amount_cents))
                .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
                .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
                .where(LedgerTransaction.kind == "usage", LedgerAccount.user_id == uma.user_id)
                .group_by(LedgerTransaction.deployment_id)
            ).all()
        )
        placed = dict(
            s.execute(
                select(DeploymentPlacement.deployment_id, func.count()).group_by(DeploymentPlacement.deployment_id)
            ).all()
        )
    assert page.total == live and len(page.rows) == 5
    assert [r.created_at for r in page.rows] == sorted((r.created_at for r in page.rows), reverse=True)
    everything = deployments.list_own(uow, uma, statuses=["pending", "running", "stopped", "failed", "deleted"])
    assert everything.total > live
    rest = deployments.list_own(uow, uma, limit=5, offset=5)
    assert not {r.id for r in rest.rows} & {r.id for r in page.rows}
    beyond = deployments.list_own(uow, uma, limit=5, offset=live + 5)  # past the last page
    assert beyond.rows == [] and beyond.total == live
    rows = everything.rows
    assert any(r.cost_so_far_cents > 0 for r in rows)
    for r in rows:
        assert r.cost_so_far_cents == int(spent.get(r.id, 0))
        assert len([n for n in r.nodes.split(", ") if n]) == placed.get(r.id, 0)
    running = deployments.list_own(uow, uma, statuses=["running"])
    assert running.rows and {r.status for r in running.rows} == {"running"}
    by_name = deployments.list_own(uow, uma, search=rows[0].name, statuses=None)
    assert rows[0].name in {r.name for r in by_name.rows}
    assert [r.name for r in deployments.list_own(uow, uma, sort="name", descending=False, limit=500).rows] == sorted(
        r.name for r in deployments.list_own(uow, uma, limit=500).rows
    )
    with pytest.raises(InvalidInput):
        deployments.list_own(uow, uma, sort="owner")


def test_detail_has_events_and_cost_per_day(seeded_db, uow):
    uma = demo_identity(uow, "demo:user")
    charged = next(r for r in deployments.list_own(uow, uma, limit=500).rows if r.cost_so_far_cents)
    d = deployments.get_own(uow, uma, charged.id)
    assert d.events and d.events[0].kind == "created"
    assert sum(day.cost_cents for day in d.daily_costs) == d.cost_so_far_cents
    assert all(day.cost_cents > 0 for day in d.daily_costs)
    with uow:
        events = uow.session.scalar(
            select(func.count()).select_from(DeploymentEvent).where(DeploymentEvent.deployment_id == d.id)
        )
    assert len(d.events) == events


def test_two_launches_racing_for_the_last_room_place_only_one(db, uow):
    """Two people launch at the same moment onto a node with room for one: one launch gets it, the other is told."""
    add_pricing(uow)
    add_node(uow, add_provider(uow), "last-room", vcpu=4, ram_gb=8)
    people = [make_person(uow), make_person(uow)]
    barrier = threading.Barrier(2)
    results: list[object] = []

    def go(person):
        barrier.wait()
        try:
            results.append(deployments.launch(UnitOfWork(), person, dict(UBUNTU, vcpu=4, name="race")))
        except (InvalidInput, Conflict) as exc:
            results.append(exc)

    threads = [threading.Thread(target=go, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    launched = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(launched) == 1 and len(refused) == 1, results
    assert "vCPU" in str(refused[0]) or "capacity" in str(refused[0])
    with uow:
        assert uow.session.scalar(select(func.count()).select_from(DeploymentPlacement)) == 1
