"""Connector status and dead letters (admin keys only): `GET /v1/connectors`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from broker.api import dependencies as deps
from broker.api.auth import require
from broker.api.problems import AUTHENTICATED, NotFound, problem_responses
from broker.auth import Principal, Role
from broker.connect.host import ConnectorHost

router = APIRouter(prefix="/v1/connectors", tags=["connectors"],
                   responses=problem_responses(*AUTHENTICATED, 404))


Connectors = ConnectorHost | None


@router.get("", summary="Every connector this process runs, with its state and counts")
def list_connectors(principal: Principal = Depends(require(Role.ADMIN)),
                    connectors: Connectors = Depends(deps.connectors)) -> dict[str, Any]:
    return {"connectors": connectors.statuses() if connectors is not None else []}


@router.get("/{name}", summary="One connector's state, last error, counts and position")
def get_connector(name: str, principal: Principal = Depends(require(Role.ADMIN)),
                  connectors: Connectors = Depends(deps.connectors)) -> dict[str, Any]:
    worker = connectors.worker(name) if connectors is not None else None
    if worker is None:
        raise NotFound(f"no connector named '{name}' runs in this process")
    status: dict[str, Any] = worker.status.to_json()
    return status


@router.get("/{name}/dead-letters",
            summary="Records the connector refused, with reasons (never the values)")
def dead_letters(name: str,
                 after: int = Query(0, ge=0, description="`next` of an earlier page"),
                 limit: int = Query(100, ge=1, le=1000),
                 principal: Principal = Depends(require(Role.ADMIN)),
                 connectors: Connectors = Depends(deps.connectors)) -> dict[str, Any]:
    if connectors is None or connectors.worker(name) is None:
        raise NotFound(f"no connector named '{name}' runs in this process")
    letters = []
    next_after = after
    for letter in connectors.dead_letters.read(name, after=after):
        letters.append({**letter.to_json(), "offset": letter.offset})
        next_after = (letter.offset or 0) + 1
        if len(letters) >= limit:
            break
    return {"dead_letters": letters, "next": next_after}
