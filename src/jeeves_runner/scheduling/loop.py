"""The scheduler loop: sleep until the next fire, fire, reconcile. Nothing more.

Timing: asyncio timers fire a few ms late and never early, so the loop wakes EARLY_S before
a fire, hands the fire to a task of its own (which prepares the run rows, then finishes with
one short precise wait) and goes straight back to the heap. A fire never holds up the loop:
while the database is locked by another process its task waits for the rows, and the next
fires keep their times. A fire whose rows could only be written after the job's next fire was
due is recorded as skipped, with the reason.

Sleeps are capped at MAX_SLEEP_S and measured against the wall clock each time, so a wall
clock that is stepped (NTP, an operator) is noticed within a second. Stepped forward (or the
machine resumed from suspend), the loop finds a job whose next instant after the one it took
up is past too: a gap. Its instants are recorded as missed (one `missed` row per job and
gap) and the job's `catchup` decides what runs for them (`scheduling.catchup`); the latest
instant, when it is within ON_TIME_S of now, fires as usual. The job is rescheduled from
*now*, never replayed slot by slot. Stepped back, the step is logged and every job's next
fire is computed afresh from the new wall time (nothing already done runs again before its
time, and no job is silenced for the step's length).

At start, the same decisions cover the fires missed while the runner was stopped: each
job's last fired instant is stored with its fire, and the instants between it and now are
the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

import structlog

from jeeves_runner.clock import Clock
from jeeves_runner.execution.dispatch import PreparedFire, RunDispatcher
from jeeves_runner.models import Job, MissedFires, format_instant, parse_instant
from jeeves_runner.scheduling.catchup import missed_instants, plan_catchup, split_gap
from jeeves_runner.scheduling.fire_schedule import (
    FailedRegistration,
    FireSchedule,
    utc_from_timestamp,
)
from jeeves_runner.store import ScheduleEntry
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store

log = structlog.get_logger("jeeves_runner.scheduling.loop")

EARLY_S = 0.08
MAX_SLEEP_S = 1.0
# The final wait: a timer to TIMER_MARGIN_S before the instant (timers fire a few ms late
# at worst, never early), then yielding to the loop until the instant.
TIMER_MARGIN_S = 0.0015
# A wall clock that moved back by more than this against the monotonic clock was stepped.
BACKWARD_STEP_S = 1.0
# A fire taken up this late may have slept through a gap (suspend, a forward step); and
# the latest instant of a gap this close to now still fires as usual.
GAP_CHECK_S = MAX_SLEEP_S
ON_TIME_S = MAX_SLEEP_S
WHILE_STOPPED = "the runner was not running"
WHILE_AWAY = "the runner was suspended or the wall clock was stepped forward"
# Start-up catch-up yields to the loop after this many jobs, so /health answers meanwhile.
CATCHUP_BATCH = 50


class Scheduler:
    def __init__(
        self,
        *,
        store: StoreGateway,
        dispatcher: RunDispatcher,
        clock: Clock,
        zone: tzinfo,
        reconcile_interval_s: float,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock
        self.fires = FireSchedule(zone)
        self.reconcile_interval_s = reconcile_interval_s
        # Set while the loop sleeps; resolved early by _poke() (a job changed, a stop).
        self._waiter: asyncio.Future[None] | None = None
        self._stopping = False
        self._fingerprint: tuple[int, str] | None = None
        self._refreshes = 0
        self._task: asyncio.Task[None] | None = None
        self._reconcile_task: asyncio.Task[None] | None = None
        self._fire_tasks: set[asyncio.Task[None]] = set()
        # Jobs whose fire is waiting for its rows (prepare), with the later fires folded in.
        self._waiting: dict[str, _WaitingFire] = {}
        self._last_wall: float | None = None  # wall and monotonic time at the last step
        self._last_mono = 0.0
        self._catchup_tasks: set[asyncio.Task[None]] = set()

    @property
    def failed_registrations(self) -> dict[str, FailedRegistration]:
        return self.fires.failed

    async def reconcile(self) -> None:
        """Re-read the enabled jobs' schedules and bring the heap in line (at start)."""

        def read(s: Store) -> tuple[tuple[int, str], list[ScheduleEntry]]:
            return s.jobs.schedule_fingerprint(), s.jobs.enabled_schedules()

        fingerprint, entries = await self.store.read(read)
        self._apply(fingerprint, entries)

    async def refresh_job(self, job_id: str) -> None:
        """At once after an enable/disable: just this job. The periodic reconcile still
        notices the change of fingerprint and re-checks the whole set later."""
        job = await self.store.read(lambda s: s.jobs.get_job(job_id))
        entry = (
            ScheduleEntry(job.id, job.schedule, job.updated_at or "", job.timezone)
            if job is not None and job.enabled
            else None
        )
        self.fires.update_one(job_id, entry, self.clock.now())
        self._refreshes += 1
        self._poke()

    async def reconcile_if_changed(self) -> None:
        """The periodic check. The aggregate query and, when it moved, the full read run in
        a worker thread (sqlite3 releases the GIL while SQLite works), so 100,000 jobs do
        not stall the loop; only the diff against the heap runs on it."""
        refreshes = self._refreshes
        fingerprint = await self.store.read(lambda s: s.jobs.schedule_fingerprint())
        if fingerprint == self._fingerprint:
            return
        entries = await self.store.read(lambda s: s.jobs.enabled_schedules())
        if self._refreshes != refreshes:
            # An enable/disable landed while we read: these rows may predate it. Leave the
            # fingerprint as it was, so the next check reads again.
            return
        self._apply(fingerprint, entries)

    def _apply(self, fingerprint: tuple[int, str], entries: list[ScheduleEntry]) -> None:
        report = self.fires.reconcile(entries, self.clock.now())
        self._fingerprint = fingerprint
        if report.touched:
            self.dispatcher.jobs_changed()
            log.info(
                "schedule reconciled",
                added=len(report.added),
                changed=len(report.changed),
                removed=len(report.removed),
                failed=len(report.failed),
                scheduled=len(self.fires),
            )
            for job_id in report.failed:
                log.warning(
                    "job not scheduled", job_id=job_id, reason=self.fires.failed[job_id].reason
                )
        self._poke()

    def start(self) -> None:
        # The plan was made at reconcile(), before the API started: a fire that fell in
        # between is not a late fire of this scheduler (it would be fired seconds late and,
        # for a job due every second, push its successors out). It is left out, and said.
        moved = self.fires.move_past(self.clock.now())
        if moved:
            log.info("fires due before the scheduler started are not run", jobs=len(moved))
        self._task = asyncio.ensure_future(self._loop())
        if self.reconcile_interval_s > 0:
            self._reconcile_task = asyncio.ensure_future(self._reconcile_loop())

    async def stop(self) -> None:
        self._stopping = True
        self._poke()
        tasks = (self._task, self._reconcile_task, *self._fire_tasks, *self._catchup_tasks)
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def set_reconcile_interval(self, seconds: float) -> None:
        """A new reconcile interval (SIGHUP); 0 stops the periodic reconcile."""
        self.reconcile_interval_s = seconds
        if self._reconcile_task is not None:
            self._reconcile_task.cancel()
            self._reconcile_task = None
        if seconds > 0 and self._task is not None:
            self._reconcile_task = asyncio.ensure_future(self._reconcile_loop())

    async def _reconcile_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.reconcile_interval_s)
            try:
                await self.reconcile_if_changed()
            except Exception:
                log.exception("reconcile failed")

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup must not end scheduling; try again shortly.
                log.exception("scheduler step failed")
                await asyncio.sleep(1.0)

    async def _step(self) -> None:
        now = self.clock.now()
        self._notice_backward_step(now)
        due_ts = self.fires.next_due()
        now_ts = now.timestamp()
        if due_ts is None:
            await self._sleep(MAX_SLEEP_S)
            return
        delay = due_ts - now_ts
        if delay > EARLY_S:
            await self._sleep(min(delay - EARLY_S, MAX_SLEEP_S))
            return
        job_ids = self.fires.pop_due(due_ts)
        fire_at = utc_from_timestamp(due_ts)
        # How late the loop took this fire up (before its rows and its final wait): what a
        # locked database must never stretch.
        log.debug(
            "fire taken up", jobs=len(job_ids), lateness_ms=round((now_ts - due_ts) * 1000, 3)
        )
        # Back on the heap at once, whatever becomes of this fire. From the later of the
        # fire instant and now: after a forward step of the wall clock, missed slots are not
        # replayed one by one.
        after = max(fire_at, now - timedelta(milliseconds=1))
        # A fire taken up this late may stand for a gap; the common case costs no cron
        # evaluation.
        fires: dict[datetime, list[str]] = {fire_at: job_ids}
        gaps: list[tuple[str, datetime, datetime]] = []
        if now_ts - due_ts >= GAP_CHECK_S:
            fires, gaps = self._split_gaps(job_ids, fire_at, now)
        for job_id in job_ids:
            self.fires.reschedule(job_id, after)
        for instant, ids in fires.items():
            if ids:
                self._take_up(ids, instant.timestamp())
        if gaps:
            self._start_catch_up(gaps, now, WHILE_AWAY)

    def _take_up(self, job_ids: list[str], due_ts: float) -> None:
        # One fire per job waits for the database at a time: a fire of a job whose earlier
        # fire is still waiting for its rows is folded into that one (counted, never lost),
        # so a long outage holds one task per job, not one per fire.
        folded = [job_id for job_id in job_ids if job_id in self._waiting]
        if folded:
            for job_id in folded:
                self._waiting[job_id].fold(due_ts)
            self.fires.fired(folded, due_ts)
            job_ids = [job_id for job_id in job_ids if job_id not in self._waiting]
        if job_ids:
            self._start_fire(job_ids, due_ts, self.fires.version)

    def _start_fire(self, job_ids: list[str], due_ts: float, version: int) -> None:
        """`version`: the plan's version when the fire was taken up; a job changed after it
        (edited, disabled, deleted) does not fire."""
        for job_id in job_ids:
            self._waiting[job_id] = _WaitingFire()
        task = asyncio.ensure_future(self._fire(job_ids, due_ts, version))
        self._fire_tasks.add(task)
        task.add_done_callback(self._fire_done)

    def _split_gaps(
        self, job_ids: list[str], fire_at: datetime, now: datetime
    ) -> tuple[dict[datetime, list[str]], list[tuple[str, datetime, datetime]]]:
        """The jobs of a late fire: those for which it is an ordinary late fire, by the
        instant each fires at; and the gaps (job, after, until) of those that slept through
        more than one instant."""
        fires: dict[datetime, list[str]] = {}
        gaps: list[tuple[str, datetime, datetime]] = []
        for job_id in job_ids:
            instants = self.fires.instants(job_id)
            if instants is None:
                continue
            until, fire = split_gap(instants, fire_at, now, ON_TIME_S)
            if fire is not None:
                fires.setdefault(fire, []).append(job_id)
            if until is not None:
                # From just before the instant taken up: it is the gap's first.
                gaps.append((job_id, fire_at - timedelta(microseconds=1), until))
        return fires, gaps

    def _start_catch_up(
        self, gaps: list[tuple[str, datetime, datetime]], now: datetime, cause: str
    ) -> None:
        task = asyncio.ensure_future(self._catch_up(gaps, now, cause))
        self._catchup_tasks.add(task)
        task.add_done_callback(self._catch_up_done)

    def _catch_up_done(self, task: asyncio.Task[None]) -> None:
        self._catchup_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a catch-up failed", error=repr(task.exception()))

    async def catch_up_at_start(self) -> None:
        """The fires missed while the runner was stopped: from each scheduled job's last
        fired instant to now; the heap's first fires are after now. Call it just before
        start(). In the background: /health answers meanwhile."""
        marks = await self.store.read(lambda s: s.runs.fire_marks())
        now = self.clock.now()
        # The start took a while since the schedule was read (the API, a large database):
        # the first fires are counted from this same instant, so each instant is either
        # in the catch-up below or on the heap — never both, never a gap between.
        self.fires.recompute_all(now)
        gaps = [
            (job_id, parse_instant(mark), now)
            for job_id, mark in marks.items()
            if job_id in self.fires and parse_instant(mark) < now
        ]
        if gaps:
            self._start_catch_up(gaps, now, WHILE_STOPPED)

    async def _catch_up(
        self, gaps: list[tuple[str, datetime, datetime]], now: datetime, cause: str
    ) -> None:
        """Record each gap's missed instants and start what the job's `catchup` runs."""
        wanted = [job_id for job_id, _, _ in gaps]

        def read(s: Store) -> dict[str, Job]:
            found = (s.jobs.get_job(job_id) for job_id in wanted)
            return {job.id: job for job in found if job is not None and job.enabled}

        jobs = await self.store.read(read)
        missed: list[tuple[Job, MissedFires]] = []
        runs: list[tuple[Job, tuple[datetime, ...]]] = []
        for index, (job_id, after, until) in enumerate(gaps):
            if index and index % CATCHUP_BATCH == 0:
                await asyncio.sleep(0)  # thousands of jobs: let the loop serve meanwhile
            job = jobs.get(job_id)
            instants = self.fires.instants(job_id)
            if job is None or instants is None:
                continue
            keep = job.catchup_max if job.catchup == "all" else 1
            found = missed_instants(instants, after, until, keep)
            if found.count == 0 or found.first is None or found.last is None:
                continue
            plan = plan_catchup(job.catchup, job.catchup_max, job.catchup_window_ms, found, now)
            first, last = format_instant(found.first), format_instant(found.last)
            count = f"at least {found.count}" if found.capped else str(found.count)
            fires = "fire was" if found.count == 1 else "fires were"
            reason = f"{count} scheduled {fires} missed ({first} to {last}): {cause}"
            missed.append((job, MissedFires(job.id, found.count, first, last, reason)))
            runs.append((job, plan.run))
        await self.dispatcher.record_missed(missed)
        await self.dispatcher.catch_up(runs)

    def _fire_done(self, task: asyncio.Task[None]) -> None:
        self._fire_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a fire failed", error=repr(task.exception()))

    def _notice_backward_step(self, now: datetime) -> None:
        mono = self.clock.monotonic()
        wall = now.timestamp()
        last_wall, last_mono = self._last_wall, self._last_mono
        self._last_wall, self._last_mono = wall, mono
        if last_wall is None:
            return
        step = (wall - last_wall) - (mono - last_mono)
        if step < -BACKWARD_STEP_S:
            log.warning(
                "wall clock stepped back; next fires computed again from the new time",
                seconds=round(-step, 3),
                now=format_instant(now),
            )
            self.fires.recompute_all(now)

    async def _fire(self, job_ids: list[str], due_ts: float, version: int) -> None:
        fire_at = utc_from_timestamp(due_ts)
        prepared: list[PreparedFire] = []
        waiting = {job_id: self._waiting[job_id] for job_id in job_ids}
        try:
            try:
                prepared = await self.dispatcher.prepare(job_ids, fire_at)
            finally:
                for job_id, entry in waiting.items():
                    if self._waiting.get(job_id) is entry:
                        del self._waiting[job_id]
            await self._wait_until(due_ts)
            # Disabled, deleted or edited since the loop took the fire up (in the prepare
            # window, or while the database held the rows up): not this job's fire any more.
            withdrawn = [p for p in prepared if self.fires.changed_since(p.job.id, version)]
            kept = [p for p in prepared if not self.fires.changed_since(p.job.id, version)]
            superseded = self._superseded(job_ids, fire_at)
            for p in kept:
                if waiting[p.job.id].folded:
                    # A later fire of the job came due while this one waited: too late.
                    superseded.setdefault(p.job.id, self._late_reason())
            await self.dispatcher.fire(kept, fire_at, superseded)
            if withdrawn:
                log.info(
                    "fire withdrawn: the job changed before its fire instant",
                    jobs=[p.job.id for p in withdrawn],
                )
                await self.dispatcher.discard(withdrawn)
            for p in kept:
                await self._fire_folded(p.job.id, waiting[p.job.id], version)
        except BaseException:
            # Stopped (or failed) between preparing and firing: rows not yet taken over by a
            # run are dropped, so no `pending` row outlives a fire that did not happen.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.dispatcher.discard(prepared, retry=False))
            raise
        finally:
            self.fires.fired(job_ids, due_ts)

    async def _fire_folded(self, job_id: str, waiting: _WaitingFire, version: int) -> None:
        """The fires folded into one that waited for the database: all but the last came
        after their own successor was due (skipped, counted, with the reason); the last one
        is fired now like any late fire (it runs if the job's next fire is not yet due,
        else it is a skip too)."""
        if waiting.last_ts is None:
            return
        if waiting.before_last_ts is not None:
            await self.dispatcher.record_late(
                job_id,
                utc_from_timestamp(waiting.before_last_ts),
                waiting.folded - 1,
                self._late_reason(),
            )
        if not self._stopping:
            self._start_fire([job_id], waiting.last_ts, version)

    def _superseded(self, job_ids: list[str], fire_at: datetime) -> dict[str, str]:
        """Fires that came too late to run (the database held them up until the job's next
        fire was due, and that one runs instead): job id -> the reason for the skipped row."""
        now_ts = self.clock.now().timestamp()
        if now_ts - fire_at.timestamp() < MAX_SLEEP_S:
            return {}  # on time: the common case costs no cron evaluation
        late: dict[str, str] = {}
        for job_id in job_ids:
            next_ts = self.fires.fire_after(job_id, fire_at)
            if next_ts is not None and next_ts <= now_ts:
                late[job_id] = self._late_reason()
        return late

    def _late_reason(self) -> str:
        return (
            "The database could not be written until "
            f"{format_instant(self.clock.now())}, after the job's next fire was due"
        )

    async def _sleep(self, seconds: float) -> None:
        # A bare timer and future, not wait_for(): no task per sleep, so an idle runner's once
        # a second wake costs next to nothing.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(max(seconds, 0.0), _resolve, waiter)
        self._waiter = waiter
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiter = None

    def _poke(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    async def _wait_until(self, due_ts: float) -> None:
        await wait_until(self.clock, due_ts)


async def wait_until(clock: Clock, due_ts: float) -> None:
    """The precise final wait before a fire (the scheduler's and a cluster node's): a timer
    to just before the instant, then yield until it. Bounded by the monotonic clock: a wall
    clock stepped back meanwhile cannot stretch it (it ends at most `remaining` later,
    however the wall clock moves)."""
    loop = asyncio.get_running_loop()
    remaining = due_ts - clock.now().timestamp()
    if remaining <= 0:
        return
    deadline = clock.monotonic() + remaining
    if remaining > TIMER_MARGIN_S:
        fut: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(remaining - TIMER_MARGIN_S, fut.set_result, None)
        try:
            await fut
        finally:
            handle.cancel()
    while clock.monotonic() < deadline and clock.now().timestamp() < due_ts:
        await asyncio.sleep(0)


@dataclass(slots=True)
class _WaitingFire:
    """A job's fire waiting for the database, and the job's later fires folded into it."""

    folded: int = 0
    last_ts: float | None = None  # the latest folded fire
    before_last_ts: float | None = None  # the one before it

    def fold(self, due_ts: float) -> None:
        self.folded += 1
        self.before_last_ts, self.last_ts = self.last_ts, due_ts


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def describe_zone(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or datetime.now(zone).tzname() or "local")
