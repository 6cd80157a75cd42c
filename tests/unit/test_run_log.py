"""RunLog: lines per stream with their read time, cut marks, the head/tail cap and its
marker, live readers; RunLogWriter: one commit per tick for every run, over a real store."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from jeeves_runner.clock import FakeClock
from jeeves_runner.execution.run_log import RunLog, RunLogWriter, dropped_line
from jeeves_runner.models import Job, LogChunk, LogStream, RunStatus, RunTrigger
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store

T = TypeVar("T")

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
OUT, ERR, RUNNER = LogStream.STDOUT, LogStream.STDERR, LogStream.RUNNER


def new_log(**kwargs: int) -> tuple[RunLog, FakeClock]:
    clock = FakeClock(START)
    return RunLog(1, clock, lambda _: None, **kwargs), clock


def lines(run_log: RunLog) -> list[tuple[str, str, str]]:
    write = run_log.take_write()
    assert write is not None
    return [
        (c.stream.value, c.at[11:23], line.decode())
        for c in sorted(write.chunks, key=lambda c: c.seq)
        for line in c.lines()
    ]


def test_lines_are_split_per_stream_across_reads_with_the_time_they_were_read() -> None:
    run_log, clock = new_log()
    run_log.feed(OUT, b"one\ntw")
    run_log.feed(ERR, b"oops")
    clock.advance(0.5)
    run_log.feed(OUT, b"o\nthree\n")
    run_log.feed(ERR, b"!\n")
    run_log.feed(OUT, b"no newline at the end")
    run_log.finish()
    run_log.feed(OUT, b"after the end\n")  # ignored: the child is gone
    assert lines(run_log) == [
        ("stdout", "12:00:00.000", "one"),
        ("stdout", "12:00:00.500", "two"),
        ("stdout", "12:00:00.500", "three"),
        ("stderr", "12:00:00.500", "oops!"),
        ("stdout", "12:00:00.500", "no newline at the end"),
    ]


def test_long_lines_are_cut_and_marked_however_they_arrive() -> None:
    run_log, _ = new_log(max_line_bytes=10)
    run_log.feed(OUT, b"short\n" + b"a" * 25 + b"\nok\n")
    run_log.feed(OUT, b"b" * 7)
    run_log.feed(OUT, b"b" * 7)
    run_log.feed(OUT, b"b" * 7 + b"\nc" + b"c" * 20)
    run_log.finish()
    assert [text for _, _, text in lines(run_log)] == [
        "short",
        "a" * 10 + "…[cut]",
        "ok",
        "b" * 10 + "…[cut]",
        "c" * 10 + "…[cut]",
    ]


@pytest.mark.parametrize("seed", range(30))
def test_big_reads_keep_every_line_in_order_and_cut_only_the_long_ones(seed: int) -> None:
    # Reads as large as the pipe readers make them, lines just under, at and past the cap,
    # and lines begun in one read and ended in another: the log holds every line once.
    rng = random.Random(seed)
    cap = rng.choice([64, 1000])
    lengths = [
        rng.choice([rng.randint(0, 80), cap - 1, cap, cap + 1, rng.randint(0, 4 * cap)])
        for _ in range(rng.randint(1, 3000))
    ]
    text = [(b"%d:" % i).ljust(n, b"x") for i, n in enumerate(lengths)]
    data = b"\n".join(text) + (b"\n" if rng.random() < 0.5 else b"")
    run_log, clock = new_log(max_line_bytes=cap, max_bytes=1 << 30)
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 7, 500, 60_000, 1 << 20])
        run_log.feed(OUT, data[pos : pos + size], clock.now())
        pos += size
    run_log.finish()
    expected = [
        (line if len(line) <= cap else line[:cap] + "…[cut]".encode()).decode() for line in text
    ]
    assert [line for _, _, line in lines(run_log)] == expected


def test_a_line_one_byte_past_the_cap_is_cut_wherever_it_sits_in_a_read() -> None:
    cap = 10
    for before in (b"", b"ok\n", b"x" * cap + b"\n"):
        for after in (b"", b"ok\n"):
            run_log, _ = new_log(max_line_bytes=cap)
            run_log.feed(OUT, before + b"a" * (cap + 1) + b"\n" + after)
            kept = [line for _, _, line in lines(run_log)]
            assert "a" * cap + "…[cut]" in kept, (before, after)


def test_lines_carry_the_instant_their_read_was_made_not_when_they_were_handled() -> None:
    run_log, clock = new_log()
    read_at = clock.now()
    clock.advance(0.25)
    run_log.feed(OUT, b"read a moment ago\n", read_at)
    run_log.feed(OUT, b"read now\n")
    assert lines(run_log) == [
        ("stdout", "12:00:00.000", "read a moment ago"),
        ("stdout", "12:00:00.250", "read now"),
    ]


def test_past_the_cap_the_first_and_last_halves_stay_with_a_line_between() -> None:
    run_log, _ = new_log(max_bytes=100)
    for n in range(100):
        run_log.feed(OUT, b"%09d\n" % n)  # 10 bytes a line
    texts = [text for _, _, text in lines(run_log)]
    assert texts[:5] == [f"{n:09d}" for n in range(5)]
    assert texts[5] == dropped_line(900, 90, 100).decode().rstrip("\n")
    assert texts[6:] == [f"{n:09d}" for n in range(95, 100)]
    assert (run_log.dropped_bytes, run_log.dropped_lines) == (900, 90)


def test_the_tail_drops_what_was_already_written_through_a_range() -> None:
    run_log, _ = new_log(max_bytes=100)
    for n in range(8):
        run_log.feed(OUT, b"%09d\n" % n)
    first = run_log.take_write()
    assert first is not None and first.drop is None
    run_log.settle()
    for n in range(8, 12):
        run_log.feed(OUT, b"%09d\n" % n)
    second = run_log.take_write()
    assert second is not None
    # Head: lines 0-4 as seqs 0-4; seq 5 is the marker's; lines 5-7 went out as seqs 6-8,
    # and lines 5-6 are dropped now.
    assert second.drop == (6, 8)
    assert [c.seq for c in second.chunks] == [5, 9, 10, 11, 12]
    assert second.chunks[0].data == dropped_line(20, 2, 100)


def test_a_failed_write_is_taken_again_by_the_next() -> None:
    run_log, _ = new_log()
    run_log.feed(OUT, b"a\n")
    failed = run_log.take_write()
    assert failed is not None
    run_log.feed(OUT, b"b\n")
    run_log.restore(failed)
    again = run_log.take_write()
    assert again is not None
    assert [c.data for c in again.chunks] == [b"a\n", b"b\n"]


def test_a_reader_gets_what_is_not_stored_yet_then_each_new_chunk() -> None:
    asyncio.run(a_reader_gets_what_is_not_stored_yet())


async def a_reader_gets_what_is_not_stored_yet() -> None:
    run_log, _ = new_log()
    run_log.feed(OUT, b"stored\n")
    assert run_log.take_write() is not None
    run_log.settle()
    run_log.feed(OUT, b"in flight\n")
    assert run_log.take_write() is not None  # not settled: the store may not have it yet
    run_log.feed(ERR, b"pending\n")
    reader = run_log.subscribe()
    assert reader.backlog_until == 1  # seq 0 is in the store; read it from there
    run_log.feed(OUT, b"live\n")
    got = await reader.next_chunks()
    assert got is not None and [c.data for c in got] == [b"in flight\n", b"pending\n", b"live\n"]
    run_log.end_subscribers()
    assert await reader.next_chunks() is None
    reader.close()  # after the end: harmless


def test_a_reader_that_falls_behind_is_told_how_many_lines_it_missed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("jeeves_runner.execution.run_log.SUBSCRIBER_MAX_BYTES", 10)
    asyncio.run(a_reader_falls_behind())


async def a_reader_falls_behind() -> None:
    run_log, _ = new_log()
    reader = run_log.subscribe()
    run_log.feed(OUT, b"12345678\n")
    run_log.feed(OUT, b"lost 1\nlost 2\n")
    got = await reader.next_chunks()
    assert got is not None and [c.data for c in got] == [b"12345678\n"]
    run_log.feed(OUT, b"back\n")
    got = await reader.next_chunks()
    assert got is not None
    assert [(c.stream, c.data) for c in got] == [
        (RUNNER, "…[2 lines not sent: this reader fell behind]\n".encode()),
        (OUT, b"back\n"),
    ]
    reader.close()
    run_log.feed(OUT, b"nobody reads this\n")


class CountingGateway(StoreGateway):
    def __init__(self, store: SqliteStore) -> None:
        super().__init__(store)
        self.writes = 0

    async def write(self, fn: Callable[[Store], T]) -> T:
        self.writes += 1
        return await super().write(fn)


def test_one_commit_per_tick_for_every_run(tmp_path: Path) -> None:
    asyncio.run(one_commit_per_tick(tmp_path))


async def one_commit_per_tick(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "r.sqlite")
    gateway = CountingGateway(store)
    try:
        clock = FakeClock(START)
        store.jobs.add_job(Job(id="j", name="j", schedule="* * * * *", script="/x"), "t")
        run_ids = [
            store.runs.create_run("j", RunTrigger.MANUAL, RunStatus.RUNNING, "t") for _ in range(5)
        ]
        writer = RunLogWriter(gateway, clock, interval_s=0.05)
        logs = [writer.open(run_id) for run_id in run_ids]
        for _ in range(20):
            for run_log in logs:
                run_log.feed(OUT, b"tick\n")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while any(store.logs.read_log(r) == [] for r in run_ids):
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        assert gateway.writes == 1
        assert [len(store.logs.read_log(r)) for r in run_ids] == [20] * 5
        last = await writer.close(run_ids[0])
        assert last is None  # everything was written already
        logs[1].feed(OUT, b"unfinished")
        rest = await writer.close(run_ids[1])
        assert rest is not None
        assert rest.chunks == (LogChunk(20, OUT, rest.chunks[0].at, b"unfinished\n"),)
        await writer.stop()
    finally:
        gateway.close()


def test_past_the_head_a_write_takes_the_newest_of_the_tail_and_holds_the_rest_back() -> None:
    # Head 50 bytes (5 lines), tail up to 50 bytes; each line is a chunk of 10 bytes.
    run_log, _ = new_log(max_bytes=100)
    for n in range(9):
        run_log.feed(OUT, b"%09d\n" % n)
    first = run_log.take_write(tail_budget=20)
    assert first is not None
    run_log.settle()
    # Lines 5-8 are the tail (seqs 6-9): only the newest 20 bytes go, the rest waits, and
    # the marker counts what waits as dropped for the time being.
    assert sorted(c.seq for c in first.chunks) == [0, 1, 2, 3, 4, 5, 8, 9]
    assert first.chunks[0] == LogChunk(5, RUNNER, first.chunks[0].at, dropped_line(20, 2, 100))
    assert first.drop == (6, 8)
    for n in range(9, 11):
        run_log.feed(OUT, b"%09d\n" % n)
    # New lines within the budget: they go, the held ones stay where they are.
    second = run_log.take_write(tail_budget=20)
    assert second is not None
    run_log.settle()
    assert [c.seq for c in second.chunks if c.seq != 5] == [10, 11]
    # Nothing new: what was held back goes, and the marker says what is really dropped.
    third = run_log.take_write(tail_budget=20)
    assert third is not None
    run_log.settle()
    assert third.chunks[0].data == dropped_line(10, 1, 100)  # line 5 left the tail
    assert [c.seq for c in third.chunks[1:]] == [7]  # 8 to 11 are stored already
    assert run_log.take_write(tail_budget=20) is None


def test_held_tail_chunks_go_with_the_last_write_and_the_store_has_every_kept_line(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "r.sqlite")
    try:
        store.jobs.add_job(Job(id="j", name="j", schedule="* * * * *", script="/x"), "t")
        run_id = store.runs.create_run("j", RunTrigger.MANUAL, RunStatus.RUNNING, "t")
        clock = FakeClock(START)
        run_log = RunLog(run_id, clock, lambda _: None, max_bytes=1000)
        rng = random.Random(7)
        sent = []
        for n in range(400):
            line = b"%05d " % n + b"y" * rng.randint(0, 30) + b"\n"
            sent.append(line)
            run_log.feed(OUT, line)
            if rng.random() < 0.2:  # a tick now and then, with a small budget
                write = run_log.take_write(tail_budget=60)
                if write is not None:
                    store.logs.write_logs([write])
                    run_log.settle()
                # What the store holds meanwhile: the head, the marker, then lines in order
                # that end with the newest line written.
                stored = [line for c in store.logs.read_log(run_id) for line in c.lines()]
                numbers = [int(line[:5]) for line in stored if line[:1].isdigit()]
                assert numbers == sorted(numbers)
        run_log.finish()
        last = run_log.take_write(with_tails=False)
        assert last is not None
        store.logs.write_logs([last])
        chunks = store.logs.read_log(run_id)
        kept = b"".join(c.data for c in chunks if c.stream is OUT)
        texts = [line for c in chunks for line in c.lines()]
        marker = next(t for t in texts if t.startswith("…[".encode()))
        dropped = len(sent) - kept.count(b"\n")
        dropped_bytes = sum(map(len, sent)) - len(kept)
        assert marker == dropped_line(dropped_bytes, dropped, 1000).rstrip(b"\n")
        # The head and the tail, each whole, in order.
        assert kept.startswith(b"".join(sent[:5]))
        assert b"".join(sent).endswith(kept[kept.index(b"\n", 500) + 1 :])
    finally:
        store.close()


def test_a_reader_joining_while_tail_chunks_are_held_back_gets_them_and_the_stored_newest() -> None:
    asyncio.run(a_reader_joins_while_chunks_are_held())


async def a_reader_joins_while_chunks_are_held() -> None:
    run_log, _ = new_log(max_bytes=100)
    for n in range(9):
        run_log.feed(OUT, b"%09d\n" % n)
    assert run_log.take_write(tail_budget=20) is not None
    run_log.settle()  # seqs 8-9 stored; 6-7 held back, no longer in the store
    reader = run_log.subscribe()
    assert reader.backlog_until == 6
    got = reader.take_ready()
    assert [c.seq for c in got] == [6, 7, 8, 9]
    run_log.end_subscribers()


def test_the_writer_writes_a_tick_of_the_tail_within_its_budget_and_the_rest_at_the_end(
    tmp_path: Path,
) -> None:
    asyncio.run(writer_budget(tmp_path))


async def writer_budget(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "r.sqlite")
    gateway = StoreGateway(store)
    try:
        store.jobs.add_job(Job(id="j", name="j", schedule="* * * * *", script="/x"), "t")
        run_id = store.runs.create_run("j", RunTrigger.MANUAL, RunStatus.RUNNING, "t")
        writer = RunLogWriter(
            gateway, FakeClock(START), max_bytes=2000, interval_s=0.2, tail_tick_bytes=100
        )
        run_log = writer.open(run_id)
        for n in range(300):
            run_log.feed(OUT, b"%09d\n" % n)  # 3,000 bytes: head 1,000, tail 1,000
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not (stored := store.logs.read_log(run_id)):
            assert loop.time() < deadline
            await asyncio.sleep(0.005)
        # The first tick: the head, the marker, and only the newest 100 bytes of the tail;
        # the marker counts the 90 lines held back as dropped for now.
        texts = [line for c in stored for line in c.lines()]
        assert texts[100] == dropped_line(1900, 190, 2000).rstrip(b"\n")
        assert texts[101:] == [b"%09d" % n for n in range(290, 300)]
        # The next tick finds nothing new: the held lines go, and the marker is exact.
        while len(store.logs.read_log(run_id)) < 100 + 1 + 100:
            assert loop.time() < deadline
            await asyncio.sleep(0.005)
        rest = await writer.close(run_id)
        if rest is not None:
            store.logs.write_logs([rest])
        texts = [line for c in store.logs.read_log(run_id) for line in c.lines()]
        assert texts[:100] == [b"%09d" % n for n in range(100)]
        assert texts[100] == dropped_line(1000, 100, 2000).rstrip(b"\n")
        assert texts[101:] == [b"%09d" % n for n in range(200, 300)]
        await writer.stop()
    finally:
        gateway.close()
        store.close()
