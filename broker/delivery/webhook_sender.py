"""Sending one webhook: a signed HTTP POST, and what its answer means for retrying.

`WebhookSender.send` makes exactly one attempt and classifies it; deciding when to try
again, dead-lettering and remembering progress is the dispatcher's job
(`broker.delivery.webhooks`). Keeping the attempt apart keeps it testable against a real
HTTP server without a broker.

Outcomes, following the Standard Webhooks specification:

- any 2xx: `delivered`;
- 410 Gone: `gone`, the receiver asks never to be called at this URL again;
- anything else (other statuses, redirects, which are not followed, timeouts, refused
  connections, TLS failures): `failed`, to be retried. A `Retry-After` header (seconds
  or an HTTP date) on the answer is passed on so the dispatcher can honour it.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from connectors.webhook_signing import (
    H_ID,
    H_SIGNATURE,
    H_TIMESTAMP,
    WebhookSecret,
    signature_header,
)

Outcome = Literal["delivered", "failed", "gone"]
USER_AGENT = "Handoff-Webhooks/1"
DEFAULT_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one POST came to. `error` names the failure class ("timeout", "HTTP 503"),
    never anything from the response body."""

    outcome: Outcome
    status: int | None = None
    retry_after: float | None = None
    """Seconds the receiver asked us to wait, if it said."""
    error: str | None = None


class WebhookSender:
    """Signs and POSTs deliveries. One instance per dispatcher thread (httpx clients keep
    connections alive between attempts)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = httpx.Client(
            timeout=timeout, follow_redirects=False, transport=transport,
            headers={"user-agent": USER_AGENT},
        )
        self._clock = clock

    def send(self, url: str, msg_id: str, body: bytes, secrets: Sequence[WebhookSecret],
             *, content_type: str = "application/json") -> AttemptResult:
        """POST `body` (JSON) to `url`, signed with every secret; one attempt."""
        timestamp = int(self._clock())
        headers = {
            "content-type": content_type,
            H_ID: msg_id,
            H_TIMESTAMP: str(timestamp),
            H_SIGNATURE: signature_header(msg_id, timestamp, body, secrets),
        }
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return AttemptResult("failed", error="timeout")
        except httpx.TransportError as exc:
            return AttemptResult("failed", error=type(exc).__name__)
        status = response.status_code
        response.close()
        if 200 <= status < 300:
            return AttemptResult("delivered", status)
        if status == 410:
            return AttemptResult("gone", status, error="HTTP 410")
        return AttemptResult("failed", status,
                             retry_after=parse_retry_after(response.headers.get("retry-after"),
                                                           self._clock()),
                             error=f"HTTP {status}")

    def close(self) -> None:
        self._client.close()


def parse_retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from now: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
