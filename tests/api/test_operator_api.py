"""Operators over HTTP: settings and pricing with optimistic concurrency (409), provider-request review."""

from __future__ import annotations

from services.auth.permissions import Role
from tests.support.api import assert_problem, field_names

RATE_FIELDS = (
    "currency",
    "vcpu_hour_millicents",
    "ram_gb_hour_millicents",
    "disk_gb_month_millicents",
    "gpu_hour_millicents",
    "platform_fee_bp",
    "term_discount_bp",
)


def test_settings_change_and_a_stale_editor_gets_409(api):
    olivia, omar = api.as_(api.person(Role.OPERATOR)), api.as_(api.person(Role.OPERATOR))
    loaded_by_olivia = olivia.get("/v1/operator/settings").json()
    loaded_by_omar = omar.get("/v1/operator/settings").json()
    assert loaded_by_olivia["settings"]["allowed_regions"]

    saved = olivia.put(
        "/v1/operator/settings",
        json={"changes": {"marketplace_name": "Olivia's Market"}, "expected_versions": loaded_by_olivia["versions"]},
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["settings"]["marketplace_name"] == "Olivia's Market"
    assert saved.json()["versions"]["marketplace_name"] == loaded_by_olivia["versions"]["marketplace_name"] + 1

    stale = omar.put(
        "/v1/operator/settings",
        json={"changes": {"marketplace_name": "Omar's Market"}, "expected_versions": loaded_by_omar["versions"]},
    )
    body = assert_problem(stale, 409, "conflict")
    assert "marketplace_name" in field_names(body) and "reload" in body["detail"]
    assert omar.get("/v1/operator/settings").json()["settings"]["marketplace_name"] == "Olivia's Market"


def test_invalid_settings_name_the_field_and_change_nothing(api):
    c = api.as_(api.person(Role.OPERATOR))
    before = c.get("/v1/operator/settings").json()
    for changes, field in [
        ({"max_replicas": 0}, "max_replicas"),
        ({"allowed_regions": []}, "allowed_regions"),
        ({"topup_min_cents": "lots"}, "changes.topup_min_cents"),
        ({"no_such_setting": 1}, "changes.no_such_setting"),
    ]:
        body = assert_problem(c.put("/v1/operator/settings", json={"changes": changes}), 422, "invalid-input")
        assert field in field_names(body), (changes, body)
    assert c.get("/v1/operator/settings").json() == before


def test_pricing_saves_a_new_version_and_a_stale_version_gets_409(api):
    olivia, omar = api.as_(api.person(Role.OPERATOR)), api.as_(api.person(Role.OPERATOR))
    current = olivia.get("/v1/operator/pricing").json()
    latest = current["latest"]
    assert current["in_force"]["version"] <= latest["version"]
    assert current["history"]["items"][0]["version"] == latest["version"]
    rates = {k: latest[k] for k in RATE_FIELDS}

    saved = olivia.put(
        "/v1/operator/pricing", json={**rates, "vcpu_hour_millicents": 1_400, "version": latest["version"]}
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == latest["version"] + 1 and saved.json()["vcpu_hour_millicents"] == 1_400

    stale = omar.put(
        "/v1/operator/pricing", json={**rates, "vcpu_hour_millicents": 9_999, "version": latest["version"]}
    )
    body = assert_problem(stale, 409, "conflict")
    assert "version" in field_names(body)
    after = omar.get("/v1/operator/pricing").json()["latest"]
    assert after["version"] == latest["version"] + 1 and after["vcpu_hour_millicents"] == 1_400


def test_invalid_pricing_names_the_field_and_saves_nothing(api):
    c = api.as_(api.person(Role.OPERATOR))
    latest = c.get("/v1/operator/pricing").json()["latest"]
    rates = {k: latest[k] for k in RATE_FIELDS} | {"version": latest["version"]}
    for change, field in [
        ({"vcpu_hour_millicents": -1}, "vcpu_hour_millicents"),
        ({"currency": "XYZ"}, "currency"),
        ({"platform_fee_bp": 9000}, "platform_fee_bp"),
        ({"effective_at": "2001-01-01T00:00:00Z"}, "effective_at"),
        ({"version": -1}, "version"),
    ]:
        body = assert_problem(c.put("/v1/operator/pricing", json={**rates, **change}), 422, "invalid-input")
        assert field in field_names(body), (change, body)
    assert c.get("/v1/operator/pricing").json()["latest"]["version"] == latest["version"]


def _apply(api, person) -> int:
    r = api.as_(person).post(
        "/v1/provider/register",
        json={
            "company": f"Review Me {person.user_id}",
            "contact_name": "Rita Review",
            "contact_email": "rita@review.example",
            "regions": ["eu-west"],
            "expected_capacity": "3 nodes",
            "website": "https://review.example",
        },
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_approving_makes_the_applicant_a_provider_once(api):
    operator = api.as_(api.person(Role.OPERATOR))
    applicant = api.person()
    request_id = _apply(api, applicant)
    assert "cloud-provider" not in api.as_(applicant).get("/v1/session").json()["roles"]

    approved = operator.post(f"/v1/operator/provider-requests/{request_id}/approve", json={"note": "welcome"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["provider_id"]
    assert "cloud-provider" in api.as_(applicant).get("/v1/session").json()["roles"]
    assert api.as_(applicant).get("/v1/provider/nodes").status_code == 200
    assert_problem(operator.post(f"/v1/operator/provider-requests/{request_id}/approve"), 409, "conflict")
    assert_problem(
        operator.post(f"/v1/operator/provider-requests/{request_id}/reject", json={"note": "no"}), 409, "conflict"
    )


def test_rejecting_needs_a_note_and_keeps_it(api):
    operator = api.as_(api.person(Role.OPERATOR))
    request_id = _apply(api, api.person())
    body = assert_problem(
        operator.post(f"/v1/operator/provider-requests/{request_id}/reject", json={}), 422, "invalid-input"
    )
    assert "note" in field_names(body)
    rejected = operator.post(f"/v1/operator/provider-requests/{request_id}/reject", json={"note": "no website yet"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert rejected.json()["review_note"] == "no website yet"
    assert_problem(operator.post("/v1/operator/provider-requests/999999999/approve"), 404, "not-found")


def test_the_request_queue_pages_pending_first(api):
    operator = api.as_(api.person(Role.OPERATOR))
    statuses, cursor = [], None
    while True:
        page = operator.get(
            "/v1/operator/provider-requests", params={"limit": 3} | ({"cursor": cursor} if cursor else {})
        )
        statuses += [r["status"] for r in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert "pending" in statuses and statuses == sorted(statuses, key=lambda s: s != "pending")
    assert len(statuses) >= 4
