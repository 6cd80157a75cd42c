from __future__ import annotations

import asyncio

from jeeves_runner.scheduling.slots import ConcurrencySlots


def test_fifo_order_and_no_waiter_lost() -> None:
    async def main() -> list[int]:
        slots = ConcurrencySlots(1)
        order: list[int] = []

        async def worker(n: int) -> None:
            await slots.acquire()
            order.append(n)
            await asyncio.sleep(0)
            slots.release()

        await slots.acquire()
        tasks = [asyncio.ensure_future(worker(n)) for n in range(5)]
        await asyncio.sleep(0)
        assert slots.waiting == 5
        slots.release()
        await asyncio.gather(*tasks)
        assert slots.in_use == 0
        return order

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_cancelled_waiter_gives_its_place_up() -> None:
    async def main() -> int:
        slots = ConcurrencySlots(1)
        await slots.acquire()
        first = asyncio.ensure_future(slots.acquire())
        second = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.sleep(0)
        slots.release()
        await asyncio.wait_for(second, 1)
        return slots.in_use

    assert asyncio.run(main()) == 1


def test_waiter_cancelled_and_released_in_the_same_turn_stays_consistent() -> None:
    async def main() -> tuple[bool, int]:
        slots = ConcurrencySlots(1)
        await slots.acquire()
        waiter = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        slots.release()  # pops the cancelled future before the waiter resumes
        try:
            await waiter
        except asyncio.CancelledError:
            cancelled = True
        else:
            cancelled = False
        return cancelled, slots.in_use

    assert asyncio.run(main()) == (True, 0)
