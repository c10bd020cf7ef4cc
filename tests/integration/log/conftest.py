"""Fixtures for the event-log integration tests."""

from tests.kafka_broker import kafka_broker  # noqa: F401  (the session's Kafka broker)
