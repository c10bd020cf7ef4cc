"""JSON nested a thousand deep, or holding a 5,000-digit number, is a 4xx problem on
every route that reads JSON, never a 500; a policy bundle nested a thousand deep is
refused naming the file, by `handoff policy check` and by a reload, which is audited
(issue 10, item 12)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.audit.store import AuditFilter
from broker.bootstrap import Broker
from tests.demo_broker import demo_api
from tests.e2e.harness import DEMO, REPO, demo_keys

# A broker runs in the test's process (seconds a file): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

KEYS = demo_keys()
DEEP = "[" * 1000 + "]" * 1000
LONG = "9" * 5000
COMPAT = "/v1/registry/compatibility/subjects/events.birth-value/versions/latest"

# (route, key, body with the hostile value in place of %s)
ROUTES = [
    ("/v1/events/birth", "county-general", '{"event_id": "e1", "mother": %s}'),
    ("/v1/events/birth:batch", "county-general", '{"events": [{"mother": %s}]}'),
    ("/v1/explain", "admin", '{"event_type": "birth", "source": "county-general", '
                             '"subscription": "hv-births", "event": {"mother": %s}}'),
    (COMPAT, "admin", '{"schema": %s}'),
    ("/v1/registry/subjects/events.birth-value/versions", "admin", '{"schema": %s}'),
    ("/v1/subscriptions/hv-births/dead-letters:replay", "hv-nfp", '{"ids": %s}'),
    ("/v1/linkage/records:unlink", "steward", '{"agency": "county-general", "id": %s}'),
]


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "policy"
    shutil.copytree(DEMO / "policy", folder)
    return folder


@pytest.fixture(scope="module")
def api(policy_dir) -> Iterator[tuple[TestClient, Broker]]:
    with demo_api(policy_dir.parent / "data", policy_dir=policy_dir,
                  raise_server_exceptions=False) as running:
        yield running


@pytest.mark.parametrize("hostile", [DEEP, LONG], ids=["nested 1000 deep", "5000 digits"])
@pytest.mark.parametrize(("path", "key", "template"), ROUTES, ids=[r[0] for r in ROUTES])
def test_hostile_json_is_a_problem_not_a_500(api, path, key, template, hostile):
    client, _ = api
    for body in (template % hostile, template % json.dumps(hostile)):  # raw and as text
        if path == COMPAT or path.endswith("/versions"):
            body = json.dumps({"schema": hostile})   # a schema travels as a JSON string
        response = client.post(path, content=body, headers={
            "Authorization": f"Bearer {KEYS[key]}", "Content-Type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
        if path.startswith("/v1/registry/"):   # Confluent's error shape on the registry
            assert response.json()["error_code"] // 100 == response.status_code
        else:
            assert response.headers["content-type"] == "application/problem+json"


def deep_yaml(depth: int) -> str:
    return "deep:\n" + "".join("  " * (i + 1) + "b:\n" for i in range(depth)) \
        + "  " * (depth + 1) + "c: 1\n"


@pytest.fixture
def nested_file(policy_dir) -> Iterator[Path]:
    """An agreement file nested a thousand deep in the bundle, for one test."""
    path = policy_dir / "agreements" / "nested.yaml"
    path.write_text(deep_yaml(1000))
    yield path
    path.unlink()


def test_policy_check_names_a_file_nested_a_thousand_deep(policy_dir, nested_file):
    done = subprocess.run([sys.executable, "-m", "broker.cli.main", "policy", "check",
                           str(policy_dir)], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    (problem,) = done.stdout.strip().splitlines()
    assert problem.startswith("agreements/nested.yaml") and "nested too deeply" in problem


def test_a_reload_of_a_bundle_nested_a_thousand_deep_is_refused_and_audited(
        api, nested_file):
    client, runtime = api
    before = runtime.policy.current.version
    response = client.post("/v1/admin/policy:reload",
                           headers={"Authorization": f"Bearer {KEYS['admin']}"})
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/policy-refused"
    assert any("agreements/nested.yaml" in p for p in response.json()["problems"])
    assert runtime.policy.current.version == before
    (refused,) = runtime.audit.iter_records(AuditFilter(kind="policy_reload_refused"))
    assert any("agreements/nested.yaml" in p for p in refused.detail["problems"])
