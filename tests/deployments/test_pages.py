"""AppTest of the launcher and My deployments, signed in as the seeded demo user Uma."""

from __future__ import annotations

import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1.element_tree import Selectbox, _format_value_for_widget

from dashboard import fmt
from services.db.engine import UnitOfWork
from services.deployments import service as deployments
from services.deployments.models import Deployment
from services.nodes import simulator
from tests.deployments.fleet import counts
from tests.support.apptest import app_as, texts
from tests.support.people import demo_identity

UMA = dict(sub="demo:user", email="uma@user.demo", name="Uma User")
LAUNCH = "pages/user_launch.py"
MINE = "pages/user_deployments.py"


def _typed_selectbox_state(self):
    """What the browser sends for a selectbox that accepts new options: the typed text when it is no option.

    AppTest's Selectbox can only send one of its options; the launcher's region box also accepts
    typed text (st.selectbox(accept_new_options=True)), which the frontend sends as the raw string.
    """
    ws = WidgetState()
    ws.id = self.id
    formatted = _format_value_for_widget(self.format_func, self.value) if self.value is not None else None
    if formatted is not None:
        ws.string_value = formatted
    return ws


@pytest.fixture(autouse=True)
def _fleet_alive(seeded_sqlite):
    """The seeded nodes' heartbeats are minutes old by now: refresh them as demo mode's fleet simulator does."""
    simulator.tick(UnitOfWork())


def uma():
    return demo_identity(UnitOfWork(), "demo:user")


def captions(at) -> list[str]:
    return [str(c.value) for c in at.caption]


def fill(at, **values):
    for field, value in values.items():
        widget = {
            "name": at.text_input,
            "image": at.text_input,
            "workload": at.selectbox,
            "gpu_model": at.selectbox,
            "region": at.selectbox,
            "backup": at.toggle,
        }.get(field, at.number_input)
        widget(key=f"launch_{field}").set_value(value)
    return at.run()


def status_of(deployment_id: int) -> str:
    uow = UnitOfWork()
    with uow:
        return uow.session.get(Deployment, deployment_id).status


# --- launcher -----------------------------------------------------------------------------------------


def test_launcher_shows_the_live_price_and_preview(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **UMA, page=LAUNCH)
    assert not at.exception
    assert "Launch a deployment" in texts(at)
    request = dict(workload="ubuntu-vm", vcpu=2, ram_gb=4, disk_gb=40)
    estimate = deployments.estimate(UnitOfWork(), uma(), request)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Per hour"] == fmt.money(estimate.price_per_hour_cents)
    assert metrics["Per month"] == fmt.money(estimate.price_per_hour_cents * 730)
    assert "platform fee of 10%" in texts(at)

    # Choosing a template fills its sizes; the price follows.
    fill(at, workload="gpu-notebook")
    assert at.number_input(key="launch_vcpu").value == 8
    assert at.selectbox(key="launch_gpu_model").value == "A100"
    gpu = deployments.estimate(
        UnitOfWork(),
        uma(),
        dict(workload="gpu-notebook", vcpu=8, ram_gb=32, disk_gb=200, gpu_model="A100", gpu_count=1),
    )
    assert {m.label: m.value for m in at.metric}["Per hour"] == fmt.money(gpu.price_per_hour_cents)

    fill(at, workload="ubuntu-vm", replicas=2)
    at.button(key="launch_preview").click().run()
    assert "Where it would run" in texts(at)
    two = deployments.estimate(UnitOfWork(), uma(), dict(request, replicas=2))
    preview = at.dataframe[0].value
    assert list(preview["Node"]) == [p.node_name for p in two.placement]
    assert list(preview["Why"]) == [p.reason for p in two.placement]


def test_launching_from_the_catalog_creates_the_deployment_at_the_price_shown(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **UMA, page=LAUNCH)
    fill(at, name="page-web", replicas=2)
    shown = {m.label: m.value for m in at.metric}["Per hour"]
    before = deployments.list_own(UnitOfWork(), uma()).total

    at.button(key="launch_go").click().run()

    assert not at.exception
    created = [r for r in deployments.list_own(UnitOfWork(), uma(), search="page-web").rows if r.name == "page-web"]
    assert len(created) == 1 and deployments.list_own(UnitOfWork(), uma()).total == before + 1
    assert fmt.money(created[0].price_per_hour_cents) == shown
    assert created[0].replicas == 2 and created[0].status == "pending"
    assert any("page-web" in s.value and "launched" in s.value for s in at.success)
    assert at.text_input(key="launch_name").value == ""  # ready for the next one


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (dict(vcpu=0), "vcpu", "vCPU must be at least 1."),
        (dict(ram_gb=0), "ram_gb", "RAM (GB) must be at least 1."),
        (dict(vcpu=100_000), "vcpu", "vCPU must be at most 256 (the marketplace's limit)."),
        (dict(vcpu=10**12), "vcpu", "vCPU must be at most 1,000,000."),
        (dict(disk_gb=2_000_000), "disk_gb", "Disk must be at most 65,536 GB (the marketplace's limit)."),
        (dict(ram_gb=5000), "ram_gb", "RAM must be at most 2,048 GB (the marketplace's limit)."),
        (dict(replicas=0), "replicas", "Replicas must be at least 1."),
        (dict(region="mars-1"), "region", "Unknown region 'mars-1'"),
        (dict(vcpu=200), "vcpu", "Not enough vCPU in any region"),
        (dict(name="Bad Name"), "name", "lowercase letters"),
        (dict(workload="custom"), "image", "needs an image reference"),
    ],
)
def test_each_bad_input_shows_its_message_keeps_the_values_and_creates_nothing(
    seeded_sqlite, monkeypatch, values, field, message
):
    at = app_as(monkeypatch, **UMA, page=LAUNCH)
    values = {"name": "bad-input-test"} | values
    region = values.pop("region", None)
    if region:  # typed into the region box (it accepts new text), as a person would
        monkeypatch.setattr(Selectbox, "_widget_state", property(_typed_selectbox_state))
        at.session_state["launch_region"] = region
    fill(at, **values)
    before = counts(UnitOfWork())

    at.button(key="launch_go").click().run()

    assert not at.exception
    assert any(message in c for c in captions(at)), captions(at)  # the message under its field
    assert any(message in e.value for e in at.error)  # and in the summary by the button
    assert counts(UnitOfWork()) == before
    for key, value in values.items():  # what was typed stays
        widget = {"name": at.text_input, "workload": at.selectbox}.get(key, at.number_input)
        assert widget(key=f"launch_{key}").value == value
    if region:
        assert at.selectbox(key="launch_region").value == region


def test_a_name_already_taken_is_refused(seeded_sqlite, monkeypatch):
    taken = deployments.list_own(UnitOfWork(), uma()).rows[0].name
    at = app_as(monkeypatch, **UMA, page=LAUNCH)
    fill(at, name=taken)
    before = counts(UnitOfWork())
    at.button(key="launch_go").click().run()
    assert any(f"You already have a deployment named '{taken}'" in c for c in captions(at))
    assert counts(UnitOfWork()) == before
    assert at.text_input(key="launch_name").value == taken


# --- My deployments ----------------------------------------------------------------------------------------


def test_my_deployments_lists_mine_with_cost_and_nodes(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **UMA, page=MINE)
    assert not at.exception
    mine = deployments.list_own(UnitOfWork(), uma(), limit=20)
    table = at.dataframe[0].value
    assert list(table["Name"]) == [r.name for r in mine.rows]
    assert list(table["Cost so far"]) == [r.cost_so_far_cents / 100 for r in mine.rows]
    assert any(r.cost_so_far_cents for r in mine.rows)
    assert f"{mine.total:,} deployments" in texts(at)
    # The detail of the first one: spec, placement, events.
    first = mine.rows[0]
    assert at.selectbox(key="deps_detail").value == first.id
    assert {m.label: m.value for m in at.metric}["Price per hour"] == fmt.money(first.price_per_hour_cents)
    assert "Placement" in texts(at) and "Events" in texts(at)


def test_stop_start_scale_delete_each_after_a_confirmation(seeded_sqlite, monkeypatch):
    running = deployments.list_own(UnitOfWork(), uma(), statuses=["running"]).rows[0]
    at = app_as(monkeypatch, **UMA, page=MINE)
    at.selectbox(key="deps_detail").set_value(running.id).run()

    at.button(key="ask_stop").click().run()
    assert f"Stop {running.name}?" in texts(at)
    assert status_of(running.id) == "running"  # nothing happens before the confirmation
    at.button(key="confirm_no").click().run()
    assert status_of(running.id) == "running"

    at.button(key="ask_stop").click().run()
    at.button(key="confirm_yes").click().run()
    assert status_of(running.id) == "stopped"
    assert f"{running.name} is stopped." in texts(at)

    at.button(key="ask_start").click().run()
    at.button(key="confirm_yes").click().run()
    assert status_of(running.id) == "pending"

    at.number_input(key=f"scale_to_{running.id}").set_value(running.replicas + 1).run()
    at.button(key="ask_scale").click().run()
    assert f"to {running.replicas + 1} replica(s)?" in texts(at)
    at.button(key="confirm_yes").click().run()
    assert deployments.get_own(UnitOfWork(), uma(), running.id).replicas == running.replicas + 1

    at.button(key="ask_delete").click().run()
    at.button(key="confirm_yes").click().run()
    assert status_of(running.id) == "deleted"
    kinds = [e.kind for e in deployments.get_own(UnitOfWork(), uma(), running.id).events]
    assert kinds[-4:] == ["stopped", "started", "scaled", "deleted"]


def test_another_persons_deployment_is_refused(seeded_sqlite, monkeypatch):
    uow = UnitOfWork()
    with uow:
        other = (
            uow.session.query(Deployment)
            .filter(Deployment.owner_user_id != uma().user_id, Deployment.status == "running")
            .first()
        )
        other_id = other.id
    # A deep link to someone else's deployment shows "no such deployment" and no actions.
    at = app_as(monkeypatch, **UMA, page=MINE)
    at.query_params["deployment"] = str(other_id)
    at.run()
    assert any(f"No such deployment: {other_id}" in e.value for e in at.error)
    assert not [b for b in at.button if b.key in ("ask_stop", "ask_start", "ask_delete", "ask_scale")]
    assert status_of(other_id) == "running"

    # Someone else at the same browser mid-confirmation: the action is refused, nothing changes.
    mine = deployments.list_own(UnitOfWork(), uma(), statuses=["running"]).rows[0]
    at = app_as(monkeypatch, **UMA, page=MINE)
    at.selectbox(key="deps_detail").set_value(mine.id).run()
    at.button(key="ask_stop").click().run()
    at.user = dict(at.user.to_dict() if hasattr(at.user, "to_dict") else at.user) | {
        "sub": "auth0|mallory",
        "email": "mallory@example.com",
    }
    at.run()
    assert not at.exception
    assert not [b for b in at.button if b.key == "confirm_yes"]  # the pending confirmation is gone
    assert mine.name not in texts(at)
    assert status_of(mine.id) == "running"
