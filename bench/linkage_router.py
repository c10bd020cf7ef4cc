"""Record linkage on the router path: what resolving an event's subjects costs per event.

    python bench/linkage_router.py                        # index of 1,000,000 people
    python bench/linkage_router.py --index-size 100000 --events 2000

index: a SQLite person index of N people (one hospital record each, built in batches as
  `bench/linkage_bench.py` does), opened as the router opens it (synchronous=FULL). Then
  births are resolved through the router's `LinkageStage.link` exactly as the router
  calls it: the mother (half of them indexed people, with the synthetic errors; half
  new) and the child (always new), each through the deterministic rules and the model,
  the commit of the decisions (durable as `--sync` says, like the log's `log.sync`), and
  their audit entries built. Also the
  consent question for the mother (`PersonConsents.match`: her agency records, then the
  consents each agency recorded). p50/p99 per event.
router: the whole `Router.step` of an embedded broker (`build_broker`, real SQLite log,
  audit store and person index) on births of new mothers published in batches, with
  the demo bundle as it is and with linkage.yaml taken out: routed events per second
  and ms per event.

Benchmarks on a shared machine are noisy; the figures are for comparison, not promises.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.linkage_bench import pct  # noqa: E402
from broker.auth import Principal, Role  # noqa: E402
from broker.demo import story  # noqa: E402
from tests.e2e.harness import unlinked_demo_policy  # noqa: E402

DEMO_POLICY = REPO / "examples" / "demo" / "policy"


def build_index(path: Path, size: int, queries: int) -> list[Any]:
    """N people, one hospital record each; returns the people sampled for queries."""
    from linkage.events import Linked, RecordAdded
    from linkage.identity import AgencyId, normalise
    from linkage.person_ids import new_person_id
    from linkage.sqlite_index import SqlitePersonIndex
    from linkage.synthetic import SyntheticPopulation

    pop = SyntheticPopulation(23)
    index = SqlitePersonIndex(path, synchronous="OFF")
    now = dt.datetime.now(dt.UTC)
    sampled, batch, seq = [], [], 0
    started = time.perf_counter()
    for truth_id in range(size):
        person = pop.person(truth_id, sex="F")
        if truth_id % max(1, size // queries) == 0:
            sampled.append(person)
        record = pop.observe(person, "medicaid").record
        key = AgencyId("county-general", "subject", f"MRN-{truth_id}").key
        batch += [RecordAdded(seq + 1, now, key, normalise(record)),
                  Linked(seq + 2, now, key, new_person_id(), "new_person")]
        seq += 2
        if len(batch) >= 20000:
            index.apply(batch)
            batch = []
    index.apply(batch)
    index.close()
    took = time.perf_counter() - started
    print(f"index: {size:,} people built in {took:.0f} s ({size / took:,.0f} records/s)")
    return sampled


def births(pop_people: list[Any], count: int) -> list[dict[str, Any]]:
    """Vital-records-like births: half about indexed mothers (with errors), half new."""
    from linkage.synthetic import SyntheticPopulation

    pop = SyntheticPopulation(29)
    template = story.STORY[1].build(dt.datetime.now(dt.UTC))
    out = []
    for i in range(count):
        known = i % 2 == 0 and i // 2 < len(pop_people)
        person = pop_people[i // 2] if known else pop.person(10_000_000 + i, sex="F")
        record = pop.observe(person, "cps-hotline").record
        event = copy.deepcopy(template)
        event["event_id"] = str(uuid.uuid4())
        event["subject_id"] = f"VR-{i}"
        event["child"]["child_id"] = f"VR-CH-{i}"
        event["mother"].update(
            first_name=record.given_name or "Ann", last_name=record.family_name or "Doe",
            birth_date=(record.birth_date or dt.date(1990, 1, 1)).isoformat(),
            street_address=record.street_address, zip=record.zip, phone=record.phone)
        child = pop.person(20_000_000 + i)      # a newborn: a name of its own, born today
        event["child"].update(first_name=child.given, last_name=event["mother"]["last_name"],
                              sex="FEMALE" if child.sex == "F" else "MALE")
        out.append(event)
    return out


def index_part(size: int, events: int, workdir: Path, sync: str) -> None:
    from broker.audit import SubjectPseudonymizer
    from broker.auditor import Auditor
    from broker.linking.audit_entries import LinkageAuditor
    from broker.linking.linker import Linker
    from broker.linking.stage import LinkageStage
    from broker.linking.terms import thresholds_of
    from broker.metrics import Metrics
    from linkage.default_model import default_model
    from linkage.resolver import PersonResolver
    from linkage.sqlite_index import SqlitePersonIndex
    from policy import ConsentView, load_bundle
    from schemas.catalog import SchemaCatalog
    from schemas.jsonform import record_from_json

    path = workdir / "persons.db"
    sampled = build_index(path, size, events // 2)
    catalog = SchemaCatalog.load()
    terms = load_bundle(DEMO_POLICY, catalog).linkage
    assert terms is not None
    # As the router opens it with the default log.sync (normal); --sync full: an fsync
    # per resolution.
    index = SqlitePersonIndex(path, synchronous=sync)
    metrics = Metrics()

    class NoStore:
        def append(self, entries: Any) -> list[Any]:
            return []

    auditor = Auditor(NoStore(), SubjectPseudonymizer(b"k" * 32), metrics)  # type: ignore[arg-type]
    linker = Linker(index, PersonResolver(index, default_model(), thresholds_of(terms)),
                    LinkageAuditor(auditor), metrics)
    stage = LinkageStage(linker, None, metrics)
    stage.begin(terms)
    schema = catalog.get("birth").schema
    decoded = [record_from_json(schema, e) for e in births(sampled, events)]
    consents = stage.consents(ConsentView())
    link_ms, consent_ms, linked = [], [], 0
    for event in decoded:
        t0 = time.perf_counter()
        result = stage.link("birth", "vital-records", event)
        t1 = time.perf_counter()
        assert result is not None
        consents.match(result.subject, 0, ())
        t2 = time.perf_counter()
        link_ms.append((t1 - t0) * 1e3)
        consent_ms.append((t2 - t1) * 1e3)
        linked += "link" in result.outcomes[:1]
    index.close()
    print(f"  {events:,} births resolved through LinkageStage.link (mother + child; "
          f"{linked} mothers linked to an indexed person):")
    print(f"  link (2 subjects, durable commit):  p50 {pct(link_ms, .5):.2f} ms  "
          f"p99 {pct(link_ms, .99):.2f} ms")
    print(f"  consents for the person (lookup):   p50 {pct(consent_ms, .5):.3f} ms  "
          f"p99 {pct(consent_ms, .99):.3f} ms")


def router_part(events: int, batch: int, workdir: Path, sync: str) -> None:
    from broker.bootstrap import build_broker
    from broker.config import load_settings

    plain = unlinked_demo_policy(workdir)
    hospital = Principal("bench", "county-general", frozenset({Role.PUBLISH}))
    results = {}
    for label, policy in (("linked", DEMO_POLICY), ("not linked", plain)):
        settings = load_settings(policy_dir=policy, data_dir=workdir / label.replace(" ", "-"),
                                 log={"sync": sync})
        broker = build_broker(settings, router_thread=False)
        assert broker.publisher is not None and broker.router is not None
        try:
            published = births([], events)
            for start in range(0, events, batch):
                broker.publisher.publish_json(hospital, "birth", published[start:start + batch])
            routed, started = 0, time.perf_counter()
            while routed < events:
                routed += broker.router.step()
            took = time.perf_counter() - started
        finally:
            broker.stop()
        results[label] = took
        print(f"router ({label}): {events:,} births in {took:.1f} s: "
              f"{events / took:,.0f} events/s, {took / events * 1e3:.2f} ms per event")
    extra = (results["linked"] - results["not linked"]) / events * 1e3
    print(f"  linkage adds {extra:.2f} ms per event on the router path")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="index,router")
    parser.add_argument("--index-size", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--sync", choices=("normal", "full"), default="normal",
                        help="the person index's durability, as log.sync sets it")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as workdir:
        if "index" in parts:
            index_part(args.index_size, args.events, Path(workdir), args.sync.upper())
        if "router" in parts:
            router_part(args.events, args.batch, Path(workdir), args.sync)


if __name__ == "__main__":
    main()
