"""Connector positions and dead letters live in the event log: the same behaviour on the
embedded log and on Kafka (a Tansu broker)."""

from __future__ import annotations

from broker.connect.offsets import DeadLetterTopic, TopicOffsetStore
from connectors.dead_letters import DeadLetter


def test_the_latest_position_of_each_connector_survives_reopening(event_log_factory):
    log = event_log_factory()
    offsets = TopicOffsetStore(log)
    assert offsets.get("cms") is None
    for n in range(1, 6):
        offsets.commit("cms", {"id": n})
    offsets.commit("drop", {"file": "a.csv", "line": 12, "done": False})
    log.close()

    reopened = TopicOffsetStore(event_log_factory())
    assert reopened.get("cms") == {"id": 5}
    assert reopened.get("drop") == {"file": "a.csv", "line": 12, "done": False}
    assert reopened.get("other") is None


def test_dead_letters_read_back_per_connector_in_order(event_log_factory):
    topic = DeadLetterTopic(event_log_factory())
    topic.append([DeadLetter("cms", (("payload", "expected a JSON object"),),
                             reference="outbox id 7", position={"id": 7})])
    topic.append([DeadLetter("drop", (("child.sex", "value is not in the lookup table"),),
                             event_type="birth", reference="a.csv line 3"),
                  DeadLetter("cms", (("<event_type>", "not a registered event type"),),
                             reference="outbox id 9")])
    again = DeadLetterTopic(event_log_factory())
    assert [d.reference for d in again.read("cms")] == ["outbox id 7", "outbox id 9"]
    [drop] = again.read("drop")
    assert drop.problems == (("child.sex", "value is not in the lookup table"),)
    assert drop.at_ms > 0
    later = list(again.read(after=drop.offset))
    assert [d.reference for d in later] == ["a.csv line 3", "outbox id 9"]
