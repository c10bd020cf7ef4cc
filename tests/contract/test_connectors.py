"""The connector contract: every built-in connector through the same lifecycle.

Start, deliver, crash (the instance abandoned mid-batch, or the process killed with
SIGKILL), restart: nothing is lost, and a connector that promises idempotence has no
duplicate side effects. The types come from `connectors.registry.BUILTINS`; each needs a
kit in `connector_kits.py` that feeds or observes its own system.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from broker.testing import ConnectorHarness, demo_policy_dir
from connectors.registry import BUILTINS, connector_class
from tests.contract.connector_kits import KITS, SinkKit, SourceKit, birth, kit_params
from tests.postgres_server import postgres_database, postgres_server  # noqa: F401
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(t for t in BUILTINS if connector_class(t).kind == "source")
SINKS = sorted(t for t in BUILTINS if connector_class(t).kind == "sink")
# Push sources (records arrive by HTTP) have no poll, position or replay of their own.
PUSH_SOURCES = [t for t in SOURCES if getattr(KITS.get(t), "push", False)]
POLL_SOURCES = [t for t in SOURCES if t not in PUSH_SOURCES]


def _kit(connector_type: str, request: pytest.FixtureRequest, tmp_path: Path
         ) -> SourceKit | SinkKit:
    kit = KITS.get(connector_type)
    if kit is None:
        pytest.fail(f"built-in connector '{connector_type}' has no contract kit; add one to "
                    "tests/contract/connector_kits.py")
    return kit(request, tmp_path)


@pytest.fixture
def harness(tmp_path: Path):
    with ConnectorHarness(tmp_path / "data") as h:
        yield h


def _source_kit(request: pytest.FixtureRequest, tmp_path: Path, harness) -> SourceKit:
    kit = _kit(request.param, request, tmp_path)
    assert isinstance(kit, SourceKit)
    kit.harness = harness
    return kit


@pytest.fixture(params=kit_params(SOURCES))
def source_kit(request: pytest.FixtureRequest, tmp_path: Path, harness) -> SourceKit:
    return _source_kit(request, tmp_path, harness)


@pytest.fixture(params=kit_params(POLL_SOURCES))
def poll_kit(request: pytest.FixtureRequest, tmp_path: Path, harness) -> SourceKit:
    return _source_kit(request, tmp_path, harness)


@pytest.fixture(params=kit_params(PUSH_SOURCES))
def push_kit(request: pytest.FixtureRequest, tmp_path: Path, harness) -> SourceKit:
    return _source_kit(request, tmp_path, harness)


@pytest.fixture(params=kit_params(SINKS))
def sink_kit(request: pytest.FixtureRequest, tmp_path: Path) -> SinkKit:
    kit = _kit(request.param, request, tmp_path)
    assert isinstance(kit, SinkKit)
    return kit


def subjects(harness: ConnectorHarness) -> Counter[str]:
    return Counter(e["subject_id"] for e in harness.events("birth"))


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(n)]


# -- sources ----------------------------------------------------------------------------


def test_a_source_publishes_what_its_system_holds_and_commits_its_position(source_kit,
                                                                         harness):
    source = harness.connector(source_kit.config("contract-src"))
    source.start()
    source_kit.add(ids("MPI-A", 7))
    source.run_until_idle()
    assert subjects(harness) == Counter(ids("MPI-A", 7))
    status = source.status
    assert status["records"]["failed"] == 0 and status["records"]["duplicate"] == 0
    if not source_kit.push:
        assert source.offset is not None and status["records"]["out"] == 7


def test_a_bad_record_is_refused_with_its_reason_and_the_rest_published(source_kit,
                                                                       harness):
    source = harness.connector(source_kit.config("contract-src"))
    source.start()
    source_kit.add(ids("MPI-B", 5), bad=("MPI-B-002",))
    source.run_until_idle()
    assert subjects(harness) == Counter(i for i in ids("MPI-B", 5) if i != "MPI-B-002")
    if not source_kit.push:  # a push source refuses the request instead
        [letter] = harness.dead_letters("contract-src")
        assert [p for p, _ in letter.problems] == ["hospital_id"]
        assert "None" not in str(letter.to_json()) and "MPI-B" not in str(letter.to_json())


def test_a_crash_after_publishing_before_commit_replays_without_duplicates(poll_kit,
                                                                          harness):
    kit = poll_kit
    source = harness.connector(kit.config("contract-src"))
    source.start()
    kit.add(ids("MPI-C", 8))
    assert source.step()  # one batch committed
    assert source.step(crash_before_commit=True)  # the next published, then killed
    source.start()
    source.run_until_idle()
    assert subjects(harness) == Counter(ids("MPI-C", 8))
    assert source.status["records"]["duplicate"] == kit.batch_size


def test_an_abandoned_instance_is_replaced_from_the_committed_position(poll_kit, harness):
    kit = poll_kit
    source = harness.connector(kit.config("contract-src"))
    source.start()
    kit.add(ids("MPI-D", 5))
    source.step()
    position = source.offset
    source.crash()  # no stop(): as kill -9 would leave it
    source.start()
    assert source.context.offset == position
    kit.add(ids("MPI-E", 2))
    source.run_until_idle()
    assert subjects(harness) == Counter(ids("MPI-D", 5) + ids("MPI-E", 2))


def test_a_clean_restart_resumes_without_reading_again(poll_kit, harness):
    kit = poll_kit
    config = kit.config("contract-src")
    source = harness.connector(config)
    source.start()
    kit.add(ids("MPI-F", 4))
    source.run_until_idle()
    source.stop()
    source.start()
    kit.add(ids("MPI-G", 2))
    source.run_until_idle()
    assert subjects(harness) == Counter(ids("MPI-F", 4) + ids("MPI-G", 2))
    assert source.status["records"]["in"] == 6  # nothing read twice


def test_a_push_source_counts_a_resend_after_a_restart_as_a_duplicate(push_kit, harness):
    source = harness.connector(push_kit.config("contract-src"))
    source.start()
    push_kit.add(ids("MPI-H", 3))
    source.crash()
    source.start()
    push_kit.add(ids("MPI-H", 3))  # the sender retries everything
    assert subjects(harness) == Counter(ids("MPI-H", 3))


# -- sinks ------------------------------------------------------------------------------


def publish_births(harness: ConnectorHarness, subject_ids: list[str]) -> list[str]:
    """Publish births from county-general, route them, return the hv-births event ids."""
    harness.publish("county-general", "birth", *[birth(s) for s in subject_ids])
    harness.route()
    return [d.envelope.event_id for d in harness.deliveries("hv-births")]


def test_a_sink_writes_every_delivery(sink_kit, harness):
    delivered = publish_births(harness, ids("MPI-S", 7))
    sink = harness.connector(sink_kit.config("contract-sink"))
    sink.start()
    sink.run_until_idle()
    assert sorted(sink_kit.written()) == sorted(delivered)
    assert sink.offset is not None and sink.status["records"]["out"] == 7


def test_a_sink_crash_after_put_before_commit_loses_nothing(sink_kit, harness):
    delivered = publish_births(harness, ids("MPI-T", 8))
    sink = harness.connector(sink_kit.config("contract-sink"))
    sink.start()
    assert sink.step()
    assert sink.step(crash_before_commit=True)
    sink.start()
    sink.run_until_idle()
    written = sink_kit.written()
    assert set(written) == set(delivered)
    if sink_kit.idempotent:
        assert len(written) == len(delivered)


def test_a_sink_resumes_after_a_restart_with_new_deliveries(sink_kit, harness):
    first = publish_births(harness, ids("MPI-U", 4))
    sink = harness.connector(sink_kit.config("contract-sink"))
    sink.start()
    sink.run_until_idle()
    sink.crash()
    every = publish_births(harness, ids("MPI-V", 3))
    sink.start()
    sink.run_until_idle()
    assert set(first) < set(every)
    assert sorted(sink_kit.written()) == sorted(every)


# -- the process killed -----------------------------------------------------------------


def _connect_run(tmp_path: Path, config: dict, *extra: str) -> subprocess.Popen[bytes]:
    path = tmp_path / "connectors.yaml"
    path.write_text(yaml.safe_dump({"connectors": [config]}))
    log = (tmp_path / "connect.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "broker.cli.main", "connect", "run", str(path),
         "--policy", str(demo_policy_dir()), "--data", str(tmp_path / "data"), *extra],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def _published(data: Path) -> int:
    from broker.log import SqliteEventLog

    log = SqliteEventLog(data / "log.db")
    try:
        if "events.birth" not in log.topics():
            return 0
        return sum(log.end_offset("events.birth", p)
                   for p in range(log.partitions("events.birth")))
    finally:
        log.close()


def _finish(tmp_path: Path, config: dict) -> None:
    proc = _connect_run(tmp_path, config, "--until-idle")
    assert proc.wait(timeout=120) == 0, (tmp_path / "connect.log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("connector_type", kit_params(POLL_SOURCES))
def test_killing_the_process_mid_stream_loses_and_duplicates_nothing(
        connector_type, request, tmp_path):
    kit = _kit(connector_type, request, tmp_path)
    assert isinstance(kit, SourceKit)
    config = {**kit.config("killed-src"), "batch_size": 20}
    total = ids("MPI-K", 600)
    kit.add(total)
    proc = _connect_run(tmp_path, config)
    eventually(lambda: _published(tmp_path / "data") >= 100, timeout=60,
               message="the first batches were not published")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _published(tmp_path / "data") < len(total), "killed too late to test anything"
    _finish(tmp_path, config)
    with ConnectorHarness(tmp_path / "data") as harness:
        assert subjects(harness) == Counter(total)


@pytest.mark.slow
@pytest.mark.parametrize("connector_type", kit_params(SINKS))
def test_killing_a_sink_process_mid_stream_loses_nothing(connector_type, request, tmp_path):
    kit = _kit(connector_type, request, tmp_path)
    assert isinstance(kit, SinkKit)
    config = {**kit.config("killed-sink"), "batch_size": 10}
    with ConnectorHarness(tmp_path / "data") as harness:
        delivered = publish_births(harness, ids("MPI-W", 300))
    proc = _connect_run(tmp_path, config)
    eventually(lambda: len(kit.written()) >= 30, timeout=60,
               message="the first writes did not arrive")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(set(kit.written())) < len(delivered), "killed too late to test anything"
    _finish(tmp_path, config)
    written = kit.written()
    assert set(written) == set(delivered)
    if kit.idempotent:
        assert len(written) == len(delivered)
