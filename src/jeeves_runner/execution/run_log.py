"""A run's full log as it is read, and the writer that stores every run's new lines in one
commit per tick.

`RunLog` splits each stream into lines, stamps each chunk of lines with the instant it was
read, cuts a line longer than `MAX_LINE_BYTES` (marked `…[cut]`) and, past the run's byte
cap (`runLogMaxBytes`), keeps the first half and the last half with one line between them
saying how much was dropped. Memory stays bounded whatever the child prints: a line is never
held beyond the cap, the middle of a long log is dropped as it goes, and a live reader that
falls behind loses lines (and is told so) rather than growing a queue.

`RunLogWriter` is the one place that writes logs: a flush takes what every run has new and
writes it in one transaction (principle 12: a commit costs 0.13 ms on a quiet disk and 4 ms
on a busy one, so never one per run per line). A flush happens `FLUSH_INTERVAL_S` after new
output, or at once when `EAGER_BYTES` are waiting in logs that are still within their first
half (past it, most of what arrives is dropped again before long, so writing it early would
only churn the database).

Past the first half, a tick writes at most `TAIL_TICK_BYTES` of the tail: its newest chunks,
and the store's older tail chunks are deleted, so the stored log is the head, the marker and
the newest lines, and the marker counts the tail chunks held back as dropped for the time
being. The held chunks stay in memory (the tail is at most half the cap) and are written by
a later tick or with the run's end. A child printing hundreds of MB past the cap would
otherwise have the store write, and delete again a tick later, half the cap every tick (5 MiB
every 250 ms by default: the writer thread busy all along, for chunks nobody reads).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from datetime import datetime

import structlog

from jeeves_runner.clock import Clock
from jeeves_runner.execution.output_tail import cut_line
from jeeves_runner.models import LogChunk, LogStream, RunLogWrite, format_instant
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.gateway import StoreGateway

log = structlog.get_logger("jeeves_runner.execution.run_log")

MAX_LINE_BYTES = 64 * 1024
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
FLUSH_INTERVAL_S = 0.25
EAGER_BYTES = 64 * 1024
# A live reader may have this much waiting for it; past it, lines are dropped for that reader.
SUBSCRIBER_MAX_BYTES = 4 * 1024 * 1024
# Past the head, the most of a run's tail one tick writes (its newest chunks).
TAIL_TICK_BYTES = 256 * 1024
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0


def dropped_line(dropped_bytes: int, dropped_lines: int, max_bytes: int) -> bytes:
    return (
        f"…[{dropped_lines:,} lines ({dropped_bytes:,} bytes) dropped here: this run's log "
        f"passed runLogMaxBytes ({max_bytes:,} bytes); its first and last halves are kept]\n"
    ).encode()


class LogSubscription:
    """A live reader of one run's log. `backlog_until`: chunks with a lower seq were in the
    store (or dropped from it) when the reader subscribed; everything else comes through
    `next_chunks()`, in order, until the run's end is recorded."""

    def __init__(self, backlog: list[LogChunk], backlog_until: int) -> None:
        self.backlog_until = backlog_until
        self._queue: deque[LogChunk] = deque(backlog)
        self._size = sum(len(c.data) for c in backlog)
        self._event = asyncio.Event()
        self._lost_lines = 0
        self.closed = False
        self._on_close: Callable[[LogSubscription], None] | None = None

    def push(self, chunk: LogChunk) -> None:
        if self._size + len(chunk.data) > SUBSCRIBER_MAX_BYTES:
            self._lost_lines += chunk.data.count(b"\n")
            return
        if self._lost_lines:
            # Said in place, so the reader knows where the gap is.
            note = f"…[{self._lost_lines:,} lines not sent: this reader fell behind]\n"
            self._queue.append(LogChunk(chunk.seq, LogStream.RUNNER, chunk.at, note.encode()))
            self._lost_lines = 0
        self._queue.append(chunk)
        self._size += len(chunk.data)
        self._event.set()

    def take_ready(self) -> list[LogChunk]:
        """What has arrived, without waiting."""
        chunks = list(self._queue)
        self._queue.clear()
        self._size = 0
        return chunks

    def end(self) -> None:
        """The run's end is recorded: nothing more comes."""
        self.closed = True
        self._on_close = None  # the log has let go of its readers already
        self._event.set()

    async def next_chunks(self) -> list[LogChunk] | None:
        """What arrived since the last call (waiting for something), or None at the end."""
        while not self._queue and not self.closed:
            self._event.clear()
            await self._event.wait()
        if not self._queue:
            return None
        chunks = list(self._queue)
        self._queue.clear()
        self._size = 0
        return chunks

    def close(self) -> None:
        """The reader went away."""
        if self._on_close is not None:
            self._on_close(self)
            self._on_close = None


class RunLog:
    """One run's log while it runs. Fed on the event loop by the child's pipes."""

    def __init__(
        self,
        run_id: int,
        clock: Clock,
        on_pending: Callable[[RunLog], None],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.run_id = run_id
        self._clock = clock
        self._on_pending = on_pending
        self.max_bytes = max_bytes
        self._half = max(max_bytes // 2, 1)
        self._line_cap = max_line_bytes
        self._partial: dict[LogStream, bytearray] = {
            LogStream.STDOUT: bytearray(),
            LogStream.STDERR: bytearray(),
        }
        self._partial_cut: dict[LogStream, bool] = {
            LogStream.STDOUT: False,
            LogStream.STDERR: False,
        }
        self._next_seq = 0
        self._head_bytes = 0
        self.in_head = True
        self._marker_seq: int | None = None
        self._marker_dirty = False
        # The chunks after the head, with their line counts (kept whole: a tick may hold some
        # back from the store, see take_write).
        self._tail: deque[tuple[LogChunk, int]] = deque()
        self._tail_bytes = 0
        self._held = (0, 0)  # bytes and lines of the tail held back by the last write
        self.dropped_bytes = 0
        self.dropped_lines = 0
        self._drop_upto: int | None = None  # stored tail chunks below this seq are dropped
        self._pending: dict[int, LogChunk] = {}
        self.pending_bytes = 0
        self._in_flight: dict[int, LogChunk] = {}
        self._subscribers: list[LogSubscription] = []
        self.tails: Callable[[], tuple[str, str]] | None = None  # the run's output tails
        self._tails_stale = False
        self.finished = False

    # ---- input -----------------------------------------------------------------------

    def feed(self, stream: LogStream, data: bytes, read_at: datetime | None = None) -> None:
        """Bytes read from one of the child's pipes at `read_at` (now when None): every line
        they complete gets that instant."""
        if self.finished or not data:
            return
        self._tails_stale = True
        last_nl = data.rfind(b"\n")
        if last_nl < 0:
            self._extend_partial(stream, data)
            # No line yet (a progress bar): only the run's tails change, but they should.
            self._on_pending(self)
            return
        end = last_nl + 1
        partial = self._partial[stream]
        block: bytes
        if partial or self._partial_cut[stream]:
            first_nl = data.find(b"\n")
            if not self._partial_cut[stream]:
                self._extend_partial(stream, data[: min(first_nl, self._line_cap + 1)])
            first = bytes(partial)
            if self._partial_cut[stream]:
                first = cut_line(first, self._line_cap)
            partial.clear()
            self._partial_cut[stream] = False
            rest = (
                data[first_nl + 1 : end] if self._has_long_line(data, first_nl + 1, end) else None
            )
            if rest is not None:
                block = b"".join((first, b"\n", self._cut_long(rest)))
            else:
                # One copy of the chunk's lines, none of them split out.
                block = b"".join((first, b"\n", memoryview(data)[first_nl + 1 : end]))
        else:
            block = data[:end]  # the same object when the chunk ends with a newline
            if self._has_long_line(data, 0, end):
                block = self._cut_long(block)
        self._append(stream, block, read_at)
        if end < len(data):
            self._extend_partial(stream, data[end:])

    def warn(self, text: str) -> None:
        """A line of the runner's own in this run's log (a bad `JR_RESULT:` line, ...)."""
        if not self.finished:
            self._append(LogStream.RUNNER, text.encode() + b"\n")

    def finish(self) -> None:
        """The child is gone: a last line without its newline still counts."""
        for stream, partial in self._partial.items():
            if partial or self._partial_cut[stream]:
                line = bytes(partial)
                if self._partial_cut[stream]:
                    line = cut_line(line, self._line_cap)
                partial.clear()
                self._partial_cut[stream] = False
                self._append(stream, line + b"\n")
        self.finished = True

    def _extend_partial(self, stream: LogStream, data: bytes) -> None:
        if self._partial_cut[stream]:
            return  # the rest of a line already cut
        partial = self._partial[stream]
        partial += data
        if len(partial) > self._line_cap:
            del partial[self._line_cap :]
            self._partial_cut[stream] = True

    def _has_long_line(self, data: bytes, start: int, end: int) -> bool:
        """Whether one of the whole lines in data[start:end] is longer than the line cap.
        A line starting at `pos` is within the cap if a newline follows within cap + 1
        bytes; the last newline in that window starts the next window, so this takes about
        (end - start) / cap backward searches, each ending at the first newline it meets."""
        cap = self._line_cap
        pos = start
        while end - pos > cap + 1:
            newline = data.rfind(b"\n", pos, pos + cap + 1)
            if newline < 0:
                return True
            pos = newline + 1
        return False

    def _cut_long(self, block: bytes) -> bytes:
        cap = self._line_cap
        lines = block.split(b"\n")
        return b"\n".join(line if len(line) <= cap else cut_line(line, cap) for line in lines)

    def _append(self, stream: LogStream, block: bytes, read_at: datetime | None = None) -> None:
        """Whole lines of one stream, read at `read_at` (now when None): into the head while
        it has room, else into the tail, whose oldest chunks are dropped once it holds more
        than half the cap."""
        at = format_instant(read_at if read_at is not None else self._clock.now())
        if self.in_head:
            room = self._half - self._head_bytes
            if len(block) <= room:
                self._head_bytes += len(block)
                self._emit(stream, at, block)
                return
            split = block.rfind(b"\n", 0, room) + 1
            if split:
                self._head_bytes += split
                self._emit(stream, at, block[:split])
                block = block[split:]
            self.in_head = False
            self._marker_seq = self._next_seq  # the dropped-lines line goes between the halves
            self._next_seq += 1
        if len(block) > self._half:
            # Even alone this is more than the tail keeps: only its last lines can stay.
            start = block.find(b"\n", len(block) - self._half - 1) + 1
            if start >= len(block):
                start = block.rfind(b"\n", 0, len(block) - 1) + 1
            self._count_dropped(start, block.count(b"\n", 0, start))
            block = block[start:]
        # The tail drops whole chunks: a read far larger than the tail's grain goes in as
        # several chunks, cut at line ends, so the tail kept stays close to half the cap
        # whatever the size of the reads.
        grain = max(self._half // 16, 4096)
        while len(block) > grain:
            cut = block.rfind(b"\n", 0, grain) + 1 or block.find(b"\n", grain) + 1
            if not cut or cut >= len(block):
                break
            self._add_to_tail(stream, at, block[:cut])
            block = block[cut:]
        self._add_to_tail(stream, at, block)

    def _add_to_tail(self, stream: LogStream, at: str, block: bytes) -> None:
        chunk = self._emit(stream, at, block)
        self._tail.append((chunk, block.count(b"\n")))
        self._tail_bytes += len(block)
        while self._tail_bytes > self._half and len(self._tail) > 1:
            old, lines = self._tail.popleft()
            size = len(old.data)
            self._tail_bytes -= size
            self._count_dropped(size, lines)
            if self._pending.pop(old.seq, None) is not None:
                self.pending_bytes -= size
            self._drop_upto = old.seq + 1

    def _count_dropped(self, size: int, lines: int) -> None:
        self.dropped_bytes += size
        self.dropped_lines += lines
        self._marker_dirty = True

    def _emit(self, stream: LogStream, at: str, data: bytes) -> LogChunk:
        seq = self._next_seq
        self._next_seq += 1
        chunk = LogChunk(seq, stream, at, data)
        self._pending[seq] = chunk
        self.pending_bytes += len(data)
        for subscriber in self._subscribers:
            subscriber.push(chunk)
        self._on_pending(self)
        return chunk

    # ---- the writer's side -----------------------------------------------------------

    @property
    def has_news(self) -> bool:
        return (
            bool(self._pending)
            or self._marker_dirty
            or self._drop_upto is not None
            or (self._tails_stale and self.tails is not None)
        )

    def take_write(
        self, *, with_tails: bool = True, tail_budget: int | None = None
    ) -> RunLogWrite | None:
        """What is new since the last write, now in flight until settle() or restore().

        `tail_budget` (None: no limit): past the head, about the most of the tail to write.
        When the tail's new chunks alone are more, only the newest of them are written and
        the stored tail chunks before them are deleted; the tail chunks held back (counted
        by the marker as dropped meanwhile) are written by later writes, newest first, as
        far as what is new leaves room (all at once when nothing new came)."""
        if not self.has_news:
            return None
        marker_seq = self._marker_seq
        taken = self._pending
        kept: dict[int, LogChunk] = {}
        held_bytes = held_lines = 0
        if tail_budget is not None and marker_seq is not None:
            write_from = self._plan_tail(tail_budget)
            if write_from is not None:
                # Held back: every tail chunk before `write_from` (the stored ones among them
                # are deleted by the range below, so the store's tail stays one piece).
                for chunk, lines in self._tail:
                    if chunk.seq >= write_from:
                        break
                    kept[chunk.seq] = chunk
                    held_bytes += len(chunk.data)
                    held_lines += lines
                taken = {seq: c for seq, c in self._pending.items() if seq not in kept}
                self._drop_upto = max(self._drop_upto or 0, write_from)
        if (held_bytes, held_lines) != self._held:
            self._held = (held_bytes, held_lines)
            self._marker_dirty = True
        chunks = sorted(taken.values(), key=lambda c: c.seq)
        if self._marker_dirty and marker_seq is not None:
            text = dropped_line(
                self.dropped_bytes + held_bytes, self.dropped_lines + held_lines, self.max_bytes
            )
            marker = LogChunk(marker_seq, LogStream.RUNNER, format_instant(self._clock.now()), text)
            chunks.insert(0, marker)
        drop = None
        if self._drop_upto is not None and marker_seq is not None:
            drop = (marker_seq + 1, self._drop_upto)
        tails = None
        if with_tails and self._tails_stale and self.tails is not None:
            tails = self.tails()
            self._tails_stale = False
        self._in_flight.update(taken)
        self._pending = kept
        self.pending_bytes = sum(len(c.data) for c in kept.values())
        self._marker_dirty = False
        self._drop_upto = None
        return RunLogWrite(self.run_id, tuple(chunks), drop, tails)

    def _plan_tail(self, budget: int) -> int | None:
        """The seq from which a write with `budget` takes the tail (what is before it is
        held back), or None when everything not stored yet fits."""
        if self.pending_bytes <= budget:
            return None
        tail = [(chunk.seq, len(chunk.data)) for chunk, _ in self._tail]
        unstored = self._pending
        # The new chunks: the unstored ones after the last stored tail chunk.
        i = len(tail)
        new_bytes = 0
        while i > 0 and tail[i - 1][0] in unstored:
            i -= 1
            new_bytes += tail[i][1]
        if new_bytes > budget:
            start = len(tail) - 1  # the newest chunk goes in any case
            total = tail[start][1]
            while start > 0 and total + tail[start - 1][1] <= budget:
                start -= 1
                total += tail[start][1]
            return tail[start][0]
        # The new chunks fit: then the held ones under the stored piece, newest first, as
        # far as the room left goes (all of them when nothing new came).
        while i > 0 and tail[i - 1][0] not in unstored:
            i -= 1
        if new_bytes == 0:
            return None
        room = budget - new_bytes
        while i > 0 and tail[i - 1][1] <= room:
            i -= 1
            room -= tail[i][1]
        return tail[i][0] if i > 0 else None

    def settle(self) -> None:
        """The write taken last is committed."""
        self._in_flight = {}

    def restore(self, write: RunLogWrite) -> None:
        """The write taken last failed: its chunks wait for the next one (those dropped in
        the meantime excepted)."""
        in_tail = {chunk.seq for chunk, _ in self._tail}
        head_end = self._next_seq if self._marker_seq is None else self._marker_seq
        kept = {
            seq: chunk for seq, chunk in self._in_flight.items() if seq in in_tail or seq < head_end
        }
        self._pending = {**kept, **self._pending}
        self.pending_bytes = sum(len(c.data) for c in self._pending.values())
        self._in_flight = {}
        if write.drop is not None:
            self._drop_upto = max(self._drop_upto or 0, write.drop[1])
        if any(c.seq == self._marker_seq for c in write.chunks):
            self._marker_dirty = True
        if write.tails is not None:
            self._tails_stale = True

    # ---- live readers ----------------------------------------------------------------

    def subscribe(self) -> LogSubscription:
        unsettled = {**self._in_flight, **self._pending}
        until = min(unsettled, default=self._next_seq)
        # Tail chunks held back are older than stored ones: those come from memory too.
        for chunk, _ in self._tail:
            if chunk.seq > until:
                unsettled.setdefault(chunk.seq, chunk)
        backlog = sorted(
            (c for c in unsettled.values() if c.seq != self._marker_seq), key=lambda c: c.seq
        )
        until = backlog[0].seq if backlog else self._next_seq
        subscription = LogSubscription(backlog, until)
        self._subscribers.append(subscription)
        subscription._on_close = self._subscribers.remove
        return subscription

    def end_subscribers(self) -> None:
        for subscriber in self._subscribers:
            subscriber.end()
        self._subscribers.clear()


class RunLogWriter:
    """Every run's log in flight, written in one commit per tick."""

    def __init__(
        self,
        store: StoreGateway,
        clock: Clock,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        interval_s: float = FLUSH_INTERVAL_S,
        eager_bytes: int = EAGER_BYTES,
        tail_tick_bytes: int = TAIL_TICK_BYTES,
    ) -> None:
        self.store = store
        self.tail_tick_bytes = tail_tick_bytes
        self.clock = clock
        self.max_bytes = max_bytes
        self.interval_s = interval_s
        self.eager_bytes = eager_bytes
        self.logs: dict[int, RunLog] = {}  # written by ticks
        self.live: dict[int, RunLog] = {}  # readable live: until the run's end is recorded
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._retry_delay = RETRY_FIRST_S
        self._stopped = False

    def open(self, run_id: int) -> RunLog:
        run_log = RunLog(run_id, self.clock, self._on_pending, max_bytes=self.max_bytes)
        self.logs[run_id] = run_log
        self.live[run_id] = run_log
        return run_log

    def _on_pending(self, run_log: RunLog) -> None:
        if self._flushing is not None or self._stopped:
            return  # the flush in progress looks again when it ends
        if run_log.in_head and run_log.pending_bytes >= self.eager_bytes:
            self._flush_soon(0)
        elif self._timer is None:
            self._flush_soon(self.interval_s)

    def _flush_soon(self, delay: float) -> None:
        if self._timer is not None:
            if delay > 0:
                return
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self._timer = None
        if self._flushing is None:
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        taken: list[tuple[RunLog, RunLogWrite]] = []
        try:
            for run_log in list(self.logs.values()):
                write = run_log.take_write(tail_budget=self.tail_tick_bytes)
                if write is not None:
                    taken.append((run_log, write))
            if taken:
                writes = [w for _, w in taken]
                await self.store.write(lambda s: s.logs.write_logs(writes))
            for run_log, _ in taken:
                run_log.settle()
            self._retry_delay = RETRY_FIRST_S
            delay = self.interval_s
        except StoreError as exc:
            log.warning("could not write run logs yet; trying again", reason=str(exc))
            for run_log, write in taken:
                run_log.restore(write)
            delay = self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, RETRY_MAX_S)
        finally:
            self._flushing = None
        if self._stopped:
            return
        news = [r for r in self.logs.values() if r.has_news]
        if any(r.in_head and r.pending_bytes >= self.eager_bytes for r in news):
            self._flush_soon(0)
        elif news:
            self._flush_soon(delay)

    async def close(self, run_id: int) -> RunLogWrite | None:
        """The run's child is gone: no more ticks for its log. What is left of it is returned,
        for the commit that records the run's end (after any flush in flight)."""
        run_log = self.logs.pop(run_id, None)
        if run_log is None:
            return None
        run_log.finish()
        while self._flushing is not None:
            await asyncio.shield(self._flushing)
        return run_log.take_write(with_tails=False)

    def recorded(self, run_id: int) -> None:
        """The run's end is stored: live readers get their end."""
        run_log = self.live.pop(run_id, None)
        self.logs.pop(run_id, None)
        if run_log is not None:
            run_log.settle()
            run_log.end_subscribers()

    def subscribe(self, run_id: int) -> LogSubscription | None:
        run_log = self.live.get(run_id)
        return None if run_log is None else run_log.subscribe()

    async def stop(self) -> None:
        """Shutdown: one last flush of what the logs hold, then no more ticks."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._flushing is not None:
            await asyncio.shield(self._flushing)
        self._stopped = True
        with contextlib.suppress(StoreError):
            writes = [w for r in self.logs.values() if (w := r.take_write()) is not None]
            if writes:
                await self.store.write(lambda s: s.logs.write_logs(writes))
