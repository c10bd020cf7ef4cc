"""Publishers awaiting group commit: answers given from the committer's thread reach
each waiting request, and a burst of them wakes the event loop once
(`broker.api.future_bridge`)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

from broker.api.future_bridge import FutureBridge


def answer_from_thread(futures: list[Future[int]], error_at: int | None = None) -> None:
    def run() -> None:
        for n, future in enumerate(futures):
            if n == error_at:
                future.set_exception(ValueError("refused"))
            else:
                future.set_result(n)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def test_each_waiter_gets_its_own_answer_and_a_burst_wakes_the_loop_once() -> None:
    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        wakes = 0
        real = loop.call_soon_threadsafe

        def counting(*args: object, **kwargs: object) -> asyncio.Handle:
            nonlocal wakes
            wakes += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        bridge = FutureBridge(loop)
        futures: list[Future[int]] = [Future() for _ in range(50)]
        waiters = [bridge.wait(f) for f in futures]
        answer_from_thread(futures)        # all 50 answered before the loop runs again
        return list(await asyncio.gather(*waiters)), wakes

    answers, wakes = asyncio.run(main())
    assert answers == list(range(50))
    assert wakes == 1


def test_an_error_reaches_only_its_waiter() -> None:
    async def main() -> list[object]:
        bridge = FutureBridge(asyncio.get_running_loop())
        futures: list[Future[int]] = [Future() for _ in range(3)]
        waiters = [bridge.wait(f) for f in futures]
        answer_from_thread(futures, error_at=1)
        return list(await asyncio.gather(*waiters, return_exceptions=True))

    first, second, third = asyncio.run(main())
    assert (first, third) == (0, 2)
    assert isinstance(second, ValueError)


def test_a_waiter_given_up_on_does_not_stop_the_others() -> None:
    async def main() -> int:
        bridge = FutureBridge(asyncio.get_running_loop())
        futures: list[Future[int]] = [Future(), Future()]
        abandoned, kept = (bridge.wait(f) for f in futures)
        abandoned.cancel()               # the client hung up
        answer_from_thread(futures)
        return await kept

    assert asyncio.run(main()) == 1


def test_an_answer_already_there_is_returned() -> None:
    async def main() -> int:
        done: Future[int] = Future()
        done.set_result(7)
        return await FutureBridge(asyncio.get_running_loop()).wait(done)

    assert asyncio.run(main()) == 7


def test_answers_in_later_bursts_wake_the_loop_again() -> None:
    async def main() -> list[int]:
        bridge = FutureBridge(asyncio.get_running_loop())
        got = []
        for n in range(3):
            future: Future[int] = Future()
            waiter = bridge.wait(future)
            answer_from_thread([future])
            got.append(await asyncio.wait_for(waiter, 5) + n)
        return got

    assert asyncio.run(main()) == [0, 1, 2]


@pytest.mark.parametrize("burst", [1, 200])
def test_many_answers_from_a_thread_while_the_loop_runs(burst: int) -> None:
    async def main() -> int:
        bridge = FutureBridge(asyncio.get_running_loop())
        futures: list[Future[int]] = [Future() for _ in range(burst)]
        waiters = [bridge.wait(f) for f in futures]

        def answer() -> None:
            for future in futures:
                future.set_result(1)

        thread = threading.Thread(target=answer)
        thread.start()
        total = sum(await asyncio.wait_for(asyncio.gather(*waiters), 5))
        thread.join()
        return total

    assert asyncio.run(main()) == burst
