"""Administration: reloading the policy bundle without a restart (admin keys only)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends

from broker.api import dependencies as deps
from broker.api.auth import require
from broker.api.problems import AUTHENTICATED, ApiError, problem_responses
from broker.auth import Principal, Role
from broker.reloads import PolicyReloader

router = APIRouter(prefix="/v1/admin", tags=["admin"],
                   responses=problem_responses(*AUTHENTICATED))


class PolicyRefused(ApiError):
    status, slug, title = 422, "policy-refused", "Policy bundle refused"


@router.post(
    "/policy:reload",
    summary="Load the policy folder again; a bundle with mistakes is refused whole",
    responses={422: {"description": "The bundle was refused; the last good one stays in "
                     "force. `problems` names each mistake (file, line, field)."}},
)
async def reload(principal: Principal = Depends(require(Role.ADMIN)),
                 reloader: PolicyReloader = Depends(deps.reloader)) -> dict[str, Any]:
    outcome = await anyio.to_thread.run_sync(reloader.reload, principal.key_id)
    if not outcome.applied:
        raise PolicyRefused(
            f"{len(outcome.problems)} problem(s) in the policy bundle; version "
            f"{outcome.version} stays in force",
            extra={"version": outcome.version, "problems": outcome.problems})
    return {"version": outcome.version, "previous": outcome.previous,
            "changed": outcome.changed}
