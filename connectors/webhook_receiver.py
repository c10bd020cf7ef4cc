"""Verifying Handoff's webhooks on the receiving side.

A subscriber's endpoint calls `verify` with the request's headers and raw body before it
trusts anything in it::

    from connectors.webhook_receiver import WebhookVerificationError, verify

    try:
        event = verify(request.headers, raw_body, ["whsec_..."])
    except WebhookVerificationError:
        return 400            # not from Handoff, altered, or replayed too late
    store(event)              # de-duplicate by event["decision_id"] (== webhook-id)
    return 204

`verify` checks, in this order: the three `webhook-*` headers are present, the timestamp
is within `tolerance` seconds of now (a captured request cannot be replayed later), and
one of the signatures is the HMAC of `id.timestamp.body` under one of your secrets
(compared in constant time). Pass every secret you currently accept: during a rotation,
the old and the new one.

Deliveries are at least once: the same `webhook-id` can arrive again after a timeout, a
broker restart or a dead-letter replay. Keep the ids you have processed (a unique key on
`decision_id` is enough) and answer 2xx to a repeat.

Answer 2xx within a few seconds and do slow work afterwards; any other status, a timeout
or a redirect counts as a failure and is retried. Answer 410 Gone only to stop deliveries
to this URL altogether.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.webhook_signing import (
    H_ID,
    H_SIGNATURE,
    H_TIMESTAMP,
    WebhookSecret,
    matches,
    parse_signatures,
    signed_content,
)
from schemas.errors import HandoffError

DEFAULT_TOLERANCE_SECONDS = 300


class WebhookVerificationError(HandoffError, ValueError):
    """The request is not a valid Handoff webhook; the message says why, never what the
    body held."""


def verify(headers: Mapping[str, str], body: bytes,
           secrets: Sequence[str | WebhookSecret],
           tolerance: float = DEFAULT_TOLERANCE_SECONDS,
           now: float | None = None) -> dict[str, Any]:
    """Check a webhook request and return its JSON body (one delivery).

    `headers` may be any mapping (a framework's case-insensitive headers, or a plain
    dict); names are matched case-insensitively. `secrets` are `whsec_...` strings or
    `WebhookSecret`s. Raises `WebhookVerificationError` when a header is missing or
    malformed, the timestamp is outside `tolerance` seconds of `now`, no signature
    matches, or the body is not a JSON object.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in (H_ID, H_TIMESTAMP, H_SIGNATURE) if not lower.get(h)]
    if missing:
        raise WebhookVerificationError(f"missing header {', '.join(missing)}")
    msg_id, stamp, signature = lower[H_ID], lower[H_TIMESTAMP], lower[H_SIGNATURE]
    if not stamp.isdigit() or len(stamp) > 12:
        raise WebhookVerificationError(f"{H_TIMESTAMP} must be whole seconds since 1970")
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"{H_TIMESTAMP} is more than {tolerance:g} seconds from now (replayed or a "
            "badly set clock)")
    keys = [s if isinstance(s, WebhookSecret) else WebhookSecret.parse(s) for s in secrets]
    if not keys:
        raise WebhookVerificationError("no secret to verify against")
    if not matches(signed_content(msg_id, timestamp, body), parse_signatures(signature),
                   keys):
        raise WebhookVerificationError("no signature matches any of the secrets")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookVerificationError("the body is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookVerificationError("the body is not a JSON object")
    return payload
