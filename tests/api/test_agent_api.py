"""Node agent endpoints over HTTP, end to end through the API only: an operator opens a region, a provider
registers a node there, its agent reports, a user launches into the region, the agent sees the
assignment and reports it running, and the user sees it running."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from services.auth.permissions import Role
from services.nodes import service as nodes
from tests.support.api import assert_problem, field_names

SAMPLE = {"cpu_pct": 31.5, "ram_pct": 62.0, "disk_pct": 48.2, "net_in_mbps": 12.5, "net_out_mbps": 3.25}


_regions = itertools.count(1)


@pytest.fixture
def region(api) -> str:
    """A region only this test's node serves, opened by an operator through the API."""
    operator = api.as_(api.person(Role.OPERATOR))
    current = operator.get("/v1/operator/settings").json()
    name = f"agent-test-{next(_regions)}"
    regions = current["settings"]["allowed_regions"] + [name]
    r = operator.put("/v1/operator/settings", json={"changes": {"allowed_regions": regions}})
    assert r.status_code == 200, r.text
    return name


@pytest.fixture
def provider_node(api, region):
    provider = api.provider()
    c = api.as_(provider)
    r = c.post(
        "/v1/provider/nodes",
        json={"name": "edge-1", "region": region, "country": "NL", "vcpu": 16, "ram_gb": 64, "disk_gb": 500},
    )
    assert r.status_code == 201, r.text
    return provider, c, r.json()["node"]["id"], r.json()["token"]


def test_heartbeats_bring_the_node_online_and_store_metrics(api, provider_node):
    _provider, c, node_id, token = provider_node
    agent = api.client(token)
    ts = datetime.now(UTC).replace(microsecond=0).isoformat()
    first = agent.post("/v1/agent/heartbeat", json={"ts": ts, "metrics": SAMPLE, "agent_version": "1.0"})
    assert first.status_code == 200, first.text
    assert first.json()["node_id"] == node_id and first.json()["status"] == "online"
    assert first.json()["metrics_recorded"] is True
    again = agent.post("/v1/agent/heartbeat", json={"ts": ts, "metrics": SAMPLE})
    assert again.status_code == 200 and again.json()["metrics_recorded"] is False  # a retry is stored once
    listed = {n["id"]: n for n in c.get("/v1/provider/nodes").json()["items"]}
    assert listed[node_id]["status"] == "online" and listed[node_id]["last_heartbeat_at"]


def test_agent_endpoints_refuse_missing_wrong_and_person_tokens(api, provider_node):
    _provider, _c, _node_id, _token = provider_node
    person_jwt = api.token_for(api.person())
    for client in (api.client(), api.client("cmn_" + "x" * 43), api.client(person_jwt)):
        assert_problem(client.post("/v1/agent/heartbeat", json={}), 401, "not-authenticated")
        assert_problem(client.get("/v1/agent/assignments"), 401, "not-authenticated")
        assert_problem(
            client.post("/v1/agent/deployments/1/status", json={"status": "running"}), 401, "not-authenticated"
        )


def test_bad_heartbeats_are_422_naming_the_field(api, provider_node):
    _provider, _c, _node_id, token = provider_node
    agent = api.client(token)
    for body, field in [
        ({"metrics": {**SAMPLE, "cpu_pct": 150}}, "metrics.cpu_pct"),
        ({"metrics": {**SAMPLE, "ram_pct": "full"}}, "metrics.ram_pct"),
        ({"status": "on fire"}, "status"),
        ({"ts": "2001-01-01T00:00:00Z"}, "ts"),
    ]:
        assert field in field_names(assert_problem(agent.post("/v1/agent/heartbeat", json=body), 422, "invalid-input"))
    newer_agent = agent.post("/v1/agent/heartbeat", json={"metrics": {**SAMPLE, "gpu_pct": 5}, "uptime_s": 10})
    assert newer_agent.status_code == 200  # fields this server does not know are ignored, not refused
    big = {"metrics": SAMPLE, "agent_version": "x" * 2_000_000}
    assert_problem(agent.post("/v1/agent/heartbeat", json=big), 413, "request-too-large")


def test_assignment_to_running_end_to_end_and_the_owner_sees_it(api, provider_node, region):
    _provider, _c, node_id, token = provider_node
    agent = api.client(token)
    assert agent.post("/v1/agent/heartbeat", json={"metrics": SAMPLE}).status_code == 200
    user = api.as_(api.person())
    launched = user.post(
        "/v1/deployments",
        json={"name": "edge-app", "workload": "ubuntu-vm", "vcpu": 2, "ram_gb": 4, "disk_gb": 40, "region": region},
    )
    assert launched.status_code == 201, launched.text
    deployment_id = launched.json()["id"]

    assignments = agent.get("/v1/agent/assignments").json()
    assert [(a["deployment_id"], a["desired_state"], a["status"]) for a in assignments["items"]] == [
        (deployment_id, "running", "pending")
    ]
    assert assignments["next_cursor"] is None and assignments["items"][0]["image"] == "ubuntu:24.04"

    report = agent.post(f"/v1/agent/deployments/{deployment_id}/status", json={"status": "running"})
    assert report.status_code == 200 and report.json() == {
        "deployment_id": deployment_id,
        "status": "running",
        "changed": True,
    }
    seen = user.get(f"/v1/deployments/{deployment_id}").json()
    assert seen["status"] == "running" and seen["started_at"]
    assert seen["events"][-1]["actor"] == f"node:{node_id}" and seen["events"][-1]["kind"] == "started"

    # the owner stops it: the node learns it should stop, and cannot claim it is running again
    user.post(f"/v1/deployments/{deployment_id}/stop")
    assert agent.get("/v1/agent/assignments").json()["items"][0]["desired_state"] == "stopped"
    conflict = agent.post(f"/v1/agent/deployments/{deployment_id}/status", json={"status": "running"})
    assert_problem(conflict, 409, "conflict")
    same = agent.post(f"/v1/agent/deployments/{deployment_id}/status", json={"status": "stopped"})
    assert same.status_code == 200 and same.json()["changed"] is False


def test_status_reports_for_deployments_elsewhere_or_without_a_reason_are_refused(api, provider_node):
    _provider, _c, _node_id, token = provider_node
    agent = api.client(token)
    assert_problem(agent.post("/v1/agent/deployments/1/status", json={"status": "stopped"}), 404, "not-found")
    body = assert_problem(agent.post("/v1/agent/deployments/1/status", json={"status": "failed"}), 422, "invalid-input")
    assert "reason" in field_names(body)
    body = assert_problem(
        agent.post("/v1/agent/deployments/1/status", json={"status": "exploded"}), 422, "invalid-input"
    )
    assert "status" in field_names(body)
    assert "cursor" in field_names(assert_problem(agent.get("/v1/agent/assignments?cursor=e30"), 422, "invalid-input"))


def test_a_decommissioned_node_is_refused(api, provider_node):
    provider, _c, node_id, token = provider_node
    agent = api.client(token)
    assert agent.post("/v1/agent/heartbeat", json={}).status_code == 200
    nodes.decommission(api.uow(), provider, node_id)  # the Nodes page's action (no API endpoint in the issue)
    refused = agent.post("/v1/agent/heartbeat", json={"metrics": SAMPLE})
    assert refused.status_code in (401, 403)
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert agent.get("/v1/agent/assignments").status_code in (401, 403)
