"""A full disk answers publishes 503 with Retry-After, never 500, and loses nothing that
was accepted; an event appended while the idempotency index could not be written is
still recognised when it is sent again (issue 10, item 9).

Two ways in: the index's write failing with SQLite's "disk is full" right after the log
append, in process and across a restart; and a real broker on a tmpfs of a few
megabytes, published to until the disk is full and again once space is freed.
"""

from __future__ import annotations

import sqlite3
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from broker.api.app import create_app
from broker.bootstrap import Broker, build_broker
from broker.config import load_settings
from broker.errors import StorageFullError
from broker.ingest.idempotency import SqliteIdempotencyIndex
from broker.log.sqlite import SqliteEventLog
from broker.topics import H_INGEST_EVENT_ID
from tests.demo_broker import demo_birth
from tests.e2e.harness import DEMO, BrokerProcess, demo_keys

# A broker runs in the test's process (seconds a file): the full suite, not the fast lane.
pytestmark = pytest.mark.slow

KEYS = demo_keys()
HOSPITAL = {"Authorization": f"Bearer {KEYS['county-general']}"}


def a_birth() -> dict[str, Any]:
    return demo_birth(event_id=str(uuid.uuid4()))


def copies_in_log(log_path: Path) -> Counter[str]:
    """How many times each event id was appended to `events.birth`."""
    event_log = SqliteEventLog(log_path)
    try:
        found: Counter[str] = Counter()
        for partition in range(event_log.partitions("events.birth")):
            offset = 0
            while records := event_log.read("events.birth", partition, offset, 1000):
                found.update((r.header(H_INGEST_EVENT_ID) or b"?").decode() for r in records)
                offset = records[-1].offset + 1
        return found
    finally:
        event_log.close()


def disk_full() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = 13  # type: ignore[attr-defined]
    return error


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


def serve(data_dir: Path) -> tuple[Broker, TestClient]:
    settings = load_settings(policy_dir=DEMO / "policy", data_dir=data_dir,
                             keys_file=DEMO / "keys.yaml")
    runtime = build_broker(settings)
    runtime.start()
    return runtime, TestClient(create_app(runtime.api))


@pytest.fixture
def full_when_remembering(monkeypatch) -> Iterator[list[int]]:
    """The idempotency index's write after the next append fails (once) as the index
    fails on a full disk; the list counts the failures."""
    failures: list[int] = []
    real = SqliteIdempotencyIndex.remember_all

    def remember_all(self: SqliteIdempotencyIndex, accepted: Any) -> None:
        if not failures:
            failures.append(1)
            raise StorageFullError("the idempotency index cannot grow") from disk_full()
        real(self, accepted)

    monkeypatch.setattr(SqliteIdempotencyIndex, "remember_all", remember_all)
    yield failures


def test_an_event_whose_index_write_failed_is_recognised_when_sent_again(
        data_dir, full_when_remembering):
    runtime, client = serve(data_dir)
    try:
        event = a_birth()
        first = client.post("/v1/events/birth", json=event, headers=HOSPITAL)
        assert full_when_remembering == [1]
        # Appended durably: accepted, whatever the index.
        assert first.status_code == 202 and first.json()["duplicate"] is False
        again = client.post("/v1/events/birth", json=event, headers=HOSPITAL)
        assert again.status_code == 202
        assert again.json()["duplicate"] is True
        assert again.json()["offset"] == first.json()["offset"]
    finally:
        runtime.stop()
    assert copies_in_log(data_dir / "log.db")[event["event_id"]] == 1


def test_a_restart_after_the_index_write_failed_still_recognises_the_event(
        data_dir, full_when_remembering):
    runtime, client = serve(data_dir)
    event = a_birth()
    try:
        assert client.post("/v1/events/birth", json=event, headers=HOSPITAL).status_code == 202
    finally:
        runtime.stop()
    runtime, client = serve(data_dir)
    try:
        again = client.post("/v1/events/birth", json=event, headers=HOSPITAL)
        assert again.status_code == 202 and again.json()["duplicate"] is True
    finally:
        runtime.stop()
    assert copies_in_log(data_dir / "log.db")[event["event_id"]] == 1


def test_an_index_write_failing_before_the_append_is_a_503_and_appends_nothing(
        data_dir, monkeypatch):
    runtime, client = serve(data_dir)
    try:
        def full(*args: object) -> None:
            raise disk_full()

        monkeypatch.setattr(SqliteIdempotencyIndex, "_write", lambda self, *a: full())
        event = a_birth()
        response = client.post("/v1/events/birth", json=event, headers=HOSPITAL)
        assert response.status_code == 503
        assert response.json()["type"] == "/problems/storage-full"
        assert int(response.headers["retry-after"]) > 0
        monkeypatch.undo()
        again = client.post("/v1/events/birth", json=event, headers=HOSPITAL)
        assert again.status_code == 202 and again.json()["duplicate"] is False
    finally:
        runtime.stop()
    assert copies_in_log(data_dir / "log.db")[event["event_id"]] == 1


# -- a real full disk -----------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs",
                           str(mount_point)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.slow
def test_a_full_disk_answers_503_never_500_and_loses_nothing_accepted(small_disk):
    ballast = small_disk / "ballast"
    broker = BrokerProcess(data_dir=small_disk / "data").start()
    answers: dict[str, list[int]] = {}
    accepted: set[str] = set()
    sent: list[dict[str, Any]] = []
    try:
        # Take most of what is left; the broker fills the rest, then the ballast is freed.
        free = int(subprocess.run(["df", "--output=avail", "-B1", str(small_disk)],
                                  capture_output=True, text=True, check=True
                                  ).stdout.split()[-1])
        ballast.write_bytes(b"\0" * max(0, free - 1_500_000))
        with httpx.Client(base_url=broker.url, headers=HOSPITAL, timeout=30) as client:
            refused = 0
            while refused < 20 and len(sent) < 5000:
                event = a_birth()
                event["mother"] = {**event["mother"], "first_name": "J" * 1500}
                sent.append(event)
                response = client.post("/v1/events/birth", json=event)
                answers.setdefault(event["event_id"], []).append(response.status_code)
                assert response.status_code in (202, 503), response.text
                if response.status_code == 503:
                    refused += 1
                    assert response.headers["content-type"] == "application/problem+json"
                    assert int(response.headers["retry-after"]) > 0
                else:
                    accepted.add(event["event_id"])
            assert refused, "the disk never filled"
            ballast.unlink()
            # Every event again, once space is back: those accepted are duplicates.
            for event in sent:
                response = client.post("/v1/events/birth", json=event)
                assert response.status_code in (202, 503), response.text
                if response.status_code == 202:
                    assert response.json()["duplicate"] or event["event_id"] not in accepted
                    accepted.add(event["event_id"])
    finally:
        broker.stop()
    assert broker.proc is not None and broker.proc.returncode == 0
    copies = copies_in_log(small_disk / "data" / "log.db")
    print(f"\n{len(sent)} sent, {sum(s == [503] for s in answers.values())} refused 503 "
          f"while full, {len(accepted)} accepted in the end, {len(copies)} in the log")
    assert accepted <= set(copies), "an accepted event is missing from the log"
    assert max(copies.values()) == 1, "an event was appended twice"
