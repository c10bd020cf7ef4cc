"""Policy path benchmark: the router's per-event policy work against a hand-written loop.

    python bench/policy_path.py               # 2,000 events per case, 7 repetitions
    python bench/policy_path.py --events 500 --repeat 5

For each case (one subscription of the demo bundle), per event:

  (a) our path: Confluent wire frame -> fastavro schemaless_reader on the parsed writer
      schema -> PolicyEngine.decide -> decision.view (projection) -> schemaless_writer
      with the view schema -> sha256 of decision.canonical_json() (the audit encoding);
  (b) a hand-written loop doing the same work directly with fastavro: the same decode,
      the same fields picked and transformed (HMAC-SHA256 pseudonyms, month/year, ZIP3),
      the same encode, and sha256 of an equivalent audit document (its static part
      encoded once, as any careful hand-written loop would).

Also decide() alone. Prints the median over repetitions of µs per event and the ratio
(a)/(b); the targets are ratio <= 2 and decide() < 5 µs. Asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import statistics
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import fastavro

from policy import ConsentView, PolicyEngine, load_bundle
from policy.transforms import pseudonym_key_for
from schemas.catalog import SchemaCatalog
from schemas.jsonform import record_from_json

REPO = Path(__file__).resolve().parents[1]
KEY = b"bench-pseudonym-key-0123456789abcdef"
AT_MS = 1_794_218_700_000
SCHEMA_ID = 7
DYNAMIC_KEYS = ("consent_ids", "decision_id", "decision_time_ms", "event_id")
read = cast(Callable[[io.BytesIO, Any], dict[str, Any]], fastavro.schemaless_reader)
"""fastavro's reader, typed for records."""


def frame(parsed: Any, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(struct.pack(">bI", 0, SCHEMA_ID))
    fastavro.schemaless_writer(buffer, parsed, record)
    return buffer.getvalue()


def events(catalog: SchemaCatalog, event_type: str, count: int) -> list[bytes]:
    schema = catalog.get(event_type)
    base = record_from_json(dict(schema.schema), copy.deepcopy(dict(schema.example or {})))
    out = []
    for n in range(count):
        record = copy.deepcopy(base)
        record["event_id"] = str(uuid.UUID(int=n + 1))
        record["subject_id"] = f"MPI-{n:07d}"
        out.append(frame(schema.parsed, record))
    return out


def unframe(payload: bytes) -> io.BytesIO:
    magic, _schema_id = struct.unpack_from(">bI", payload)
    if magic != 0:
        raise ValueError("not a Confluent wire frame")
    return io.BytesIO(payload[5:])


def hmac_pseudonymiser(key: bytes) -> Callable[[Any], Any]:
    """The hand-written loop's own HMAC-SHA256 pseudonyms (inner/outer states reused)."""
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def pseudonymise(value: Any) -> Any:
        if value is None:
            return None
        i = inner.copy()
        i.update(str(value).encode())
        o = outer.copy()
        o.update(i.digest())
        return "p_" + o.digest()[:16].hex()

    return pseudonymise


def hand_referral_view(r: dict[str, Any]) -> dict[str, Any]:
    """hv-referrals: everything but the allegation narrative and the reporter."""
    cg, ch = r["caregiver"], r["child"]
    return {
        "event_id": r["event_id"], "occurred_at": r["occurred_at"],
        "subject_id": r["subject_id"], "referral_id": r["referral_id"],
        "referred_to_service": r["referred_to_service"],
        "referred_to_agency": r["referred_to_agency"], "reason": r["reason"],
        "screening_decision": r["screening_decision"], "urgency": r["urgency"],
        "status": r["status"],
        "caregiver": {"first_name": cg["first_name"], "last_name": cg["last_name"],
                      "phone": cg["phone"], "street_address": cg["street_address"],
                      "zip": cg["zip"], "preferred_language": cg["preferred_language"]},
        "child": None if ch is None else {"first_name": ch["first_name"],
                                          "birth_date": ch["birth_date"]},
    }


def hand_eval_birth_view(pseudonymise: Callable[[Any], Any]) -> Callable[[dict], dict]:
    """eval-births: pseudonymised ids, month/year dates, ZIP3, health facts, no names."""

    def view(r: dict[str, Any]) -> dict[str, Any]:
        c, m = r["child"], r["mother"]
        zip_code = m["zip"]
        return {
            "event_id": r["event_id"], "occurred_at": r["occurred_at"],
            "subject_id": pseudonymise(r["subject_id"]),
            "child": {"child_id": pseudonymise(c["child_id"]),
                      "birth_date": c["birth_date"].isoformat()[:7], "sex": c["sex"],
                      "birth_weight_grams": c["birth_weight_grams"],
                      "gestational_age_weeks": c["gestational_age_weeks"],
                      "nicu_admission": c["nicu_admission"]},
            "mother": {"birth_date": f"{m['birth_date'].year:04d}",
                       "zip": None if zip_code is None else zip_code[:3],
                       "medicaid_covered_birth": m["medicaid_covered_birth"],
                       "prenatal_visits": m["prenatal_visits"]},
            "county_fips": r["county_fips"],
        }

    return view


class Case:
    """One subscription's routes, for both paths."""

    def __init__(self, engine: PolicyEngine, catalog: SchemaCatalog, event_type: str,
                 source: str, subscription: str, hand_view: Callable[[dict], dict],
                 count: int, *, check: bool = True) -> None:
        self.engine, self.event_type, self.source = engine, event_type, source
        self.subscription = subscription
        self.writer = catalog.get(event_type).parsed
        self.view_parsed = fastavro.parse_schema(engine.view_schema(subscription, event_type, 1))
        self.hand_view = hand_view
        self.payloads = events(catalog, event_type, count)
        self.consents = ConsentView()
        sample = engine.decide(event_type, 1, self._decode(self.payloads[0]), source,
                               subscription, self.consents, AT_MS)
        static = {k: v for k, v in sample.to_dict().items() if k not in DYNAMIC_KEYS}
        self.static_audit = json.dumps(static, sort_keys=True, separators=(",", ":"))
        self.version = engine.bundle.version
        if check:
            self._check_equivalent()

    def _decode(self, payload: bytes) -> dict[str, Any]:
        return read(unframe(payload), self.writer)

    def _check_equivalent(self) -> None:
        record = self._decode(self.payloads[1])
        ours = self.engine.decide(self.event_type, 1, record, self.source, self.subscription,
                                  self.consents, AT_MS)
        if ours.view != self.hand_view(record):
            raise SystemExit(f"{self.subscription}: the hand-written view differs from ours")

    def ours(self) -> None:
        engine, event_type, source, sub = self.engine, self.event_type, self.source, \
            self.subscription
        writer, view_parsed, consents = self.writer, self.view_parsed, self.consents
        for payload in self.payloads:
            record = read(unframe(payload), writer)
            decision = engine.decide(event_type, 1, record, source, sub, consents, AT_MS)
            view = decision.view
            if view is not None:
                out = io.BytesIO()
                fastavro.schemaless_writer(out, view_parsed, view)
            hashlib.sha256(decision.canonical_json().encode()).digest()

    def hand(self) -> None:
        writer, view_parsed, hand_view = self.writer, self.view_parsed, self.hand_view
        static = self.static_audit[:-1]
        tail = f"\x1f{self.subscription}\x1f{self.version}"
        for payload in self.payloads:
            record = read(unframe(payload), writer)
            view = hand_view(record)
            out = io.BytesIO()
            fastavro.schemaless_writer(out, view_parsed, view)
            event_id = record["event_id"]
            decision_id = hashlib.sha256((event_id + tail).encode()).hexdigest()[:32]
            dynamic = json.dumps({"consent_ids": [], "decision_id": decision_id,
                                  "decision_time_ms": AT_MS, "event_id": event_id},
                                 separators=(",", ":"))
            hashlib.sha256((static + "," + dynamic[1:]).encode()).digest()

    def decide_only(self) -> Callable[[], None]:
        records = [self._decode(p) for p in self.payloads]
        engine, event_type, source, sub = self.engine, self.event_type, self.source, \
            self.subscription
        consents = self.consents

        def run() -> None:
            for record in records:
                engine.decide(event_type, 1, record, source, sub, consents, AT_MS)

        return run


def measure(runs: dict[str, Callable[[], None]], count: int, repeat: int
            ) -> dict[str, list[float]]:
    """µs per event for each run, repetitions interleaved so that load from other
    processes on the machine falls on every run alike."""
    for run in runs.values():
        run()  # warm-up: compiles routes and plans, fills caches
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - start) / count * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    catalog = SchemaCatalog.load()
    bundle = load_bundle(REPO / "examples" / "demo" / "policy", catalog)
    engine = PolicyEngine(bundle, catalog, pseudonym_key=KEY)
    eval_key = pseudonym_key_for(KEY, "state-evaluation", None)
    cases = [
        Case(engine, catalog, "referral", "cw-hotline", "hv-referrals", hand_referral_view,
             args.events),
        Case(engine, catalog, "birth", "county-general", "eval-births",
             hand_eval_birth_view(hmac_pseudonymiser(eval_key)), args.events),
    ]
    print(f"policy path, bundle {bundle.version}, {args.events} events x {args.repeat} "
          "repetitions (median)")
    print(f"{'case':<36}{'ours us':>9}{'hand us':>9}{'ratio':>7}{'decide us':>11}")
    for case in cases:
        got = measure({"ours": case.ours, "hand": case.hand, "decide": case.decide_only()},
                      args.events, args.repeat)
        ours, hand = statistics.median(got["ours"]), statistics.median(got["hand"])
        ratio = statistics.median(o / h for o, h in zip(got["ours"], got["hand"], strict=True))
        decide = statistics.median(got["decide"])
        fields = len(catalog.get(case.event_type).fields)
        label = f"{case.event_type} ({fields} fields) {case.subscription}"
        print(f"{label:<36}{ours:>9.1f}{hand:>9.1f}{ratio:>7.2f}{decide:>11.2f}")
    consented = Case(engine, catalog, "birth", "county-general", "hv-births",
                     lambda r: {}, args.events, check=False)
    for n in range(args.events):
        for consent_id, recipients in (("a", ["medicaid"]), ("b", ["kind:home_visiting"])):
            consented.consents.apply({
                "consent_id": f"C-{n}-{consent_id}", "action": "GRANT",
                "subject_id": f"MPI-{n:07d}", "recipients": recipients,
                "purposes": ["care_coordination"], "categories": ["health", "benefits"],
                "effective_at": AT_MS - 86_400_000, "expires_at": None},
                AT_MS - 86_400_000, "county-general")
    got = measure({"decide": consented.decide_only()}, args.events, args.repeat)
    print(f"{'birth hv-births, 2 consents/subject':<36}{'':>9}{'':>9}{'':>7}"
          f"{statistics.median(got['decide']):>11.2f}")
    print("targets: ratio <= 2.00, decide < 5 us")


if __name__ == "__main__":
    main()
