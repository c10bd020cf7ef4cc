"""Errors raised by the linkage library."""

from __future__ import annotations

from schemas.errors import HandoffError


class LinkageError(HandoffError):
    """Root of every error the linkage library raises."""


class IdentityError(LinkageError, ValueError):
    """An identity record is unusable; the message names the field, never its value."""


class UnknownRecordError(LinkageError, LookupError):
    """No record with that key is in the person index."""


class UnknownPersonError(LinkageError, LookupError):
    """No person with that id is in the person index."""


class ReviewStateError(LinkageError, ValueError):
    """The review item does not exist or is already resolved."""


class EventOrderError(LinkageError, ValueError):
    """A linkage event was applied out of order (its seq is not the next one)."""


class EventDecodeError(LinkageError, ValueError):
    """A linkage event's JSON could not be decoded; the message names the problem."""


class ModelError(LinkageError, ValueError):
    """A trained model is unusable or does not fit the comparison levels it claims."""


class UnknownReviewError(LinkageError, LookupError):
    """No review item with that id exists."""
