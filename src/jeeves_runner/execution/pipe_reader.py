"""A child's stdout or stderr read by a thread of its own, away from the event loop's epoll.

Why not the loop's pipe transports: once anything has polled a pipe (epoll, poll, select),
Linux wakes the pipe's poll waiters on *every* write into it, not only when it turns from
empty to non-empty (`pipe->poll_usage` in fs/pipe.c). A job printing one short line per
`write()` then pays a wake-up per line, and the runner reads a line at a time: measured here,
a job writing 200 MB in 2 million 100-byte writes spent 0.25 s more in the kernel under the
loop's transports than into a pipe read with plain `read()` calls, and was preempted by its
reader about 180,000 times when the reader read as soon as it could.

So each stream gets a thread blocked in a plain `read()`, which the kernel wakes only when
the pipe turns non-empty, and which naps a moment once a read finds the pipe (nearly) empty
(`pace`), so that the next read takes many of the child's writes at once. The nap is sized
from the rate the child wrote at over the whole last cycle, to let it write about half a
pipe; it is never longer than `NAP_MAX_S`, which is all it adds to the time a line takes to
reach a follower. After a big read there is no nap (a child writing big blocks costs a
wake-up per block at most, and would only fill the pipe and wait), nor in a cycle where the
loop was behind: it sets the pace then, and a nap would only let it run dry.

What is read is handed to the event loop with the instant it was read; the loop does all the
work with it. One `call_soon_threadsafe` (a wake-up of the loop) takes everything read until
the loop gets to it, so a loop that is behind is not woken once per read. Memory stays
bounded: the thread stops reading while `QUEUE_MAX_BYTES` it handed over are not yet
consumed, so the child blocks on its full pipe as it would under a slow reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

from jeeves_runner.clock import Clock

READ_BYTES = 256 * 1024
QUEUE_MAX_BYTES = 1024 * 1024
NAP_MAX_S = 0.005
NAP_MIN_S = 0.0002  # shorter naps are not worth a timer
# A read this big is not the mark of a child writing a line at a time (the case the nap is
# for: one wake-up per write): read again at once. A child writing big blocks fast would
# only fill the pipe and wait during a nap (a timer can fire late on a busy machine).
SMALL_READ_BYTES = 16 * 1024


def pace(cycle_bytes: int, interval_s: float, target_bytes: int) -> float:
    """How long to nap once a read found the pipe (nearly) empty, so that the next read
    finds about `target_bytes`: the child wrote `cycle_bytes` in the `interval_s` since the
    pipe was last found empty, which gives its rate (0: read again at once).

    The interval spans the whole cycle (the nap before, the reads, any wait in `read()`),
    so the rate is the child's own, not that of one read: after a nap that let the pipe
    fill, the child was held up part of the time and the rate comes out low, so the next
    nap is shorter (half, when the pipe was full); a child that went quiet gets the longest
    nap, after which the thread blocks in `read()` until it writes again."""
    if interval_s <= 0 or cycle_bytes <= 0:
        return NAP_MAX_S
    nap = target_bytes * interval_s / cycle_bytes
    if nap < NAP_MIN_S:
        return 0.0
    return min(nap, NAP_MAX_S)


class PipeReader:
    """Reads `fd` (the runner's end of a child's pipe) in a daemon thread until end of file
    or `stop()`, and closes it. `on_data(data, read_at)` and then `on_eof()` are called on
    `loop`, in that order."""

    def __init__(
        self,
        fd: int,
        loop: asyncio.AbstractEventLoop,
        clock: Clock,
        on_data: Callable[[bytes, datetime], None],
        on_eof: Callable[[], None],
        *,
        target_bytes: int = READ_BYTES // 2,
        name: str = "pipe-reader",
    ) -> None:
        self.fd = fd
        self._loop = loop
        self._clock = clock
        self._on_data = on_data
        self._on_eof = on_eof
        self._target = target_bytes
        self._small = min(target_bytes, SMALL_READ_BYTES)
        self._stopping = False
        self._wake = threading.Event()  # set by stop(): ends a nap at once
        self._room = threading.Condition()
        self._queued = 0  # bytes handed to the loop and not yet consumed there
        self._queue: deque[tuple[bytes, datetime]] = deque()  # read, not yet taken by the loop
        self._drain_due = False  # a _drain call is on its way to the loop
        # Held while the fd is closed, and while stop() pokes it through /proc: a poke must
        # never reach another file that was given the same number after the close.
        self._fd_lock = threading.Lock()
        self._fd_open = True
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def fd_open(self) -> bool:
        return self._fd_open

    @property
    def queued_bytes(self) -> int:
        """Read and handed to the loop, not yet consumed there."""
        return self._queued

    def stop(self) -> None:
        """Stop reading, even though a process still holds the pipe's other end open (a
        background grandchild): whatever arrives from now on is not delivered, the thread
        ends and closes the fd. Safe to call more than once, and after end of file."""
        self._stopping = True
        self._wake.set()
        with self._room:
            self._room.notify_all()
        # A thread blocked in read() wakes only when something arrives in the pipe: write a
        # byte into it through a second write end, opened by path (Linux). Without /proc
        # the thread ends at the holder's next write or exit instead.
        with self._fd_lock:
            if not self._fd_open:
                return
            with contextlib.suppress(OSError):
                poke = os.open(f"/proc/self/fd/{self.fd}", os.O_WRONLY | os.O_NONBLOCK)
                try:
                    os.write(poke, b"\n")  # EAGAIN when full: then the thread is not blocked
                finally:
                    os.close(poke)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # ---- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        emptied = time.monotonic()  # when a read last found the pipe (nearly) empty
        cycle = 0  # bytes read since
        try:
            while not self._stopping:
                try:
                    data = os.read(self.fd, READ_BYTES)
                except OSError:
                    break
                if not data or self._stopping:
                    break
                waited = self._hand_over(data, self._clock.now())
                if waited is None:
                    break
                cycle += len(data)
                if waited:
                    # The loop is behind: it sets the pace, and a nap would only let it run
                    # dry while the pipe fills.
                    emptied, cycle = time.monotonic(), 0
                    continue
                if len(data) >= self._small:
                    continue  # there may be more: read again at once
                now = time.monotonic()
                nap = pace(cycle, now - emptied, self._target)
                emptied, cycle = now, 0
                if nap:
                    self._wake.wait(nap)
        finally:
            with self._fd_lock:
                os.close(self.fd)
                self._fd_open = False
            self._call(self._on_eof)

    def _hand_over(self, data: bytes, read_at: datetime) -> bool | None:
        """Queues `data` for the loop: whether it had to wait for room first (None: stop)."""
        waited = False
        with self._room:
            while self._queued >= QUEUE_MAX_BYTES and not self._stopping:
                waited = True
                self._room.wait()
            if self._stopping:
                return None
            self._queued += len(data)
            self._queue.append((data, read_at))
            if self._drain_due:
                return waited  # the call on its way takes this too: no second wake-up
            self._drain_due = True
        return waited if self._call(self._drain) else None

    def _call(self, fn: Callable[..., None], *args: object) -> bool:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopping = True
            return False
        return True

    # ---- the loop --------------------------------------------------------------------

    def _drain(self) -> None:
        """Everything handed over since the last call, in order."""
        with self._room:
            taken = list(self._queue)
            self._queue.clear()
            self._drain_due = False
        for data, read_at in taken:
            with self._room:  # room for the next read before this one is worked on
                self._queued -= len(data)
                self._room.notify()
            if not self._stopping:
                self._on_data(data, read_at)
