"""The event-log contract, run against `EncryptedEventLog` on both backends: encryption
changes nothing a caller of the port can observe.

The kill -9 writer test is left out: its writer process writes through the plain
adapter (see tests/contract/crash_writer.py), so it would not exercise encryption.
"""

from __future__ import annotations

from broker.log.port import AppendCommitting, AppendingUnlessBusy, AppendWatching
from tests.contract import test_event_log as contract
from tests.contract import test_event_log_append_all as append_all_contract
from tests.contract import test_event_log_append_commit as append_commit_contract
from tests.contract import test_event_log_append_unless_busy as unless_busy_contract
from tests.contract import test_event_log_watch as watch_contract

_LEFT_OUT = {"test_acknowledged_records_survive_kill_9_of_the_writer"}

for _suite in (contract, append_all_contract, append_commit_contract, unless_busy_contract,
               watch_contract):
    globals().update({name: test for name, test in vars(_suite).items()
                      if name.startswith("test_") and name not in _LEFT_OUT})


def test_encryption_keeps_what_the_embedded_log_offers_beyond_the_port(event_log_factory,
                                                                       event_log) -> None:
    """With encryption at rest on, the embedded log still tells delivery hubs of appends,
    still writes a router step's views and offsets in one transaction, and still appends
    without waiting for group commit on the event loop (Kafka does none of these: its
    readers long-poll, the router appends, then commits, and group commit waits in a
    thread)."""
    embedded = event_log_factory.backend == "embedded"
    assert isinstance(event_log, AppendWatching) == embedded
    assert isinstance(event_log, AppendCommitting) == embedded
    assert isinstance(event_log, AppendingUnlessBusy) == embedded
