"""Topic names and record headers shared by the publish path and the router.

On the Kafka backend every name gets the configured prefix (`handoff.events.birth`); the
adapter adds it, so the rest of the broker uses these names alone.
"""

from __future__ import annotations

SCHEMAS = "_schemas"
"""Registry entries (compacted), as Confluent Schema Registry keeps them."""
POLICY = "_policy"
"""Every policy bundle put in force, in order."""
QUARANTINE = "quarantine.events"
"""Ingress records the router could not decode, with the reason in a header."""

H_INGEST_SOURCE = "handoff.source"
H_INGEST_KEY_ID = "handoff.key_id"
H_INGEST_EVENT_ID = "handoff.event_id"
"""The event's id beside its value, readable when the value is not (the router's
quarantine, rebuilding the idempotency index from the log)."""
H_QUARANTINE_REASON = "handoff.quarantine_reason"

INGRESS_PREFIX = "events."
DELIVERY_PREFIX = "deliver."
ROUTER_GROUP = "handoff-router"


def ingress_topic(event_type: str) -> str:
    return f"{INGRESS_PREFIX}{event_type}"


def event_type_of(topic: str) -> str:
    return topic.removeprefix(INGRESS_PREFIX)


def delivery_topic(subscription_id: str) -> str:
    return f"{DELIVERY_PREFIX}{subscription_id}"
