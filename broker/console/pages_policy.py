"""The policy dry-run: try a changed bundle on recent events before it is in force, and
apply it from here (admin keys), through the same reload as the admin API."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from broker.api import dependencies as deps
from broker.api.body_guard import FORM_SLACK
from broker.console.bundle_upload import copy_bundle, unpack_bundle
from broker.console.errors import ConsoleRefused
from broker.console.policy_trials import trial_shelf
from broker.console.render import page
from broker.console.security import ConsoleUser, admin_user, audit, checked_form, console_user
from broker.policy_install import PolicyInstaller, PolicyInstallError
from broker.policy_trial import PolicyTrial
from broker.reloads import PolicyReload
from policy import BundleError

router = APIRouter(include_in_schema=False)
WINDOWS = ((1, "the last hour"), (24, "the last day"), (168, "the last week"),
           (720, "the last 30 days"))
HOUR_MS = 3_600_000


@router.get("/console/policy")
def policy_form(request: Request, user: ConsoleUser = Depends(console_user)) -> Response:
    audit(request, user, "view policy dry-run")
    return page(request, user, "policy.html", "policy", windows=WINDOWS,
                version=deps.policy(request).version, problems=(), message=None)


def _hours(value: object) -> int:
    try:
        hours = int(str(value))
    except ValueError:
        return 24
    return hours if hours in dict(WINDOWS) else 24


@router.post("/console/policy/trial")
async def run_trial(request: Request, user: ConsoleUser = Depends(console_user),
                    trial: PolicyTrial = Depends(deps.policy_trial)) -> Response:
    limit = deps.api_settings(request).console.max_upload_bytes + FORM_SLACK
    form = await checked_form(request, user, limit=limit, max_files=1)
    upload = form.get("bundle")
    server_path = str(form.get("path") or "").strip()
    hours = _hours(form.get("hours"))
    shelf = trial_shelf(request)
    scratch = shelf.scratch()
    try:
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read()
            folder = unpack_bundle(data, scratch)
            source = f"uploaded {Path(upload.filename).name}"
        elif server_path:
            if not user.is_admin:
                raise ConsoleRefused(403, "only admin keys may try a folder on the server")
            folder = copy_bundle(Path(server_path), scratch)
            source = f"server folder {server_path}"
        else:
            raise ConsoleRefused(422, "choose a zipped bundle to upload"
                                 + (" or a folder on the server" if user.is_admin else ""))
        try:
            bundle = await anyio.to_thread.run_sync(trial.load, folder)
        except BundleError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            audit(request, user, "policy dry-run refused (bundle has mistakes)", status=422)
            return page(request, user, "policy.html", "policy", status=422,
                        windows=WINDOWS, version=deps.policy(request).version,
                        problems=[str(p) for p in exc.problems[:100]],
                        message="The bundle has mistakes; nothing was tried.")
        now = deps.clock(request)()
        report = await anyio.to_thread.run_sync(trial.run, bundle, now - hours * HOUR_MS)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    kept = shelf.keep(folder, scratch, report, source, user.principal.key_id, now)
    audit(request, user, f"policy dry-run of {bundle.version}")
    return page(request, user, "policy_report.html", "policy", kept=kept, report=report,
                hours=hours, windows=dict(WINDOWS), warnings=[str(w) for w in bundle.warnings])


@router.post("/console/policy/apply/{trial_id}")
async def apply_trial(trial_id: str, request: Request, user: ConsoleUser = Depends(admin_user),
                      trial: PolicyTrial = Depends(deps.policy_trial),
                      installer: PolicyInstaller = Depends(deps.policy_installer)
                      ) -> Response:
    await checked_form(request, user)
    shelf = trial_shelf(request)
    kept = shelf.get(trial_id, deps.clock(request)())
    if kept is None:
        raise ConsoleRefused(404, "that dry-run is gone (kept an hour); run it again")

    def install() -> PolicyReload:
        current = trial.load(kept.folder).version
        return installer.install(kept.folder, kept.report.candidate_version, current,
                                 user.principal.key_id)

    try:
        outcome = await anyio.to_thread.run_sync(install)
    except (PolicyInstallError, BundleError) as exc:
        audit(request, user, "apply policy refused", status=409)
        raise ConsoleRefused(409, str(exc)) from exc
    applied = outcome.applied
    audit(request, user, f"apply policy {kept.report.candidate_version}",
          status=200 if applied else 422)
    if applied:
        shelf.drop(trial_id)
    return page(request, user, "policy_applied.html", "policy", outcome=outcome,
                kept=kept, status=200 if applied else 422)
