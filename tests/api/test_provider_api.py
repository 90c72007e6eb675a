"""Providers over HTTP: apply, register nodes (token shown once), rotate tokens, maintenance windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.api import assert_problem, field_names

APPLICATION = {
    "company": "Nimbus Hosting",
    "contact_name": "Nora Nimbus",
    "contact_email": "ops@nimbus.example",
    "regions": ["eu-west", "us-east"],
    "expected_capacity": "20 nodes, 4 with GPUs",
    "website": "https://nimbus.example",
}
NODE = {"name": "api-node-1", "region": "eu-west", "country": "de", "vcpu": 16, "ram_gb": 64, "disk_gb": 500}


def test_a_user_applies_once_and_the_operator_sees_the_application(api):
    applicant = api.person()
    c = api.as_(applicant)
    r = c.post("/v1/provider/register", json=APPLICATION)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending" and r.json()["company"] == "Nimbus Hosting"
    assert_problem(c.post("/v1/provider/register", json=APPLICATION), 409, "conflict")
    queue = api.as_(api.person("cloud-operator")).get("/v1/operator/provider-requests?status=pending&limit=200")
    assert r.json()["id"] in [a["id"] for a in queue.json()["items"]]


def test_application_refusals_name_the_field(api):
    c = api.as_(api.person())
    for change, field in [
        ({"contact_email": "not-an-email"}, "contact_email"),
        ({"regions": []}, "regions"),
        ({"regions": ["mars-north"]}, "regions"),
        ({"website": "ftp://x"}, "website"),
        ({"company": ""}, "company"),
    ]:
        body = assert_problem(c.post("/v1/provider/register", json={**APPLICATION, **change}), 422, "invalid-input")
        assert field in field_names(body), (change, body)


def test_register_a_node_its_token_works_for_the_agent_and_rotation_retires_it(api):
    provider = api.as_(api.provider())
    r = provider.post("/v1/provider/nodes", json=NODE)
    assert r.status_code == 201, r.text
    node, token = r.json()["node"], r.json()["token"]
    assert node["country"] == "DE" and node["status"] == "offline" and token.startswith("cmn_")

    agent = api.client(token)
    assert agent.post("/v1/agent/heartbeat", json={"metrics": {"cpu_pct": 5, "ram_pct": 10, "disk_pct": 20}}).is_success
    listed = provider.get("/v1/provider/nodes").json()["items"]
    assert [(n["name"], n["status"]) for n in listed] == [("api-node-1", "online")]
    assert all("token" not in n for n in listed)

    rotated = provider.post(f"/v1/provider/nodes/{node['id']}/token")
    assert rotated.status_code == 200
    new_token = rotated.json()["token"]
    assert new_token != token
    assert_problem(agent.post("/v1/agent/heartbeat", json={}), 401, "not-authenticated")
    assert api.client(new_token).post("/v1/agent/heartbeat", json={}).is_success


def test_node_refusals_and_another_providers_node(api):
    mine, theirs = api.as_(api.provider()), api.as_(api.provider())
    node = mine.post("/v1/provider/nodes", json=NODE).json()["node"]
    body = assert_problem(mine.post("/v1/provider/nodes", json=NODE), 422, "invalid-input")  # same name again
    assert "name" in field_names(body)
    for change, field in [({"vcpu": 0}, "vcpu"), ({"region": "mars"}, "region"), ({"country": "XX"}, "country")]:
        body = assert_problem(
            mine.post("/v1/provider/nodes", json={**NODE, "name": "n2", **change}), 422, "invalid-input"
        )
        assert field in field_names(body)
    assert_problem(theirs.post(f"/v1/provider/nodes/{node['id']}/token"), 404, "not-found")
    assert theirs.get("/v1/provider/nodes").json()["items"] == []


def test_the_node_list_pages_with_a_cursor(api):
    c = api.as_(api.provider())
    for i in range(5):
        assert c.post("/v1/provider/nodes", json={**NODE, "name": f"paged-node-{i}"}).status_code == 201
    names, cursor = [], None
    while True:
        page = c.get("/v1/provider/nodes", params={"limit": 2} | ({"cursor": cursor} if cursor else {})).json()
        names += [n["name"] for n in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert names == [f"paged-node-{i}" for i in range(5)]


def _window(node_id: int, *, days: float = 3, hours: float = 2, reason: str = "kernel upgrade") -> dict:
    start = datetime.now(UTC) + timedelta(days=days)
    return {
        "node_ids": [node_id],
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=hours)).isoformat(),
        "reason": reason,
    }


def test_schedule_list_and_cancel_a_maintenance_window(api):
    c = api.as_(api.provider())
    node = c.post("/v1/provider/nodes", json=NODE).json()["node"]
    r = c.post("/v1/provider/maintenance", json=_window(node["id"]))
    assert r.status_code == 201, r.text
    window = r.json()["window"]
    assert window["phase"] == "upcoming" and window["node_names"] == ["api-node-1"]
    assert "impact" in r.json() and r.headers["location"].endswith(f"/api/v1/provider/maintenance/{window['id']}")
    upcoming = c.get("/v1/provider/maintenance?phase=upcoming").json()["items"]
    assert [w["id"] for w in upcoming] == [window["id"]]

    cancelled = c.delete(f"/v1/provider/maintenance/{window['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["window"]["status"] == "cancelled"
    assert_problem(c.delete(f"/v1/provider/maintenance/{window['id']}"), 409, "conflict")
    assert c.get("/v1/provider/maintenance?phase=upcoming").json()["items"] == []
    assert [w["id"] for w in c.get("/v1/provider/maintenance?phase=past").json()["items"]] == [window["id"]]


def test_maintenance_refusals_and_another_providers_window(api):
    mine, theirs = api.as_(api.provider()), api.as_(api.provider())
    node = mine.post("/v1/provider/nodes", json=NODE).json()["node"]
    ends_first = _window(node["id"], hours=-1)
    body = assert_problem(mine.post("/v1/provider/maintenance", json=ends_first), 422, "invalid-input")
    assert "ends_at" in field_names(body)
    body = assert_problem(
        mine.post("/v1/provider/maintenance", json=_window(node["id"], reason="")), 422, "invalid-input"
    )
    assert "reason" in field_names(body)
    body = assert_problem(
        mine.post("/v1/provider/maintenance", json={**_window(1), "node_ids": []}), 422, "invalid-input"
    )
    assert "node_ids" in field_names(body)
    assert mine.get("/v1/provider/maintenance?phase=upcoming").json()["items"] == []

    window = mine.post("/v1/provider/maintenance", json=_window(node["id"])).json()["window"]
    assert_problem(theirs.delete(f"/v1/provider/maintenance/{window['id']}"), 404, "not-found")
    assert_problem(theirs.post("/v1/provider/maintenance", json=_window(node["id"])), 404, "not-found")
    assert theirs.get("/v1/provider/maintenance?phase=upcoming").json()["items"] == []
