"""What every client of the API sees when something is wrong: RFC 9457 problems with stable types,
field names for invalid input, a size limit on bodies, and documentation that works under /api."""

from __future__ import annotations

import httpx

from services.auth.permissions import Role
from tests.support.api import assert_problem, field_names


def test_health_and_openapi_are_public_and_the_docs_work_under_the_api_mount(api):
    assert httpx.get(f"{api.base}/health").json() == {"status": "ok", "database": "ok"}
    schema = httpx.get(f"{api.base}/openapi.json").json()
    assert schema["servers"] == [{"url": "/api"}]
    assert schema["info"]["title"] == "Cloud Marketplace API"
    assert "Problem" in schema["components"]["schemas"]
    docs = httpx.get(f"{api.base}/docs")
    assert docs.status_code == 200 and "/api/openapi.json" in docs.text


def test_no_token_and_a_bad_token_are_401_problems(api):
    missing = api.client().get("/v1/deployments")
    body = assert_problem(missing, 401, "not-authenticated")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert body["instance"] == "/api/v1/deployments"
    assert_problem(api.client("not-a-jwt").get("/v1/deployments"), 401, "not-authenticated")
    assert_problem(api.client(api.issuer.token(sub="x", exp=1)).get("/v1/deployments"), 401, "not-authenticated")


def test_a_valid_token_without_the_role_is_a_403_problem(api):
    user = api.person()
    assert_problem(api.as_(user).get("/v1/operator/settings"), 403, "forbidden")


def test_unknown_paths_and_methods_are_problems(api):
    c = api.as_(api.person())
    assert_problem(c.get("/v1/no-such-thing"), 404, "not-found")
    assert_problem(c.put("/v1/deployments"), 405, "method-not-allowed")


def test_invalid_input_is_422_naming_each_field_and_writes_nothing(api):
    c = api.as_(api.person())
    before = c.get("/v1/deployments").json()["items"]
    r = c.post("/v1/deployments", json={"name": "Bad Name", "workload": "ubuntu-vm", "vcpu": 0, "ram_gb": 4})
    body = assert_problem(r, 422, "invalid-input")
    assert {"name", "vcpu", "disk_gb"} <= field_names(body)
    by_field = {e["field"]: e["message"] for e in body["errors"]}
    assert "at least 1" in by_field["vcpu"]
    assert c.get("/v1/deployments").json()["items"] == before


def test_malformed_json_wrong_types_and_bad_query_values_are_422_not_500(api):
    c = api.as_(api.person())
    r = c.post("/v1/deployments", content=b'{"name": ', headers={"content-type": "application/json"})
    assert_problem(r, 422, "invalid-input")
    r = c.post("/v1/deployments", json={"name": "ok-name", "workload": "ubuntu-vm", "vcpu": "lots"})
    assert "vcpu" in field_names(assert_problem(r, 422, "invalid-input"))
    assert "limit" in field_names(assert_problem(c.get("/v1/deployments?limit=0"), 422, "invalid-input"))
    assert "cursor" in field_names(assert_problem(c.get("/v1/deployments?cursor=%%%"), 422, "invalid-input"))
    assert "deployment_id" in field_names(assert_problem(c.get("/v1/deployments/abc"), 422, "invalid-input"))
    assert_problem(c.get(f"/v1/deployments/{2**70}"), 422, "invalid-input")


def test_a_body_over_the_limit_is_refused_with_413(api):
    c = api.as_(api.person())
    big = b'{"name": "' + b"x" * 1_100_000 + b'"}'
    r = c.post("/v1/deployments", content=big, headers={"content-type": "application/json"})
    assert_problem(r, 413, "request-too-large")

    def chunks():  # no Content-Length: counted while read
        for _ in range(120):
            yield b"x" * 10_000

    r = c.post("/v1/deployments", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(r, 413, "request-too-large")


def test_another_persons_deployment_is_404_not_403(api):
    owner, other = api.person(), api.person(Role.PROVIDER, Role.OPERATOR)
    with api.uow() as uow:
        from sqlalchemy import select

        from services.deployments.models import Deployment

        someone_elses = uow.session.scalar(select(Deployment.id).where(Deployment.owner_user_id != owner.user_id))
    for method, path in [
        ("GET", f"/v1/deployments/{someone_elses}"),
        ("POST", f"/v1/deployments/{someone_elses}/stop"),
        ("POST", f"/v1/deployments/{someone_elses}/start"),
        ("DELETE", f"/v1/deployments/{someone_elses}"),
    ]:
        assert_problem(api.as_(other).request(method, path), 404, "not-found")
