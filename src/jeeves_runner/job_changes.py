"""Adding, editing and deleting jobs inside a running runner: the store write (in the
gateway's writer thread), then the schedule brought in line at once, so the change is in force
before the API answers. Changes made by other processes are found by `schedule_watch`."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from jeeves_runner.clock import Clock
from jeeves_runner.control import JobInFlightError
from jeeves_runner.execution.dispatch import RunDispatcher
from jeeves_runner.models import Job, format_instant
from jeeves_runner.scheduling.loop import Scheduler
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store

log = structlog.get_logger("jeeves_runner.job_changes")

JOB_DELETED = "The job was deleted during this run"
# A forced delete waits this long for the job's stopped runs to be recorded.
FORCE_WAIT_S = 10.0


class JobChanges:
    def __init__(
        self,
        *,
        gateway: StoreGateway,
        scheduler: Scheduler,
        dispatcher: RunDispatcher,
        clock: Clock,
    ) -> None:
        self.gateway = gateway
        self.scheduler = scheduler
        self.dispatcher = dispatcher
        self.clock = clock

    async def add_job(self, job: Job) -> dict[str, Any]:
        at = format_instant(self.clock.now())

        def add(s: Store) -> dict[str, Any]:
            s.jobs.add_job(job, at)
            row = s.jobs.get_job_row(job.id)
            assert row is not None
            return row

        row = await self.gateway.write(add)
        await self._changed(job.id)
        return row

    async def update_job(self, job: Job) -> dict[str, Any] | None:
        at = format_instant(self.clock.now())

        def update(s: Store) -> dict[str, Any] | None:
            return s.jobs.get_job_row(job.id) if s.jobs.update_job(job, at) else None

        row = await self.gateway.write(update)
        if row is not None:
            await self._changed(job.id)
        return row

    async def delete_job(self, job_id: str, *, force: bool) -> bool:
        activity = self.dispatcher.activity.get(job_id)
        if activity is not None and activity.in_flight:
            if not force:
                raise JobInFlightError(job_id)
            await self._stop_runs(job_id)
        found = await self.gateway.write(lambda s: s.jobs.delete_job(job_id))
        if found:
            await self._changed(job_id)
        return found

    async def _stop_runs(self, job_id: str) -> None:
        """End the job's running children (TERM, then KILL after the grace) and wait, within
        FORCE_WAIT_S, for its runs to be recorded."""
        activity = self.dispatcher.activity[job_id]
        # Runs not started yet (waiting for a slot, queued behind the running one) never start.
        self.dispatcher.cancel_waiting(job_id)
        processes = [p for p in self.dispatcher.processes.values() if p.job.id == job_id]
        await asyncio.gather(
            *(p.stop(reason=JOB_DELETED) for p in processes), return_exceptions=True
        )
        try:
            await asyncio.wait_for(activity.idle.wait(), FORCE_WAIT_S)
        except TimeoutError:
            log.warning("deleting a job whose runs did not end", job_id=job_id)

    async def _changed(self, job_id: str) -> None:
        await self.scheduler.refresh_job(job_id)
        self.dispatcher.jobs_changed()
