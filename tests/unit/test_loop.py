"""The scheduler's step as a function of a fake clock: early wake, fires handed to tasks of
their own, clock steps forward and back, a database that holds a fire up. No real waiting:
the sleeps move the fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jeeves_runner.clock import FakeClock
from jeeves_runner.execution.dispatch import PreparedFire
from jeeves_runner.models import Job, ScheduleEntry
from jeeves_runner.scheduling.loop import EARLY_S, Scheduler

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


class RecordingDispatcher:
    """Stands in for the dispatcher: records what the loop asks; `hold` keeps a prepare
    waiting, as a locked database would."""

    def __init__(self) -> None:
        self.prepared: list[tuple[list[str], datetime]] = []
        self.fired: list[tuple[list[str], datetime, dict[str, str]]] = []
        self.late: list[tuple[str, datetime, int, str]] = []
        self.discarded: list[str] = []
        self.hold: asyncio.Event | None = None
        self.prepare_started: asyncio.Event = asyncio.Event()

    async def prepare(self, job_ids: list[str], fire_at: datetime) -> list[PreparedFire]:
        self.prepared.append((list(job_ids), fire_at))
        self.prepare_started.set()
        if self.hold is not None:
            await self.hold.wait()
        return [PreparedFire(Job(id=j, name=j, schedule="", script=""), None) for j in job_ids]

    async def fire(
        self,
        prepared: list[PreparedFire],
        fire_at: datetime,
        superseded: dict[str, str] | None = None,
    ) -> None:
        self.fired.append(([p.job.id for p in prepared], fire_at, dict(superseded or {})))

    async def discard(self, prepared: list[PreparedFire], *, retry: bool = True) -> None:
        self.discarded += [p.job.id for p in prepared]

    async def record_late(self, job_id: str, fire_at: datetime, count: int, reason: str) -> None:
        self.late.append((job_id, fire_at, count, reason))

    def jobs_changed(self) -> None:
        return None


class SteppedScheduler(Scheduler):
    """Sleeps and the final wait move the fake clock instead of waiting."""

    slept: list[float]

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        assert isinstance(self.clock, FakeClock)
        self.clock.advance(seconds)

    async def _wait_until(self, due_ts: float) -> None:
        assert isinstance(self.clock, FakeClock)
        remaining = due_ts - self.clock.now().timestamp()
        if remaining > 0:
            self.clock.advance(remaining)


def make(clock: FakeClock, *schedules: tuple[str, str]) -> tuple[SteppedScheduler, Any]:
    dispatcher = RecordingDispatcher()
    scheduler = SteppedScheduler(
        store=None,  # type: ignore[arg-type]  # the steps under test never read the store
        dispatcher=dispatcher,  # type: ignore[arg-type]
        clock=clock,
        zone=UTC,
        reconcile_interval_s=0,
    )
    scheduler.slept = []
    scheduler.fires.reconcile(
        [ScheduleEntry(job_id, schedule, "") for job_id, schedule in schedules], clock.now()
    )
    return scheduler, dispatcher


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_wakes_early_then_fires_on_the_instant() -> None:
    async def main() -> None:
        clock = FakeClock(T0 + timedelta(milliseconds=500))
        scheduler, dispatcher = make(clock, ("a", "* * * * * *"))
        await scheduler._step()
        assert scheduler.slept == [pytest.approx(0.5 - EARLY_S)]
        assert dispatcher.prepared == []
        await scheduler._step()  # now EARLY_S before the fire: prepare, wait, fire
        await settle()
        assert dispatcher.prepared == [(["a"], T0 + timedelta(seconds=1))]
        assert dispatcher.fired == [(["a"], T0 + timedelta(seconds=1), {})]
        assert clock.now() == T0 + timedelta(seconds=1)

    asyncio.run(main())


def test_the_next_fire_is_on_the_heap_before_this_one_is_done() -> None:
    async def main() -> None:
        clock = FakeClock(T0 + timedelta(milliseconds=990))
        scheduler, dispatcher = make(clock, ("a", "* * * * * *"), ("b", "*/2 * * * * *"))
        dispatcher.hold = asyncio.Event()  # the database holds the first fire up
        await scheduler._step()
        await settle()
        assert dispatcher.fired == []
        assert scheduler.fires.next_due() == (T0 + timedelta(seconds=2)).timestamp()
        clock.advance(1)
        await scheduler._step()  # the loop was not held: the next second is taken up too
        await settle()
        # ... by a fire of its own for `b`; `a`'s is folded into the one still waiting.
        assert dispatcher.prepared == [
            (["a"], T0 + timedelta(seconds=1)),
            (["b"], T0 + timedelta(seconds=2)),
        ]
        clock.advance(0.5)
        dispatcher.hold.set()
        await settle()
        # The first fire came after its successor was due: recorded as a skip with the
        # reason; the second (folded, still current) is prepared afresh and runs.
        by_instant = {(tuple(ids), at): sup for ids, at, sup in dispatcher.fired}
        first = by_instant[(("a",), T0 + timedelta(seconds=1))]
        assert "database could not be written" in first["a"]
        assert by_instant[(("b",), T0 + timedelta(seconds=2))] == {}
        assert by_instant[(("a",), T0 + timedelta(seconds=2))] == {}
        assert dispatcher.late == []  # nothing between the two

    asyncio.run(main())


def test_a_long_outage_holds_one_fire_per_job_and_counts_every_fire() -> None:
    async def main() -> None:
        clock = FakeClock(T0 + timedelta(milliseconds=990))
        scheduler, dispatcher = make(clock, ("a", "* * * * * *"))
        dispatcher.hold = asyncio.Event()  # the database refuses writes for 30 s
        for _ in range(30):
            await scheduler._step()
            await settle()
            clock.advance(1)
        assert dispatcher.prepared == [(["a"], T0 + timedelta(seconds=1))]
        assert len(scheduler._fire_tasks) == 1
        dispatcher.hold.set()  # at T0 + 30.99: back, before the fire at 31 s
        await settle()
        (first, *rest) = dispatcher.fired
        assert first[:2] == (["a"], T0 + timedelta(seconds=1)) and first[2]["a"]
        # Fires 2..29 s: skipped in one write, the last at 29 s; the one at 30 s runs late.
        ((job_id, last_at, count, reason),) = dispatcher.late
        assert (job_id, last_at, count) == ("a", T0 + timedelta(seconds=29), 28)
        assert "database could not be written" in reason
        assert rest == [(["a"], T0 + timedelta(seconds=30), {})]
        assert 1 + count + len(rest) == 30  # every fire accounted for

    asyncio.run(main())


def test_a_job_disabled_or_changed_in_the_prepare_window_does_not_fire() -> None:
    async def main() -> None:
        clock = FakeClock(T0 + timedelta(milliseconds=950))
        scheduler, dispatcher = make(
            clock, ("a", "* * * * * *"), ("b", "* * * * * *"), ("c", "* * * * * *")
        )
        dispatcher.hold = asyncio.Event()
        await scheduler._step()  # the fire at 1 s is taken up and its rows prepared...
        await dispatcher.prepare_started.wait()
        scheduler.fires.update_one("a", None, clock.now())  # ...when `a` is disabled,
        # `b` gets a new schedule, `c` only a new name (the same schedule entry).
        scheduler.fires.update_one("b", ScheduleEntry("b", "*/5 * * * * *", ""), clock.now())
        scheduler.fires.update_one("c", ScheduleEntry("c", "* * * * * *", ""), clock.now())
        dispatcher.hold.set()
        await settle()
        assert dispatcher.fired == [(["c"], T0 + timedelta(seconds=1), {})]
        assert sorted(dispatcher.discarded) == ["a", "b"]
        assert scheduler.fires.next_fires() == {
            "b": (T0 + timedelta(seconds=5)).timestamp(),
            "c": (T0 + timedelta(seconds=2)).timestamp(),
        }

    asyncio.run(main())


def test_wall_clock_stepped_forward_fires_once_then_keeps_the_new_time() -> None:
    async def main() -> None:
        clock = FakeClock(T0 + timedelta(milliseconds=999))
        scheduler, dispatcher = make(clock, ("a", "* * * * * *"))
        clock.step_wall(3600)  # an hour of missed seconds
        await scheduler._step()
        await settle()
        assert len(dispatcher.fired) == 1  # one catch-up run, not 3,600
        assert scheduler.fires.next_due() == (T0 + timedelta(seconds=3601)).timestamp()

    asyncio.run(main())


def test_wall_clock_stepped_back_recomputes_from_the_new_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def main() -> None:
        clock = FakeClock(T0 + timedelta(milliseconds=100))
        scheduler, _ = make(clock, ("a", "0 * * * * *"))  # every minute
        await scheduler._step()  # a first look at the clocks
        clock.step_wall(-600)  # ten minutes back
        await scheduler._step()
        # Not silent for ten minutes: the next whole minute of the new wall time.
        assert scheduler.fires.next_due() == (T0 - timedelta(minutes=9)).timestamp()

    asyncio.run(main())
    assert "wall clock stepped back" in capsys.readouterr().out


def test_a_small_backward_jitter_is_not_a_step() -> None:
    async def main() -> None:
        clock = FakeClock(T0 + timedelta(milliseconds=100))
        scheduler, _ = make(clock, ("a", "0 * * * * *"))
        await scheduler._step()
        clock.step_wall(-0.5)
        await scheduler._step()
        assert scheduler.fires.next_due() == (T0 + timedelta(minutes=1)).timestamp()

    asyncio.run(main())


def test_fires_that_fell_before_the_start_are_left_out_not_fired_late() -> None:
    async def main() -> None:
        clock = FakeClock(T0 + timedelta(milliseconds=500))
        scheduler, _ = make(clock, ("a", "* * * * * *"), ("m", "0 * * * * *"))
        clock.advance(2.7)  # the API took this long to start after the plan was made
        scheduler.start()
        try:
            assert scheduler.fires.next_fires() == {
                "a": (T0 + timedelta(seconds=4)).timestamp(),
                "m": (T0 + timedelta(minutes=1)).timestamp(),
            }
        finally:
            await scheduler.stop()

    asyncio.run(main())
