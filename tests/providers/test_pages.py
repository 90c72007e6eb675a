"""AppTest of the provider pages (Nodes, Maintenance, Become a provider) and the Notifications inbox."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from services.db.base import utcnow
from services.db.engine import UnitOfWork
from services.maintenance.models import MaintenanceWindow, MaintenanceWindowNode
from services.nodes.models import Node
from services.nodes.tokens import find_node_by_token, hash_token
from services.notifications.models import Notification
from services.providers.models import ProviderRequest
from tests.providers.helpers import active_deployments_by_node, count, nodes_of
from tests.support.apptest import app_as, texts

PRIYA = dict(sub="demo:provider", email="priya@provider.demo")
MAX = dict(sub="demo:multi", email="max@multi.demo")
ANDRE = dict(sub="demo:applicant", email="andre@applicant.demo")
UMA = dict(sub="demo:user", email="uma@user.demo")
PRIYA_TZ = ZoneInfo("America/New_York")  # the seed gives Priya this timezone


def _button(at, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} in {[b.label for b in at.button]}"
    return matches[0]


def _tab_table(at, label: str):
    tab = next(t for t in at.tabs if t.label == label)
    return tab.dataframe[0].value


def _field_messages(at) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def _provider_id(subject: str) -> int:
    from services.providers.models import Provider
    from services.users.models import User

    uow = UnitOfWork()
    with uow:
        return uow.session.scalar(
            select(Provider.id).join(User, User.id == Provider.owner_user_id).where(User.subject == subject)
        )


# --------------------------------------------------------------------------- Nodes


def _register_tab(at):
    """Open the "Register a node" tab (its form is built only while it is open)."""
    at.session_state["nodes_tab"] = "Register a node"
    return at.run()


def test_nodes_page_shows_only_the_providers_own_nodes_with_details(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **PRIYA, page="pages/provider_nodes.py")
    assert not at.exception
    assert "Stratus Compute 1" in texts(at)
    own = nodes_of(UnitOfWork(), _provider_id("demo:provider"))
    table = at.dataframe[0].value
    assert sorted(table["Name"]) == sorted(n.name for n in own)
    assert not any(name.startswith("node-2-") for name in table["Name"])
    picker = at.selectbox(key="node_detail")
    assert picker.value in {n.id for n in own}
    assert len(picker.options) == len([n for n in own if n.status != "decommissioned"])
    assert all(option.startswith("node-1-") for option in picker.options)
    metrics = {m.label for m in at.metric}
    assert {"Status", "Last heartbeat", "Uptime (30 days)", "Active deployments"} <= metrics
    assert "Deployments placed on" in texts(at)
    assert not [w for w in at.text_input if str(w.key).startswith("reg_")]  # the hidden form is not built
    assert _register_tab(at).text_input(key="reg_name_0").value == ""


def test_register_a_node_shows_the_token_once_and_stores_its_hash(seeded_sqlite, monkeypatch):
    at = _register_tab(app_as(monkeypatch, **PRIYA, page="pages/provider_nodes.py"))
    at.text_input(key="reg_name_0").input("edge-ber-01")
    at.selectbox(key="reg_region_0").select("eu-central")
    at.selectbox(key="reg_country_0").select("DE")
    at.number_input(key="reg_vcpu_0").set_value(32)
    _button(at, "Register node").click().run()
    assert not at.exception
    assert len(at.code) == 1
    token = at.code[0].value
    assert token.startswith("cmn_")
    assert "will not be shown again" in texts(at)
    uow = UnitOfWork()
    with uow:
        node = uow.session.scalar(select(Node).where(Node.name == "edge-ber-01"))
        assert node.token_hash == hash_token(token) and node.vcpu == 32 and node.country == "DE"
    assert "edge-ber-01" in list(at.dataframe[0].value["Name"])
    # The register form is empty again.
    assert at.text_input(key="reg_name_1").value == ""

    _button(at, "I have saved the token").click().run()
    assert len(at.code) == 0 and "will not be shown again" not in texts(at)


def test_register_bad_input_shows_messages_keeps_values_and_writes_nothing(seeded_sqlite, monkeypatch):
    at = _register_tab(app_as(monkeypatch, **PRIYA, page="pages/provider_nodes.py"))
    before = count(UnitOfWork(), Node)
    # no region, no country, GPUs without a model, a bad name
    at.text_input(key="reg_name_0").input("bad name!")
    at.number_input(key="reg_gpu_count_0").set_value(2)
    _button(at, "Register node").click().run()
    assert not at.exception
    messages = _field_messages(at)
    assert "letters, digits" in messages
    assert at.error[0].value == "Please check: Name, Region, Country."
    assert "choose a region" in messages and "choose the node's country" in messages
    assert count(UnitOfWork(), Node) == before
    assert at.text_input(key="reg_name_0").value == "bad name!"  # kept
    assert len(at.code) == 0

    at.text_input(key="reg_name_0").input("ok-01")
    at.selectbox(key="reg_region_0").select("eu-west")
    at.selectbox(key="reg_country_0").select("IE")
    _button(at, "Register node").click().run()
    assert "name the GPU model" in _field_messages(at)
    assert at.number_input(key="reg_gpu_count_0").value == 2
    at.number_input(key="reg_gpu_count_0").set_value(0)
    at.number_input(key="reg_vcpu_0").set_value(0)
    _button(at, "Register node").click().run()
    assert "must be at least 1" in _field_messages(at)
    # A name Priya already uses.
    taken = nodes_of(UnitOfWork(), _provider_id("demo:provider"))[0].name
    at.number_input(key="reg_vcpu_0").set_value(8)
    at.text_input(key="reg_name_0").input(taken)
    _button(at, "Register node").click().run()
    assert f"already have a node named {taken}" in _field_messages(at)
    assert count(UnitOfWork(), Node) == before


def test_decommission_of_a_busy_node_is_refused_naming_its_deployments(seeded_sqlite, monkeypatch):
    pid = _provider_id("demo:provider")
    busy_id, deployments = next((n, d) for n, d in active_deployments_by_node(UnitOfWork(), pid).items() if d)
    at = app_as(monkeypatch, **PRIYA, page="pages/provider_nodes.py")
    at.selectbox(key="node_detail").set_value(busy_id).run()
    at.button(key="ask_decommission").click().run()
    assert "Decommission" in texts(at) and "retires the node for good" in texts(at)
    at.button(key="confirm_decommission").click().run()
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "cannot be decommissioned" in message
    from services.deployments.models import Deployment

    uow = UnitOfWork()
    with uow:
        names = uow.session.scalars(select(Deployment.name).where(Deployment.id.in_(deployments))).all()
        assert uow.session.get(Node, busy_id).status != "decommissioned"
    assert all(name in message for name in names)


def test_rotate_token_and_drain_with_confirmation(seeded_sqlite, monkeypatch):
    at = _register_tab(app_as(monkeypatch, **PRIYA, page="pages/provider_nodes.py"))
    at.text_input(key="reg_name_0").input("rot-01")
    at.selectbox(key="reg_region_0").select("eu-west")
    at.selectbox(key="reg_country_0").select("FR")
    _button(at, "Register node").click().run()
    old = at.code[0].value
    _button(at, "I have saved the token").click().run()
    uow = UnitOfWork()
    with uow:
        node_id = uow.session.scalar(select(Node.id).where(Node.name == "rot-01"))
    assert at.selectbox(key="node_detail").value == node_id

    at.button(key="ask_rotate").click().run()
    at.button(key="confirm_cancel").click().run()  # changed their mind: nothing happens
    with uow:
        assert find_node_by_token(uow.session, old) is not None
    at.button(key="ask_rotate").click().run()
    at.button(key="confirm_rotate").click().run()
    new = at.code[0].value
    assert new != old and "will not be shown again" in texts(at)
    with uow:
        assert find_node_by_token(uow.session, old) is None
        assert find_node_by_token(uow.session, new).id == node_id

    at.button(key="ask_drain").click().run()
    at.button(key="confirm_drain").click().run()
    assert "rot-01 is draining" in texts(at)
    with uow:
        assert uow.session.get(Node, node_id).status == "draining"


def test_another_provider_sees_none_of_priyas_nodes(seeded_sqlite, monkeypatch):
    priya_nodes = {n.id for n in nodes_of(UnitOfWork(), _provider_id("demo:provider"))}
    at = app_as(monkeypatch, **MAX, page="pages/provider_nodes.py")
    assert not at.exception
    assert not any(name.startswith("node-1-") for name in at.dataframe[0].value["Name"])
    assert not any(option.startswith("node-1-") for option in at.selectbox(key="node_detail").options)
    assert at.selectbox(key="node_detail").value not in priya_nodes


def test_a_plain_user_is_not_allowed_on_provider_pages(seeded_sqlite, monkeypatch):
    for page in ("pages/provider_nodes.py", "pages/provider_maintenance.py"):
        at = app_as(monkeypatch, **UMA, page=page)
        assert "Not allowed" in texts(at)
        assert not at.dataframe


# --------------------------------------------------------------------------- Maintenance


def _set_window(at, node_ids, start_local: datetime, end_local: datetime, reason: str, v: int = 0) -> None:
    at.multiselect(key=f"mw_nodes_{v}").set_value(node_ids)
    at.date_input(key=f"mw_start_date_{v}").set_value(start_local.date())
    at.time_input(key=f"mw_start_time_{v}").set_value(start_local.time())
    at.date_input(key=f"mw_end_date_{v}").set_value(end_local.date())
    at.time_input(key=f"mw_end_time_{v}").set_value(end_local.time())
    at.text_area(key=f"mw_reason_{v}").input(reason)


def _local_day(days: int, hour: int) -> datetime:
    d = (utcnow() + timedelta(days=days)).astimezone(PRIYA_TZ).date()
    return datetime.combine(d, time(hour, 0), tzinfo=PRIYA_TZ)


def test_maintenance_page_lists_the_seeded_windows(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **PRIYA, page="pages/provider_maintenance.py")
    assert not at.exception
    upcoming = _tab_table(at, "Upcoming")
    past = _tab_table(at, "Past")
    assert list(upcoming["Reason"]) == ["Kernel upgrade"]
    assert "Switch replacement" in list(past["Reason"])
    assert "at least 24 h notice" in texts(at) and "at most 12 h" in texts(at)


def test_schedule_preview_confirm_notifies_affected_users(seeded_sqlite, monkeypatch):
    pid = _provider_id("demo:provider")
    uow = UnitOfWork()
    with uow:
        covered = set(uow.session.scalars(select(MaintenanceWindowNode.node_id)))
    active = active_deployments_by_node(uow, pid)
    chosen = [n for n, deps in active.items() if deps and n not in covered][:2]
    assert chosen, "the seed places active deployments on the demo provider's nodes"
    at = app_as(monkeypatch, **PRIYA, page="pages/provider_maintenance.py")
    start, end = _local_day(3, 22), _local_day(4, 1)  # 22:00 to 01:00 New York time, across midnight
    _set_window(at, chosen, start, end, "Network switch firmware")
    _button(at, "Preview impact").click().run()
    assert not at.exception
    metrics = {}
    for m in at.metric:  # the preview comes first; the selected upcoming window's impact below it
        metrics.setdefault(m.label, m.value)
    expected_deps = set().union(*(active[n] for n in chosen))
    assert metrics["Deployments affected"] == str(len(expected_deps))
    users = int(metrics["Users to notify"])
    assert users >= 1
    assert count(uow, MaintenanceWindow) == 2  # nothing written by a preview

    _button(at, f"Confirm and notify {users} user{'s' if users != 1 else ''}").click().run()
    assert not at.exception
    assert f"{users} user" in texts(at) and "scheduled" in texts(at)
    with uow:
        window = uow.session.scalar(
            select(MaintenanceWindow).where(MaintenanceWindow.reason == "Network switch firmware")
        )
        assert window.starts_at == start.astimezone(UTC) and window.ends_at == end.astimezone(UTC)
        wid = window.id
    assert count(uow, Notification, Notification.dedupe_key.like(f"maintenance:{wid}:%")) == users
    assert "Network switch firmware" in list(_tab_table(at, "Upcoming")["Reason"])


def test_each_bad_window_shows_its_message_and_writes_nothing(seeded_sqlite, monkeypatch):
    uow = UnitOfWork()
    with uow:
        seeded = uow.session.scalar(select(MaintenanceWindow).where(MaintenanceWindow.reason == "Kernel upgrade"))
        seeded_start, seeded_id = seeded.starts_at, seeded.id
        covered = uow.session.scalar(
            select(MaintenanceWindowNode.node_id).where(MaintenanceWindowNode.window_id == seeded_id)
        )
        covered_name = uow.session.get(Node, covered).name
    at = app_as(monkeypatch, **PRIYA, page="pages/provider_maintenance.py")
    soon = (utcnow() + timedelta(hours=3)).astimezone(PRIYA_TZ).replace(minute=0, second=0, microsecond=0)
    overlap_start = (seeded_start + timedelta(hours=1)).astimezone(PRIYA_TZ)
    cases = [
        (_local_day(3, 10), _local_day(3, 9), "Patch", "The end must be after the start"),
        (_local_day(-1, 10), _local_day(-1, 11), "Patch", "in the past"),
        (soon, soon + timedelta(hours=1), "Patch", "at least 24 hours notice"),
        (_local_day(3, 6), _local_day(3, 20), "Patch", "at most 12 hours"),
        (overlap_start, overlap_start + timedelta(hours=2), "Patch", f"{covered_name} already has maintenance window"),
        (_local_day(3, 10), _local_day(3, 11), "", "needs at least 3 characters"),
    ]
    before = (count(uow, MaintenanceWindow), count(uow, Notification))
    for start, end, reason, message in cases:
        _set_window(at, [covered], start, end, reason)
        _button(at, "Preview impact").click().run()
        assert not at.exception
        assert message in _field_messages(at), (message, _field_messages(at))
        assert at.error
        assert not [b for b in at.button if b.label.startswith("Confirm")]  # no confirm without a clean preview
        assert at.text_area(key="mw_reason_0").value == reason  # kept
    at.multiselect(key="mw_nodes_0").set_value([])
    _button(at, "Preview impact").click().run()
    assert "choose at least one node" in _field_messages(at)
    assert (count(uow, MaintenanceWindow), count(uow, Notification)) == before


def test_cancel_an_upcoming_window_with_confirmation(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **PRIYA, page="pages/provider_maintenance.py")
    uow = UnitOfWork()
    with uow:
        wid = uow.session.scalar(select(MaintenanceWindow.id).where(MaintenanceWindow.reason == "Kernel upgrade"))
    assert at.selectbox(key="mw_selected").value == wid
    at.button(key="mw_ask_cancel").click().run()
    assert f"Cancel maintenance window #{wid}" in texts(at)
    at.button(key="mw_keep").click().run()
    with uow:
        assert uow.session.get(MaintenanceWindow, wid).status == "scheduled"
    at.button(key="mw_ask_cancel").click().run()
    at.button(key="mw_confirm_cancel").click().run()
    assert not at.exception
    assert f"Maintenance window #{wid} cancelled" in texts(at)
    with uow:
        assert uow.session.get(MaintenanceWindow, wid).status == "cancelled"
    assert "Kernel upgrade" in list(_tab_table(at, "Past")["Reason"])


def test_an_upcoming_windows_impact_is_shown_when_opened(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **PRIYA, page="pages/provider_maintenance.py")
    wid = at.selectbox(key="mw_selected").value
    assert "Deployments affected" not in {m.label for m in at.metric}  # closed: not looked up
    at.session_state[f"mw_impact_open_{wid}"] = True  # what expanding it does
    at.run()
    assert not at.exception
    assert {"Deployments affected", "Users to notify"} <= {m.label for m in at.metric}


def test_another_provider_sees_none_of_priyas_windows_or_nodes(seeded_sqlite, monkeypatch):
    priya_nodes = {n.id for n in nodes_of(UnitOfWork(), _provider_id("demo:provider"))}
    at = app_as(monkeypatch, **MAX, page="pages/provider_maintenance.py")
    assert not at.exception
    assert "Kernel upgrade" not in str([d.value for d in at.dataframe])
    assert "No upcoming windows." in texts(at) and "No past windows." in texts(at)
    assert not any(option.startswith("node-1-") for option in at.multiselect(key="mw_nodes_0").options)
    assert priya_nodes


# --------------------------------------------------------------------------- Become a provider


def test_applicant_sees_the_pending_application_and_no_form(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **ANDRE, page="pages/provider_apply.py")
    assert not at.exception
    assert "Your applications" in texts(at) and "An operator will review" in texts(at)
    assert not [b for b in at.button if b.label == "Submit application"]


def test_a_provider_is_told_they_already_are_one(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **PRIYA, page="pages/provider_apply.py")
    assert "You are already a provider" in texts(at) and "Stratus Compute 1" in texts(at)
    assert not [b for b in at.button if b.label == "Submit application"]


def test_application_form_validates_then_submits_and_shows_status(seeded_sqlite, monkeypatch):
    at = app_as(
        monkeypatch,
        sub="auth0|newcomer",
        email="nina@newcomer.example",
        name="Nina New",
        page="pages/provider_apply.py",
    )
    assert at.text_input(key="apply_contact_email").value == "nina@newcomer.example"
    before = count(UnitOfWork(), ProviderRequest)
    at.text_input(key="apply_company").input("Nina Nodes")
    at.text_input(key="apply_website").input("nina.example")
    at.text_area(key="apply_capacity").input("4 nodes")
    _button(at, "Submit application").click().run()
    assert not at.exception
    messages = _field_messages(at)
    assert "https://" in messages and "choose at least one" in messages
    assert count(UnitOfWork(), ProviderRequest) == before
    assert at.text_input(key="apply_company").value == "Nina Nodes"

    at.multiselect(key="apply_regions").set_value(["eu-west"])
    at.text_input(key="apply_contact_email").input("nope")
    at.text_input(key="apply_website").input("https://nina.example")
    _button(at, "Submit application").click().run()
    assert "email address" in _field_messages(at)
    assert count(UnitOfWork(), ProviderRequest) == before

    at.text_input(key="apply_contact_email").input("ops@nina.example")
    _button(at, "Submit application").click().run()
    assert not at.exception
    assert "Application for Nina Nodes submitted" in texts(at)
    assert "Nina Nodes" in texts(at) and "pending" in texts(at)
    assert not [b for b in at.button if b.label == "Submit application"]
    assert count(UnitOfWork(), ProviderRequest) == before + 1


# --------------------------------------------------------------------------- Notifications


def test_inbox_shows_unread_count_and_marks_all_read(seeded_sqlite, monkeypatch):
    at = app_as(monkeypatch, **UMA, page="pages/notifications.py")
    assert not at.exception
    assert at.title[0].value == "Notifications (1 unread)"
    assert "Planned maintenance in 3 days" in texts(at)
    at.button(key="notifications_mark_all").click().run()
    assert not at.exception
    assert at.title[0].value == "Notifications"
    assert "Marked 1 as read." in texts(at)
    assert at.button(key="notifications_mark_all").disabled
