"""Confluent's own Python clients, unchanged, against a running broker: the registry
client with an API key as HTTP basic auth (`basic.auth.user.info`), an `AvroSerializer`
that never registers (`auto.register.schemas=False`) writing events the broker accepts,
and an `AvroDeserializer` reading what a subscriber pulls. Errors reach the client as
Confluent's `error_code` and `message`."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import fastavro
import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from broker.demo import story
from schemas.jsonform import record_from_json
from tests.e2e.harness import BrokerProcess, Client
from tests.waiting import eventually

pytestmark = pytest.mark.slow
AVRO = "application/vnd.handoff.avro"


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(data_dir=tmp_path_factory.mktemp("confluent") / "data").start()
    try:
        yield process
    finally:
        process.stop()


def registry_client(broker: BrokerProcess, key: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": f"{broker.url}/v1/registry",
                                 "basic.auth.user.info": f"{key}:"})


def a_birth() -> dict[str, Any]:
    return story.STORY[2].build(datetime.now(UTC))


def error_of(call: Any) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as raised:
        call()
    return raised.value


def test_registry_client_reads_checks_and_is_refused_in_confluent_terms(running, keys):
    admin = registry_client(running, keys["admin"])
    assert "events.birth-value" in admin.get_subjects()
    latest = admin.get_latest_version("events.birth-value")
    assert latest.schema.schema_type == "AVRO" and latest.version >= 1
    found = admin.lookup_schema("events.birth-value", latest.schema)
    assert (found.schema_id, found.version) == (latest.schema_id, latest.version)
    assert admin.get_schema(latest.schema_id).schema_str == latest.schema.schema_str
    assert [(v.subject, v.version) for v in admin.get_schema_versions(latest.schema_id)] \
        == [("events.birth-value", latest.version)]
    assert admin.get_compatibility("events.birth-value") == "BACKWARD"
    assert admin.get_compatibility() == "BACKWARD"

    missing = error_of(lambda: admin.get_latest_version("events.no_such_type-value"))
    assert (missing.http_status_code, missing.error_code) == (404, 40401)
    assert "no_such_type" in missing.error_message
    assert error_of(lambda: admin.get_version("events.birth-value", 99)).error_code == 40402
    assert error_of(lambda: admin.get_schema(7)).error_code == 40403

    schema = json.loads(latest.schema.schema_str)
    schema["fields"].append({"name": "apgar_10min", "type": "int"})      # no default
    breaking = Schema(json.dumps(schema), "AVRO")
    assert admin.test_compatibility("events.birth-value", breaking) is False
    refused = error_of(lambda: admin.register_schema("events.birth-value", breaking))
    assert (refused.http_status_code, refused.error_code) == (409, 409)
    assert "apgar_10min" in refused.error_message

    subscriber = registry_client(running, keys["hv-nfp"])
    forbidden = error_of(lambda: subscriber.set_compatibility("events.birth-value", "NONE"))
    assert (forbidden.http_status_code, forbidden.error_code) == (403, 40301)
    nobody = registry_client(running, "hk_" + "x" * 43)
    unauthenticated = error_of(nobody.get_subjects)
    assert (unauthenticated.http_status_code, unauthenticated.error_code) == (401, 40101)


def test_a_subscriber_sees_event_schemas_and_only_its_own_view_schemas(running, keys):
    hv = Client(running.url, keys["hv-nfp"])
    try:
        hv_subject = "deliver.hv-births.birth-value"
        evaluation_subject = "deliver.eval-births.birth-value"
        publisher = Client(running.url, keys["county-general"])
        publisher.publish_ok("birth", a_birth())
        publisher.close()
        admin = registry_client(running, keys["admin"])
        eventually(lambda: {hv_subject, evaluation_subject} <= set(admin.get_subjects()),
                   timeout=15, message="the router never registered both view schemas")
        seen = registry_client(running, keys["hv-nfp"]).get_subjects()
        assert hv_subject in seen and "events.birth-value" in seen
        assert evaluation_subject not in seen
        other = admin.get_latest_version(evaluation_subject)
        hidden = error_of(lambda: registry_client(running, keys["hv-nfp"]).get_schema(
            other.schema_id))
        assert hidden.error_code == 40403
    finally:
        hv.close()


def test_serializer_without_auto_registration_writes_events_the_broker_accepts(running, keys):
    publisher = registry_client(running, keys["county-general"])
    latest = publisher.get_latest_version("events.birth-value")
    context = SerializationContext("events.birth", MessageField.VALUE)
    by_lookup = AvroSerializer(publisher, latest.schema.schema_str,
                               conf={"auto.register.schemas": False})
    by_latest = AvroSerializer(publisher, None, conf={"auto.register.schemas": False,
                                                      "use.latest.version": True})
    http = httpx.Client(base_url=running.url, timeout=30,
                        headers={"Authorization": f"Bearer {keys['county-general']}",
                                 "Content-Type": AVRO})
    sent = []
    try:
        for serializer in (by_lookup, by_latest):
            event = a_birth()
            record = record_from_json(json.loads(latest.schema.schema_str), event)
            payload = serializer(record, context)
            assert payload[1:5] == latest.schema_id.to_bytes(4, "big")
            response = http.post("/v1/events/birth", content=payload)
            assert response.status_code == 202, response.text
            sent.append(event)
    finally:
        http.close()

    # A subscriber reads its deliveries with the deserializer: each names its view
    # schema's id, which resolves for the subscription's own agency.
    evaluation = Client(running.url, keys["state-evaluation"])
    try:
        pulled = evaluation.pull_all("eval-births", expect=len(sent))
        cursor = None
        deserializer = AvroDeserializer(registry_client(running, keys["state-evaluation"]))
        response = evaluation.http.get("/v1/subscriptions/eval-births/events",
                                       params={"limit": 1000}, headers={"Accept": AVRO})
        assert response.status_code == 200
        envelopes = list(fastavro.reader(io.BytesIO(response.content)))
        cursor = response.headers["Handoff-Next-Cursor"]
    finally:
        evaluation.close()
    assert cursor and len(envelopes) == len(pulled)
    views = {e["event_id"]: deserializer(e["data"], SerializationContext(
        "deliver.eval-births", MessageField.VALUE)) for e in envelopes}
    for event in sent:
        view = views[event["event_id"]]
        assert view["mother"]["zip"] == event["mother"]["zip"][:3]
        assert "first_name" not in view["mother"]


def test_bearer_keys_work_with_whatever_logical_cluster_the_client_insists_on(running, keys):
    client = SchemaRegistryClient({
        "url": f"{running.url}/v1/registry",
        "bearer.auth.credentials.source": "STATIC_TOKEN",
        "bearer.auth.token": keys["hv-nfp"],
        # confluent-kafka refuses a bearer configuration without one; the broker ignores it.
        "bearer.auth.logical.cluster": "any",
    })
    assert "events.birth-value" in client.get_subjects()
