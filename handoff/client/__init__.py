"""A Python client of Handoff's HTTP API, sync (`HandoffClient`) and async
(`AsyncHandoffClient`): publish events (JSON or Avro with the registry) with idempotent
retries, pull with a persisted cursor, stream with resume, explain decisions, and query
the audit log. Refusals raise `HandoffApiError` subclasses carrying the problem details.
See docs/client.md.
"""

from handoff.client.aio import AsyncHandoffClient
from handoff.client.cursors import CursorStore, FileCursorStore, MemoryCursorStore
from handoff.client.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    HandoffApiError,
    HandoffClientError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Problem,
    RateLimited,
    TransportError,
    Unauthenticated,
    Unavailable,
)
from handoff.client.results import (
    AuditRecord,
    DecisionPage,
    Delivery,
    Disclosures,
    Explanation,
    Page,
    Placed,
)
from handoff.client.retry import NO_RETRIES, RetryPolicy
from handoff.client.sync import HandoffClient

__all__ = [
    "NO_RETRIES", "AsyncHandoffClient", "AuditRecord", "BadRequest", "Conflict",
    "CursorStore", "DecisionPage", "Delivery", "Disclosures", "Explanation", "FieldError",
    "FileCursorStore", "Forbidden", "HandoffApiError", "HandoffClient", "HandoffClientError",
    "InvalidRequest", "MemoryCursorStore", "NotFound", "Page", "PayloadTooLarge", "Placed",
    "Problem", "RateLimited", "RetryPolicy", "TransportError", "Unauthenticated",
    "Unavailable",
]
