"""maxConcurrency as a first-in, first-out wait for a free slot: a fire is never dropped."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class ConcurrencySlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed to us as we were cancelled
            else:
                # release() may already have dropped our cancelled future from the line.
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        # Hand the slot straight to the oldest waiter, so order is exactly FIFO (unless the
        # limit was lowered below what is in use: then the slot just goes away).
        while self._waiters and self.in_use <= self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.in_use -= 1

    def set_limit(self, limit: int) -> None:
        """A new limit: raised, waiting runs start at once; lowered, running ones finish and
        no new one starts until fewer than `limit` run."""
        self.limit = limit
        while self.in_use < self.limit and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_use += 1
                waiter.set_result(None)
