"""The event-log contract, run against `EncryptedEventLog` on both backends: encryption
changes nothing a caller of the port can observe.

The kill -9 writer test is left out: its writer process writes through the plain
adapter (see tests/contract/crash_writer.py), so it would not exercise encryption.
"""

from __future__ import annotations

from broker.log.port import AppendWatching
from tests.contract import test_event_log as contract
from tests.contract import test_event_log_append_all as append_all_contract
from tests.contract import test_event_log_watch as watch_contract

_LEFT_OUT = {"test_acknowledged_records_survive_kill_9_of_the_writer"}

for _suite in (contract, append_all_contract, watch_contract):
    globals().update({name: test for name, test in vars(_suite).items()
                      if name.startswith("test_") and name not in _LEFT_OUT})


def test_encryption_keeps_the_embedded_logs_telling_of_appends(event_log_factory,
                                                               event_log) -> None:
    """Delivery hubs read when the log tells them of appends; with encryption at rest
    on, the embedded log still tells (Kafka never does: its readers long-poll)."""
    assert isinstance(event_log, AppendWatching) == (event_log_factory.backend == "embedded")
