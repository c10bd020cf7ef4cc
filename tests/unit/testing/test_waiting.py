"""The suite's waiting helper: what a test sees when a condition holds, and when not."""

from __future__ import annotations

import threading
import time

import pytest

from tests.waiting import Background, NeverHappened, blocked_in, eventually


def test_eventually_returns_the_first_truthy_answer():
    answers = iter([None, 0, [], ["row"], ["later"]])

    assert eventually(lambda: next(answers), interval=0) == ["row"]


def test_eventually_fails_naming_what_did_not_happen_after_the_timeout():
    asked = []
    started = time.monotonic()

    with pytest.raises(NeverHappened, match=r"no decision was audited \(waited 0.2 s\)"):
        eventually(lambda: asked.append(1), timeout=0.2, interval=0.05,
                   message=lambda: "no decision was audited")

    assert time.monotonic() - started >= 0.2
    assert len(asked) >= 3   # asked again until, and at, the deadline


def test_eventually_treats_only_the_errors_it_is_told_to_ignore_as_not_yet():
    answers = iter([ConnectionError("refused"), ConnectionError("refused"), "ready"])

    def probe() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert eventually(probe, interval=0, ignoring=(ConnectionError,)) == "ready"
    with pytest.raises(KeyError):
        eventually(lambda: {}["missing"], ignoring=(ConnectionError,))


def test_the_last_ignored_error_is_chained_to_the_failure():
    def refused() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(NeverHappened) as failure:
        eventually(refused, timeout=0.1, ignoring=(ConnectionError,))

    assert isinstance(failure.value.__cause__, ConnectionError)


def parked(gate: threading.Event) -> str:
    gate.wait()
    return "woke"


def test_background_tells_when_a_call_is_parked_inside_a_function_and_hands_back_its_result():
    gate = threading.Event()
    waiter = Background(lambda: parked(gate))

    eventually(lambda: waiter.blocked_in(parked), message="the call never parked")
    assert not waiter.blocked_in(test_eventually_returns_the_first_truthy_answer)
    gate.set()

    assert waiter.result(timeout=5) == "woke"
    assert waiter.done and not blocked_in(threading.current_thread(), parked)


def test_background_raises_the_calls_error_and_fails_when_it_does_not_return():
    failing = Background(lambda: {}["missing"])
    with pytest.raises(KeyError):
        failing.result(timeout=5)

    gate = threading.Event()
    stuck = Background(lambda: parked(gate))
    try:
        with pytest.raises(NeverHappened, match="did not return"):
            stuck.result(timeout=0.1)
    finally:
        gate.set()
