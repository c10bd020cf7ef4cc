"""`LoopBell`: events rung from other threads are set on the loop, every one of them,
with one wake-up of the loop per burst."""

from __future__ import annotations

import asyncio
import threading

from broker.delivery.loop_bell import LoopBell


def test_a_burst_of_rings_from_a_thread_sets_every_event_with_one_wakeup() -> None:
    async def run() -> tuple[list[bool], int]:
        bell = LoopBell(asyncio.get_running_loop())
        events = [asyncio.Event() for _ in range(3)]
        pulls = [bell.pull(e) for e in events]
        # The loop is blocked while the thread rings: all of it is one burst.
        ringer = threading.Thread(target=lambda: [pull() for _ in range(50) for pull in pulls])
        ringer.start()
        ringer.join()
        assert not any(e.is_set() for e in events)  # set on the loop, not in the thread
        await asyncio.sleep(0)
        return [e.is_set() for e in events], bell.wakeups

    assert asyncio.run(run()) == ([True, True, True], 1)


def test_a_ring_after_the_loop_took_the_last_burst_wakes_it_again() -> None:
    async def run() -> int:
        bell = LoopBell(asyncio.get_running_loop())
        event = asyncio.Event()
        for _ in range(3):
            event.clear()
            threading.Thread(target=bell.pull(event)).start()
            await asyncio.wait_for(event.wait(), 5)
        return bell.wakeups

    assert asyncio.run(run()) == 3


def test_a_ring_after_the_loop_closed_is_dropped_quietly() -> None:
    loop = asyncio.new_event_loop()
    bell = LoopBell(loop)
    loop.close()
    bell.pull(asyncio.Event())()  # no error: nobody is left to wake
