"""Webhook signing secrets per subscription: from a YAML file and from settings.

Secrets never live in the policy bundle (which is reviewed and versioned like code). The
secrets file maps a subscription id to its secrets, newest first::

    hv-births:
      - whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw   # new: hand to the subscriber first
      - whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD   # old: remove once they switched

Every listed secret signs each message (several `v1,` signatures), which is how a secret
is rotated without a moment when the receiver rejects deliveries. The file is re-read
when it changes, so rotating needs no restart. Keep it readable by the broker only
(mode 0600).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from broker.errors import ConfigError
from connectors.webhook_signing import WebhookSecret, WebhookSecretError

log = logging.getLogger("handoff.webhooks")
_CHECK_EVERY_SECONDS = 1.0


def parse_secrets(doc: object, where: str) -> dict[str, tuple[WebhookSecret, ...]]:
    """Validate a secrets mapping; errors name the subscription, never the secret."""
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: expected a mapping of subscription id to secrets")
    out: dict[str, tuple[WebhookSecret, ...]] = {}
    for sub_id, value in doc.items():
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{where}: {sub_id}: expected a secret or a list of secrets")
        try:
            out[str(sub_id)] = tuple(WebhookSecret.parse(i) for i in items)
        except WebhookSecretError as exc:
            raise ConfigError(f"{where}: {sub_id}: {exc}") from exc
    return out


class WebhookSecrets:
    """Current secrets per subscription; re-reads the file when it changes."""

    def __init__(self, path: Path | None,
                 configured: Mapping[str, Sequence[str]] | None = None) -> None:
        self._path = path
        self._configured = parse_secrets(dict(configured or {}), "settings webhooks.secrets")
        self._lock = threading.Lock()
        self._from_file: dict[str, tuple[WebhookSecret, ...]] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._load(strict=True)

    def for_subscription(self, sub_id: str) -> tuple[WebhookSecret, ...]:
        """Secrets to sign with, file first then settings; empty when none is set."""
        now = time.monotonic()
        if now - self._checked >= _CHECK_EVERY_SECONDS:
            self._checked = now
            self._load(strict=False)
        with self._lock:
            return self._from_file.get(sub_id, ()) + self._configured.get(sub_id, ())

    def _load(self, strict: bool) -> None:
        if self._path is None:
            return
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            with self._lock:
                self._from_file, self._stamp = {}, None
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            try:
                doc = yaml.safe_load(self._path.read_text(encoding="utf-8"))
            except RecursionError:
                raise ConfigError("invalid YAML: nested too deeply") from None
            parsed = parse_secrets(doc, str(self._path))
        except (OSError, yaml.YAMLError, ConfigError) as exc:
            if strict:
                raise ConfigError(f"{self._path}: cannot use the webhook secrets file: "
                                  f"{exc if isinstance(exc, ConfigError) else type(exc).__name__}"
                                  ) from exc
            log.error("webhook secrets file %s is invalid (%s); keeping the secrets "
                      "loaded before", self._path, type(exc).__name__)
            self._stamp = stamp
            return
        with self._lock:
            self._from_file, self._stamp = parsed, stamp
        log.info("webhook secrets loaded from %s for %d subscription(s)", self._path,
                 len(parsed))
