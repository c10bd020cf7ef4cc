"""CPU per delivery record of turning `deliver.hv-births` into frames (SSE text and pull
JSON), stage by stage, on real delivery records.

    python bench/delivery_render.py                 # 2,000 births, 5 rounds
    python bench/delivery_render.py 5000 --rounds 10

Builds an embedded broker (`build_broker`, real SQLite log) with the demo bundle minus
linkage.yaml, publishes births and routes them, then renders the whole delivery topic of
`hv-births` from offset 0 the way a stream's hub does (`DeliveryFeed.read_steps` then
`frames.render`, 500 records per partition and read), `--rounds` times, its heap frozen
first as `handoff serve` freezes its own (`broker/cli/heap.py`). Prints this
process's CPU time per record for the whole path (`total`, best and median round), and
for each stage run alone over the same records: the log read, the Avro body straight to
the view's JSON text (`schemas.compiled_json_reader`, what the feed does), the way it
takes for a view that reader leaves alone (the Avro decode, the view record to JSON
values in place with `DecodedToJson`, and their text), the envelope from the headers,
and the frame (envelope, data and cursor to the pull body and the SSE text). Asserts
nothing; figures on a shared machine are noisy, so compare runs made back to back.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.calibration import calibration_ms  # noqa: E402
from bench.inprocess import embedded_broker  # noqa: E402
from bench.linkage_router import births, unlinked_demo_policy  # noqa: E402
from broker.cli.heap import settle_heap  # noqa: E402
from broker.delivery.cursor import Cursor  # noqa: E402
from broker.delivery.envelope import DeliveryEnvelope  # noqa: E402
from broker.delivery.feed import DeliveryFeed  # noqa: E402
from broker.delivery.frames import frame, render  # noqa: E402
from broker.delivery.view_text import view_text  # noqa: E402
from broker.log.port import LogRecord  # noqa: E402
from broker.topics import delivery_topic  # noqa: E402
from schemas.compiled_json_reader import compiled_json_reader  # noqa: E402
from schemas.decoded_json import DecodedToJson  # noqa: E402
from schemas.wire import HEADER_SIZE, body_reader, decode_wire_body, read_header  # noqa: E402

SUBSCRIPTION = "hv-births"
BATCH = 500


def cpu_per_record(work: Callable[[], object], records: int, rounds: int,
                   prepare: Callable[[], None] | None = None) -> list[float]:
    """µs of CPU per record of each of `rounds` runs of `work` (after `prepare`, not
    timed, before each)."""
    out = []
    for _ in range(rounds):
        if prepare is not None:
            prepare()
        start = time.process_time()
        work()
        out.append((time.process_time() - start) / records * 1e6)
    return out


def render_all(feed: DeliveryFeed, partitions: int) -> int:
    """Render the topic from offset 0 as a hub does; the number of frames."""
    cursor, count = Cursor((0,) * partitions), 0
    while True:
        frames = render(cursor, feed.read_steps(SUBSCRIPTION, cursor, BATCH))
        if not frames:
            return count
        count += len(frames)
        cursor = frames[-1].after


def read_all(feed: DeliveryFeed, log: object, partitions: int) -> list[LogRecord]:
    topic = delivery_topic(SUBSCRIPTION)
    out: list[LogRecord] = []
    for partition in range(partitions):
        offset = 0
        while batch := log.read(topic, partition, offset, BATCH):  # type: ignore[attr-defined]
            out.extend(batch)
            offset = batch[-1].offset + 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("events", nargs="?", type=int, default=2_000,
                        help="births to publish and deliver (default 2,000)")
    parser.add_argument("--rounds", type=int, default=5, help="renders of the topic")
    args = parser.parse_args()
    print(f"calibration loop: {calibration_ms():.0f} ms")
    with embedded_broker(unlinked_demo_policy) as bench:
        bench.publish(births([], args.events))
        bench.route(args.events)
        # As the serving process does once it has started (broker/cli/heap.py), so the
        # figures carry its garbage collections, not those of a heap never frozen.
        settle_heap()
        measure(bench.broker.feed, bench.broker.log, args.rounds)


def measure(feed: DeliveryFeed, log: object, rounds: int) -> None:
    partitions = feed.partitions(SUBSCRIPTION)
    records = read_all(feed, log, partitions)
    n = len(records)
    if n == 0 or render_all(feed, partitions) != n:
        raise SystemExit("no delivery records, or the render lost some")
    deliveries = [feed.decode(r, "0-0") for r in records]
    before = Cursor((0,) * partitions)
    # As the feed decodes: the header, then the body with the view's decoding schema.
    forms = {sid: DecodedToJson(feed.schema(sid))
             for sid in {read_header(r.value) for r in records}}
    readers = {sid: body_reader(form.decoding_schema) for sid, form in forms.items()}
    texts = {sid: compiled_json_reader(form.decoding_schema, HEADER_SIZE)
             for sid, form in forms.items()}
    writers = {sid: view_text(feed.schema(sid)) for sid in forms}
    views: list[tuple[DecodedToJson, dict[str, Any]]] = []

    def decode_afresh() -> None:
        # The conversion changes a decoded record in place: each round gets new ones.
        views.clear()
        for r in records:
            form = forms[read_header(r.value)]
            views.append((form, decode_wire_body(r.value, form.decoding_schema)))

    def stage_read() -> None:
        read_all(feed, log, partitions)

    def stage_decode() -> None:
        for r in records:
            readers[read_header(r.value)](r.value)

    def stage_to_text() -> None:
        for r in records:
            texts[read_header(r.value)](r.value)  # type: ignore[misc]

    def stage_to_json() -> None:
        for to_json, view in views:
            to_json(view)

    def stage_view_text() -> None:
        for r, (_, view) in zip(records, views, strict=True):
            writers[read_header(r.value)](view)

    def stage_envelope() -> None:
        for r in records:
            DeliveryEnvelope.from_record(r)

    def stage_frame() -> None:
        for d in deliveries:
            frame(before, before, d)

    print(f"{n:,} delivery records of {SUBSCRIPTION} in {partitions} partitions, "
          f"{rounds} rounds; µs of CPU per record (best / median):")
    stages: list[tuple[str, Callable[[], object]]] = [
        ("read (log)", stage_read),
        *([("Avro to JSON text", stage_to_text)] if None not in texts.values() else []),
        ("or: decode (Avro)", stage_decode), ("    data to JSON values", stage_to_json),
        ("    their JSON text", stage_view_text), ("envelope (headers)", stage_envelope),
        ("frame (body and SSE text)", stage_frame),
        ("total (read_steps + render)", lambda: render_all(feed, partitions)),
    ]
    for label, work in stages:
        figures = cpu_per_record(work, n, rounds,
                                 decode_afresh if work is stage_to_json else None)
        print(f"  {label:30s} {min(figures):7.1f} / {statistics.median(figures):7.1f}")


if __name__ == "__main__":
    main()
