"""The schema registry over HTTP, continued: schemas by global id, compatibility checks
and compatibility levels (Confluent's `/schemas`, `/compatibility` and `/config`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, JsonValue
from pydantic.json_schema import JsonDict

from broker.api.auth import require
from broker.api.confluent import ConfluentRoute, RegistryError, error_responses
from broker.api.registry_access import visible_usages
from broker.api.routes_registry import (
    ADMIN,
    ANY_KEY,
    POLICY,
    REGISTRY,
    Deleted,
    SchemaBody,
    VersionParam,
    parse_schema,
    seen,
    version_of,
)
from broker.auth import Principal, Role
from broker.policy_holder import LoadedPolicy
from schemas.compatibility import CompatibilityLevel
from schemas.errors import UnknownSchemaIdError
from schemas.registry import RegisteredSchema, SchemaRegistry
from schemas.wire import MAX_SCHEMA_ID

router = APIRouter(prefix="/v1/registry", tags=["registry"], route_class=ConfluentRoute,
                   responses=error_responses(400, 401, 403, 404, 413, 422))
LEVELS = [level.value for level in CompatibilityLevel]
LEVEL_ENUM: JsonDict = {"enum": [*list[JsonValue](LEVELS), None]}


class ConfigBody(BaseModel):
    compatibility: str | None = Field(default=None, max_length=40,
                                      json_schema_extra=LEVEL_ENUM)
    compatibilityLevel: str | None = Field(
        default=None, max_length=40, json_schema_extra=LEVEL_ENUM,
        description="accepted in place of `compatibility`, as Confluent's set_config sends")

    def level(self) -> CompatibilityLevel:
        given = [v for v in (self.compatibility, self.compatibilityLevel) if v is not None]
        if not given or any(v.upper() not in LEVELS for v in given) or len(
                {v.upper() for v in given}) > 1:
            raise RegistryError(422, 42203, "Invalid compatibility level; give one of "
                                + ", ".join(LEVELS))
        return CompatibilityLevel(given[0].upper())


class SubjectVersion(BaseModel):
    subject: str
    version: int


class Compatibility(BaseModel):
    is_compatible: bool
    messages: list[str] = []


def _usages(principal: Principal, schema_id: int, policy: LoadedPolicy,
            registry: SchemaRegistry, deleted: bool) -> list[RegisteredSchema]:
    """The versions holding `schema_id` the caller may see; 40403 when there are none,
    as if the id did not exist."""
    found = visible_usages(principal, registry.usages(schema_id, include_deleted=True),
                           policy.bundle)
    if not found:
        raise UnknownSchemaIdError(f"Schema {schema_id} not found")
    return [u for u in found if deleted or not u.deleted]


@router.get("/schemas/ids/{schema_id}", summary="A schema by its global id")
def by_id(schema_id: int, principal: Principal = Depends(ANY_KEY),
          policy: LoadedPolicy = POLICY, registry: SchemaRegistry = REGISTRY,
          subject: str | None = Query(default=None, max_length=255),
          format: str | None = Query(default=None, max_length=40)) -> dict[str, Any]:
    del subject, format   # one schema text per id; Avro has one format
    _check_id(schema_id)
    _usages(principal, schema_id, policy, registry, deleted=True)
    return {"schema": registry.by_id(schema_id).schema}


@router.get("/schemas/ids/{schema_id}/versions",
            summary="Every subject and version holding a schema",
            response_model=list[SubjectVersion])
def id_versions(schema_id: int, principal: Principal = Depends(ANY_KEY),
                policy: LoadedPolicy = POLICY, registry: SchemaRegistry = REGISTRY,
                deleted: Deleted = False) -> list[dict[str, Any]]:
    _check_id(schema_id)
    return [{"subject": u.subject, "version": u.version}
            for u in _usages(principal, schema_id, policy, registry, deleted)]


@router.get("/schemas/ids/{schema_id}/subjects", summary="Every subject holding a schema")
def id_subjects(schema_id: int, principal: Principal = Depends(ANY_KEY),
                policy: LoadedPolicy = POLICY, registry: SchemaRegistry = REGISTRY,
                deleted: Deleted = False) -> list[str]:
    _check_id(schema_id)
    return sorted({u.subject for u in _usages(principal, schema_id, policy, registry,
                                               deleted)})


@router.get("/schemas/types", summary="The schema types served")
def types(_: Principal = Depends(ANY_KEY)) -> list[str]:
    return ["AVRO"]


def _check_id(schema_id: int) -> None:
    if not 0 < schema_id <= MAX_SCHEMA_ID:
        raise UnknownSchemaIdError(f"Schema {schema_id} not found")


@router.post("/compatibility/subjects/{subject}/versions/{version}",
             summary="Would this schema be compatible with one version?",
             response_model=Compatibility)
def check(subject: str, version: VersionParam, body: SchemaBody,
          principal: Principal = Depends(ANY_KEY), policy: LoadedPolicy = POLICY,
          registry: SchemaRegistry = REGISTRY, normalize: bool = False,
          verbose: bool = False) -> dict[str, Any]:
    del normalize
    problems = registry.check(seen(principal, subject, policy), parse_schema(body),
                              version_of(version))
    return {"is_compatible": not problems, "messages": problems if verbose else []}


@router.post("/compatibility/subjects/{subject}/versions",
             summary="Would this schema be accepted as the next version?",
             response_model=Compatibility)
def check_next(subject: str, body: SchemaBody, principal: Principal = Depends(ANY_KEY),
               policy: LoadedPolicy = POLICY, registry: SchemaRegistry = REGISTRY,
               normalize: bool = False, verbose: bool = False) -> dict[str, Any]:
    del normalize
    problems = registry.check(seen(principal, subject, policy), parse_schema(body))
    return {"is_compatible": not problems, "messages": problems if verbose else []}


@router.get("/config", summary="The registry-wide compatibility level")
def get_global_config(_: Principal = Depends(ANY_KEY),
                      registry: SchemaRegistry = REGISTRY) -> dict[str, str]:
    return {"compatibilityLevel": str(registry.compatibility())}


@router.put("/config", summary="Set the registry-wide compatibility level (admin)")
def put_global_config(body: ConfigBody, _: Principal = Depends(ADMIN),
                      registry: SchemaRegistry = REGISTRY) -> dict[str, str]:
    level = body.level()
    registry.set_compatibility(None, level)
    return {"compatibility": str(level)}


@router.get("/config/{subject}", summary="A subject's compatibility level")
def get_config(subject: str, principal: Principal = Depends(ANY_KEY),
               policy: LoadedPolicy = POLICY, registry: SchemaRegistry = REGISTRY,
               defaultToGlobal: bool = True) -> dict[str, str]:
    seen(principal, subject, policy)
    if not defaultToGlobal and not registry.has_own_compatibility(subject):
        raise RegistryError(404, 40408, f"Subject '{subject}' does not have subject-level "
                            "compatibility configured")
    return {"compatibilityLevel": str(registry.compatibility(subject))}


@router.put("/config/{subject}", summary="Set a subject's compatibility level (admin)")
def put_config(subject: str, body: ConfigBody, _: Principal = Depends(require(Role.ADMIN)),
               registry: SchemaRegistry = REGISTRY) -> dict[str, str]:
    level = body.level()
    registry.set_compatibility(subject, level)
    return {"compatibility": str(level)}
