"""Finding the long common ends of audit details, so the store keeps them once."""

from __future__ import annotations

import pytest

from broker.audit.shared_tails import SHARE_FROM_CHARS, SharedTails, common_suffix_length

EXPLANATION = ',"fields":[' + ",".join(
    f'{{"path":"mother.field_{n}","reason":"not in agreement"}}' for n in range(40)
) + "]}"


def detail(event: int) -> str:
    return f'{{"decision_id":"{event:032x}","event_id":"ev-{event}"' + EXPLANATION


@pytest.mark.parametrize(
    ("left", "right", "length"),
    [("abcxyz", "qqxyz", 3), ("same", "same", 4), ("abc", "abd", 0), ("", "abc", 0),
     ("xyz", "wxyz", 3)],
)
def test_common_suffix_length(left, right, length):
    assert common_suffix_length(left, right) == length


def test_a_tail_is_proposed_once_two_details_share_it_and_then_matched():
    tails = SharedTails()
    assert tails.match(detail(1)) == (detail(1), None)
    assert tails.propose(detail(1)) is None  # nothing to share with yet
    tail = tails.propose(detail(2))
    assert tail is not None
    assert len(tail) >= len(EXPLANATION)
    tails.add(7, tail)
    head, tail_id = tails.match(detail(3))
    assert tail_id == 7
    assert head + tail == detail(3)
    assert len(head) < 100


def test_small_details_are_never_split():
    tails = SharedTails()
    small = '{"reason":"unknown event type"}'
    assert len(small) < SHARE_FROM_CHARS
    assert tails.propose(small) is None
    assert tails.propose(small) is None
    assert tails.match(small) == (small, None)


def test_identical_details_share_all_but_their_first_character():
    tails = SharedTails()
    tails.propose(detail(1))
    tail = tails.propose(detail(1))
    assert tail == detail(1)[1:]


def test_forgotten_tails_are_not_matched():
    tails = SharedTails()
    tails.propose(detail(1))
    tail = tails.propose(detail(2))
    assert tail is not None
    tails.add(1, tail)
    tails.forget({1})
    assert tails.match(detail(3)) == (detail(3), None)


def test_a_different_explanation_is_not_matched_to_a_known_tail():
    tails = SharedTails()
    tails.propose(detail(1))
    tail = tails.propose(detail(2))
    assert tail is not None
    tails.add(1, tail)
    other = detail(3).replace("mother.field_0", "child.field_0")
    assert tails.match(other) == (other, None)
