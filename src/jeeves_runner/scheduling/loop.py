"""The scheduler loop: sleep until the next fire, fire, reconcile. Nothing more.

Timing: asyncio timers fire a few ms late and never early, so the loop wakes EARLY_S before
a fire, prepares the run rows, and then finishes with one short precise wait. Sleeps are
capped at MAX_SLEEP_S and measured against the wall clock each time, so a wall clock that is
stepped (NTP, an operator) is noticed within a second: stepped forward, each job fires once
for the missed time (it is rescheduled from *now*); stepped back, jobs keep their next fire
and nothing already done runs again.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, tzinfo

import structlog

from jeeves_runner.clock import Clock
from jeeves_runner.execution.dispatch import RunDispatcher
from jeeves_runner.scheduling.fire_schedule import (
    FailedRegistration,
    FireSchedule,
    utc_from_timestamp,
)
from jeeves_runner.store import ScheduleEntry, SqliteStore

log = structlog.get_logger("jeeves_runner.scheduling.loop")

EARLY_S = 0.08
MAX_SLEEP_S = 1.0
# The final wait: a timer to TIMER_MARGIN_S before the instant (timers fire a few ms late
# at worst, never early), then yielding to the loop until the instant.
TIMER_MARGIN_S = 0.0015


class Scheduler:
    def __init__(
        self,
        *,
        store: SqliteStore,
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
        self._wake = asyncio.Event()
        self._stopping = False
        self._fingerprint: tuple[int, str] | None = None
        self._refreshes = 0
        self._task: asyncio.Task[None] | None = None
        self._reconcile_task: asyncio.Task[None] | None = None

    @property
    def failed_registrations(self) -> dict[str, FailedRegistration]:
        return self.fires.failed

    def reconcile(self) -> None:
        """Re-read the enabled jobs' schedules and bring the heap in line (at start, and at
        once after an enable/disable through the API)."""
        fingerprint = self.store.jobs.schedule_fingerprint()
        self._apply(fingerprint, self.store.jobs.enabled_schedules())

    def refresh_job(self, job_id: str) -> None:
        """At once after an enable/disable: just this job. The periodic reconcile still
        notices the change of fingerprint and re-checks the whole set later."""
        job = self.store.jobs.get_job(job_id)
        entry = (
            ScheduleEntry(job.id, job.schedule, job.updated_at or "", job.timezone)
            if job is not None and job.enabled
            else None
        )
        self.fires.update_one(job_id, entry, self.clock.now())
        self._refreshes += 1
        self._wake.set()

    async def reconcile_if_changed(self) -> None:
        """The periodic check. The aggregate query and, when it moved, the full read run in
        a worker thread (sqlite3 releases the GIL while SQLite works), so 100,000 jobs do
        not stall the loop; only the diff against the heap runs on it."""
        refreshes = self._refreshes
        fingerprint = await asyncio.to_thread(self.store.jobs.schedule_fingerprint)
        if fingerprint == self._fingerprint:
            return
        entries = await asyncio.to_thread(self.store.jobs.enabled_schedules)
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
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())
        if self.reconcile_interval_s > 0:
            self._reconcile_task = asyncio.ensure_future(self._reconcile_loop())

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in (self._task, self._reconcile_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

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
        due_ts = self.fires.next_due()
        now_ts = self.clock.now().timestamp()
        if due_ts is None:
            await self._sleep(MAX_SLEEP_S)
            return
        delay = due_ts - now_ts
        if delay > EARLY_S:
            await self._sleep(min(delay - EARLY_S, MAX_SLEEP_S))
            return
        job_ids = self.fires.pop_due(due_ts)
        fire_at = utc_from_timestamp(due_ts)
        try:
            await self._fire(job_ids, fire_at, due_ts)
        finally:
            # Whatever happened to this fire (a locked database, a stop), the jobs go back on
            # the heap, or they would never fire again. From the later of the fire instant
            # and now: after a forward step of the wall clock, missed slots are not replayed
            # one by one.
            after = max(fire_at, self.clock.now() - timedelta(milliseconds=1))
            for job_id in job_ids:
                self.fires.reschedule(job_id, after)

    async def _fire(self, job_ids: list[str], fire_at: datetime, due_ts: float) -> None:
        prepared = self.dispatcher.prepare(job_ids, fire_at)
        try:
            await self._wait_until(due_ts)
            self.dispatcher.fire(prepared, fire_at)
        except BaseException:
            # Stopped (or failed) between preparing and firing: rows not yet taken over by a
            # run are dropped, so no `pending` row outlives a fire that did not happen.
            self.dispatcher.discard(prepared)
            raise

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(seconds, 0.0))

    async def _wait_until(self, due_ts: float) -> None:
        """Precise final wait: a timer to just before the instant, then yield until it."""
        loop = asyncio.get_running_loop()
        remaining = due_ts - self.clock.now().timestamp()
        if remaining > TIMER_MARGIN_S:
            fut: asyncio.Future[None] = loop.create_future()
            handle = loop.call_later(remaining - TIMER_MARGIN_S, fut.set_result, None)
            try:
                await fut
            finally:
                handle.cancel()
        while self.clock.now().timestamp() < due_ts:
            await asyncio.sleep(0)


def describe_zone(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or datetime.now(zone).tzname() or "local")
