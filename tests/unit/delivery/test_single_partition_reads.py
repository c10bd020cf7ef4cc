"""Reading one partition's deliveries gives each with the cursor just past it, from any
cursor, with any limit, and up to `until`."""

from __future__ import annotations

from broker.delivery.cursor import Cursor
from tests.unit.delivery.test_frame_bytes import envelope
from tests.unit.delivery.test_view_text import SUBSCRIPTION, floatless_feed


def test_a_single_partition_reads_with_the_cursor_after_each_record() -> None:
    feed = floatless_feed(12)
    for start, limit, until in [(0, 100, None), (3, 4, None), (5, 100, Cursor((9,))),
                                (11, 5, None), (12, 5, None)]:
        steps = feed.read_steps(SUBSCRIPTION, Cursor((start,)), limit, until)
        end = min(12 if until is None else until.offsets[0], start + limit)
        assert [c for c, _ in steps] == [Cursor((o + 1,)) for o in range(start, end)]
        assert [d.cursor for _, d in steps] == [str(o + 1) for o in range(start, end)]
        assert [d.envelope.event_id for _, d in steps] == [
            envelope(o).event_id for o in range(start, end)]
