"""Property-based run over /api/openapi.json: generated requests (valid and invalid) against every operation.

Its own app instance, database and localstripe (the run changes settings and prices at random). Requests carry a
token of a person holding every role (with a provider profile), and the agent operations a real node
token, so most cases reach the business code rather than stopping at 401. Every answer must be below
500, use a documented status code and content type, and match the documented schema.
"""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.auth.permissions import Role
from services.nodes import service as nodes
from tests.api.conftest import stripe_env
from tests.support.api import live_api
from tests.support.stripe_process import localstripe_process

MAX_EXAMPLES = 8  # per operation and generation mode: bounded, the run stays well under a minute
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SKIP = {"POST /v1/payments/webhook"}  # Stripe-signed raw body, tested by the payments suite


def _runner(strategy, base_url: str, headers: dict[str, str], seen: Counter):
    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)
        seen[response.status_code // 100 * 100] += 1

    return run


def test_generated_requests_find_no_server_error_and_no_answer_outside_the_schema(tmp_path, sqlite_template, issuer):
    # its own database, so its own Stripe (localstripe in a child process): nothing shared with other tests
    with localstripe_process() as stripe, live_api(tmp_path, sqlite_template, issuer, **stripe_env(stripe)) as api:
        everyone = api.provider(Role.OPERATOR)
        node_token = nodes.register_node(
            api.uow(), everyone, dict(name="fuzz-node", region="eu-west", country="DE", vcpu=4, ram_gb=8, disk_gb=50)
        ).token
        person = {"Authorization": f"Bearer {api.token_for(everyone)}"}
        node = {"Authorization": f"Bearer {node_token}"}
        schema = schemathesis.openapi.from_url(f"{api.base}/openapi.json")
        failures: list[str] = []
        seen: Counter = Counter()  # answers by class: the run must reach the business code, not only 401/422
        tried = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            if label in SKIP:
                continue
            headers = node if operation.path.startswith("/v1/agent/") else person
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                tried += 1

                run = _runner(operation.as_strategy(generation_mode=mode), api.base, headers, seen)
                try:
                    run()
                except Unsatisfiable:  # no parameters and no body: there is no invalid request to make
                    assert mode is schemathesis.GenerationMode.NEGATIVE, label
                except (Exception, BaseExceptionGroup) as exc:  # collect every failure, report them together
                    failures.append(f"{label} [{mode.value}]: {exc}")
        assert tried >= 40
        assert seen[200] >= 40 and seen[400] >= 40, seen
        assert not failures, "\n\n".join(failures)
