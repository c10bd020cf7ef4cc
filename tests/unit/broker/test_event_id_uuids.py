"""A UUID-shaped event id is answered by one match; the answer is the one the full
rules give (pattern, then no SSN or telephone number written as or inside it)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from broker.ingest import event_ids
from broker.ingest.event_ids import event_id_problem


def full_rules(event_id: str) -> str | None:
    if not event_ids.EVENT_ID_PATTERN.fullmatch(event_id):
        return "pattern"
    if event_ids._WHOLE_NUMBER.fullmatch(event_id) or event_ids._WRITTEN_INSIDE.search(
            event_id):
        return "number"
    return None


def kind(problem: str | None) -> str | None:
    if problem is None:
        return None
    return "number" if "Social Security" in problem else "pattern"


# Mostly digits, so that numbers written the way an SSN or telephone number is have
# every chance to appear.
group = lambda n: st.text(alphabet="0123456789abcdefABCDEF-.", min_size=n, max_size=n)  # noqa: E731
uuid_shaped = st.builds(lambda a, b, c, d, e: f"{a}-{b}-{c}-{d}-{e}",
                        group(8), group(4), group(4), group(4), group(12))


@given(uuid_shaped)
def test_uuid_shaped_ids_get_the_answer_of_the_full_rules(event_id: str) -> None:
    assert kind(event_id_problem(event_id)) == full_rules(event_id)


@given(st.text(alphabet="0123456789-.abc", min_size=30, max_size=40))
def test_ids_near_a_uuid_in_length_get_the_answer_of_the_full_rules(event_id: str) -> None:
    assert kind(event_id_problem(event_id)) == full_rules(event_id)


def test_uuids_pass() -> None:
    for _ in range(1000):
        assert event_id_problem(str(uuid.uuid4())) is None
        assert event_id_problem(str(uuid.uuid4()).upper()) is None
