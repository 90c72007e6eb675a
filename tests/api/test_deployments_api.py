"""A cloud user's deployments over HTTP: list with a cursor, launch, read, stop, start, delete."""

from __future__ import annotations

from tests.support.api import assert_problem, field_names

LAUNCH = {"name": "api-web-1", "workload": "ubuntu-vm", "vcpu": 2, "ram_gb": 4, "disk_gb": 40, "region": "any"}


def _launch(api, client, **changes) -> dict:
    api.refresh_fleet()
    r = client.post("/v1/deployments", json={**LAUNCH, **changes})
    assert r.status_code == 201, r.text
    return r.json()


def test_launch_then_read_stop_start_and_delete(api):
    me = api.person()
    c = api.as_(me)
    launched = _launch(api, c)
    assert launched["status"] == "pending" and launched["price_per_hour_cents"] > 0
    assert launched["placements"] and launched["placements"][0]["node_name"]
    assert [e["kind"] for e in launched["events"]][:2] == ["created", "placed"]

    detail = c.get(f"/v1/deployments/{launched['id']}")
    assert detail.status_code == 200 and detail.json()["name"] == "api-web-1"
    assert detail.json()["price_per_hour_cents"] == launched["price_per_hour_cents"]
    listed = c.get("/v1/deployments").json()["items"]
    assert [d["id"] for d in listed] == [launched["id"]]

    stopped = c.post(f"/v1/deployments/{launched['id']}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    assert_problem(c.post(f"/v1/deployments/{launched['id']}/stop"), 409, "conflict")

    api.refresh_fleet()
    started = c.post(f"/v1/deployments/{launched['id']}/start")
    assert started.status_code == 200 and started.json()["status"] == "pending"

    deleted = c.delete(f"/v1/deployments/{launched['id']}")
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert c.get("/v1/deployments").json()["items"] == []
    assert [d["id"] for d in c.get("/v1/deployments?status=deleted").json()["items"]] == [launched["id"]]


def test_launch_answers_201_with_the_new_deployments_address(api):
    c = api.as_(api.person())
    api.refresh_fleet()
    r = c.post("/v1/deployments", json={**LAUNCH, "name": "api-located"})
    assert r.status_code == 201
    assert r.headers["location"].endswith(f"/api/v1/deployments/{r.json()['id']}")
    assert c.get(r.headers["location"].split("/api", 1)[1]).json()["id"] == r.json()["id"]


def test_the_list_pages_with_a_cursor_without_gaps_or_repeats(api):
    me = api.person()
    c = api.as_(me)
    made = {_launch(api, c, name=f"paged-{i}", vcpu=1, ram_gb=1, disk_gb=10)["id"] for i in range(5)}
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, "sort": "name", "order": "asc"} | ({"cursor": cursor} if cursor else {})
        page = c.get("/v1/deployments", params=params).json()
        seen += [d["id"] for d in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen))
    names = [d["name"] for d in c.get("/v1/deployments", params={"sort": "name", "order": "asc"}).json()["items"]]
    assert names == sorted(names)


def test_launch_refusals_name_the_field_and_create_nothing(api):
    me = api.person()
    c = api.as_(me)
    _launch(api, c, name="taken-name")
    cases = [
        ({"name": "taken-name"}, "name"),
        ({"name": "UPPER case"}, "name"),
        ({"vcpu": 0}, "vcpu"),
        ({"ram_gb": 10**9}, "ram_gb"),
        ({"workload": "no-such-workload"}, "workload"),
        ({"region": "mars-north"}, "region"),
        ({"replicas": 0}, "replicas"),
        ({"unknown_field": 1}, "unknown_field"),
    ]
    for change, field in cases:
        r = c.post("/v1/deployments", json={**LAUNCH, "name": "fresh-name", **change})
        body = assert_problem(r, 422, "invalid-input")
        assert field in field_names(body), (change, body)
    assert [d["name"] for d in c.get("/v1/deployments").json()["items"]] == ["taken-name"]


def test_a_deployment_that_fits_nowhere_is_422_saying_what_was_short(api):
    c = api.as_(api.person())
    api.refresh_fleet()
    r = c.post("/v1/deployments", json={**LAUNCH, "name": "too-big", "vcpu": 250, "ram_gb": 2000, "disk_gb": 60000})
    body = assert_problem(r, 422, "invalid-input")
    assert body["errors"] and body["detail"]
    assert c.get("/v1/deployments").json()["items"] == []


def test_another_persons_deployment_cannot_be_seen_or_touched(api):
    owner, stranger = api.as_(api.person()), api.as_(api.person())
    mine = _launch(api, owner, name="private-one")
    for method, path in [
        ("GET", f"/v1/deployments/{mine['id']}"),
        ("POST", f"/v1/deployments/{mine['id']}/stop"),
        ("POST", f"/v1/deployments/{mine['id']}/start"),
        ("DELETE", f"/v1/deployments/{mine['id']}"),
    ]:
        assert_problem(stranger.request(method, path), 404, "not-found")
    assert owner.get(f"/v1/deployments/{mine['id']}").json()["status"] == "pending"
    assert stranger.get("/v1/deployments").json()["items"] == []
