"""Schema-driven fuzzing of the HTTP API with schemathesis: no 5xx, and every response
conforms to what the OpenAPI schema documents (status, content type, body, headers).

Each operation is called with a key that may call it, so the fuzzer reaches the
handlers rather than stopping at 401/403 (the access matrix covers refusals). The SSE
stream is left out: a held-open stream never completes a call. The exclusion is made on
the lazy schema: schemathesis (4.x) re-filters a fixture's schema with the lazy schema's
filters and drops any the fixture applied itself.
"""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from tests.e2e.harness import demo_keys

pytestmark = pytest.mark.slow

KEYS = demo_keys()
EXAMPLES = int(os.environ.get("HANDOFF_FUZZ_EXAMPLES", "50"))

STREAMS = r".*/stream$"

schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=STREAMS)


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    loaded = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    # A body over its route's cap is refused with 413 before it is parsed (the fuzzer
    # makes such bodies when it breaks a `maxLength`): a rejection like any other.
    rejection = loaded.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return loaded


def key_for(path: str, method: str) -> str:
    """A key holding the role the operation needs, for resources it owns."""
    if path.startswith("/v1/audit"):
        return KEYS["auditor"]
    if path.startswith("/v1/admin") or path == "/v1/explain" or (
            path.startswith("/v1/connectors") and not path.endswith("/Bundle")):
        return KEYS["admin"]
    if path.startswith("/v1/registry") and method in ("POST", "PUT", "DELETE") \
            and "compatibility" not in path:
        return KEYS["admin"]
    if path.startswith("/v1/subscriptions"):
        return KEYS["hv-nfp"]
    return KEYS["county-general"]


# Every operation runs in this one test: one publish path per event type and the
# registry's Confluent routes make it longer than the default limit of a test.
@pytest.mark.timeout(1800)
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_schema(case):
    assert not re.match(STREAMS, case.operation.path), "the SSE stream must be left out"
    headers = {"Authorization": f"Bearer {key_for(case.operation.path, case.method)}"}
    # Every check but "schema-valid input is accepted": JSON Schema cannot say that a
    # string holds a valid Avro schema or that an object matches an event's Avro schema,
    # so such input is rightly refused with 422 (the negative check, that invalid input
    # is refused, stays on).
    case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])


@pytest.mark.parametrize("cursor", ["bogus", "-1", "9" * 400, "0:1:2", "\u00e9\u00e9", "1e9"])
def test_the_stream_refuses_hostile_cursors_with_a_problem(fuzz_app, cursor):
    # Left out of the schema-driven run (an accepted stream never ends), so its one
    # free-form input is tried here, as a query parameter and as Last-Event-ID.
    from fastapi.testclient import TestClient

    headers = {"Authorization": f"Bearer {KEYS['hv-nfp']}"}
    with TestClient(fuzz_app) as client:
        for params, extra in (({"after": cursor}, {}),
                              ({}, {"Last-Event-ID": cursor.encode("utf-8")})):
            response = client.get("/v1/subscriptions/hv-births/stream", params=params,
                                  headers={**headers, **extra})
            assert response.status_code == 400, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == "/problems/invalid-cursor"


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00", "0001-01-01T00:00:00+14:00",
                                    "9999-12-31T23:59:59", "9999-12-31T23:59:59-14:00"])
def test_time_filters_take_the_earliest_and_latest_times_iso_8601_can_write(fuzz_app,
                                                                            moment):
    # Found by the schema-driven run: a time without a zone in year 1 made
    # `datetime.timestamp` fail once the local zone was applied, a 500.
    from fastapi.testclient import TestClient

    with TestClient(fuzz_app) as client:
        auditor = {"Authorization": f"Bearer {KEYS['auditor']}"}
        for path, params in (("/v1/audit/decisions", {"since": moment}),
                             ("/v1/audit/decisions", {"until": moment}),
                             ("/v1/linkage/persons/p-unknown/disclosures", {"since": moment,
                                                                          "until": moment})):
            response = client.get(path, params=params, headers=auditor)
            assert response.status_code < 500, (path, response.text)
        early = client.get("/v1/audit/decisions", params={"until": moment}, headers=auditor)
        assert early.status_code == 200
        if moment.startswith("0001"):  # nothing was decided before year 1
            assert early.json()["records"] == []
