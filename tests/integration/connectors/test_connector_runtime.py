"""The connector runtime inside a running broker: threads, restarts with backoff, status at
`GET /v1/connectors`, counts in `/metrics`, and connectors started by `handoff serve`'s
`connectors_file` setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.bootstrap import build_broker
from broker.config import load_settings
from broker.testing import demo_policy_dir
from connectors import registry
from tests.integration.connectors.flaky_connectors import TYPES
from tests.waiting import eventually

# A broker runs in the test's process (seconds a file): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

DEMO = demo_policy_dir().parent
ADMIN = {"Authorization": "Bearer hk_demo_state_integration_team_df49e89b614626d742396bb3"}
HOSPITAL = {"Authorization": "Bearer hk_demo_county_general_eb4204b9805f4a9229e98967"}


@pytest.fixture(autouse=True)
def test_types(monkeypatch):
    for name, target in TYPES.items():
        monkeypatch.setitem(registry.BUILTINS, name, target)


def serve(tmp_path: Path, connectors: list[dict]):
    """A broker as `handoff serve` builds it, with `connectors_file` set."""
    path = tmp_path / "connectors.yaml"
    path.write_text(yaml.safe_dump({"connectors": connectors}))
    settings = load_settings(policy_dir=DEMO / "policy", data_dir=tmp_path / "data",
                             keys_file=DEMO / "keys.yaml", connectors_file=path)
    broker = build_broker(settings)
    assert broker.connectors is not None
    for worker in broker.connectors.workers:  # restart quickly in tests
        worker._backoff = (0.01, 0.05)
    return broker


def test_a_failing_connector_is_restarted_and_its_status_shows_why(tmp_path):
    failures = tmp_path / "failures"
    failures.write_text("2")
    broker = serve(tmp_path, [
        {"name": "flaky", "type": "test_flaky", "agency": "county-general",
         "failures_file": str(failures), "poll_interval_seconds": 0.05},
        {"name": "doomed", "type": "test_fatal", "agency": "county-general"},
        {"name": "unmapped", "type": "file_drop", "agency": "county-general",
         "folder": str(tmp_path), "mapping": str(tmp_path / "missing.yaml")},
    ])
    broker.start()
    try:
        with TestClient(create_app(broker.api)) as client:
            def settled():
                body = client.get("/v1/connectors", headers=ADMIN).json()
                states = {c["name"]: c for c in body["connectors"]}
                # The counts move before the position is committed: wait for both.
                done = (states["flaky"]["records"]["out"] == 3
                        and states["flaky"]["position"] == {"n": 3}
                        and states["doomed"]["state"] == "failed"
                        and states["unmapped"]["state"] == "failed")
                return states if done else None

            states = eventually(settled, timeout=20,
                                message="the connectors did not settle")
            flaky, doomed = states["flaky"], states["doomed"]
            assert flaky["state"] == "running" and flaky["restarts"] == 2
            # Another library's message may hold a value: only its class is shown.
            assert flaky["last_error"] == "KeyError"
            assert flaky["position"] == {"n": 3}
            assert doomed["restarts"] == 0
            assert states["unmapped"]["restarts"] == 0
            assert states["unmapped"]["last_error"].startswith(
                "MappingError: " + str(tmp_path / "missing.yaml") + ": cannot read mapping")
            assert doomed["last_error"] == ("FatalConnectorError: the export folder is gone; "
                                            "fix 'folder'")

            metrics = client.get("/metrics").text
            assert ('handoff_connector_records_total{connector="flaky",outcome="out"} 3.0'
                    in metrics)
            assert 'handoff_connector_restarts_total{connector="flaky"} 2.0' in metrics
            assert "512-44-9031" not in metrics + client.get(
                "/v1/connectors/flaky", headers=ADMIN).text

            assert client.get("/v1/connectors", headers=HOSPITAL).status_code == 403
            assert client.get("/v1/connectors/nope", headers=ADMIN).status_code == 404
    finally:
        broker.stop()


def test_max_restarts_gives_up_and_marks_the_connector_failed(tmp_path):
    failures = tmp_path / "failures"
    failures.write_text("100")
    broker = serve(tmp_path, [
        {"name": "flaky", "type": "test_flaky", "agency": "county-general",
         "failures_file": str(failures), "max_restarts": 3}])
    broker.start()
    try:
        worker = broker.connectors.workers[0]
        eventually(lambda: worker.status.state == "failed", timeout=20,
                   message="the connector was not marked failed")
        assert worker.status.restarts == 3
        assert int(failures.read_text()) == 96  # the first try and three restarts
    finally:
        broker.stop()


@pytest.mark.slow
def test_positions_survive_a_broker_restart(tmp_path):
    failures = tmp_path / "failures"
    failures.write_text("0")
    config = {"name": "flaky", "type": "test_flaky", "agency": "county-general",
              "failures_file": str(failures), "poll_interval_seconds": 0.05}
    broker = serve(tmp_path, [config])
    broker.start()
    worker = broker.connectors.workers[0]
    eventually(lambda: worker.status.counts["out"] == 3, timeout=20,
               message="the connector did not publish its three records")
    broker.stop()

    broker = serve(tmp_path, [{**config, "records": 5}])
    broker.start()
    try:
        worker = broker.connectors.workers[0]
        eventually(lambda: worker.status.counts["out"] == 2, timeout=20,
                   message="the restarted connector did not publish the two new records")
        eventually(lambda: worker.status.idle, timeout=20,
                   message="the restarted connector did not go idle")
        assert worker.status.counts == {"in": 2, "out": 2, "duplicate": 0, "failed": 0}
    finally:
        broker.stop()


def test_dead_letters_are_listed_with_reasons_only(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "x.csv").write_text("mrn\nMPI-1\n")
    broker = serve(tmp_path, [
        {"name": "drop", "type": "file_drop", "agency": "county-general",
         "folder": str(drop), "min_age_seconds": 0, "poll_interval_seconds": 0.05,
         "mapping": {"event_type": "birth", "fields": {"subject_id": "mrn"}}}])
    broker.start()
    try:
        with TestClient(create_app(broker.api)) as client:
            body = eventually(lambda: client.get("/v1/connectors/drop/dead-letters",
                                                 headers=ADMIN).json()["dead_letters"],
                              timeout=20, message="no dead letter was listed")
            [letter] = body
            assert letter["reference"] == "x.csv line 2"
            assert {"path": "hospital_id", "problem": "required field missing"} in (
                letter["problems"])
            assert "MPI-1" not in str(letter)
    finally:
        broker.stop()


def test_an_unknown_connector_type_stops_the_broker_from_starting(tmp_path):
    from connectors.errors import ConnectorConfigError

    with pytest.raises(ConnectorConfigError, match="unknown connector type 'ftp'"):
        serve(tmp_path, [{"name": "x", "type": "ftp", "agency": "county-general"}])
