"""The publish path: may this agency publish this type, validate, assign ids, then
group-commit to `events.<type>`.

The publisher is the one owner of "may this agency publish this type", whatever the
channel (the HTTP API, a connector's batch, the FHIR endpoint): `authorize` decides it,
and a refusal is audited as `publish_refused` (reason `not_permitted`) and counted in
`handoff_publish_refused_total`, the same record and metric as every other refused
publish. It also owns "may this agency record (or revoke) this consent": a `consent`
event is checked by `broker.consent_recording` under the same policy that authorized
the request, refused whole with 403 `consent-refused`, and its accepted grants and
revocations are audited once durable, before the caller hears of success. A
`referral_status` event is checked by `broker.referral_recording` against the referral
ledger (who records it, whether the referral can take it), refused whole with 422
`referral-refused` or 403 `not-a-party`. Events the broker makes itself
(`handoff_overdue`) are published only through `publish_own`, never by an agency.

Either every event of a request is appended or none is: the whole request is validated
before anything is handed to the committer, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.auditor import Auditor
from broker.auth import Principal
from broker.consent_recording import ConsentChangeRecord, ConsentRecording, ConsentRefusedError
from broker.errors import BrokerError
from broker.event_types import EventTypes
from broker.ingest.event_ids import event_id_problem
from broker.ingest.group_commit import Answer, GroupCommitter, Placed
from broker.log.port import NewRecord
from broker.metrics import Metrics
from broker.policy_holder import LoadedPolicy, PolicyHolder
from broker.referral_recording import ReferralRecording, ReferralRefusedError
from broker.topics import H_INGEST_EVENT_ID, H_INGEST_KEY_ID, H_INGEST_SOURCE, ingress_topic
from policy.vocabulary import BROKER_AGENCY, BROKER_EVENT_TYPES
from schemas.datestrings import date_string_problems
from schemas.errors import DecodeError, RecordValidationError
from schemas.jsonform import record_from_json
from schemas.tags import TAGS
from schemas.wire import WireCodec


class UnknownEventTypeError(BrokerError, LookupError):
    """No event type of that name is registered."""


class NotPermittedToPublishError(BrokerError, PermissionError):
    """The caller's agency may not publish that event type (`agencies.yaml`)."""


class EventTooLargeError(BrokerError):
    """An event is larger, encoded, than one event may be (`api.max_body_bytes`, the
    limit every reader of the log decodes with); `problems` names each by its index."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p}: {m}" for p, m in problems))
        self.problems = problems


BROKER_PRINCIPAL = Principal("broker:referral-timers", BROKER_AGENCY, frozenset())
"""Who publishes the broker's own events (`publish_own`): the ingest source is the
broker agency, and decisions about them name this key id as actor."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated, encoded request, ready to commit."""

    event_type: str
    event_ids: list[str]
    records: list[NewRecord]
    consent_changes: tuple[ConsentChangeRecord, ...] = ()
    """Checked grants and revocations, audited once the request is durable."""


class Publisher:
    def __init__(
        self,
        event_types: EventTypes,
        codec: WireCodec,
        committer: GroupCommitter,
        auditor: Auditor,
        metrics: Metrics,
        policy: PolicyHolder,
        consents: ConsentRecording | None = None,
        referrals: ReferralRecording | None = None,
    ) -> None:
        self._types = event_types
        self._policy = policy
        self._codec = codec
        self._committer = committer
        self._auditor = auditor
        self._metrics = metrics
        self._consents = consents
        self._referrals = referrals

    # -- who may publish what -------------------------------------------------------------

    def authorize(self, principal: Principal, event_type: str,
                  policy: LoadedPolicy | None = None) -> None:
        """Refuse, audit and count, unless `principal`'s agency may publish `event_type`.

        Raises `UnknownEventTypeError` for a type that is not registered (not audited:
        nothing was refused to anyone), `NotPermittedToPublishError` when the policy
        bundle in force (or `policy`, the one a request is decided with) does not list
        the type among the agency's `publishes`.
        """
        if not self._types.known(event_type):
            raise UnknownEventTypeError(
                f"unknown event type '{event_type}'; see GET /v1/registry/subjects")
        policy = policy or self._policy.current
        if event_type in BROKER_EVENT_TYPES and principal is not BROKER_PRINCIPAL:
            self._refuse(principal, event_type, "not_permitted", [])
            raise NotPermittedToPublishError(
                f"'{event_type}' events are published by the broker itself")
        agency = policy.bundle.agencies.get(principal.agency)
        if agency is None or event_type not in agency.publishes:
            self._refuse(principal, event_type, "not_permitted", [])
            raise NotPermittedToPublishError(
                f"agency '{principal.agency}' may not publish '{event_type}' events")

    def reads_state(self, event_type: str) -> bool:
        """Whether checking events of this type reads the log or a view of it (the
        referral ledger), so callers on an event loop should prepare them in a thread."""
        return event_type == "referral_status" and self._referrals is not None

    # -- validation -----------------------------------------------------------------------

    def prepare_json(
        self, principal: Principal, event_type: str, items: Sequence[Any], batch: bool
    ) -> Prepared:
        """Validate and encode every event; refuse the whole request on any problem."""
        return self._prepare_json(principal, event_type, items, batch, self._policy.current)

    def _prepare_json(self, principal: Principal, event_type: str, items: Sequence[Any],
                      batch: bool, policy: LoadedPolicy) -> Prepared:
        self.authorize(principal, event_type, policy)
        registered = self._types.latest(event_type)
        records: list[dict[str, Any]] = []
        problems: list[tuple[str, str]] = []
        for i, item in enumerate(items):
            prefix = f"events[{i}]." if batch else ""
            if isinstance(item, dict) and not item.get("event_id"):
                item = {**item, "event_id": str(uuid.uuid4())}
            try:
                record = record_from_json(registered.schema.schema, item)
            except RecordValidationError as exc:
                problems.extend((f"{prefix}{p}".rstrip("."), m) for p, m in exc.problems)
                continue
            problems.extend((f"{prefix}{p}", m) for p, m in _semantic_problems(event_type,
                                                                              record))
            records.append(record)
        if problems:
            self._refuse(principal, event_type, "invalid", [p for p, _ in problems])
            raise RecordValidationError(problems)
        self._check_referrals(principal, event_type, records, batch)
        changes = self._check_consents(principal, event_type, records, batch, policy)
        # Compiled for the schema (the bytes fastavro writes, at a fraction of its cost);
        # fastavro for what the compiled writer leaves to it.
        encode = self._codec.encoder(registered.schema_id)
        encoded = [encode(r) for r in records]
        self._check_sizes(principal, event_type, encoded, batch)
        return self._prepared(principal, event_type, records, encoded, changes)

    def prepare_wire(self, principal: Principal, event_type: str, payload: bytes) -> Prepared:
        policy = self._policy.current
        self.authorize(principal, event_type, policy)
        try:
            schema_id, record = self._codec.decode(payload)
        except DecodeError:
            self._refuse(principal, event_type, "undecodable", [])
            raise
        registered = self._types.by_id(schema_id)
        if registered is None or registered.event_type != event_type:
            self._refuse(principal, event_type, "wrong_schema", [])
            raise DecodeError(
                f"schema id {schema_id} is not a registered version of '{event_type}'"
            )
        problems = _semantic_problems(event_type, record)
        problems += date_string_problems(registered.schema, record)
        if problems:
            self._refuse(principal, event_type, "invalid", [p for p, _ in problems])
            raise RecordValidationError(problems)
        self._check_referrals(principal, event_type, [record], False)
        changes = self._check_consents(principal, event_type, [record], False, policy)
        self._check_sizes(principal, event_type, [payload], False)
        return self._prepared(principal, event_type, [record], [payload], changes)

    def _check_sizes(self, principal: Principal, event_type: str, encoded: list[bytes],
                     batch: bool) -> None:
        """Refuse the request if an event is larger, encoded, than the router (and every
        reader of the log) will decode: accepted, it could never be delivered."""
        limit = self._codec.max_bytes
        problems = [(f"events[{i}]" if batch else "event",
                     f"{len(value)} bytes encoded, over the {limit}-byte limit per event")
                    for i, value in enumerate(encoded) if len(value) > limit]
        if problems:
            self._refuse(principal, event_type, "too_large", [p for p, _ in problems])
            raise EventTooLargeError(problems)


    def _check_referrals(self, principal: Principal, event_type: str,
                         records: list[dict[str, Any]], batch: bool) -> None:
        """Whether the referrals can take these status updates, from this agency (see
        `broker.referral_recording`)."""
        if event_type != "referral_status" or self._referrals is None:
            return
        try:
            self._referrals.check(principal, records, batch)
        except ReferralRefusedError as exc:
            self._refuse(principal, event_type, exc.reason, [p for p, _ in exc.problems])
            raise

    def _check_consents(self, principal: Principal, event_type: str,
                        records: list[dict[str, Any]], batch: bool, policy: LoadedPolicy
                        ) -> tuple[ConsentChangeRecord, ...]:
        """Who may record or revoke these consents (see `broker.consent_recording`),
        under the same policy that authorized the request."""
        if event_type != "consent" or self._consents is None:
            return ()
        try:
            return self._consents.check(principal, records, batch, policy.bundle.agencies)
        except ConsentRefusedError:
            self._metrics.publish_refused.labels("consent_refused").inc()
            raise

    def _prepared(self, principal: Principal, event_type: str,
                  records: list[dict[str, Any]], encoded: list[bytes],
                  changes: tuple[ConsentChangeRecord, ...] = ()) -> Prepared:
        caller = ((H_INGEST_SOURCE, principal.agency.encode()),
                  (H_INGEST_KEY_ID, principal.key_id.encode()))
        return Prepared(
            event_type,
            [str(r["event_id"]) for r in records],
            # Keyed by the subject's pseudonym: same partition, so per-subject order, without
            # leaving the identifier readable in the log's keys (values may be encrypted,
            # keys never are).
            [NewRecord(value=value, key=self._auditor.subject(str(r["subject_id"])).encode(),
                       headers=(*caller, (H_INGEST_EVENT_ID, str(r["event_id"]).encode())))
             for r, value in zip(records, encoded, strict=True)],
            changes,
        )

    # -- committing -----------------------------------------------------------------------

    def submit(self, principal: Principal, prepared: Prepared, *, awaited: bool = False
               ) -> Answer:
        """Hand a prepared request to group commit; resolves once durable. `awaited`:
        the caller awaits it on the running event loop, where group commit may then
        commit it (not a request recording consents: their audit stays off the loop).
        The ingest count, and a consent's audit, are done once the events are durable,
        before the answer, whether or not the caller still waits for it."""
        counter = self._metrics.events_ingested.labels(prepared.event_type, principal.agency)
        consents, changes = self._consents, prepared.consent_changes

        def placed(done: list[Placed]) -> None:
            counter.inc(sum(not p.duplicate for p in done))
            if consents is not None and changes:
                # Runs before the caller hears of success: the audit record precedes
                # the 202.
                consents.accepted(principal, changes,
                                  {p.event_id for p in done if not p.duplicate})

        return self._committer.submit(principal.agency, ingress_topic(prepared.event_type),
                                      prepared.event_ids, prepared.records,
                                      awaited=awaited and not changes, on_placed=placed)

    def publish_json(self, principal: Principal, event_type: str, items: Sequence[Any],
                     batch: bool = True) -> list[Placed]:
        """Validate and commit, blocking until durable (for callers outside the API)."""
        return self.submit(principal, self.prepare_json(principal, event_type, items,
                                                        batch)).result()

    def publish_all(self, principal: Principal,
                    groups: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
                    ) -> list[list[Placed]]:
        """Publish several groups of (event type, events as JSON) all or none: every
        type is authorized and every event validated before any is committed."""
        policy = self._policy.current
        refused = []
        for event_type in dict.fromkeys(t for t, _ in groups):
            try:
                self.authorize(principal, event_type, policy)
            except NotPermittedToPublishError:
                refused.append(event_type)
        if refused:
            raise NotPermittedToPublishError(
                f"agency '{principal.agency}' may not publish {', '.join(sorted(refused))} events "
                "(agencies.yaml)")
        prepared = [self._prepare_json(principal, t, list(items), True, policy)
                    for t, items in groups]
        return [self.submit(principal, ready).result() for ready in prepared]

    def publish_own(self, event_type: str, items: Sequence[Mapping[str, Any]]
                    ) -> list[Placed]:
        """Publish events the broker makes itself (`handoff_overdue`), as the broker
        agency, blocking until durable. Idempotent by `event_id` like every publish: a
        repeated id is answered with the first (`Placed.duplicate`)."""
        return self.submit(BROKER_PRINCIPAL, self._prepare_json(
            BROKER_PRINCIPAL, event_type, list(items), True, self._policy.current)).result()

    def ingest_as(self, principal: Principal) -> CallerIngest:
        """This publisher bound to one caller: the connector SDK's `Ingest`."""
        return CallerIngest(self, principal)

    def _refuse(self, principal: Principal, event_type: str, reason: str,
                fields: list[str]) -> None:
        self._metrics.publish_refused.labels(reason).inc()
        self._auditor.publish_refused(principal, event_type, reason, fields)


def _semantic_problems(event_type: str, record: dict[str, Any]) -> list[tuple[str, str]]:
    """Rules Avro cannot express."""
    problems: list[tuple[str, str]] = []
    event_id_wrong = event_id_problem(str(record.get("event_id", "")))
    if event_id_wrong:
        problems.append(("event_id", event_id_wrong))
    if not str(record.get("subject_id", "")).strip():
        problems.append(("subject_id", "must not be empty"))
    if event_type == "consent":
        unknown = [c for c in record.get("categories", []) if c != "*" and c not in TAGS]
        if unknown:
            problems.append(("categories", f"{len(unknown)} unknown data categor"
                             f"{'y' if len(unknown) == 1 else 'ies'}; allowed: "
                             f"{', '.join(sorted(TAGS))} or '*'"))
        if record.get("action") == "GRANT" and not record.get("recipients"):
            problems.append(("recipients", "a grant must name at least one recipient"))
    return problems


@dataclass(frozen=True, slots=True)
class CallerIngest:
    """Publishing as one caller; satisfies `connectors.ports.Ingest`."""

    publisher: Publisher
    principal: Principal

    def publish_all(self, groups: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
                    ) -> list[list[Placed]]:
        return self.publisher.publish_all(self.principal, groups)
