"""Verification runs started from the console: one at a time per process, in a thread of
its own, with a progress the integrity page polls (htmx) until it ends."""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Request

from broker.audit import AuditVerifier
from broker.clock import Clock

KEEP_JOBS = 20
log = logging.getLogger("handoff.console")


@dataclass(frozen=True, slots=True)
class VerifyJob:
    id: str
    started_by: str
    started_ms: int
    checkpoint_seq: int | None
    """The seq of the latest checkpoint when the run started."""
    done: int = 0
    total: int = 0
    finished_ms: int | None = None
    ok: bool | None = None
    summary: str | None = None
    signatures_checked: bool = False

    @property
    def running(self) -> bool:
        return self.finished_ms is None

    @property
    def percent(self) -> int:
        if not self.running:
            return 100
        return min(99, int(100 * self.done / self.total)) if self.total else 0

    @property
    def covered_seq(self) -> int | None:
        """Records up to this seq are vouched for by a verified, signed checkpoint."""
        if self.ok and self.signatures_checked:
            return self.checkpoint_seq
        return None


class VerifyJobs:
    def __init__(self) -> None:
        self._jobs: dict[str, VerifyJob] = {}
        self._lock = threading.Lock()

    def running(self) -> VerifyJob | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.running), None)

    def start(self, verifier: AuditVerifier, key: Ed25519PublicKey | None, started_by: str,
              clock: Clock, checkpoint_seq: int | None) -> VerifyJob:
        """Start a run, or return the one already running."""
        with self._lock:
            current = next((j for j in self._jobs.values() if j.running), None)
            if current is not None:
                return current
            job = VerifyJob(secrets.token_hex(8), started_by, clock(), checkpoint_seq)
            self._jobs[job.id] = job
            for old in list(self._jobs)[:-KEEP_JOBS]:
                del self._jobs[old]
        threading.Thread(target=self._run, args=(job.id, verifier, key, clock),
                         name="handoff-console-verify", daemon=True).start()
        return job

    def _update(self, job_id: str, **changes: object) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs[job_id] = replace(job, **changes)  # type: ignore[arg-type]

    def _run(self, job_id: str, verifier: AuditVerifier, key: Ed25519PublicKey | None,
             clock: Clock) -> None:
        try:
            result = verifier.verify(
                key, progress=lambda done, total: self._update(job_id, done=done,
                                                               total=total))
            self._update(job_id, finished_ms=clock(), ok=result.ok,
                         summary=result.summary(),
                         signatures_checked=result.signatures_checked)
        except Exception as exc:  # the top of a thread: report and log whatever stopped it
            log.exception("console verification run %s failed", job_id)
            self._update(job_id, finished_ms=clock(), ok=False,
                         summary=f"FAILED: verification could not run ({type(exc).__name__})")

    def get(self, job_id: str) -> VerifyJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def last_sound(self) -> VerifyJob | None:
        """The most recent finished run, if it found the log sound."""
        with self._lock:
            finished = [j for j in self._jobs.values() if not j.running]
        if not finished:
            return None
        last = max(finished, key=lambda j: j.finished_ms or 0)
        return last if last.ok else None


def verify_jobs(request: Request) -> VerifyJobs:
    jobs: VerifyJobs = request.app.state.console_jobs
    return jobs
