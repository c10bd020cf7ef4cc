"""The schema registry over HTTP: the part of Confluent Schema Registry's API that
Confluent clients call, under `/v1/registry`, so a `SchemaRegistryClient`, an
`AvroSerializer` or `AvroDeserializer` pointed at `http://HOST:PORT/v1/registry` works
unchanged (errors in Confluent's shape, see `broker.api.confluent`).

Subjects, versions and lookups here; schemas by id, compatibility and configuration in
`routes_registry_config`. Every read goes through `registry_access.may_see`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from broker.api import dependencies as deps
from broker.api.auth import require
from broker.api.confluent import (
    ConfluentRoute,
    RegistryError,
    error_responses,
    invalid_version,
    not_permitted,
)
from broker.api.problems import json_refusal
from broker.api.registry_access import may_see, visible
from broker.auth import Principal, Role
from broker.event_types import EventTypes, event_type_of_subject
from broker.policy_holder import LoadedPolicy
from schemas.errors import UnknownSubjectError
from schemas.registry import RegisteredSchema, SchemaRegistry

router = APIRouter(prefix="/v1/registry", tags=["registry"], route_class=ConfluentRoute,
                   responses=error_responses(400, 401, 403, 404, 413, 422))
ANY_KEY = require(Role.PUBLISH, Role.SUBSCRIBE, Role.ADMIN, Role.AUDITOR)
ADMIN = require(Role.ADMIN)
REGISTRY = Depends(deps.registry)
POLICY = Depends(deps.policy)

VersionParam = Annotated[str, Path(
    max_length=12, description="a version number, `latest` or -1 (the latest)")]
Deleted = Annotated[bool, Query(description="include soft-deleted versions")]


class SchemaBody(BaseModel):
    """A schema as Confluent clients send it."""

    schema_: str = Field(alias="schema", max_length=200_000,
                         description="the Avro schema as a JSON string")
    schemaType: str = Field(default="AVRO", max_length=20,
                            description="only `AVRO` is served")
    references: list[dict[str, Any]] = Field(
        default_factory=list, max_length=0, description="schema references are not served")


class RegisteredBody(BaseModel):
    subject: str
    version: int
    id: int
    schema_: str = Field(alias="schema")


def parse_schema(body: SchemaBody) -> dict[str, Any]:
    """The Avro schema of a request body, or 42201 naming what is wrong."""
    if body.schemaType.upper() != "AVRO":
        raise RegistryError(422, 42201, f"schema type {body.schemaType!r} is not served; "
                            "this registry holds Avro schemas only")
    try:
        parsed = json.loads(body.schema_)
    except json.JSONDecodeError as exc:
        raise RegistryError(422, 42201, f"Invalid schema: not valid JSON (line "
                            f"{exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # nested past the parser, 4300+ digits
        raise RegistryError(422, 42201, f"Invalid schema: {json_refusal(exc)}") from None
    if not isinstance(parsed, dict):
        raise RegistryError(422, 42201, "Invalid schema: an event schema is an Avro record")
    return parsed


def version_of(version: str) -> int | Literal["latest"]:
    if version in ("latest", "-1"):
        return "latest"
    if version.isascii() and version.isdigit() and 0 < int(version) < 2**31:
        return int(version)
    raise invalid_version(version)


def seen(principal: Principal, subject: str, policy: LoadedPolicy) -> str:
    """The subject, if the caller may see it; else 40401, as if it did not exist."""
    if not may_see(principal, subject, policy.bundle):
        raise UnknownSubjectError(f"Subject '{subject}' not found.")
    return subject


def registered(entry: RegisteredSchema) -> dict[str, Any]:
    return {"subject": entry.subject, "version": entry.version, "id": entry.schema_id,
            "schema": entry.schema}


@router.get("/subjects", summary="Registered subjects the caller may see")
def subjects(principal: Principal = Depends(ANY_KEY), policy: LoadedPolicy = POLICY,
             registry: SchemaRegistry = REGISTRY,
             subjectPrefix: str = Query(default="", max_length=255),
             deleted: Deleted = False) -> list[str]:
    names = registry.subjects(include_deleted=deleted)
    return visible(principal, [s for s in names if s.startswith(subjectPrefix)],
                   policy.bundle)


@router.get("/subjects/{subject}/versions", summary="Versions of a subject")
def versions(subject: str, principal: Principal = Depends(ANY_KEY),
             policy: LoadedPolicy = POLICY, registry: SchemaRegistry = REGISTRY,
             deleted: Deleted = False) -> list[int]:
    return registry.versions(seen(principal, subject, policy), include_deleted=deleted)


@router.get("/subjects/{subject}/versions/{version}", summary="One version of a subject",
            response_model=RegisteredBody)
def get_version(subject: str, version: VersionParam, principal: Principal = Depends(ANY_KEY),
                policy: LoadedPolicy = POLICY, registry: SchemaRegistry = REGISTRY,
                deleted: Deleted = False) -> dict[str, Any]:
    entry = registry.get(seen(principal, subject, policy), version_of(version),
                         include_deleted=deleted)
    return registered(entry)


@router.get("/subjects/{subject}/versions/{version}/schema",
            summary="Only the schema of one version of a subject")
def get_version_schema(subject: str, version: VersionParam,
                       principal: Principal = Depends(ANY_KEY), policy: LoadedPolicy = POLICY,
                       registry: SchemaRegistry = REGISTRY) -> dict[str, Any]:
    schema: dict[str, Any] = registry.get(seen(principal, subject, policy),
                                          version_of(version)).as_json()
    return schema


@router.post("/subjects/{subject}", summary="Which version of a subject holds this schema",
             response_model=RegisteredBody)
def lookup(subject: str, body: SchemaBody, principal: Principal = Depends(ANY_KEY),
           policy: LoadedPolicy = POLICY, registry: SchemaRegistry = REGISTRY,
           normalize: bool = False, deleted: Deleted = False) -> dict[str, Any]:
    del normalize   # schemas are always compared in canonical form
    entry = registry.lookup(seen(principal, subject, policy), parse_schema(body),
                            include_deleted=deleted)
    return registered(entry)


@router.post("/subjects/{subject}/versions",
             summary="Register a new version of an event type (admin)",
             responses=error_responses(409))
def register(subject: str, body: SchemaBody, _: Principal = Depends(ADMIN),
             event_types: EventTypes = Depends(deps.event_types),
             normalize: bool = False) -> dict[str, int]:
    del normalize
    event_type = event_type_of_subject(subject)
    if event_type is None:
        raise not_permitted("register event schemas under 'events.<type>-value'; view "
                            "subjects are derived from policy and cannot be written")
    added = event_types.add_version(event_type, parse_schema(body))
    return {"id": added.schema_id}


@router.delete("/subjects/{subject}", summary="Soft-delete every version of a subject (admin)")
def delete_subject(subject: str, _: Principal = Depends(ADMIN),
                   registry: SchemaRegistry = REGISTRY,
                   event_types: EventTypes = Depends(deps.event_types),
                   permanent: bool = False) -> list[int]:
    _refuse_permanent(permanent)
    deleted = registry.delete(subject)
    event_types.deleted()
    return deleted


@router.delete("/subjects/{subject}/versions/{version}",
               summary="Soft-delete one version of a subject (admin)")
def delete_version(subject: str, version: VersionParam, _: Principal = Depends(ADMIN),
                   registry: SchemaRegistry = REGISTRY,
                   event_types: EventTypes = Depends(deps.event_types),
                   permanent: bool = False) -> int:
    _refuse_permanent(permanent)
    (deleted,) = registry.delete(subject, version_of(version))
    event_types.deleted()
    return deleted


def _refuse_permanent(permanent: bool) -> None:
    if permanent:
        raise not_permitted("permanent deletes are not served: records written with a "
                            "schema must stay readable (a soft delete keeps its id)")
