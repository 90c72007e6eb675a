"""Versioned pricing: effective times, validation, optimistic concurrency, the cost-impact preview, audit."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from services.auth.permissions import Role
from services.db.base import utcnow
from services.deployments.models import Deployment, DeploymentPlacement
from services.errors import Conflict, InvalidInput, PermissionDenied
from services.nodes.models import Node
from services.pricing import service as pricing
from services.pricing.models import PricingVersion
from services.pricing.service import (
    HOURS_PER_MONTH,
    PricingInput,
    ResourceSpec,
    instance_hour_millicents,
    platform_fee_cents,
    quote,
)
from tests.operators.helpers import audit_rows, olivia, omar, versions
from tests.support.people import make_person


def rates(**changes) -> PricingInput:
    data = {k: v for k, v in pricing.DEFAULT_RATES.items()}
    data.update(changes)
    return PricingInput(**data)


def test_first_version_on_an_empty_marketplace(db, uow):
    op = make_person(uow, Role.OPERATOR)
    assert pricing.latest_version(uow, op) is None
    saved = pricing.save_version(uow, op, rates(note="Opening prices"), expected_version=0)
    assert (saved.version, saved.state, saved.created_by) == (1, "in force", op.name)
    with uow:
        assert pricing.current(uow.session).vcpu_hour_millicents == pricing.DEFAULT_RATES["vcpu_hour_millicents"]


def test_a_future_version_is_not_in_force_until_its_time(seeded_db, uow):
    op = olivia(uow)
    start = utcnow() + timedelta(hours=2)
    saved = pricing.save_version(uow, op, rates(vcpu_hour_millicents=2_000, effective_at=start), expected_version=1)
    assert saved.state == "scheduled"
    with uow:
        assert pricing.current(uow.session).version == 1
        assert pricing.current(uow.session, start - timedelta(seconds=1)).version == 1
        assert pricing.current(uow.session, start).version == 2
        assert pricing.current(uow.session, start).vcpu_hour_millicents == 2_000
    history, total = pricing.list_versions(uow, op)
    assert total == 2
    assert [(v.version, v.state) for v in history] == [(2, "scheduled"), (1, "in force")]
    assert pricing.in_force_version(uow, op).version == 1
    assert pricing.latest_version(uow, op).version == 2


def test_a_version_effective_now_replaces_the_one_in_force(seeded_db, uow):
    op = olivia(uow)
    pricing.save_version(uow, op, rates(platform_fee_bp=1_200), expected_version=1)
    history, _ = pricing.list_versions(uow, op)
    assert [(v.version, v.state) for v in history] == [(2, "in force"), (1, "superseded")]
    with uow:
        assert pricing.current(uow.session).platform_fee_bp == 1_200


@pytest.mark.parametrize(
    "effective, message",
    [
        (-timedelta(hours=1), "in the past"),
        (timedelta(days=400), "within a year"),
    ],
)
def test_effective_times_out_of_range_are_refused(seeded_db, uow, effective, message):
    op = olivia(uow)
    with pytest.raises(InvalidInput) as err:
        pricing.save_version(uow, op, rates(effective_at=utcnow() + effective), expected_version=1)
    assert message in err.value.errors["effective_at"]
    assert len(versions(uow)) == 1


def test_a_new_version_cannot_take_effect_before_a_scheduled_one(seeded_db, uow):
    op = olivia(uow)
    pricing.save_version(uow, op, rates(effective_at=utcnow() + timedelta(days=2)), expected_version=1)
    with pytest.raises(InvalidInput) as err:
        pricing.save_version(uow, op, rates(vcpu_hour_millicents=1), expected_version=2)
    assert "Version 2 takes effect" in err.value.errors["effective_at"]
    assert len(versions(uow)) == 2


@pytest.mark.parametrize(
    "form, field, message",
    [
        (dict(vcpu_hour="-0.01"), "vcpu_hour_millicents", "must not be negative"),
        (dict(vcpu_hour="101"), "vcpu_hour_millicents", "at most 100.00 USD per vCPU-hour"),
        (dict(vcpu_hour="cheap"), "vcpu_hour_millicents", "is not a number"),
        (dict(ram_gb_hour=""), "ram_gb_hour_millicents", "enter a price per GB-hour"),
        (dict(disk_gb_month="0.000001"), "disk_gb_month_millicents", "at most 5 decimal places"),
        (dict(gpu_hour={"A100": "-1"}), "gpu_hour_millicents", "A100: must not be negative"),
        (dict(gpu_hour={"A100": "abc"}), "gpu_hour_millicents", "A100"),
        (dict(gpu_hour={"bad/model!": "1"}), "gpu_hour_millicents", "letters, digits"),
        (dict(platform_fee_pct="50.01"), "platform_fee_bp", "between 0 % and 50 %"),
        (dict(platform_fee_pct="-1"), "platform_fee_bp", "between 0 % and 50 %"),
        (dict(platform_fee_pct="10.005"), "platform_fee_bp", "at most 2 decimal places"),
        (dict(term_discount_pct="75"), "term_discount_bp", "between 0 % and 50 %"),
        (dict(currency="US"), "currency", "three-letter ISO 4217"),
        (dict(currency="XYZ"), "currency", "not a supported ISO 4217"),
        (dict(currency="JPY"), "currency", "not a supported ISO 4217"),
    ],
)
def test_each_bad_form_value_is_refused_with_its_field_message(seeded_db, uow, form, field, message):
    values = dict(
        currency="USD",
        vcpu_hour="0.0125",
        ram_gb_hour="0.003",
        disk_gb_month="0.08",
        gpu_hour={"A100": "1.10"},
        platform_fee_pct="10",
        term_discount_pct="15",
        running_follow=False,
        effective_at=None,
    )
    values.update(form)
    with pytest.raises(InvalidInput) as err:
        pricing.input_from_form(**values)
    assert message in err.value.errors[field]
    assert len(versions(uow)) == 1


def test_the_form_turns_amounts_into_exact_millicents(seeded_db, uow):
    data = pricing.input_from_form(
        currency="eur",
        vcpu_hour="$0.01234",
        ram_gb_hour="0.003",
        disk_gb_month="0.085",
        gpu_hour={"H100 ": "1,000"},
        platform_fee_pct="12.5",
        term_discount_pct="0",
        running_follow=True,
        effective_at=None,
    )
    assert data.currency == "EUR"
    assert data.vcpu_hour_millicents == 1_234
    assert data.disk_gb_month_millicents == 8_500
    assert data.gpu_hour_millicents == {"H100": 100_000_000}  # the maximum, $1,000 per GPU-hour
    assert data.platform_fee_bp == 1_250 and data.running_follow is True


def test_the_service_validates_api_input_too(seeded_db, uow):
    with pytest.raises(InvalidInput) as err:
        pricing.save_version(
            uow, olivia(uow), {**pricing.DEFAULT_RATES, "ram_gb_hour_millicents": -5, "platform_fee_bp": 9_000}, 1
        )
    assert set(err.value.errors) == {"ram_gb_hour_millicents", "platform_fee_bp"}
    assert len(versions(uow)) == 1


def test_two_editors_the_second_is_refused_and_nothing_is_overwritten(seeded_db, uow):
    olivia_op, omar_op = olivia(uow), omar(uow)
    loaded_by_olivia = pricing.latest_version(uow, olivia_op).version
    loaded_by_omar = pricing.latest_version(uow, omar_op).version
    pricing.save_version(uow, omar_op, rates(vcpu_hour_millicents=1_500, note="Omar"), expected_version=loaded_by_omar)
    with pytest.raises(Conflict) as err:
        pricing.save_version(
            uow, olivia_op, rates(vcpu_hour_millicents=9_999, note="Olivia"), expected_version=loaded_by_olivia
        )
    assert "changed by Omar Operator at" in err.value.message and "reload" in err.value.message
    assert err.value.extra["latest_version"] == 2
    stored = versions(uow)
    assert [(v.version, v.vcpu_hour_millicents, v.note) for v in stored][-1] == (2, 1_500, "Omar")
    assert len(stored) == 2
    assert len(audit_rows(uow, "pricing.version_created")) == 1


def test_a_save_racing_past_the_check_is_refused_by_the_unique_version(seeded_db, uow, monkeypatch):
    """Both editors read version 1 before either wrote: the unique version number refuses the second insert."""
    olivia_op, omar_op = olivia(uow), omar(uow)
    with uow:
        stale = uow.session.scalar(select(PricingVersion).where(PricingVersion.version == 1))
    pricing.save_version(uow, omar_op, rates(vcpu_hour_millicents=1_500), expected_version=1)
    monkeypatch.setattr(pricing, "_latest_row", lambda session: session.merge(stale, load=False))
    with pytest.raises(Conflict) as err:
        pricing.save_version(uow, olivia_op, rates(vcpu_hour_millicents=9_999), expected_version=1)
    assert "changed by Omar Operator" in err.value.message
    assert [v.vcpu_hour_millicents for v in versions(uow)] == [1_250, 1_500]


def test_concurrent_saves_from_the_same_version_exactly_one_wins(seeded_db, uow):
    people = [olivia(uow), omar(uow)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def save(person, rate):
        from services.db.engine import UnitOfWork

        barrier.wait()
        try:
            pricing.save_version(UnitOfWork(seeded_db), person, rates(vcpu_hour_millicents=rate), expected_version=1)
            outcomes.append("saved")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(p, r)) for p, r in zip(people, (1_400, 1_600), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["conflict", "saved"]
    assert [v.version for v in versions(uow)] == [1, 2]


def test_saving_is_audited_with_old_and_new_values(seeded_db, uow):
    op = olivia(uow)
    pricing.save_version(uow, op, rates(vcpu_hour_millicents=1_300, note="Cheaper"), expected_version=1)
    [entry] = audit_rows(uow, "pricing.version_created")
    assert entry.actor_label == op.email and entry.object_id == "2" and entry.note == "Cheaper"
    assert entry.old["version"] == 1 and entry.old["vcpu_hour_millicents"] == 1_250
    assert entry.new["version"] == 2 and entry.new["vcpu_hour_millicents"] == 1_300


def test_only_operators_see_or_change_pricing(seeded_db, uow):
    user = make_person(uow)
    for call in (
        lambda: pricing.list_versions(uow, user),
        lambda: pricing.save_version(uow, user, rates(), expected_version=1),
        lambda: pricing.preview_impact(uow, user, rates()),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert len(versions(uow)) == 1


def _running_deployments(uow) -> list[tuple]:
    """Each running deployment with the price factors of the nodes its instances run on (row by row)."""
    with uow:
        s = uow.session
        out = []
        for d in s.scalars(select(Deployment).where(Deployment.status == "running")):
            factors = s.scalars(
                select(Node.price_factor_pct)
                .join(DeploymentPlacement, DeploymentPlacement.node_id == Node.id)
                .where(DeploymentPlacement.deployment_id == d.id)
            ).all()
            spec = ResourceSpec(d.vcpu, d.ram_gb, d.disk_gb, d.gpu_model, d.gpu_count, d.replicas, d.backup_enabled)
            out.append((d.workload, d.price_per_hour_cents, spec, list(factors) or [100], d.platform_fee_bp))
        return out


def _price_at(spec: ResourceSpec, version: PricingVersion, factors: list[int]) -> int:
    """What launching on nodes with these factors charges per hour: instances summed, rounded once."""
    return (sum(instance_hour_millicents(spec, version, f) for f in factors) + 500) // 1000


@pytest.mark.parametrize("follow", [True, False])
def test_preview_prices_every_running_deployment(seeded_db, uow, follow):
    new = rates(
        vcpu_hour_millicents=2_000,
        ram_gb_hour_millicents=450,
        gpu_hour_millicents={"A100": 150_000, "L4": 50_000},
        platform_fee_bp=1_500,
        running_follow=follow,
    )
    preview = pricing.preview_impact(uow, olivia(uow), new)
    running = _running_deployments(uow)
    new_version = PricingVersion(id=0, version=0, **new.rates())
    now = sum(r[1] for r in running)
    new_prices = [_price_at(spec, new_version, factors) for _w, _p, spec, factors, _bp in running]
    at_new = sum(new_prices)
    changed = sum(1 for r, p in zip(running, new_prices, strict=True) if p != r[1])
    fees_now = sum(platform_fee_cents(r[1], r[4]) for r in running)
    fees_new = sum(platform_fee_cents(p, 1_500) for p in new_prices)
    assert running and preview.running == len(running)
    assert preview.before_month_cents == now * HOURS_PER_MONTH
    assert preview.at_new_rates_month_cents == at_new * HOURS_PER_MONTH
    assert preview.fees_before_month_cents == fees_now * HOURS_PER_MONTH
    assert at_new > now
    if follow:
        assert preview.after_month_cents == at_new * HOURS_PER_MONTH
        assert preview.fees_after_month_cents == fees_new * HOURS_PER_MONTH
        assert preview.affected == changed > 0
        assert "follow" in preview.explanation
    else:
        assert preview.after_month_cents == preview.before_month_cents
        assert preview.fees_after_month_cents == preview.fees_before_month_cents
        assert preview.affected == 0
        assert "keep their launch price" in preview.explanation
    by_workload = {w.workload: w for w in preview.by_workload}
    for workload in {r[0] for r in running}:
        mine = [(r, p) for r, p in zip(running, new_prices, strict=True) if r[0] == workload]
        assert by_workload[workload].deployments == len(mine)
        assert by_workload[workload].before_month_cents == sum(r[1] for r, _p in mine) * HOURS_PER_MONTH
        assert by_workload[workload].at_new_rates_month_cents == sum(p for _r, p in mine) * HOURS_PER_MONTH
    assert sum(w.deployments for w in preview.by_workload) == len(running)
    ubuntu = next(c for c in preview.catalog if c.workload == "ubuntu-vm")
    assert ubuntu.after_month_cents == quote(ResourceSpec(2, 4, 40), new_version).price_per_month_cents
    assert len(versions(uow)) == 1  # a preview writes nothing


def test_preview_on_a_marketplace_without_deployments(db, uow):
    op = make_person(uow, Role.OPERATOR)
    preview = pricing.preview_impact(uow, op, rates())
    assert (preview.running, preview.affected, preview.before_month_cents, preview.after_month_cents) == (0, 0, 0, 0)
    assert all(c.before_month_cents is None for c in preview.catalog)
