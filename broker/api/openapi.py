"""The OpenAPI document, complete enough to generate clients from.

On top of what FastAPI derives from the routes:

- one path per event type, `POST /v1/events/<type>` and `.../<type>:batch`, each with the
  JSON Schema of that type's JSON body derived from its Avro schema (`schemas.jsonschema`)
  as a component `<Type>Event` (the Avro body the path also takes is described in words:
  generators handle one body type per operation best), in place of the generic
  `/v1/events/{event_type}` (which still serves every type). Generators give each type
  a typed function; a type registered while the broker runs appears at the next request
  for the document;
- the security schemes (`bearer`: the API key; `basic`: the key as user name) and, on
  each operation behind a key, `security` naming both;
- problem details and Confluent registry errors as the components `Problem` and
  `RegistryError`, referenced from every error response.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from broker.api.confluent import ERROR_SCHEMA, MEDIA_TYPE
from broker.api.problems import PROBLEM_JSON, PROBLEM_SCHEMA
from broker.event_types import EventTypes
from schemas.jsonschema import event_json_schema

EVENT_PATH, BATCH_PATH = "/v1/events/{event_type}", "/v1/events/{event_type}:batch"
AVRO = "application/vnd.handoff.avro"
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API key: `Authorization: Bearer <key>`"},
    "basic": {"type": "http", "scheme": "basic",
              "description": "An API key as the user name, any password (as Confluent "
                             "clients send `basic.auth.user.info`)"},
}
PLACED = {
    "type": "object", "required": ["event_id", "topic", "partition", "offset", "duplicate"],
    "properties": {
        "event_id": {"type": "string"}, "topic": {"type": "string"},
        "partition": {"type": "integer"}, "offset": {"type": "integer"},
        "duplicate": {"type": "boolean",
                      "description": "true when this agency had already published the "
                                     "event_id: nothing was appended"},
    },
}


def type_model_name(event_type: str) -> str:
    return "".join(part.capitalize() for part in event_type.split("_")) + "Event"


def install_openapi(app: FastAPI, event_types: EventTypes) -> None:
    """Serve the complete document at `/openapi.json` (and to `/docs`)."""
    lock = threading.Lock()
    cache: dict[tuple[tuple[str, int], ...], dict[str, Any]] = {}
    generate: Callable[[], dict[str, Any]] = app.openapi

    def document() -> dict[str, Any]:
        key = tuple((t, event_types.latest(t).schema_id) for t in event_types.names())
        with lock:
            found = cache.get(key)
            if found is None:
                base = generate()
                cache.clear()
                found = cache[key] = _complete(copy.deepcopy(base), event_types)
            return found

    app.openapi = document  # type: ignore[method-assign]


def _complete(doc: dict[str, Any], event_types: EventTypes) -> dict[str, Any]:
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["RegistryError"] = ERROR_SCHEMA
    schemas["Placed"] = PLACED
    components["securitySchemes"] = SECURITY_SCHEMES
    paths: dict[str, Any] = doc["paths"]
    single, batch = paths.pop(EVENT_PATH, None), paths.pop(BATCH_PATH, None)
    if single is not None and batch is not None:
        for event_type in event_types.names():
            name = type_model_name(event_type)
            schemas[name] = event_json_schema(event_types.latest(event_type).schema.schema)
            paths[f"/v1/events/{event_type}"] = _publish_one(single, event_type, name)
            paths[f"/v1/events/{event_type}:batch"] = _publish_many(batch, event_type, name)
    for item in paths.values():
        for operation in item.values():
            _refer_to_error_components(operation)
            if "401" in operation.get("responses", {}):
                operation["security"] = [{"bearer": []}, {"basic": []}]
    return doc


def _without_type_parameter(template: dict[str, Any], event_type: str, operation_id: str,
                            summary: str) -> dict[str, Any]:
    operation = copy.deepcopy(template["post"])
    operation["parameters"] = [p for p in operation.get("parameters", [])
                               if p.get("name") != "event_type"]
    if not operation["parameters"]:
        del operation["parameters"]
    operation["operationId"] = operation_id
    operation["summary"] = summary
    return operation


def _publish_one(template: dict[str, Any], event_type: str, name: str) -> dict[str, Any]:
    operation = _without_type_parameter(template, event_type, f"publish_{event_type}",
                                        f"Publish one {event_type} event")
    # JSON only: generators handle one body type per operation best. The same path also
    # takes the Avro wire format, as the description says.
    operation["description"] = (
        f"The body is one `{event_type}` event as JSON. The same path also takes the "
        f"event as `{AVRO}` (Confluent wire format: byte 0, the 4-byte id of a registered "
        f"version of `events.{event_type}-value`, the Avro body).")
    operation["requestBody"] = {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}
    operation["responses"]["202"] = {"description": "Accepted, durable", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Placed"}}}}
    return {"post": operation}


def _publish_many(template: dict[str, Any], event_type: str, name: str) -> dict[str, Any]:
    operation = _without_type_parameter(template, event_type, f"publish_{event_type}_batch",
                                        f"Publish many {event_type} events, all or none")
    operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["events"],
        "properties": {"events": {"type": "array", "minItems": 1,
                                  "items": {"$ref": f"#/components/schemas/{name}"}}}}}}}
    operation["responses"]["202"] = {"description": "Accepted, durable", "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["accepted"],
            "properties": {"accepted": {"type": "array", "items": {
                "$ref": "#/components/schemas/Placed"}}}}}}}
    return {"post": operation}


def _refer_to_error_components(operation: dict[str, Any]) -> None:
    for response in operation.get("responses", {}).values():
        for media, body in response.get("content", {}).items():
            if media == PROBLEM_JSON and body.get("schema") == PROBLEM_SCHEMA:
                body["schema"] = {"$ref": "#/components/schemas/Problem"}
            elif media == MEDIA_TYPE and body.get("schema") == ERROR_SCHEMA:
                body["schema"] = {"$ref": "#/components/schemas/RegistryError"}
