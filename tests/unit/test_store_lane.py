"""The gateway's threads (`store.gateway.Lane`): calls from the loop run in order off the
loop, results and errors come back, a caller that stopped waiting breaks nothing, and a
shutdown lets queued calls finish."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import pytest

from jeeves_runner.store.gateway import Lane


def test_calls_run_in_order_off_the_loop_and_errors_come_back() -> None:
    lane = Lane("test-lane")
    ran: list[tuple[int, str]] = []

    def work(n: int) -> int:
        ran.append((n, threading.current_thread().name))
        if n == 2:
            raise ValueError("two")
        return n * 10

    async def scenario() -> list[object]:
        calls = [lane.call(work, n) for n in range(4)]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        results = asyncio.run(scenario())
    finally:
        lane.shutdown()
    assert results[:2] == [0, 10] and results[3] == 30
    assert isinstance(results[2], ValueError) and str(results[2]) == "two"
    assert [n for n, _ in ran] == [0, 1, 2, 3]
    assert {name for _, name in ran} == {"test-lane-0"}


def test_a_caller_that_stopped_waiting_breaks_nothing() -> None:
    lane = Lane("test-lane")
    release = threading.Event()

    async def scenario() -> int:
        slow = asyncio.ensure_future(lane.call(release.wait, 5))
        await asyncio.sleep(0)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        release.set()
        return await lane.call(lambda: 7)

    try:
        assert asyncio.run(scenario()) == 7
    finally:
        lane.shutdown()


def test_shutdown_lets_queued_calls_finish() -> None:
    lane = Lane("test-lane", threads=2)
    done: list[int] = []
    gate = threading.Event()

    async def scenario() -> None:
        for n in range(6):
            lane.call(lambda n=n: (gate.wait(5), done.append(n)))

    asyncio.run(scenario())
    gate.set()
    lane.shutdown()
    assert sorted(done) == list(range(6))


def test_a_call_after_shutdown_is_refused_rather_than_left_waiting() -> None:
    lane = Lane("test-lane")
    lane.shutdown()

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="after its shutdown"):
            await lane.call(lambda: 1)

    asyncio.run(scenario())


def test_a_lane_nobody_shut_down_ends_its_threads_once_it_is_garbage() -> None:
    class Owner:  # as a gateway: its calls are its bound methods, it holds the lane
        def __init__(self) -> None:
            self.lane = Lane("test-lane-dropped", threads=2)

        def work(self) -> int:
            return 1

    async def scenario() -> Owner:
        owner = Owner()
        assert await owner.lane.call(owner.work) == 1
        return owner

    owner = asyncio.run(scenario())
    threads = list(owner.lane._threads)
    del owner
    gc.collect()
    deadline = time.monotonic() + 5
    while any(thread.is_alive() for thread in threads):
        assert time.monotonic() < deadline, "the lane's threads outlived it"
        time.sleep(0.01)


def test_a_call_given_up_before_it_starts_is_not_run() -> None:
    lane = Lane("test-lane")
    ran: list[str] = []
    release = threading.Event()

    async def scenario() -> None:
        busy = lane.call(release.wait, 5)  # holds the lane's one thread
        queued = lane.call(ran.append, "queued")
        queued.cancel()
        release.set()
        await busy
        await lane.call(ran.append, "after")

    try:
        asyncio.run(scenario())
    finally:
        lane.shutdown()
    assert ran == ["after"]
