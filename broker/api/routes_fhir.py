"""The FHIR R4 source's endpoint: `POST /v1/connectors/fhir/{connector}/Bundle`.

The named connector must be a `fhir_r4` connector this process runs (connectors file),
and the caller a key of that connector's agency with the publish role. The body is capped
at `api.max_body_bytes` as it is read, after authentication; a bundle of more than
`fhir.max_bundle_entries` entries gets 413 before its entries are validated. Invalid
bundles get a 422 problem whose `errors` name the resource (`Patient/p1`) and element
(`birthDate`) of each problem, never the values.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from broker.api import dependencies as deps
from broker.api.auth import refuse, require
from broker.api.body import read_capped
from broker.api.problems import (
    AUTHENTICATED,
    ApiError,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    problem_responses,
)
from broker.auth import Principal, Role
from broker.config import ApiSettings, FhirSettings
from broker.connect.host import ConnectorHost
from broker.ingest.publisher import Publisher
from connectors.fhir_source import (
    FHIR_JSON,
    BundleTooLarge,
    FhirSourceConfig,
    InvalidBundle,
    receive_bundle,
)

router = APIRouter(tags=["connectors"], responses=problem_responses(
    *AUTHENTICATED, 400, 404, 413, 415, 503))

_BODY = {"requestBody": {"required": True, "content": {
    FHIR_JSON: {"schema": {"type": "object"}},
    "application/json": {"schema": {"type": "object"}},
}}}


class InvalidFhirBundle(ApiError):
    status, slug, title = 422, "invalid-fhir-bundle", "The FHIR bundle cannot be used"


def _config(connectors: ConnectorHost | None, name: str) -> FhirSourceConfig:
    worker = connectors.worker(name) if connectors is not None else None
    if worker is None or not isinstance(worker.config, FhirSourceConfig):
        raise NotFound(f"no FHIR connector named '{name}' runs in this process")
    return worker.config


@router.post("/v1/connectors/fhir/{connector}/Bundle", status_code=202, openapi_extra=_BODY,
             summary="Accept a FHIR R4 Bundle and publish the events it stands for")
async def post_bundle(
    connector: str, request: Request,
    principal: Principal = Depends(require(Role.PUBLISH)),
    connectors: ConnectorHost | None = Depends(deps.connectors),
    publisher: Publisher = Depends(deps.publisher),
    settings: ApiSettings = Depends(deps.api_settings),
    fhir: FhirSettings = Depends(deps.fhir_settings),
) -> JSONResponse:
    config = _config(connectors, connector)
    if principal.agency != config.agency:
        raise refuse(request, principal,
                     f"connector '{connector}' publishes as agency '{config.agency}'")
    content_type = request.headers.get("content-type", FHIR_JSON).split(";")[0].strip()
    if content_type not in (FHIR_JSON, "application/json"):
        raise UnsupportedMediaType(f"send a Bundle as {FHIR_JSON}")
    body = await read_capped(request, settings.max_body_bytes)
    try:
        published = await anyio.to_thread.run_sync(
            receive_bundle, publisher.ingest_as(principal), config, body,
            fhir.max_bundle_entries)
    except BundleTooLarge as exc:
        raise PayloadTooLarge(f"{exc} (setting fhir.max_bundle_entries)",
                              extra={"limit": exc.limit}) from exc
    except InvalidBundle as exc:
        errors: list[dict[str, Any]] = [
            {"resource": r, "element": e, "message": m} for r, e, m in exc.problems]
        raise InvalidFhirBundle(str(exc), extra={"errors": errors}) from exc
    return JSONResponse({"events": [
        {"resource": m.resource, "event_type": m.event_type, **placed.to_dict()}
        for m, placed in published]}, status_code=202)
