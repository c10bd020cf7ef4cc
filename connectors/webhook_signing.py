"""Standard Webhooks signatures: the secret format and HMAC-SHA256 over id, timestamp, body.

The Standard Webhooks specification (standardwebhooks.com) signs each message with

    signature = base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}"))

and sends it as `webhook-signature: v1,<signature>`. A secret is written
`whsec_<base64 key>`; the HMAC key is the decoded bytes. While a secret is being rotated
the sender signs with every current secret and sends the signatures space-separated, so a
receiver holding either the old or the new secret accepts the message.

This module is pure (no I/O) and is shared by the sender (`broker.delivery.webhook_sender`)
and the receiver helper (`connectors.webhook_receiver`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from schemas.errors import HandoffError

SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
SIGNATURE_VERSION = "v1"
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64

H_ID = "webhook-id"
H_TIMESTAMP = "webhook-timestamp"
H_SIGNATURE = "webhook-signature"


class WebhookSecretError(HandoffError, ValueError):
    """A webhook secret is not a `whsec_`-prefixed base64 key of 24 to 64 bytes."""


@dataclass(frozen=True, slots=True)
class WebhookSecret:
    """One signing secret. `str()` and `repr()` never show the key."""

    key: bytes

    def __post_init__(self) -> None:
        if not MIN_KEY_BYTES <= len(self.key) <= MAX_KEY_BYTES:
            raise WebhookSecretError(
                f"a webhook secret holds {MIN_KEY_BYTES} to {MAX_KEY_BYTES} random bytes; "
                f"this one holds {len(self.key)}")

    @classmethod
    def parse(cls, text: str) -> WebhookSecret:
        """Read `whsec_<base64>`; raise `WebhookSecretError` naming what is wrong."""
        text = text.strip()
        if not text.startswith(SECRET_PREFIX):
            raise WebhookSecretError(f"a webhook secret starts with '{SECRET_PREFIX}'")
        try:
            key = base64.b64decode(text.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WebhookSecretError("a webhook secret is 'whsec_' followed by base64") \
                from exc
        return cls(key)

    @classmethod
    def generate(cls, size: int = 32) -> WebhookSecret:
        """A new random secret (for `handoff` operators handing one to a subscriber)."""
        return cls(_random.token_bytes(size))

    def encoded(self) -> str:
        """The `whsec_...` form to hand to the subscriber."""
        return SECRET_PREFIX + base64.b64encode(self.key).decode()

    def sign(self, content: bytes) -> bytes:
        return hmac.new(self.key, content, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "WebhookSecret(<hidden>)"

    __str__ = __repr__


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    """The bytes the signature covers: `id.timestamp.body`."""
    return f"{msg_id}.{timestamp}.".encode() + body


def signature_header(msg_id: str, timestamp: int, body: bytes,
                     secrets: Sequence[WebhookSecret]) -> str:
    """The `webhook-signature` value: one `v1,<base64>` per secret, space-separated."""
    if not secrets:
        raise WebhookSecretError("cannot sign a webhook without a secret")
    content = signed_content(msg_id, timestamp, body)
    return " ".join(
        f"{SIGNATURE_VERSION},{base64.b64encode(s.sign(content)).decode()}" for s in secrets)


def parse_signatures(header: str) -> list[bytes]:
    """The `v1` signatures in a `webhook-signature` value; others are ignored, as the
    specification asks, so a receiver keeps working when a sender adds new versions."""
    found: list[bytes] = []
    for part in header.split():
        version, _, value = part.partition(",")
        if version != SIGNATURE_VERSION or not value:
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def matches(content: bytes, signatures: Iterable[bytes],
            secrets: Sequence[WebhookSecret]) -> bool:
    """Whether any signature is the HMAC of `content` under any secret (constant time)."""
    expected = [s.sign(content) for s in secrets]
    ok = False
    for candidate in signatures:
        for wanted in expected:
            # Compare every pair, without stopping early, so timing reveals nothing.
            ok |= hmac.compare_digest(candidate, wanted)
    return ok
