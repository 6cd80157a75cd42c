"""How code on the event loop reaches the store: in threads, never on the loop.

One writer thread takes every write in order (SQLite admits one writer at a time anyway, and a
queue in front of it keeps a slow or locked database from pinning more threads); a few reader
threads serve reads on their own connections (in WAL mode a read never waits for a writer).
While another process holds the write lock for seconds, writes wait in the writer's queue;
timers, `/health` and reads go on.

Errors leave as `StoreError`s with one sentence (`DatabaseBusyError` for a lock held longer
than the busy timeout, `DatabaseUnavailableError` for a full disk or a damaged file), so the
API can answer 503 and callers can tell "try again" from a bug. The gateway remembers whether
the last write failed (and whether one is stuck waiting), which is what `/health` reports:
answering it needs no database call.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from jeeves_runner.store.errors import DatabaseBusyError, StoreError
from jeeves_runner.store.protocols import Store

log = structlog.get_logger("jeeves_runner.store")

T = TypeVar("T")

# A write waiting this long for the database is reported by /health as a problem, before the
# busy timeout turns it into an error.
SLOW_WRITE_S = 2.0
# While writes fail, a harmless write is tried this often (when no other write is under way),
# so the problem clears as soon as the database takes writes, not at the next real write.
RECOVERY_PROBE_S = 1.0
BUSY_PROBLEM = "Another process holds the database's write lock; writes are waiting for it"


class StoreGateway:
    def __init__(self, store: Store, *, readers: int = 2) -> None:
        self.store = store
        self._writer = Lane("store-writer")
        self._readers = Lane("store-reader", threads=readers)
        # data_version is per connection: always asked on the same one, or two answers could
        # differ with nothing changed.
        self._probe = Lane("store-probe")
        self._write_problem: str | None = None
        self._write_started: float | None = None  # monotonic start of the write in progress
        self._closed = False
        # Reads and writes that failed with a StoreError since start (what /metrics shows).
        self.error_count = 0
        self._recovery: asyncio.Task[None] | None = None

    async def read(self, fn: Callable[[Store], T]) -> T:
        """`fn(store)` in a reader thread. Raises StoreError (busy, unavailable)."""
        return await self._call(self._readers, fn, is_write=False)

    async def write(self, fn: Callable[[Store], T]) -> T:
        """`fn(store)` in the writer thread, after every write asked for before it."""
        return await self._call(self._writer, fn, is_write=True)

    async def probe(self, fn: Callable[[Store], T]) -> T:
        """`fn(store)` on the one probe thread, always the same connection: for reads that
        compare `store.data_version()` (per connection) with an earlier answer."""
        return await self._call(self._probe, fn, is_write=False)

    def problem(self) -> str | None:
        """One sentence when the database cannot be written now, else None. No I/O."""
        if self._write_problem is not None:
            return self._write_problem
        started = self._write_started
        if started is not None:
            waited = time.monotonic() - started
            if waited >= SLOW_WRITE_S:
                return (
                    f"A write has been waiting {waited:.0f} s for the database "
                    f"(another process may hold its lock)"
                )
        return None

    async def _call(self, lane: Lane, fn: Callable[[Store], T], *, is_write: bool) -> T:
        if self._closed:
            raise StoreError("The store is closed")
        try:
            return await lane.call(self._run, fn, is_write)
        except StoreError:
            if is_write and self._write_problem is not None:
                self._watch_recovery()
            raise

    def _watch_recovery(self) -> None:
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.ensure_future(self._recover())

    async def _recover(self) -> None:
        """While the last write failed, probe with a write that changes nothing, so /health
        turns ok once writes succeed again even when nothing else writes (a quiet runner
        after a full disk was given room)."""
        while self._write_problem is not None and not self._closed:
            await asyncio.sleep(RECOVERY_PROBE_S)
            if self._write_problem is None or self._closed:
                return
            if self._write_started is not None:
                continue  # a real write is trying: its outcome says it
            with contextlib.suppress(StoreError):
                await self.write(lambda s: s.write_probe())

    def _run(self, fn: Callable[[Store], T], is_write: bool) -> T:
        if not is_write:
            try:
                return fn(self.store)
            except Exception as exc:
                translated = self.store.translate_error(exc)
                if isinstance(translated, StoreError):
                    self.error_count += 1
                raise translated from exc
        self._write_started = time.monotonic()
        try:
            result = fn(self.store)
        except Exception as exc:
            translated = self.store.translate_error(exc)
            if isinstance(translated, StoreError):
                self.error_count += 1
                problem = (
                    BUSY_PROBLEM if isinstance(translated, DatabaseBusyError) else str(translated)
                )
                if self._write_problem != problem:
                    log.warning("database write failed", reason=str(translated))
                self._write_problem = problem
            raise translated from exc
        finally:
            self._write_started = None
        if self._write_problem is not None:
            log.info("database writable again")
            self._write_problem = None
        return result

    def call_soon_write(self, fn: Callable[[Store], object]) -> None:
        """A write nobody waits for (its failure is logged)."""

        def done(fut: asyncio.Future[object]) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                log.warning("background write failed", reason=str(fut.exception()))

        asyncio.ensure_future(self.write(fn)).add_done_callback(done)

    def close(self) -> None:
        """Wait for queued writes, then stop the threads and close the store."""
        self._closed = True
        if self._recovery is not None and not self._recovery.done():
            with contextlib.suppress(RuntimeError):  # its loop already closed
                self._recovery.cancel()
        self._writer.shutdown()
        self._readers.shutdown()
        self._probe.shutdown()
        self.store.close()


class Lane:
    """Threads that take calls from the event loop in order and hand each result back.

    What `loop.run_in_executor` on a ThreadPoolExecutor does, without its concurrent Future
    chained to an asyncio one and its per-call bookkeeping: a database read is mostly the trip
    there and back, and this trip costs some 10 µs less (60 against 70 µs measured here). A
    call whose caller gave up before it started is not run; one already running finishes,
    its result dropped. `shutdown()` lets the calls already queued finish; a call after it is a
    RuntimeError (it would never run). As with a ThreadPoolExecutor, a lane nobody shut down
    ends its threads once it is garbage: they hold its queue, not the lane.
    """

    def __init__(self, name: str, *, threads: int = 1) -> None:
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._shut = False
        self._threads = [
            threading.Thread(target=_work, args=(self._queue,), name=f"{name}-{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()
        weakref.finalize(self, _stop, self._queue, threads)

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        if self._shut:
            raise RuntimeError("cannot call a lane after its shutdown")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((loop, future, fn, args))
        return future

    def shutdown(self) -> None:
        self._shut = True
        _stop(self._queue, len(self._threads))
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()


def _stop(calls: queue.SimpleQueue[tuple[Any, ...] | None], threads: int) -> None:
    for _ in range(threads):
        calls.put(None)


def _work(calls: queue.SimpleQueue[tuple[Any, ...] | None]) -> None:
    while (item := calls.get()) is not None:
        loop, future, fn, args = item
        if future.cancelled():
            # Its caller gave up before it started (a timed-out sweep at shutdown, say): not
            # run, as a ThreadPoolExecutor skips a cancelled future. (Read from this thread:
            # a cancel an instant later only means the result is dropped.)
            del item, loop, future, fn, args
            continue
        try:
            outcome: tuple[Any, ...] = (_succeed, future, fn(*args))
        except BaseException as exc:  # handed to the caller, whatever it is
            outcome = (_fail, future, exc)
        # A closed loop raises RuntimeError: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(*outcome)
        # Nothing of the call is kept while waiting for the next (its function may hold
        # the lane's owner, and so the lane).
        del item, loop, future, fn, args, outcome


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
