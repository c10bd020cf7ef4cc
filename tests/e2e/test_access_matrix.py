"""Who may call what: every operation in the OpenAPI schema by every kind of caller by its
own and another agency's resources, against a running broker.

Everything that should be refused is refused (401 or 403, as problem+json; the registry
in Confluent's error shape), everything
else gets past authorisation, and each refusal is in the audit log as `access_refused`
naming the route and the key (an event type the agency may not publish as
`publish_refused`, the record the publisher writes whatever the channel). A new endpoint
fails `test_every_operation_says_who_may_call_it` until it is added to `RULES`, so none
slips in unchecked.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from broker.audit import SqliteAuditStore
from broker.audit.paths import audit_db_path
from broker.audit.store import AuditFilter
from broker.auth import Role
from broker.auth.keyfile import KeyFile
from broker.demo import story
from tests.e2e.harness import BrokerProcess

pytestmark = pytest.mark.slow

ANY, OWN = "any", "own"
PUBLIC: dict[Role, str] = {}
P, S, AD, AU, ST, EV = (Role.PUBLISH, Role.SUBSCRIBE, Role.ADMIN, Role.AUDITOR,
                      Role.STEWARD, Role.EVALUATOR)
EVERY_ROLE = {P: ANY, S: ANY, AD: ANY, AU: ANY}

# Who may call each operation: a role, and whether it must own the resource named in
# the path or body (`own`) or may touch anyone's (`any`). `PUBLIC` needs no key.
RULES: dict[tuple[str, str], dict[Role, str]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("POST", "/v1/events/{event_type}"): {P: OWN},
    ("POST", "/v1/events/{event_type}:batch"): {P: OWN},
    ("GET", "/v1/subscriptions"): {S: ANY},
    ("GET", "/v1/subscriptions/{subscription_id}/events"): {S: OWN},
    ("GET", "/v1/subscriptions/{subscription_id}/stream"): {S: OWN},
    ("GET", "/v1/subscriptions/{subscription_id}/dead-letters"): {S: OWN, AD: ANY},
    ("POST", "/v1/subscriptions/{subscription_id}/dead-letters:replay"): {S: OWN, AD: ANY},
    ("GET", "/v1/subscriptions/{subscription_id}/webhook"): {S: OWN, AD: ANY},
    ("POST", "/v1/subscriptions/{subscription_id}/webhook:enable"): {S: OWN, AD: ANY},
    ("POST", "/v1/connectors/fhir/{connector}/Bundle"): {P: OWN},
    ("POST", "/v1/explain"): {S: OWN, AD: ANY, AU: ANY},
    ("GET", "/v1/registry/subjects"): EVERY_ROLE,
    ("GET", "/v1/registry/subjects/{subject}/versions"): EVERY_ROLE,
    ("GET", "/v1/registry/subjects/{subject}/versions/{version}"): EVERY_ROLE,
    ("GET", "/v1/registry/subjects/{subject}/versions/{version}/schema"): EVERY_ROLE,
    ("POST", "/v1/registry/subjects/{subject}"): EVERY_ROLE,
    ("GET", "/v1/registry/schemas/ids/{schema_id}"): EVERY_ROLE,
    ("GET", "/v1/registry/schemas/ids/{schema_id}/versions"): EVERY_ROLE,
    ("GET", "/v1/registry/schemas/ids/{schema_id}/subjects"): EVERY_ROLE,
    ("GET", "/v1/registry/schemas/types"): EVERY_ROLE,
    ("POST", "/v1/registry/subjects/{subject}/versions"): {AD: ANY},
    ("DELETE", "/v1/registry/subjects/{subject}"): {AD: ANY},
    ("DELETE", "/v1/registry/subjects/{subject}/versions/{version}"): {AD: ANY},
    ("POST", "/v1/registry/compatibility/subjects/{subject}/versions/{version}"): EVERY_ROLE,
    ("POST", "/v1/registry/compatibility/subjects/{subject}/versions"): EVERY_ROLE,
    ("GET", "/v1/registry/config"): EVERY_ROLE,
    ("PUT", "/v1/registry/config"): {AD: ANY},
    ("GET", "/v1/registry/config/{subject}"): EVERY_ROLE,
    ("PUT", "/v1/registry/config/{subject}"): {AD: ANY},
    ("GET", "/v1/audit/decisions"): {AU: ANY},
    ("GET", "/v1/audit/disclosures/{subject_id}"): {AU: ANY},
    ("GET", "/v1/audit/head"): {AU: ANY},
    ("GET", "/v1/reports/referrals"): {EV: ANY, AU: ANY, AD: ANY},
    ("POST", "/v1/admin/policy:reload"): {AD: ANY},
    ("GET", "/v1/connectors"): {AD: ANY},
    ("GET", "/v1/connectors/{name}"): {AD: ANY},
    ("GET", "/v1/connectors/{name}/dead-letters"): {AD: ANY},
    ("GET", "/v1/linkage/reviews"): {ST: ANY, AU: ANY},
    ("GET", "/v1/linkage/reviews/{review_id}"): {ST: ANY, AU: ANY},
    ("POST", "/v1/linkage/reviews/{review_id}:resolve"): {ST: ANY},
    ("POST", "/v1/linkage/records:unlink"): {ST: ANY},
    ("POST", "/v1/linkage/persons/{person_id}:merge"): {ST: ANY},
    ("POST", "/v1/linkage/changes/{seq}:undo"): {ST: ANY},
    ("GET", "/v1/linkage/persons/{person_id}"): {ST: ANY, AU: ANY},
    ("GET", "/v1/linkage/records/{agency}/{record_id}"): {ST: ANY, AU: ANY},
    ("GET", "/v1/linkage/persons/{person_id}/disclosures"): {AU: ANY},
}


@dataclass(frozen=True)
class Caller:
    name: str
    key_id: str | None
    secret: str | None
    roles: frozenset[Role]
    """Empty for callers that must not authenticate at all."""
    known: bool = True
    """False for callers whose refusal names no key (none sent, or an unknown one)."""


# The resources an agency's key owns, and one it does not, per path parameter. The
# publisher is the hospital (publishes births, not referrals); the subscriber is the
# home visiting program (owns hv-births, not the hotline's cw-birth-matches).
OWNED = {"event_type": "birth", "subscription_id": "hv-births"}
OTHERS = {"event_type": "referral", "subscription_id": "cw-birth-matches"}
FIXED = {"subject": "events.birth-value", "version": "latest", "schema_id": "1",
         "subject_id": "MPI-0000001", "connector": "cgh-fhir", "name": "no-such-connector",
         "review_id": "rv_none", "person_id": "hp_none", "seq": "1",
         "agency": "county-general", "record_id": "MPI-0000001"}


@pytest.fixture(scope="module")
def matrix_broker(tmp_path_factory) -> Iterator[tuple[BrokerProcess, list[Caller]]]:
    folder = tmp_path_factory.mktemp("matrix")
    keys = KeyFile(folder / "keys.yaml")
    now = datetime.now(UTC)

    def issue(name: str, agency: str, role: Role, **kw: Any) -> Caller:
        issued = keys.issue(agency, [role], key_id=name, **kw)
        return Caller(name, name, issued.secret, frozenset({role}))

    callers = [
        Caller("anonymous", None, None, frozenset(), known=False),
        Caller("unknown-key", None, "hk_" + "x" * 43, frozenset(), known=False),
        issue("publisher", "county-general", P),
        issue("subscriber", "hv-nfp", S),
        issue("admin", "state-integration-team", AD),
        issue("auditor", "state-privacy-office", AU),
        issue("steward", "state-data-stewards", ST),
        issue("evaluator", "state-evaluation", EV),
    ]
    expired = issue("expired", "hv-nfp", S, expires_at=now - timedelta(seconds=1))
    revoked = issue("revoked", "county-general", P)
    keys.revoke("revoked")
    callers += [Caller(c.name, c.key_id, c.secret, frozenset()) for c in (expired, revoked)]
    broker = BrokerProcess(data_dir=folder / "data", keys_file=folder / "keys.yaml").start()
    try:
        yield broker, callers
    finally:
        broker.stop()


def template_of(path: str) -> str:
    """The route behind a path: the schema lists one publish path per event type."""
    found = re.fullmatch(r"/v1/events/[a-z][a-z0-9_]*(:batch)?", path)
    return f"/v1/events/{{event_type}}{found.group(1) or ''}" if found else path


def operations(broker: BrokerProcess) -> list[tuple[str, str]]:
    schema = httpx.get(f"{broker.url}/openapi.json").json()
    return sorted({(method.upper(), template_of(path)) for path, item in schema["paths"].items()
                   for method in item if method in ("get", "post", "put", "patch", "delete")})


def allowed(rule: dict[Role, str], caller: Caller, own: bool) -> bool:
    if rule is PUBLIC:
        return True
    return any(role in caller.roles and (scope == ANY or own) for role, scope in rule.items())


def body_for(path: str, own: bool) -> Any:
    birth = story.STORY[2].build(datetime.now(UTC))
    if path == "/v1/events/{event_type}":
        return birth
    if path.endswith(":batch"):
        return {"events": [birth]}
    if path == "/v1/explain":
        return {"event_type": "birth", "source": "county-general", "event": birth,
                "subscription": OWNED["subscription_id"] if own
                else OTHERS["subscription_id"]}
    if path.startswith("/v1/registry/config"):
        return {"compatibility": "BACKWARD"}
    return {}


def call(broker: BrokerProcess, method: str, template: str, caller: Caller, own: bool
         ) -> httpx.Response:
    values = {**FIXED, **(OWNED if own else OTHERS)}
    if method == "DELETE":
        # Deletes that get past authorisation must not retire the event type the rest
        # of the matrix publishes.
        values["subject"] = "events.no_such_type-value"
    path = template.format(**{k: v for k, v in values.items() if "{" + k + "}" in template})
    headers = {"Authorization": f"Bearer {caller.secret}"} if caller.secret else {}
    body = body_for(template, own) if method in ("POST", "PUT") else None
    with httpx.Client(base_url=broker.url, timeout=30) as client, client.stream(
            method, path, headers=headers, json=body) as response:
        # Streams stay open while allowed: the status line is all this test needs.
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
        return response


def test_every_operation_says_who_may_call_it(matrix_broker):
    broker, _ = matrix_broker
    unlisted = [op for op in operations(broker) if op not in RULES]
    assert not unlisted, f"add these operations to RULES in {__file__}: {unlisted}"


def test_everything_that_should_be_refused_is_refused_and_audited(matrix_broker):
    broker, callers = matrix_broker
    expected_refusals: Counter[tuple[str, str, int, str | None]] = Counter()
    expected_publish_refusals: Counter[tuple[str | None, str]] = Counter()
    wrong: list[str] = []
    calls = 0
    for method, template in operations(broker):
        rule = RULES.get((method, template))
        if rule is None:
            continue
        owned_param = any("{" + k + "}" in template for k in OWNED) or template == "/v1/explain"
        for caller in callers:
            for own in ((True, False) if owned_param else (True,)):
                response = call(broker, method, template, caller, own)
                calls += 1
                status = response.status_code
                where = f"{caller.name} {method} {template} ({'own' if own else 'other'})"
                if allowed(rule, caller, own):
                    if status in (401, 403):
                        wrong.append(f"{where}: refused with {status}, should be allowed")
                    continue
                want = 401 if not caller.roles else 403
                if status != want:
                    wrong.append(f"{where}: answered {status}, should be {want}")
                    continue
                # The registry answers in Confluent's error shape, for Confluent clients.
                expected_type = ("application/vnd.schemaregistry.v1+json"
                                 if template.startswith("/v1/registry")
                                 else "application/problem+json")
                if response.headers["content-type"] != expected_type:
                    wrong.append(f"{where}: refusal is not {expected_type}")
                if template.startswith("/v1/events/") and P in caller.roles:
                    expected_publish_refusals[(caller.key_id, OTHERS["event_type"])] += 1
                    continue
                expected_refusals[(method, template, status,
                                   caller.key_id if caller.known else None)] += 1
    assert not wrong, "\n".join(wrong)

    store = SqliteAuditStore(audit_db_path(broker.data_dir), create=False)
    try:
        records = list(store.iter_records(AuditFilter(kind="access_refused")))
        publishes = list(store.iter_records(AuditFilter(kind="publish_refused")))
    finally:
        store.close()
    audited = Counter((r.detail["method"], r.detail["route"], r.detail["status"], r.actor)
                      for r in records)
    assert audited == expected_refusals
    assert expected_publish_refusals
    assert Counter((r.actor, r.detail["event_type"]) for r in publishes
                   if r.detail["reason"] == "not_permitted") == expected_publish_refusals
    print(f"\n{calls} calls, {sum(expected_refusals.values())} refused and audited")
    assert all(r.outcome == "refused" and r.subject is None for r in records)


def test_refusals_name_the_key_but_never_the_secret(matrix_broker):
    broker, callers = matrix_broker
    for caller in callers:
        response = call(broker, "GET", "/v1/audit/head", caller, True)
        assert response.status_code in (401, 403) or caller.name == "auditor"
        if caller.secret:
            assert caller.secret not in broker.logs()
    store = SqliteAuditStore(audit_db_path(broker.data_dir), create=False)
    try:
        text = repr([r.to_dict() for r in store.iter_records()])
    finally:
        store.close()
    assert not [c.name for c in callers if c.secret and c.secret in text]
