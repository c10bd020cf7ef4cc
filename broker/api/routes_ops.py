"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker.api import dependencies as deps
from broker.api.problems import problem
from broker.metrics import Metrics
from broker.policy_holder import PolicyHolder
from broker.workers import Workers

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready to accept and route events")
def readyz(request: Request, policy: PolicyHolder = Depends(deps.policy_holder),
           workers: Workers = Depends(deps.workers)) -> JSONResponse:
    checks = {"policy": policy.current.version}
    health = workers.health()
    checks.update((name, "running" if ok else "failing") for name, ok in health.items())
    if policy.last_error:
        checks["policy_reload"] = "refused: " + policy.last_error
    failing = [name for name, ok in health.items() if not ok]
    if failing:
        return problem(503, "not-ready", "Not ready",
                       f"the {' and '.join(failing)} {'is' if len(failing) == 1 else 'are'} "
                       "failing; see the logs", request.url.path, checks=checks)
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(metrics: Metrics = Depends(deps.metrics)) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
