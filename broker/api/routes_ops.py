"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker.api.problems import problem
from broker.runtime import Runtime

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready to accept and route events")
def readyz(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    checks = {
        "policy": runtime.policy.bundle.version,
        "router": "running" if runtime.services is None or runtime.services.router_healthy()
        else "failing",
    }
    if runtime.policy.last_error:
        checks["policy_reload"] = "refused: " + runtime.policy.last_error
    if checks["router"] != "running":
        return problem(503, "not-ready", "Not ready", "the router is failing; see the logs",
                       request.url.path, checks=checks)
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
