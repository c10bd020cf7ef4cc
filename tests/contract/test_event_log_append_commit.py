"""The event log's optional `AppendCommitting` capability, on every backend that offers
it: records appended and a consumer's offsets committed in one transaction, all or none,
as the router writes a batch's deliveries and commits the batch. A backend without it
(Kafka) appends, then commits (`append_all` and `Consumer.commit`, test_event_log.py and
test_event_log_append_all.py); the router's unit tests run both ways."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from broker.errors import LogError, UnknownTopicError
from broker.log import EventLog, NewRecord, TopicSpec
from broker.log.port import AppendCommitting, Consumer

if TYPE_CHECKING:
    from tests.contract.conftest import EventLogFactory


def _committing(factory: EventLogFactory, log: EventLog) -> AppendCommitting:
    if not isinstance(log, AppendCommitting):
        pytest.skip(f"the {factory.backend} log commits offsets apart from appends")
    return log


def _read_one_batch(factory: EventLogFactory, log: EventLog
                    ) -> tuple[str, str, str, Consumer, dict[tuple[str, int], int]]:
    """An ingress topic of three records, a member that polled them, the offsets that
    commit them, and an output topic: what a router step has before it writes."""
    ingress, output = factory.unique("ingress"), factory.unique("output")
    log.ensure_topic(TopicSpec(ingress, partitions=1))
    log.ensure_topic(TopicSpec(output, partitions=2))
    log.append(ingress, [NewRecord(f"in {n}".encode()) for n in range(3)])
    group = factory.unique("group")
    member = log.consumer(group, [ingress])
    polled: list[object] = []
    while len(polled) < 3:
        polled += member.poll(5.0)
    return ingress, output, group, member, {(ingress, 0): 3}


def test_records_and_offsets_are_written_together(event_log_factory, event_log) -> None:
    log = _committing(event_log_factory, event_log)
    ingress, output, group, member, offsets = _read_one_batch(event_log_factory, event_log)
    views = [NewRecord(f"view {n}".encode(), key=f"s-{n}".encode()) for n in range(4)]

    (results,) = log.append_all_and_commit([(output, views)], member, offsets)

    assert len(results) == 4  # one per record, in input order
    assert [event_log.read(output, r.partition, r.offset, 1)[0].value for r in results] \
        == [v.value for v in views]
    assert member.committed((ingress, 0)) == 3
    # Another handle on the store (another process) sees both.
    other = event_log_factory()
    assert sum(other.end_offsets(output)) == 4
    again = other.consumer(group, [ingress])
    assert again.committed((ingress, 0)) == 3


def test_offsets_are_committed_when_there_is_nothing_to_append(
        event_log_factory, event_log) -> None:
    log = _committing(event_log_factory, event_log)
    ingress, output, _group, member, offsets = _read_one_batch(event_log_factory, event_log)

    assert log.append_all_and_commit([(output, [])], member, offsets) == [[]]

    assert member.committed((ingress, 0)) == 3
    assert event_log.end_offsets(output) == [0, 0]


@pytest.mark.parametrize("bad", ["value", "topic", "offset"])
def test_a_failure_writes_neither_records_nor_offsets(
        event_log_factory, event_log, bad) -> None:
    log = _committing(event_log_factory, event_log)
    ingress, output, _group, member, offsets = _read_one_batch(event_log_factory, event_log)
    batches = [(output, [NewRecord(b"kept back")])]
    if bad == "value":
        batches.append((output, [NewRecord("not bytes")]))  # type: ignore[arg-type]
    elif bad == "topic":
        batches.append((event_log_factory.unique("missing"), [NewRecord(b"x")]))
    else:
        offsets = {**offsets, (ingress, 7): 1}  # a partition the topic does not have

    with pytest.raises((LogError, UnknownTopicError)):
        log.append_all_and_commit(batches, member, offsets)

    assert event_log.end_offsets(output) == [0, 0]
    assert member.committed((ingress, 0)) is None


def test_only_an_open_member_of_this_logs_groups_can_commit(
        event_log_factory, event_log) -> None:
    log = _committing(event_log_factory, event_log)
    ingress, output, group, member, offsets = _read_one_batch(event_log_factory, event_log)
    stranger = event_log_factory().consumer(group, [ingress])
    member.close()

    for who in (stranger, member):
        with pytest.raises(LogError):
            log.append_all_and_commit([(output, [NewRecord(b"x")])], who, offsets)

    assert event_log.end_offsets(output) == [0, 0]
    assert stranger.committed((ingress, 0)) is None

