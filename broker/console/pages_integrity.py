"""Integrity: the chain's head, the last signed checkpoint and its signature, the key it
is checked against, and a full verification run with a progress bar."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from broker.api import dependencies as deps
from broker.audit import AuditReader, AuditVerifier
from broker.audit.checkpoints import load_public_key, public_key_id, signature_valid
from broker.console.errors import ConsoleRefused
from broker.console.integrity_jobs import verify_jobs
from broker.console.render import fragment, page
from broker.console.security import ConsoleUser, audit, checked_form, console_user
from broker.errors import AuditError

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class KeyFacts:
    path: Path | None
    pinned: bool
    key: Ed25519PublicKey | None
    key_id: str | None
    fingerprint: str | None
    """SHA-256 of the raw public key, in full, as people compare it."""
    problem: str | None


def key_facts(request: Request) -> KeyFacts:
    path, pinned = deps.audit_public_key(request)
    if path is None or not path.is_file():
        return KeyFacts(path, pinned, None, None, None,
                        "no public key file: signatures cannot be checked")
    try:
        key = load_public_key(path)
    except AuditError as exc:
        return KeyFacts(path, pinned, None, None, None, str(exc))
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return KeyFacts(path, pinned, key, public_key_id(key),
                    hashlib.sha256(raw).hexdigest(), None)


@router.get("/console/integrity")
def integrity(request: Request, job: str | None = None,
              user: ConsoleUser = Depends(console_user),
              reader: AuditReader = Depends(deps.audit_reader)) -> Response:
    seq, head_hash = reader.head()
    latest = reader.latest_checkpoint()
    facts = key_facts(request)
    signature_ok = (signature_valid(latest, facts.key)
                    if latest is not None and facts.key is not None else None)
    jobs = verify_jobs(request)
    shown = (jobs.get(job) if job else None) or jobs.running()
    audit(request, user, "view integrity")
    return page(request, user, "integrity.html", "integrity", head_seq=seq,
                head_hash=head_hash, checkpoint=latest, facts=facts,
                signature_ok=signature_ok, job=shown, last_sound=jobs.last_sound())


@router.post("/console/integrity/verify")
async def start_verification(request: Request, user: ConsoleUser = Depends(console_user),
                             verifier: AuditVerifier = Depends(deps.audit_verifier),
                             reader: AuditReader = Depends(deps.audit_reader)) -> Response:
    await checked_form(request, user)
    facts = key_facts(request)
    latest = reader.latest_checkpoint()
    job = verify_jobs(request).start(verifier, facts.key, user.principal.key_id,
                                     deps.clock(request),
                                     latest.seq if latest is not None else None)
    audit(request, user, "run verification")
    if request.headers.get("hx-request"):
        return fragment("job.html", job=job)
    return RedirectResponse(f"/console/integrity?job={job.id}", status_code=303)


@router.get("/console/integrity/jobs/{job_id}")
def job_progress(job_id: str, request: Request, user: ConsoleUser = Depends(console_user)
                 ) -> Response:
    job = verify_jobs(request).get(job_id)
    if job is None:
        raise ConsoleRefused(404, "no such verification run (runs are kept in memory)")
    return fragment("job.html", job=job)
