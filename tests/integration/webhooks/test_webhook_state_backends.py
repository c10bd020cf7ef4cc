"""Webhook cursors, endpoint states, dead letters and replays persist in the event log on
both backends (embedded SQLite and Kafka, against Tansu)."""

from __future__ import annotations

from broker.delivery.dead_letters import DeadLetterQueue
from broker.delivery.envelope import delivery_headers
from broker.delivery.webhook_state import CursorState, EndpointState, WebhookStateStore
from broker.log.port import NewRecord, TopicSpec
from broker.topics import delivery_topic
from tests.contract.conftest import event_log_factory  # noqa: F401  (parametrised fixture)
from tests.kafka_broker import kafka_broker  # noqa: F401  (session fixture)


def _delivery_record(i: int) -> NewRecord:
    return NewRecord(
        value=b"\x00\x00\x00\x00\x01" + bytes([i]), key=f"sp_{i:032x}".encode(),
        headers=delivery_headers(f"event-{i}", f"decision-{i}", "birth", "county-general",
                                 1_700_000_000_000, 1_700_000_000_000, b"[]", b"[]"),
    )


def test_state_survives_reopening_the_log(event_log_factory):  # noqa: F811
    sub = event_log_factory.unique("hv")
    log = event_log_factory()
    store = WebhookStateStore(log)
    store.put_cursor(sub, CursorState((3, 1), attempts=2, next_attempt_ms=42))
    store.put_cursor(sub, CursorState((4, 1)))
    store.put_endpoint(sub, EndpointState("failing", "http://x.test/h", 7, "HTTP 500"))
    store.mark_replayed(sub, [0, 2], at_ms=9, actor="key-1")
    log.close()

    reopened = WebhookStateStore(event_log_factory())
    reopened.catch_up()
    assert reopened.cursor(sub, 2) == CursorState((4, 1))
    assert reopened.endpoint(sub).status == "failing"
    assert reopened.endpoint(sub).reason == "HTTP 500"
    assert sorted(reopened.replayed(sub)) == [0, 2]
    # A cursor for another partition count starts over rather than mis-reading.
    assert reopened.cursor(sub, 3) == CursorState((0, 0, 0))


def test_a_dead_letter_keeps_the_delivery_and_a_replay_puts_it_back(
        event_log_factory):  # noqa: F811
    sub = event_log_factory.unique("hv")
    log = event_log_factory()
    log.ensure_topic(TopicSpec(delivery_topic(sub)))
    log.append(delivery_topic(sub), [_delivery_record(i) for i in range(3)])
    queue = DeadLetterQueue(log)
    queue.ensure(sub)
    original = log.read(delivery_topic(sub), 0, 1, 1)[0]
    dl_id = queue.append(sub, original, "HTTP 503", attempts=8, last_status=503, at_ms=5)

    (letter,) = DeadLetterQueue(event_log_factory()).read(sub)
    assert (letter.id, letter.reason, letter.attempts, letter.last_status) == \
        (dl_id, "HTTP 503", 8, 503)
    assert letter.envelope.decision_id == "decision-1"
    assert letter.origin == f"{delivery_topic(sub)}/0/1"

    queue.replay(sub, [letter])
    replayed = log.read(delivery_topic(sub), 0, 3, 10)
    assert [r.value for r in replayed] == [original.value]
    assert replayed[0].key == original.key
    assert replayed[0].header("handoff.decision_id") == b"decision-1"
    assert replayed[0].header("handoff.dead_letter.reason") is None
