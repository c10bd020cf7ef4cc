"""The schema registry over HTTP: a subset of Confluent Schema Registry's API under
`/v1/registry`, so standard Avro tooling can resolve the schema ids it reads on the wire."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from broker.api import dependencies as deps
from broker.api.auth import require
from broker.api.body import parse_json
from broker.api.problems import AUTHENTICATED, ApiError, problem_responses
from broker.auth import Principal, Role
from broker.event_types import EventTypes, event_type_of_subject
from schemas.compatibility import CompatibilityLevel
from schemas.registry import SchemaRegistry

router = APIRouter(prefix="/v1/registry", tags=["registry"],
                   responses=problem_responses(*AUTHENTICATED, 400, 404, 409))
ANY_KEY = require(Role.PUBLISH, Role.SUBSCRIBE, Role.ADMIN, Role.AUDITOR)


VersionParam = Annotated[str, Path(pattern=r"^(latest|[1-9][0-9]{0,8})$",
                                   description="a version number or `latest`")]


class SchemaBody(BaseModel):
    schema_: str = Field(alias="schema", max_length=200_000,
                         description="the Avro schema as a JSON string")
    schemaType: str = Field(default="AVRO", pattern="^AVRO$")


class ConfigBody(BaseModel):
    compatibility: CompatibilityLevel


class NotAnEventSubject(ApiError):
    status, slug, title = 422, "not-an-event-subject", "Not an event subject"


def _parse(text: str) -> dict[str, Any]:
    parsed = parse_json(text, "'schema'")
    if not isinstance(parsed, dict):
        raise ApiError("'schema' must be a JSON object (an Avro record)")
    return parsed


def _version(version: str) -> int | Literal["latest"]:
    if version == "latest":
        return "latest"
    if version.isdigit() and int(version) > 0:
        return int(version)
    raise ApiError("version must be a positive integer or 'latest'")


REGISTRY = Depends(deps.registry)


@router.get("/subjects", summary="Registered subjects")
def subjects(_: Principal = Depends(ANY_KEY),
             registry: SchemaRegistry = REGISTRY) -> list[str]:
    return sorted(registry.subjects())


@router.get("/subjects/{subject}/versions", summary="Versions of a subject")
def versions(subject: str, _: Principal = Depends(ANY_KEY),
             registry: SchemaRegistry = REGISTRY) -> list[int]:
    return list(registry.versions(subject))


@router.get("/subjects/{subject}/versions/{version}", summary="One version of a subject")
def get_version(subject: str, version: VersionParam, _: Principal = Depends(ANY_KEY),
                registry: SchemaRegistry = REGISTRY) -> dict[str, Any]:
    entry = registry.get(subject, _version(version))
    return {"subject": entry.subject, "version": entry.version, "id": entry.schema_id,
            "schema": entry.schema}


@router.get("/schemas/ids/{schema_id}", summary="A schema by its global id")
def by_id(schema_id: int, _: Principal = Depends(ANY_KEY),
          registry: SchemaRegistry = REGISTRY) -> dict[str, Any]:
    entry = registry.by_id(schema_id)
    return {"schema": entry.schema}


@router.post("/subjects/{subject}/versions",
             summary="Register a new version of an event type (admin)")
def register(subject: str, body: SchemaBody, _: Principal = Depends(require(Role.ADMIN)),
             event_types: EventTypes = Depends(deps.event_types)) -> dict[str, int]:
    event_type = event_type_of_subject(subject)
    if event_type is None:
        raise NotAnEventSubject("register event schemas under 'events.<type>-value'; view "
                                "subjects are derived from policy and cannot be written")
    registered = event_types.add_version(event_type, _parse(body.schema_))
    return {"id": registered.schema_id}


@router.post("/compatibility/subjects/{subject}/versions/{version}",
             summary="Would this schema be accepted as the next version?")
def check(subject: str, version: VersionParam, body: SchemaBody,
          _: Principal = Depends(ANY_KEY),
          registry: SchemaRegistry = REGISTRY) -> dict[str, Any]:
    problems = registry.check(subject, _parse(body.schema_), _version(version))
    return {"is_compatible": not problems, "messages": problems}


@router.get("/config/{subject}", summary="A subject's compatibility level")
def get_config(subject: str, _: Principal = Depends(ANY_KEY),
               registry: SchemaRegistry = REGISTRY) -> dict[str, str]:
    return {"compatibilityLevel": str(registry.compatibility(subject))}


@router.put("/config/{subject}", summary="Set a subject's compatibility level (admin)")
def put_config(subject: str, body: ConfigBody, _: Principal = Depends(require(Role.ADMIN)),
               registry: SchemaRegistry = REGISTRY) -> dict[str, str]:
    registry.set_compatibility(subject, body.compatibility)
    return {"compatibility": str(body.compatibility)}
