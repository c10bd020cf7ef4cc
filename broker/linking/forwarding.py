"""Clerical linkage changes made by another process: the one that writes the person index.

On the embedded log one process links (the one with the router role) and writes the
person index; `handoff serve` runs it as a child process beside the API. Rather than two
writers of one index (the linker keeps what it resolved in memory, and each change is
audited with what it re-keyed, in order), the serving process forwards a steward's
change to the child over their private channel (`broker.cli.router_control`) and returns
the child's answer: `forwarding(request)` on the serving side, `apply_clerical` on the
linking side. Only ids cross (review id, record reference, person ids, seq, reason),
never identity values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, cast

import linkage.errors as linkage_errors
from broker.linking.service import (
    ChangeView,
    ClericalReason,
    LinkageReadOnlyError,
    LinkageService,
)
from broker.linking.terms import RecordRef
from linkage.resolver import Rekey
from schemas.errors import HandoffError

JsonObject = dict[str, object]
Request = Callable[[JsonObject, float], JsonObject]
"""Sends a request to the linking process and returns its answer (`ControlClient`);
raises a retriable `HandoffError` when that process does not answer."""

WAIT_SECONDS = 30.0
_ERRORS: dict[str, type[HandoffError]] = {
    name: error for name, error in vars(linkage_errors).items()
    if isinstance(error, type) and issubclass(error, HandoffError)
}
_ERRORS[LinkageReadOnlyError.__name__] = LinkageReadOnlyError


def _text(request: Mapping[str, object], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str):
        raise LinkageReadOnlyError(f"a forwarded clerical change lacks {name!r}")
    return value


def apply_clerical(service: LinkageService, request: Mapping[str, object]) -> JsonObject:
    """Make the change `request` names (the linking process's side) and say what it did."""
    change, by = _text(request, "change"), _text(request, "by")
    reason = cast(ClericalReason, request.get("reason", "other"))
    if change == "resolve_review":
        decision = cast(Literal["same", "different"], _text(request, "decision"))
        view = service.resolve_review(_text(request, "review_id"), decision, by)
    elif change == "unlink":
        view = service.unlink(RecordRef.of(_text(request, "record_key")), by, reason)
    elif change == "merge":
        view = service.merge(_text(request, "from_person_id"), _text(request, "into_person_id"),
                             by, reason)
    elif change == "undo":
        seq = request.get("seq")
        if not isinstance(seq, int):
            raise LinkageReadOnlyError("a forwarded undo lacks its seq")
        view = service.undo(seq, by, reason)
    else:
        raise LinkageReadOnlyError(f"unknown clerical change {change!r}")
    return {"seqs": list(view.seqs), "kinds": list(view.kinds),
            "rekeys": [[r.record_key, r.from_person_id, r.to_person_id, r.since_seq, r.at_seq]
                       for r in view.rekeys]}


def forwarding(request: Request) -> Callable[[JsonObject], ChangeView]:
    """The serving process's side: send a change, and return or raise what it did."""

    def forward(change: JsonObject) -> ChangeView:
        try:
            answer = request({"op": "linkage", **change}, WAIT_SECONDS)
        except HandoffError as exc:
            if not exc.retriable:
                raise
            raise LinkageReadOnlyError(
                f"the router process, which makes clerical changes, did not answer ({exc}); "
                "try again") from None
        error = answer.get("error")
        if error is not None:
            raise _ERRORS.get(str(error), LinkageReadOnlyError)(str(answer.get("message")))
        rekeys = cast(list[list[object]], answer.get("rekeys", []))
        return ChangeView(tuple(cast(list[int], answer.get("seqs", []))),
                          tuple(cast(list[str], answer.get("kinds", []))),
                          tuple(Rekey(str(k), str(f), str(t), int(cast(int, s)),
                                      int(cast(int, a))) for k, f, t, s, a in rekeys))

    return forward
