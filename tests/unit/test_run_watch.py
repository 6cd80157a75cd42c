"""RunWatch: late starts (a fake clock) and overdue timers (the real loop, short limits)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from jeeves_runner.clock import FakeClock, SystemClock
from jeeves_runner.models import Job, format_instant
from jeeves_runner.notify.run_watch import RunWatch

DUE = datetime(2026, 3, 2, 2, 26, tzinfo=UTC)


class Sink:
    def __init__(self) -> None:
        self.late: list[tuple[str, int, str, str]] = []
        self.overdue: list[tuple[str, int, str, int]] = []
        self.overdue_seen = asyncio.Event()

    def run_late(self, job: Job, run_id: int, scheduled_for: str, started_at: str) -> None:
        self.late.append((job.id, run_id, scheduled_for, started_at))

    def run_overdue(self, job: Job, run_id: int, started_at: str, elapsed_ms: int) -> None:
        self.overdue.append((job.id, run_id, started_at, elapsed_ms))
        self.overdue_seen.set()


def job(**fields: Any) -> Job:
    return dataclasses.replace(Job(id="j", name="J", schedule="* * * * *", script="/x"), **fields)


def start_after(watch: RunWatch, clock: FakeClock, a_job: Job, run_id: int, late_s: float) -> None:
    """A fire due now that starts `late_s` later."""
    watch.fire_accepted(a_job, run_id, clock.now())
    clock.advance(late_s)
    watch.run_started(a_job, run_id)
    watch.run_ended(run_id)


def in_loop(work: Any) -> Any:
    async def main() -> Any:
        return work()

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("late_after_ms", "late_s", "announced"),
    [(60_000, 60.0, False), (60_000, 60.001, True), (60_000, 0, False), (1_000, 5, True)],
)
def test_a_start_later_than_late_after_ms_is_announced(
    late_after_ms: int, late_s: float, announced: bool
) -> None:
    clock, sink = FakeClock(DUE), Sink()
    watch = RunWatch(clock, lambda: sink)
    in_loop(lambda: start_after(watch, clock, job(late_after_ms=late_after_ms), 7, late_s))
    expected = [("j", 7, "2026-03-02T02:26:00.000Z", format_instant(clock.now()))]
    assert sink.late == (expected if announced else [])


@pytest.mark.parametrize(
    ("notify", "repeat", "pattern", "announced"),
    [
        # each entry: seconds late; a late start is > 60 s
        ("change", 10, [90, 90, 90], [True, False, False]),
        ("change", 2, [90, 90, 90, 90], [True, True, False, True]),
        ("change", 10, [90, 1, 90], [True, False, True]),  # an on-time start ends the streak
        ("always", 10, [90, 90, 1, 90], [True, True, False, True]),
    ],
)
def test_under_change_late_starts_in_a_row_are_announced_like_failures(
    notify: str, repeat: int, pattern: list[int], announced: list[bool]
) -> None:
    clock, sink = FakeClock(DUE), Sink()
    watch = RunWatch(clock, lambda: sink)
    a_job = job(notify=notify, notify_repeat=repeat)

    def work() -> None:
        for run_id, late_s in enumerate(pattern, start=1):
            start_after(watch, clock, a_job, run_id, late_s)

    in_loop(work)
    assert [run_id for _, run_id, _, _ in sink.late] == [
        run_id for run_id, yes in enumerate(announced, start=1) if yes
    ]


def test_a_run_with_no_fire_instant_is_never_late() -> None:
    clock, sink = FakeClock(DUE), Sink()
    watch = RunWatch(clock, lambda: sink)
    in_loop(lambda: watch.run_started(job(), 3))  # a manual run
    assert sink.late == []


def test_a_run_past_max_duration_is_announced_once_while_it_runs() -> None:
    sink = Sink()
    watch = RunWatch(SystemClock(), lambda: sink)

    async def main() -> None:
        watch.run_started(job(max_duration_ms=20, timeout_ms=60_000), 5)
        assert watch.timers == 1
        await asyncio.wait_for(sink.overdue_seen.wait(), 5)
        assert watch.timers == 0
        watch.run_ended(5)

    asyncio.run(main())
    ((job_id, run_id, _, elapsed_ms),) = sink.overdue
    assert (job_id, run_id) == ("j", 5)
    assert elapsed_ms >= 20


def test_a_run_that_ends_in_time_cancels_its_timer() -> None:
    sink = Sink()
    watch = RunWatch(SystemClock(), lambda: sink)

    async def main() -> None:
        watch.run_started(job(max_duration_ms=30), 5)
        (timer,) = watch._timers.values()
        watch.run_ended(5)
        assert timer.cancelled()
        assert watch.timers == 0

    asyncio.run(main())
    assert sink.overdue == []


@pytest.mark.parametrize(("limit", "timeout"), [(None, None), (1000, 1000), (5000, 1000)])
def test_no_timer_without_a_limit_or_when_the_timeout_comes_first(
    limit: int | None, timeout: int | None
) -> None:
    watch = RunWatch(SystemClock(), Sink)

    async def main() -> None:
        watch.run_started(job(max_duration_ms=limit, timeout_ms=timeout), 5)
        assert watch.timers == 0

    asyncio.run(main())


def test_without_a_notifier_nothing_is_sent_and_nothing_breaks() -> None:
    clock = FakeClock(DUE)
    watch = RunWatch(clock, lambda: None)
    in_loop(lambda: start_after(watch, clock, job(), 1, 120))
