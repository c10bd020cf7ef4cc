"""The consumer's optional `CommittingLater` capability, on every backend that offers it:
offsets handed over are committed without the caller waiting, by the consumer itself,
by a later `commit`, or when it closes; never backwards. A backend without it (the
embedded log, whose router commits in its append transaction) is skipped."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from broker.log import Consumer, EventLog, LogRecord, NewRecord
from broker.log.port import CommittingLater
from tests.contract.test_event_log import GENEROUS_S, make_topic, poll_until
from tests.waiting import eventually

if TYPE_CHECKING:
    from tests.contract.conftest import EventLogFactory


def _member_with_records(factory: EventLogFactory, log: EventLog, count: int
                         ) -> tuple[str, str, Consumer, CommittingLater]:
    topic = make_topic(factory, log)
    group = factory.unique("group")
    log.append(topic, [NewRecord(str(n).encode()) for n in range(count)])
    member = log.consumer(group, [topic])
    if not isinstance(member, CommittingLater):
        pytest.skip(f"the {factory.backend} log's consumer commits with commit() only")
    received: list[LogRecord] = []
    poll_until([member], lambda: len(received) >= count,
               lambda _m, records: received.extend(records))
    return topic, group, member, member


def _resumed(log: EventLog, group: str, topic: str, count: int) -> list[int]:
    successor = log.consumer(group, [topic])
    resumed: list[LogRecord] = []
    poll_until([successor], lambda: len(resumed) >= count,
               lambda _m, records: resumed.extend(records))
    successor.close()
    return [r.offset for r in resumed]


def test_offsets_handed_over_are_committed_while_the_member_polls(event_log_factory):
    log = event_log_factory()
    topic, group, member, later = _member_with_records(event_log_factory, log, 10)

    later.commit_later({(topic, 0): 6})

    def acknowledged() -> bool:
        member.poll(0.05)
        return member.committed((topic, 0)) == 6

    eventually(acknowledged, timeout=GENEROUS_S, interval=0,
               message="the offsets handed over were never committed")
    # Stored in the cluster, not only known to this member: another handle reads it.
    assert event_log_factory().consumer(group, [topic]).committed((topic, 0)) == 6


def test_closing_commits_what_was_handed_over(event_log_factory):
    log = event_log_factory()
    topic, group, member, later = _member_with_records(event_log_factory, log, 10)

    later.commit_later({(topic, 0): 4})
    later.commit_later({(topic, 0): 7})
    member.close()

    assert _resumed(log, group, topic, 3) == [7, 8, 9]


def test_a_commit_includes_what_was_handed_over_and_never_goes_back(event_log_factory):
    log = event_log_factory()
    topic, group, member, later = _member_with_records(event_log_factory, log, 10)

    later.commit_later({(topic, 0): 3})
    member.commit({(topic, 0): 8})
    later.commit_later({(topic, 0): 5})   # an older position handed over late
    member.close()

    assert _resumed(log, group, topic, 2) == [8, 9]


def test_a_negative_offset_is_refused_at_once(event_log_factory):
    log = event_log_factory()
    topic, _group, member, later = _member_with_records(event_log_factory, log, 1)

    with pytest.raises(Exception, match="negative"):
        later.commit_later({(topic, 0): -1})
    member.close()
