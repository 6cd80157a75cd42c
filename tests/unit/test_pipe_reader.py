"""PipeReader over real pipes: everything in order then end of file, the read instant, the
nap after a small read, a stop while another process holds the pipe, and bounded memory
when the loop does not keep up."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import datetime

import pytest

from jeeves_runner.clock import SystemClock
from jeeves_runner.execution.pipe_reader import (
    NAP_MAX_S,
    NAP_MIN_S,
    QUEUE_MAX_BYTES,
    READ_BYTES,
    PipeReader,
    pace,
)


class Collected:
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.instants: list[datetime] = []
        self.eof = asyncio.Event()

    def on_data(self, data: bytes, read_at: datetime) -> None:
        self.data.append(data)
        self.instants.append(read_at)

    def on_eof(self) -> None:
        self.eof.set()


def start_reader(read_end: int, collected: Collected) -> PipeReader:
    reader = PipeReader(
        read_end,
        asyncio.get_running_loop(),
        SystemClock(),
        collected.on_data,
        collected.on_eof,
    )
    reader.start()
    return reader


@pytest.mark.parametrize(
    ("cycle_bytes", "interval_s", "nap"),
    [
        (100, 10.0, NAP_MAX_S),  # a quiet child: the longest nap, then a blocking read
        (0, 0.0, NAP_MAX_S),
        (100_000, 0.001, 0.005),  # 100 MB/s: 5 ms to write 500 kB more
        (500_000, 0.001, 0.001),  # 500 MB/s: 1 ms
        (1_000_000, 0.002, 0.001),  # a full pipe after a 2 ms nap: the next nap is half
        (4_000_000, 0.001, 0.0),  # so fast that a nap is shorter than a timer is worth
    ],
)
def test_the_nap_lets_the_child_write_about_half_a_pipe_at_the_rate_of_the_last_cycle(
    cycle_bytes: int, interval_s: float, nap: float
) -> None:
    assert pace(cycle_bytes, interval_s, 500_000) == pytest.approx(nap)


def test_a_nap_is_never_shorter_than_a_timer_is_worth_nor_longer_than_the_bound() -> None:
    for cycle_bytes in (1, 10, 1000, 100_000, 499_999, 10_000_000):
        for interval_s in (1e-6, 1e-4, 1e-2, 1.0):
            nap = pace(cycle_bytes, interval_s, 500_000)
            assert nap == 0.0 or NAP_MIN_S <= nap <= NAP_MAX_S


def test_everything_written_arrives_in_order_then_the_end() -> None:
    async def scenario() -> Collected:
        read_end, write_end = os.pipe()
        collected = Collected()
        reader = start_reader(read_end, collected)
        expected = b"".join(b"line %d\n" % i for i in range(200_000))

        def write() -> None:
            view = memoryview(expected)
            for start in range(0, len(view), 3000):
                os.write(write_end, view[start : start + 3000])
            os.close(write_end)

        writer = threading.Thread(target=write)
        writer.start()
        await asyncio.wait_for(collected.eof.wait(), 30)
        writer.join()
        reader.join(5)
        assert b"".join(collected.data) == expected
        assert not reader.fd_open
        return collected

    collected = asyncio.run(scenario())
    # Each piece carries the instant it was read, in order; reads take many writes at once.
    assert collected.instants == sorted(collected.instants)
    writes = -(-len(b"".join(collected.data)) // 3000)
    assert len(collected.data) < writes / 2


def test_a_line_arrives_at_once_and_the_next_within_the_nap() -> None:
    async def scenario() -> tuple[float, float]:
        read_end, write_end = os.pipe()
        collected = Collected()
        reader = start_reader(read_end, collected)
        waits = []
        for text in (b"first\n", b"second\n"):
            got = len(collected.data)
            sent = time.monotonic()
            os.write(write_end, text)
            deadline = sent + 5
            while len(collected.data) == got and time.monotonic() < deadline:
                await asyncio.sleep(0.0005)
            waits.append(time.monotonic() - sent)
        os.close(write_end)
        await asyncio.wait_for(collected.eof.wait(), 5)
        reader.join(5)
        assert collected.data == [b"first\n", b"second\n"]
        return waits[0], waits[1]

    first, second = asyncio.run(scenario())
    # Generous bounds for a loaded machine; what matters is no wait for more output.
    assert first < 1.0
    assert second < 1.0


def test_stop_ends_a_reader_whose_pipe_another_process_holds_and_closes_its_fd() -> None:
    async def scenario() -> None:
        read_end, write_end = os.pipe()  # the test keeps write_end: the background holder
        collected = Collected()
        reader = start_reader(read_end, collected)
        os.write(write_end, b"before\n")
        deadline = time.monotonic() + 5
        while not collected.data and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        reader.stop()
        await asyncio.wait_for(collected.eof.wait(), 5)
        reader.join(5)
        assert not reader.fd_open
        # The holder's next write finds no reader: the runner's end is closed.
        with pytest.raises(BrokenPipeError):
            os.write(write_end, b"after\n")
        os.close(write_end)
        assert collected.data == [b"before\n"]
        reader.stop()  # a second stop does nothing

    asyncio.run(scenario())


def test_a_loop_that_does_not_keep_up_holds_the_child_back_instead_of_growing() -> None:
    async def scenario() -> None:
        read_end, write_end = os.pipe()
        collected = Collected()
        reader = start_reader(read_end, collected)
        os.set_blocking(write_end, False)
        block = b"x" * 65536 + b"\n"
        written = 0
        # The loop does not run while this writes (no await): the reader takes what it may
        # hand over, then stops reading, and the pipe fills.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                written += os.write(write_end, block)
            except BlockingIOError:
                if reader.queued_bytes >= QUEUE_MAX_BYTES:
                    break
                time.sleep(0.001)  # the reader thread has not read yet
        assert reader.queued_bytes >= QUEUE_MAX_BYTES
        assert written <= QUEUE_MAX_BYTES + READ_BYTES + (1 << 20) + len(block)
        os.set_blocking(write_end, True)
        os.close(write_end)
        await asyncio.wait_for(collected.eof.wait(), 10)
        reader.join(5)
        assert sum(map(len, collected.data)) == written

    asyncio.run(scenario())
