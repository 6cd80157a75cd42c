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
from jeeves_runner.models import Job, MissedFires, ScheduleEntry, format_instant
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
        self.missed: list[MissedFires] = []
        self.caught_up: list[tuple[str, tuple[datetime, ...]]] = []

    async def record_missed(self, gaps: list[tuple[Job, MissedFires]]) -> None:
        self.missed += [gap for _, gap in gaps]

    async def catch_up(self, plans: list[tuple[Job, tuple[datetime, ...]]]) -> None:
        self.caught_up += [(job.id, tuple(instants)) for job, instants in plans if instants]

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


class JobsOnly:
    """Stands in for the store gateway: reads see these jobs (the catch-up reads them)."""

    def __init__(self, jobs: dict[str, Job], marks: dict[str, str] | None = None) -> None:
        self.jobs = self
        self.runs = self
        self._jobs = jobs
        self._marks = marks or {}

    def get_job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def fire_marks(self) -> dict[str, str]:
        return dict(self._marks)

    async def read(self, call: Any) -> Any:
        return call(self)


def make(
    clock: FakeClock, *schedules: tuple[str, str], store: Any = None
) -> tuple[SteppedScheduler, Any]:
    dispatcher = RecordingDispatcher()
    scheduler = SteppedScheduler(
        store=store,  # the steps under test read no more than JobsOnly gives
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


def job(job_id: str, schedule: str, **policies: Any) -> Job:
    return Job(id=job_id, name=job_id, schedule=schedule, script="/x", **policies)


def test_a_forward_step_records_the_missed_seconds_and_fires_the_current_one() -> None:
    async def main() -> None:
        clock = FakeClock(T0 + timedelta(milliseconds=999))
        store = JobsOnly({"a": job("a", "* * * * * *")})
        scheduler, dispatcher = make(clock, ("a", "* * * * * *"), store=store)
        clock.step_wall(3600)
        await scheduler._step()
        await settle()
        assert [at for _, at, _ in dispatcher.fired] == [T0 + timedelta(seconds=3600)]
        (gap,) = dispatcher.missed
        assert (gap.count, gap.first, gap.last) == (
            3599,
            format_instant(T0 + timedelta(seconds=1)),
            format_instant(T0 + timedelta(seconds=3599)),
        )
        assert "stepped forward" in gap.reason
        assert dispatcher.caught_up == []  # `skip`: recorded, not run

    asyncio.run(main())


def test_a_resume_from_suspend_runs_what_the_jobs_catchup_asks() -> None:
    async def main() -> None:
        clock = FakeClock(T0 + timedelta(minutes=4, seconds=59, milliseconds=950))
        jobs = {
            "once": job("once", "*/5 * * * *", catchup="once"),
            "all": job("all", "*/5 * * * *", catchup="all", catchup_max=2),
            "skip": job("skip", "*/5 * * * *"),
        }
        schedules = [(j, "*/5 * * * *") for j in jobs]
        scheduler, dispatcher = make(clock, *schedules, store=JobsOnly(jobs))
        clock.advance(11 * 60)  # suspended across 12:05, 12:10 and 12:15
        await scheduler._step()
        await settle()
        assert dispatcher.fired == []  # 12:15 is 10 s past: not on time
        assert sorted((g.job_id, g.count) for g in dispatcher.missed) == [
            ("all", 3),
            ("once", 3),
            ("skip", 3),
        ]
        at = [T0 + timedelta(minutes=m) for m in (5, 10, 15)]
        assert sorted(dispatcher.caught_up) == [("all", (at[1], at[2])), ("once", (at[2],))]
        assert scheduler.fires.next_due() == (T0 + timedelta(minutes=20)).timestamp()

    asyncio.run(main())


def test_at_start_the_fires_since_each_jobs_mark_are_the_gap() -> None:
    async def main() -> None:
        clock = FakeClock(T0 + timedelta(minutes=3, seconds=30))
        marks = {"a": format_instant(T0), "new": format_instant(T0 + timedelta(minutes=3))}
        jobs = {"a": job("a", "* * * * *", catchup="once"), "new": job("new", "* * * * *")}
        scheduler, dispatcher = make(
            clock, ("a", "* * * * *"), ("new", "* * * * *"), store=JobsOnly(jobs, marks)
        )
        await scheduler.catch_up_at_start()
        await settle()
        (gap,) = dispatcher.missed  # "new" fired at its last instant: nothing missed
        assert (gap.job_id, gap.count) == ("a", 3)
        assert "not running" in gap.reason
        assert dispatcher.caught_up == [("a", (T0 + timedelta(minutes=3),))]

    asyncio.run(main())
