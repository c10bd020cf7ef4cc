"""An error the broker did not expect is logged under the request's id, without the
personal data it may carry, and answered with that id (issue 10, item 15).

The broker is built as `handoff serve` builds it and one of its parts made to fail the
way an unforeseen bug would: with an exception whose message quotes a value from the
request, as conversion errors do.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from broker.bootstrap import Broker
from broker.errors import BrokerError
from tests.demo_broker import demo_api, demo_birth
from tests.e2e.harness import demo_keys

# A broker runs in the test's process (seconds a file): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

KEYS = demo_keys()
MARKER = "MRN-7731-UNEXPECTED"


@pytest.fixture
def api(tmp_path) -> Iterator[tuple[TestClient, Broker]]:
    with demo_api(tmp_path / "data", raise_server_exceptions=False) as running:
        yield running


def a_birth() -> dict[str, Any]:
    return demo_birth(subject_id=MARKER)


def publish(client: TestClient) -> Any:
    return client.post("/v1/events/birth", json=a_birth(),
                       headers={"Authorization": f"Bearer {KEYS['county-general']}"})


def failing_with(error: BaseException) -> Any:
    def fail(*args: object, **kwargs: object) -> Any:
        raise error

    return fail


@pytest.mark.parametrize("error", [
    RuntimeError(f"could not convert {MARKER!r}"),
    BrokerError(f"the store refused {MARKER}"),
], ids=["plain exception", "broker error"])
def test_an_unexpected_error_is_logged_under_its_request_id_without_personal_data(
        api, monkeypatch, caplog, error):
    client, runtime = api
    monkeypatch.setattr(runtime.api.publisher, "prepare_json", failing_with(error))
    with caplog.at_level(logging.ERROR, logger="handoff"):
        response = publish(client)

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    request_id = response.headers["x-request-id"]
    assert problem["request_id"] == request_id and request_id in problem["detail"]
    assert MARKER not in response.text

    logged = [r for r in caplog.records if r.name.startswith("handoff")
              and r.levelno >= logging.ERROR and request_id in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    line = logged[0].getMessage()
    assert "POST /v1/events/{event_type}" in line
    assert "Traceback" in line and "in fail" in line and type(error).__name__ in line
    everything = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert MARKER not in everything
    assert "county_fips" not in everything   # nothing of the body either


def test_every_answer_names_its_request_id(api):
    client, _ = api
    accepted = publish(client)
    refused = client.post("/v1/events/birth", json=a_birth())
    health = client.get("/healthz")
    ids = [r.headers.get("x-request-id") for r in (accepted, refused, health)]
    assert accepted.status_code == 202 and refused.status_code == 401
    assert all(ids) and len(set(ids)) == 3


def test_a_client_cannot_choose_the_request_id_written_to_the_logs(api):
    client, _ = api
    response = client.get("/healthz", headers={"X-Request-Id": "123-45-6789"})
    assert response.headers["x-request-id"] != "123-45-6789"


def test_a_full_disk_is_answered_503_with_retry_after_never_500(api, monkeypatch):
    client, runtime = api
    monkeypatch.setattr(runtime.api.publisher, "prepare_json",
                        failing_with(OSError(errno.ENOSPC, "No space left on device")))
    response = publish(client)
    assert response.status_code == 503
    assert response.json()["type"] == "/problems/storage-full"
    assert int(response.headers["retry-after"]) > 0
