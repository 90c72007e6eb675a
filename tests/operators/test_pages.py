"""AppTest of the operator pages, signed in as the seeded operator Olivia (and refused to everyone else)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from dashboard import fmt
from services.audit.models import AuditEntry
from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.nodes.models import Node
from services.pricing import service as pricing
from services.pricing.models import PricingVersion
from services.providers import service as providers
from services.providers.models import Provider, ProviderRequest
from services.settings import service as settings
from services.settings.models import OperatorSetting
from tests.operators.helpers import OLIVIA, count, omar
from tests.operators.test_overview_service import expected_kpis
from tests.support.apptest import app_as, texts
from tests.support.people import demo_identity

UMA = dict(sub="demo:user", email="uma@user.demo")
PRIYA = dict(sub="demo:provider", email="priya@provider.demo")
PAGES = [
    "pages/operator_overview.py",
    "pages/operator_pricing.py",
    "pages/operator_requests.py",
    "pages/operator_settings.py",
    "pages/operator_audit.py",
]


def _button(at, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} in {[b.label for b in at.button]}"
    return matches[0]


def _field_messages(at) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def _errors(at) -> str:
    return "\n".join(str(e.value) for e in at.error)


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("who", [UMA, PRIYA], ids=["user", "provider"])
def test_non_operators_are_refused(seeded_sqlite, monkeypatch, page, who):
    at = app_as(monkeypatch, **who, page=page)
    assert not at.exception
    assert "Not allowed" in _errors(at)
    assert not at.metric and not at.dataframe and not at.text_input


# --------------------------------------------------------------------------- Overview


def test_overview_kpis_equal_what_the_database_says(seeded_sqlite, monkeypatch):
    uow = UnitOfWork()
    with uow:  # seeded online nodes report now, so none goes stale between the page and the check
        uow.session.execute(update(Node).where(Node.status == "online").values(last_heartbeat_at=utcnow()))
        uow.commit()
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_overview.py")
    assert not at.exception
    olivia = demo_identity(UnitOfWork(), "demo:operator")
    want = expected_kpis(UnitOfWork(), olivia.timezone, utcnow())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Revenue this month"] == fmt.money(want["revenue"])
    assert metrics["Platform fees this month"] == fmt.money(want["fees"])
    assert metrics["Monthly run rate"] == fmt.money(want["run_rate"])
    assert metrics["Provider requests waiting"] == f"{want['pending']:,}"
    assert metrics["Users"] == f"{want['users']:,}"
    assert metrics["Providers"] == f"{want['providers']:,}"
    assert metrics["Nodes online"] == f"{want['nodes_online']:,} / {want['nodes_total']:,}"
    assert metrics["Running deployments"] == f"{want['by_status']['running']:,}"
    assert metrics["Failed deployments"] == f"{want['by_status']['failed']:,}"
    assert len(at.get("plotly_chart")) == 3


# --------------------------------------------------------------------------- Pricing


def _versions() -> list[tuple[int, int]]:
    uow = UnitOfWork()
    with uow:
        return [
            (v, r)
            for v, r in uow.session.execute(
                select(PricingVersion.version, PricingVersion.vcpu_hour_millicents).order_by(PricingVersion.version)
            )
        ]


def test_pricing_shows_the_rates_in_force_and_the_history(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_pricing.py")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["vCPU-hour"] == "$0.0125" and metrics["Platform fee"] == "10 %"
    assert at.text_input(key="pr_vcpu").value == "0.0125"
    history = at.dataframe[-1].value
    assert list(history["Version"]) == [1]


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("pr_vcpu", "cheap", "is not a number"),
        ("pr_ram", "-0.5", "must not be negative"),
        ("pr_fee", "75", "between 0 % and 50 %"),
        ("pr_currency", "ZZZ", "not a supported ISO 4217"),
    ],
)
def test_pricing_bad_input_shows_its_message_keeps_the_typing_and_writes_nothing(
    seeded_sqlite, monkeypatch, key, value, message
):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_pricing.py")
    at.text_input(key=key).input(value)
    _button(at, "Preview the effect").click().run()
    assert not at.exception
    assert message in _field_messages(at)
    assert at.text_input(key=key).value == value
    assert not [b for b in at.button if b.label.startswith("Save as version")]
    assert _versions() == [(1, 1_250)]


def test_pricing_effective_time_in_the_past_is_refused(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_pricing.py")
    at.radio(key="pr_when").set_value("Later")
    at.date_input(key="pr_date").set_value((utcnow() - timedelta(days=2)).date())
    _button(at, "Preview the effect").click().run()
    _button(at, "Save as version 2").click().run()
    assert not at.exception
    assert "in the past" in _field_messages(at)
    assert _versions() == [(1, 1_250)]


def test_pricing_preview_then_save_creates_the_next_version(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_pricing.py")
    at.text_input(key="pr_vcpu").input("0.015")
    at.checkbox(key="pr_follow").check()
    _button(at, "Preview the effect").click().run()
    assert not at.exception
    preview = pricing.preview_impact(
        UnitOfWork(),
        demo_identity(UnitOfWork(), "demo:operator"),
        pricing.PricingInput(**{**pricing.DEFAULT_RATES, "vcpu_hour_millicents": 1_500, "running_follow": True}),
    )
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Running deployments"] == f"{preview.running:,}"
    assert metrics["Their monthly cost"] == fmt.money(preview.after_month_cents)
    assert "Running deployments follow" in texts(at)
    assert _versions() == [(1, 1_250)]  # previewing writes nothing

    _button(at, "Save as version 2").click().run()
    assert not at.exception
    assert "Version 2 saved, in force now." in texts(at)
    assert _versions() == [(1, 1_250), (2, 1_500)]
    assert list(at.dataframe[-1].value["Version"]) == [2, 1]
    assert at.text_input(key="pr_vcpu").value == "0.015"  # the form now starts from version 2


def test_pricing_second_editor_is_refused_with_who_and_when_and_can_reload(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_pricing.py")
    at.text_input(key="pr_vcpu").input("0.02")
    _button(at, "Preview the effect").click().run()
    # Meanwhile Omar saves version 2 from another browser.
    uow = UnitOfWork()
    pricing.save_version(
        uow, omar(uow), pricing.PricingInput(**{**pricing.DEFAULT_RATES, "vcpu_hour_millicents": 1_111}), 1
    )
    _button(at, "Save as version 2").click().run()
    assert not at.exception
    assert "changed by Omar Operator at" in _errors(at) and "reload" in _errors(at)
    assert _versions() == [(1, 1_250), (2, 1_111)]  # Omar's version stands
    _button(at, "Reload the latest prices").click().run()
    assert not at.exception
    assert at.text_input(key="pr_vcpu").value == "0.01111"
    assert "New version 3" in texts(at)


# --------------------------------------------------------------------------- Provider requests


def _andre_request() -> int:
    uow = UnitOfWork()
    with uow:
        return uow.session.scalar(
            select(ProviderRequest.id).where(
                ProviderRequest.status == "pending", ProviderRequest.company == "Applicant Hosting 1"
            )
        )


def test_requests_queue_shows_pending_applications_first(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_requests.py")
    assert not at.exception
    uow = UnitOfWork()
    pending = count(uow, ProviderRequest, ProviderRequest.status == "pending")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Waiting for review"] == f"{pending:,}"
    assert "Applicant Hosting 1" in texts(at) and "andre@applicant.demo" in texts(at)
    decided = at.dataframe[0].value
    assert len(decided) == count(uow, ProviderRequest, ProviderRequest.status != "pending")


def test_reject_without_a_note_shows_the_message_and_writes_nothing(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_requests.py")
    request_id = _andre_request()
    at.button(key=f"rq_reject_{request_id}").click().run()
    assert not at.exception
    assert "Say why" in _field_messages(at)
    uow = UnitOfWork()
    assert count(uow, ProviderRequest, ProviderRequest.id == request_id, ProviderRequest.status == "pending") == 1


def test_approve_and_reject_change_what_the_applicants_see(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_requests.py")
    uow = UnitOfWork()
    andre_id = _andre_request()
    providers_before = count(uow, Provider)
    at.text_area(key=f"rq_note_{andre_id}").input("Welcome aboard, Andre")
    at.button(key=f"rq_approve_{andre_id}").click().run()
    assert not at.exception
    assert "Approved Applicant Hosting 1" in texts(at)
    assert count(uow, Provider) == providers_before + 1
    andre = demo_identity(uow, "demo:applicant")
    assert providers.provider_for(uow, andre).company == "Applicant Hosting 1"

    other = next(r for r in at.text_area if r.key and r.key.startswith("rq_note_"))
    other_id = int(other.key.removeprefix("rq_note_"))
    other.input("Too small for now")
    at.button(key=f"rq_reject_{other_id}").click().run()
    assert not at.exception
    with uow:
        rejected = uow.session.get(ProviderRequest, other_id)
        assert (rejected.status, rejected.review_note) == ("rejected", "Too small for now")
    decided = at.dataframe[0].value
    assert "Too small for now" in list(decided["Note"])

    # Andre's own page shows him as a provider now.
    andre_at = app_as(monkeypatch, sub="demo:applicant", email="andre@applicant.demo", page="pages/provider_apply.py")
    assert "You are already a provider" in texts(andre_at)


# --------------------------------------------------------------------------- Settings


@pytest.mark.parametrize(
    "widget, key, value, message",
    [
        ("text_input", "st_marketplace_name", "", "at least 1 character"),
        ("text_area", "st_allowed_regions", "us-east\neu west!", "letters, digits and dashes"),
        ("number_input", "st_max_maintenance_hours", 0, "greater than or equal to 1"),
        ("text_input", "st_topup_min_cents", "lots", "is not an amount"),
        ("text_input", "st_topup_max_cents", "1.00", "below the minimum top-up"),
        ("number_input", "st_max_vcpu_per_deployment", 4, "GPU notebook needs 8 vCPU"),
    ],
)
def test_settings_bad_input_shows_its_message_and_writes_nothing(
    seeded_sqlite, monkeypatch, widget, key, value, message
):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_settings.py")
    element = getattr(at, widget)(key=key)
    element.set_value(value) if widget == "number_input" else element.input(value)  # submitted with the form
    _button(at, "Save settings").click().run()
    assert not at.exception
    assert message in _field_messages(at)
    assert getattr(at, widget)(key=key).value == value  # the form keeps what was typed
    uow = UnitOfWork()
    assert count(uow, OperatorSetting) == 0 and count(uow, AuditEntry) == 0


def test_settings_save_changes_and_each_change_is_in_the_audit_log(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_settings.py")
    at.text_input(key="st_marketplace_name").input("Nimbus Market")
    at.text_area(key="st_allowed_regions").input("us-east\neu-west\nsa-east")
    at.text_input(key="st_low_balance_threshold_cents").input("25.00")
    _button(at, "Save settings").click().run()
    assert not at.exception
    assert "Settings saved" in texts(at)
    current = settings.get(UnitOfWork())
    assert current.marketplace_name == "Nimbus Market"
    assert current.allowed_regions == ["us-east", "eu-west", "sa-east"]
    assert current.low_balance_threshold_cents == 2_500

    audit_at = app_as(monkeypatch, **OLIVIA, page="pages/operator_audit.py")
    assert not audit_at.exception
    table = audit_at.dataframe[0].value
    assert set(table["Id"]) == {"marketplace_name", "allowed_regions", "low_balance_threshold_cents"}
    changes = " ".join(table["Change (old → new)"])
    assert 'marketplace_name: "Cloud Marketplace" → "Nimbus Market"' in changes
    assert "low_balance_threshold_cents: 1000 → 2500" in changes
    assert set(table["Who"]) == {"olivia@operator.demo"}


def test_settings_stale_editor_is_refused_and_can_reload(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_settings.py")
    uow = UnitOfWork()
    settings.update(uow, omar(uow), {"marketplace_name": "Omar's Market"}, expected_versions={})
    at.text_input(key="st_marketplace_name").input("Olivia's Market")
    _button(at, "Save settings").click().run()
    assert not at.exception
    assert "changed by Omar Operator" in _errors(at)
    assert settings.get(uow).marketplace_name == "Omar's Market"
    _button(at, "Reload the saved settings").click().run()
    assert at.text_input(key="st_marketplace_name").value == "Omar's Market"


# --------------------------------------------------------------------------- Audit log


def test_audit_log_filters_by_action_and_pages_in_sql(seeded_sqlite, monkeypatch):
    uow = UnitOfWork()
    olivia = demo_identity(uow, "demo:operator")
    for n in range(3):
        settings.update(uow, olivia, {"max_replicas": 20 + n})
    pricing.save_version(uow, olivia, pricing.PricingInput(**pricing.DEFAULT_RATES), 1)
    at = app_as(monkeypatch, **OLIVIA, page="pages/operator_audit.py")
    assert not at.exception
    assert len(at.dataframe[0].value) == 4
    at.selectbox(key="au_action").select("pricing.version_created").run()
    table = at.dataframe[0].value
    assert list(table["Action"]) == ["pricing.version_created"] and list(table["Id"]) == ["2"]
    at.selectbox(key="au_action").select("settings.updated").run()
    table = at.dataframe[0].value
    assert "max_replicas: 21 → 22" in table["Change (old → new)"].iloc[0]  # newest first
    with uow:
        total = uow.session.scalar(select(func.count(AuditEntry.id)))
    assert total == 4
