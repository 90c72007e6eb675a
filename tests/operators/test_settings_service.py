"""Operator settings: each bad value refused with its field's message and nothing written, every change audited
with old and new values, and a stale editor refused instead of overwriting."""

from __future__ import annotations

import pytest

from services.audit.models import AuditEntry
from services.errors import Conflict, InvalidInput, PermissionDenied
from services.settings import service as settings
from services.settings.models import OperatorSetting
from tests.operators.helpers import audit_rows, count, olivia, omar
from tests.support.people import make_person

UBUNTU = settings.DEFAULT_CATALOG[0].model_dump()


def catalog(*rows: dict) -> list[dict]:
    return [t.model_dump() for t in settings.DEFAULT_CATALOG] + list(rows)


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"marketplace_name": ""}, "marketplace_name", "at least 1 character"),
        ({"marketplace_name": "x" * 81}, "marketplace_name", "at most 80"),
        ({"allowed_regions": []}, "allowed_regions", "at least one region"),
        ({"allowed_regions": ["us-east", "us-east"]}, "allowed_regions", "must not repeat"),
        ({"allowed_regions": ["eu west!"]}, "allowed_regions", "letters, digits and dashes"),
        ({"min_maintenance_notice_hours": -1}, "min_maintenance_notice_hours", "greater than or equal to 0"),
        ({"max_maintenance_hours": 0}, "max_maintenance_hours", "greater than or equal to 1"),
        ({"max_maintenance_hours": "twelve"}, "max_maintenance_hours", "valid integer"),
        ({"low_balance_threshold_cents": -1}, "low_balance_threshold_cents", "greater than or equal to 0"),
        ({"topup_min_cents": 10}, "topup_min_cents", "greater than or equal to 50"),
        ({"topup_min_cents": 5_000, "topup_max_cents": 1_000}, "topup_max_cents", "below the minimum top-up"),
        ({"max_replicas": 0}, "max_replicas", "greater than or equal to 1"),
        ({"max_replicas": 101}, "max_replicas", "less than or equal to 100"),
        ({"provider_applications_open": "maybe"}, "provider_applications_open", "valid boolean"),
        ({"workload_catalog": []}, "workload_catalog", "at least one workload"),
        ({"workload_catalog": catalog(UBUNTU)}, "workload_catalog", "ubuntu-vm repeats"),
        ({"workload_catalog": catalog({**UBUNTU, "key": "Big VM"})}, "workload_catalog", "row 5: key: use 2 to 41"),
        ({"workload_catalog": catalog({**UBUNTU, "key": "big", "vcpu": 0})}, "workload_catalog", "row 5: vCPU"),
        (
            {"workload_catalog": catalog({**UBUNTU, "key": "gpu", "gpu_count": 2})},
            "workload_catalog",
            "a GPU count needs a GPU model",
        ),
        (
            {"workload_catalog": catalog({**UBUNTU, "key": "huge", "vcpu": 300})},
            "workload_catalog",
            "above the per-deployment maximum of 256",
        ),
        ({"max_vcpu_per_deployment": 4}, "max_vcpu_per_deployment", "GPU notebook needs 8 vCPU"),
        ({"no_such_setting": 1}, "no_such_setting", "Unknown setting"),
    ],
)
def test_each_bad_value_is_refused_with_its_field_message_and_nothing_is_written(
    seeded_db, uow, changes, field, message
):
    before = settings.get(uow)
    with pytest.raises(InvalidInput) as err:
        settings.update(uow, olivia(uow), changes)
    assert message in err.value.errors[field], err.value.errors
    assert count(uow, OperatorSetting) == 0
    assert count(uow, AuditEntry) == 0
    assert settings.get(uow) == before


@pytest.mark.parametrize(
    "form, field, message",
    [
        ({"topup_min_cents": "five"}, "topup_min_cents", "is not an amount"),
        ({"topup_min_cents": "5.001"}, "topup_min_cents", "at most 2 decimal places"),
        ({"low_balance_threshold_cents": ""}, "low_balance_threshold_cents", "enter an amount"),
    ],
)
def test_form_amounts_are_refused_by_field_and_other_fields_are_checked_at_once(seeded_db, uow, form, field, message):
    with pytest.raises(InvalidInput) as err:
        settings.update_from_form(uow, olivia(uow), {**form, "max_replicas": 0})
    assert message in err.value.errors[field]
    assert "greater than or equal to 1" in err.value.errors["max_replicas"]
    assert count(uow, OperatorSetting) == 0


def test_form_values_are_converted_and_only_changes_are_saved(seeded_db, uow):
    current = settings.get(uow)
    form = {
        **current.model_dump(mode="json"),
        "allowed_regions": "us-east,\n eu-west\nsa-east",
        "topup_min_cents": "$7.50",
        "low_balance_threshold_cents": "1,000",
    }
    saved = settings.update_from_form(uow, olivia(uow), form)
    assert saved.allowed_regions == ["us-east", "eu-west", "sa-east"]
    assert (saved.topup_min_cents, saved.low_balance_threshold_cents) == (750, 100_000)
    assert {e.object_id for e in audit_rows(uow, "settings.updated")} == {
        "allowed_regions",
        "topup_min_cents",
        "low_balance_threshold_cents",
    }


def test_every_change_is_audited_with_who_old_and_new(seeded_db, uow):
    op = olivia(uow)
    new_catalog = catalog({**UBUNTU, "key": "big-vm", "name": "Big VM", "vcpu": 16, "ram_gb": 64})
    saved = settings.update(
        uow,
        op,
        {
            "marketplace_name": "Nimbus Market",
            "max_replicas": 12,
            "workload_catalog": new_catalog,
            "max_vcpu_per_deployment": 256,
        },
    )
    assert saved.marketplace_name == "Nimbus Market" and saved.workload_catalog[-1].key == "big-vm"
    entries = {e.object_id: e for e in audit_rows(uow, "settings.updated")}
    assert set(entries) == {"marketplace_name", "max_replicas", "workload_catalog"}  # the unchanged one is not saved
    assert entries["marketplace_name"].old == {"marketplace_name": "Cloud Marketplace"}
    assert entries["marketplace_name"].new == {"marketplace_name": "Nimbus Market"}
    assert entries["max_replicas"].old == {"max_replicas": 10} and entries["max_replicas"].new == {"max_replicas": 12}
    assert len(entries["workload_catalog"].new["workload_catalog"]) == len(settings.DEFAULT_CATALOG) + 1
    assert all(e.actor_label == op.email and e.actor_user_id == op.user_id for e in entries.values())
    assert settings.get(uow).marketplace_name == "Nimbus Market"
    states = settings.states(uow, op)
    assert states["marketplace_name"].version == 1 and states["marketplace_name"].updated_by == op.name
    assert states["topup_min_cents"].version == 0


def test_a_stale_editor_is_refused_and_the_newer_value_stays(seeded_db, uow):
    olivia_op, omar_op = olivia(uow), omar(uow)
    loaded_by_olivia = settings.versions(uow)
    settings.update(uow, omar_op, {"marketplace_name": "Omar's Market"}, expected_versions=settings.versions(uow))
    with pytest.raises(Conflict) as err:
        settings.update(uow, olivia_op, {"marketplace_name": "Olivia's Market"}, expected_versions=loaded_by_olivia)
    assert "changed by Omar Operator at" in err.value.message and "reload" in err.value.message
    assert "marketplace_name" in err.value.errors
    assert settings.get(uow).marketplace_name == "Omar's Market"
    # A different setting is not in conflict: it was not changed since Olivia loaded it.
    settings.update(uow, olivia_op, {"max_replicas": 5}, expected_versions=loaded_by_olivia)
    assert settings.get(uow).max_replicas == 5
    assert [e.object_id for e in audit_rows(uow, "settings.updated")] == ["marketplace_name", "max_replicas"]


def test_a_stored_value_that_no_longer_validates_falls_back_to_its_default(seeded_db, uow):
    with uow:
        uow.session.add(OperatorSetting(key="max_replicas", value=-3))
        uow.session.add(OperatorSetting(key="marketplace_name", value="Kept"))
        uow.commit()
    current = settings.get(uow)
    assert current.max_replicas == settings.MarketplaceSettings().max_replicas
    assert current.marketplace_name == "Kept"


def test_only_operators_change_settings(seeded_db, uow):
    user = make_person(uow)
    with pytest.raises(PermissionDenied):
        settings.update(uow, user, {"marketplace_name": "Mine"})
    with pytest.raises(PermissionDenied):
        settings.states(uow, user)
    assert settings.get(uow).marketplace_name == "Cloud Marketplace"
