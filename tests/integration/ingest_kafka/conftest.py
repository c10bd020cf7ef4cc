"""Fixtures for the publish path's Kafka parts: the session's Tansu broker."""

from tests.kafka_broker import kafka_broker  # noqa: F401  (the session's Kafka broker)
