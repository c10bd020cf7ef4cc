"""Accepting events from publishers: validation, idempotency, append to ingress topics."""
