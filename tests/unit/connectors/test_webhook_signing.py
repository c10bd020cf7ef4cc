"""Standard Webhooks signing and the receiver helper, without I/O."""

from __future__ import annotations

import pytest

from broker.delivery.retry_schedule import RetrySchedule
from broker.delivery.webhook_sender import parse_retry_after
from connectors.webhook_receiver import WebhookVerificationError, verify
from connectors.webhook_signing import WebhookSecret, WebhookSecretError, signature_header

# The example in the Standard Webhooks specification's reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str, ts: int = SPEC_TS, msg_id: str = SPEC_ID) -> dict[str, str]:
    return {"Webhook-Id": msg_id, "Webhook-Timestamp": str(ts), "Webhook-Signature": signature}


def test_signature_matches_the_specification_example():
    secret = WebhookSecret.parse(SPEC_SECRET)
    assert signature_header(SPEC_ID, SPEC_TS, SPEC_BODY, [secret]) == SPEC_SIGNATURE


def test_rotation_sends_one_signature_per_secret_and_either_verifies():
    old, new = WebhookSecret.parse(SPEC_SECRET), WebhookSecret.generate()
    both = signature_header(SPEC_ID, SPEC_TS, SPEC_BODY, [new, old])
    assert both.split()[1] == SPEC_SIGNATURE
    for secrets in ([old], [new], [new.encoded()]):
        assert verify(headers(both), SPEC_BODY, secrets, now=SPEC_TS) == {"test": 2432232314}


@pytest.mark.parametrize(("hdrs", "body", "now", "why"), [
    (headers(SPEC_SIGNATURE), b'{"test": 2432232315}', SPEC_TS, "no signature matches"),
    (headers(SPEC_SIGNATURE, msg_id="msg_other"), SPEC_BODY, SPEC_TS, "no signature matches"),
    (headers(SPEC_SIGNATURE), SPEC_BODY, SPEC_TS + 301, "more than 300 seconds"),
    (headers(SPEC_SIGNATURE), SPEC_BODY, SPEC_TS - 301, "more than 300 seconds"),
    (headers("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), SPEC_BODY, SPEC_TS,
     "no signature matches"),
    ({"webhook-id": SPEC_ID, "webhook-signature": SPEC_SIGNATURE}, SPEC_BODY, SPEC_TS,
     "missing header webhook-timestamp"),
    (headers(SPEC_SIGNATURE, ts=-5), SPEC_BODY, SPEC_TS, "whole seconds"),
])
def test_verify_refuses_altered_replayed_or_incomplete_requests(hdrs, body, now, why):
    with pytest.raises(WebhookVerificationError, match=why):
        verify(hdrs, body, [SPEC_SECRET], now=now)


def test_verify_accepts_within_the_window_and_a_custom_tolerance():
    assert verify(headers(SPEC_SIGNATURE), SPEC_BODY, [SPEC_SECRET], now=SPEC_TS + 299)
    with pytest.raises(WebhookVerificationError):
        verify(headers(SPEC_SIGNATURE), SPEC_BODY, [SPEC_SECRET], tolerance=10,
               now=SPEC_TS + 11)


@pytest.mark.parametrize("text", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!",
                                  "whsec_c2hvcnQ="])
def test_malformed_secrets_are_refused_without_echoing_them(text):
    with pytest.raises(WebhookSecretError) as caught:
        WebhookSecret.parse(text)
    assert text not in str(caught.value)


def test_a_secret_never_shows_its_key():
    secret = WebhookSecret.parse(SPEC_SECRET)
    assert "MfKQ" not in repr(secret) and "MfKQ" not in str(secret)
    assert secret.encoded() == SPEC_SECRET


def test_retry_after_in_seconds_or_as_an_http_date():
    assert parse_retry_after("120", now=0) == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412460) == 20
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None


def test_schedule_jitters_within_bounds_and_retry_after_wins_when_longer():
    schedule = RetrySchedule.of([0, 5, 300], jitter=0.2, max_retry_after=60)
    delays = [schedule.delay_after(1) for _ in range(200)]
    assert all(4 <= d <= 6 for d in delays) and len(set(delays)) > 1
    assert schedule.delay_after(1, retry_after=30) == 30
    assert schedule.delay_after(1, retry_after=3600) == 60      # capped
    assert 240 <= schedule.delay_after(2, retry_after=1) <= 360  # schedule longer
    assert schedule.attempts == 3
