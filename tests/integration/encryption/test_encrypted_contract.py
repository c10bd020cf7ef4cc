"""The event-log contract, run against `EncryptedEventLog` on both backends: encryption
changes nothing a caller of the port can observe.

The kill -9 writer test is left out: its writer process writes through the plain
adapter (see tests/contract/crash_writer.py), so it would not exercise encryption.
"""

from __future__ import annotations

from tests.contract import test_event_log as contract
from tests.contract import test_event_log_append_all as append_all_contract

_LEFT_OUT = {"test_acknowledged_records_survive_kill_9_of_the_writer"}

for _suite in (contract, append_all_contract):
    globals().update({name: test for name, test in vars(_suite).items()
                      if name.startswith("test_") and name not in _LEFT_OUT})
