"""Record linkage benchmark: accuracy against Splink alone, stream latency, CLK matching.

    python bench/linkage_bench.py                       # all three parts (about 15 min)
    python bench/linkage_bench.py --parts quality --people 20000
    python bench/linkage_bench.py --parts latency --index-size 1000000
    python bench/linkage_bench.py --parts clk --clk-size 100000
    python bench/linkage_bench.py --write-default-model # retrain linkage/default_model.json

quality: a synthetic population (`linkage.synthetic`, seed fixed) known to 1-4 agencies
  each, with realistic errors. Splink trains the model on all records (DuckDB); then
  (a) ours: every record streamed through `PersonResolver` in arrival order, thresholds
      link >= p, review >= q; review items are counted, left unresolved (a provisional
      person each), then resolved by a perfect clerk (ground truth) and measured again;
  (b) Splink alone: `predict()` on the same records with the same blocking rules and
      model, pairs at or above the link threshold, clustered by connected components.
  Pairwise precision, recall and F1 over record pairs placed in one person.
latency: a SQLite index of N people (one Medicaid record each), build time and size;
  then records from other agencies (half about indexed people, with errors; half new
  people) resolved one at a time: p50/p99 of match (candidates + scoring) and of the
  whole resolve (with the durable commit).
clk: N encodings made with clkhash (connector side) in an anonlink-backed `ClkIndex`;
  queries of noisy records (half present): encode and match latency, precision/recall.
  N is smaller than the clear index because encoding runs in Python at ~0.25 ms per
  record, and the CLK index is held in memory (see docs/linkage.md).

Benchmarks on a shared machine are noisy; the figures are for comparison, not promises.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from linkage.identity import normalise
from linkage.scoring import CompiledModel
from linkage.thresholds import Thresholds

LINK_P, REVIEW_P = 0.99, 0.5


def pairwise(assign: dict[str, str], truth: dict[str, int]) -> tuple[float, float, float]:
    def pairs(n: int) -> int:
        return n * (n - 1) // 2
    predicted = sum(pairs(n) for n in Counter(assign.values()).values())
    actual = sum(pairs(n) for n in Counter(truth.values()).values())
    correct = sum(pairs(n) for n in Counter((assign[k], truth[k]) for k in assign).values())
    precision = correct / predicted if predicted else 1.0
    recall = correct / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(label: str, metrics: tuple[float, float, float], extra: str = "") -> None:
    p, r, f = metrics
    print(f"  {label:<38} precision {p:.4f}  recall {r:.4f}  F1 {f:.4f}  {extra}")


def quality(people: int, thresholds: Thresholds, seed: int) -> CompiledModel:
    from linkage import splink_model
    from linkage.memory_index import MemoryPersonIndex
    from linkage.resolver import PersonResolver
    from linkage.synthetic import SyntheticPopulation, linked_dataset

    records = linked_dataset(SyntheticPopulation(seed), people)
    rows = [(r.record.agency_id.key, normalise(r.record)) for r in records]
    truth = {r.record.agency_id.key: r.truth_id for r in records}
    print(f"quality: {people} people, {len(records)} records, link >= {LINK_P}, "
          f"review >= {REVIEW_P}")
    started = time.perf_counter()
    model, splink_json = splink_model.train(rows)
    print(f"  Splink training (DuckDB): {time.perf_counter() - started:.1f} s")

    index = MemoryPersonIndex()
    resolver = PersonResolver(index, model, thresholds)
    started = time.perf_counter()
    outcomes = Counter(resolver.resolve(r.record).outcome for r in records)
    elapsed = time.perf_counter() - started
    reviews = index.open_reviews(10**9)
    line("ours (reviews unresolved)", pairwise(
        {r.record_key: r.person_id or "" for r in index.iter_records()}, truth),
        f"[{dict(outcomes)}, {len(reviews)} review items]")
    correct_same = 0
    for item in reviews:
        candidate = resolver.current_person(item.candidate_person_id)
        same = truth[item.record_key] in {truth[r.record_key]
                                          for r in index.records_of(candidate)}
        correct_same += same
        if index.review(item.review_id).status == "open":  # type: ignore[union-attr]
            resolver.resolve_review(item.review_id, "same" if same else "different", "clerk")
    line("ours + perfect clerk", pairwise(
        {r.record_key: r.person_id or "" for r in index.iter_records()}, truth),
        f"[{correct_same} of {len(reviews)} reviews were the same person]")

    started = time.perf_counter()
    pairs = splink_model.splink_predict(rows, splink_json,
                                        threshold_match_weight=thresholds.link_weight)
    predict_s = time.perf_counter() - started
    parent = {k: k for k in truth}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for left, right, _ in pairs:
        parent[find(left)] = find(right)
    line("Splink alone (predict + threshold)", pairwise({k: find(k) for k in truth}, truth),
         f"[{len(pairs)} pairs]")
    print(f"  stream: {elapsed / len(records) * 1e3:.3f} ms per record (in memory); "
          f"Splink predict on the batch: {predict_s:.1f} s")
    return model


def latency(size: int, queries: int, model: CompiledModel, thresholds: Thresholds,
            seed: int, workdir: Path) -> None:
    import datetime as dt

    from linkage.events import LinkageEvent, Linked, RecordAdded
    from linkage.person_ids import new_person_id
    from linkage.resolver import PersonResolver
    from linkage.sqlite_index import SqlitePersonIndex
    from linkage.synthetic import SyntheticPopulation

    path = workdir / "persons.db"
    pop = SyntheticPopulation(seed)
    index = SqlitePersonIndex(path, synchronous="OFF")
    now = dt.datetime.now(dt.UTC)
    sampled = []
    started = time.perf_counter()
    batch: list[LinkageEvent] = []
    seq = 0
    for truth_id in range(size):
        person = pop.person(truth_id)
        if truth_id % max(1, size // (queries // 2)) == 0:
            sampled.append(person)
        record = pop.observe(person, "medicaid").record
        key = record.agency_id.key
        batch += [RecordAdded(seq + 1, now, key, normalise(record)),
                  Linked(seq + 2, now, key, new_person_id(), "new_person")]
        seq += 2
        if len(batch) >= 20000:
            index.apply(batch)
            batch = []
    index.apply(batch)
    build_s = time.perf_counter() - started
    index.close()
    size_mb = sum(p.stat().st_size for p in workdir.glob("persons.db*")) / 1e6
    print(f"latency: SQLite index of {size:,} people built in {build_s:.0f} s "
          f"({size / build_s:,.0f} records/s), {size_mb:,.0f} MB on disk")

    index = SqlitePersonIndex(path)  # synchronous=FULL, as the broker runs it
    resolver = PersonResolver(index, model, thresholds)
    probes = [(pop.observe(p, "cps-hotline").record, True) for p in sampled[:queries // 2]]
    probes += [(pop.observe(pop.person(size + i), "cps-hotline").record, False)
               for i in range(queries - len(probes))]
    pop.rng.shuffle(probes)
    match_ms, resolve_ms, candidates = [], [], []
    correct = 0
    for record, known in probes:
        identity = normalise(record)
        t0 = time.perf_counter()
        ranked = resolver.score_candidates(identity)
        t1 = time.perf_counter()
        result = resolver.resolve(record)
        t2 = time.perf_counter()
        match_ms.append((t1 - t0) * 1e3)
        resolve_ms.append((t2 - t1) * 1e3)
        candidates.append(len(ranked))
        correct += (result.outcome == "link") == known
    index.close()
    print(f"  {len(probes)} records from another agency, one at a time "
          f"({statistics.median(candidates):.0f} candidate persons median, "
          f"{max(candidates)} max):")
    print(f"  match (blocking + scoring):   p50 {pct(match_ms, .5):.2f} ms  "
          f"p99 {pct(match_ms, .99):.2f} ms")
    print(f"  resolve (+ durable commit):   p50 {pct(resolve_ms, .5):.2f} ms  "
          f"p99 {pct(resolve_ms, .99):.2f} ms")
    print(f"  outcome right (link iff known): {correct / len(probes):.3f}")


def clk(size: int, queries: int, seed: int) -> None:
    from connectors.linkage_encoding import ClkEncoder
    from linkage.clk import ClkIndex
    from linkage.synthetic import SyntheticPopulation

    encoder = ClkEncoder.create(b"benchmark agreement secret, 32 bytes or more!")
    pop = SyntheticPopulation(seed)
    people = pop.people(size)
    started = time.perf_counter()
    clks = [encoder.encode(pop.observe(p, "cps-hotline").record) for p in people]
    encode_s = time.perf_counter() - started
    index = ClkIndex()
    started = time.perf_counter()
    for person, text in zip(people, clks, strict=True):
        index.add(str(person.truth_id), text)
    build_s = time.perf_counter() - started
    print(f"clk: {size:,} encodings made in {encode_s:.0f} s "
          f"({encode_s / size * 1e3:.2f} ms each, connector side); "
          f"index built in {build_s:.1f} s")
    probes = [(pop.observe(p, "vital-records").record, str(p.truth_id))
              for p in people[:queries // 2]]
    probes += [(pop.observe(pop.person(size + i), "vital-records").record, None)
               for i in range(queries - len(probes))]
    for threshold in (0.8, 0.85, 0.9):
        match_ms, tp, fp, fn = [], 0, 0, 0
        for record, truth in probes:
            text = encoder.encode(record)
            t0 = time.perf_counter()
            found = index.match(text, threshold, limit=1)
            match_ms.append((time.perf_counter() - t0) * 1e3)
            best = found[0].record_key if found else None
            tp += best is not None and best == truth
            fp += best is not None and best != truth
            fn += truth is not None and best != truth
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        print(f"  dice >= {threshold}: precision {precision:.4f}  recall {recall:.4f}  "
              f"match p50 {pct(match_ms, .5):.2f} ms  p99 {pct(match_ms, .99):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="quality,latency,clk")
    parser.add_argument("--people", type=int, default=20000)
    parser.add_argument("--index-size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--clk-size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--write-default-model", action="store_true",
                        help="train on the synthetic population and write "
                             "linkage/default_model.json")
    args = parser.parse_args()
    thresholds = Thresholds.from_probabilities(LINK_P, REVIEW_P)
    parts = set(args.parts.split(","))
    if args.write_default_model:
        from linkage import splink_model
        from linkage.synthetic import SyntheticPopulation, linked_dataset
        records = linked_dataset(SyntheticPopulation(args.seed), args.people)
        model, _ = splink_model.train((r.record.agency_id.key, normalise(r.record))
                                      for r in records)
        target = Path(__file__).resolve().parent.parent / "linkage" / "default_model.json"
        target.write_text(model.to_json() + "\n", "utf-8")
        print(f"wrote {target}")
        return
    from linkage.default_model import default_model
    model = default_model()
    if "quality" in parts:
        model = quality(args.people, thresholds, args.seed)
    if "latency" in parts:
        with tempfile.TemporaryDirectory() as workdir:
            latency(args.index_size, args.queries, model, thresholds, args.seed + 1,
                    Path(workdir))
    if "clk" in parts:
        clk(args.clk_size, args.queries, args.seed + 2)


if __name__ == "__main__":
    main()
