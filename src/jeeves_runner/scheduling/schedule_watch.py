"""Notices job changes made by other processes (`edit-job`, `remove-job`, `enable`, ...,
or a second API) within WATCH_INTERVAL_S, instead of at the next periodic reconcile.

Each look is the scheduler's own `reconcile_if_changed`: the cheap schedule fingerprint (one
aggregate query, off the loop), and the full read of the enabled schedules only when that
moved. The scheduler keeps the fingerprint itself, so a look that lost a race with an
in-process change (and left it unapplied) is simply repeated at the next look. Changes made
through this runner's own API are in force before the API answers and need no watching.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from jeeves_runner.scheduling.loop import Scheduler

log = structlog.get_logger("jeeves_runner.scheduling.schedule_watch")

WATCH_INTERVAL_S = 0.5


class ScheduleWatch:
    def __init__(self, scheduler: Scheduler, interval_s: float = WATCH_INTERVAL_S) -> None:
        self.scheduler = scheduler
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.scheduler.reconcile_if_changed()
            except Exception:
                # A busy database now is no reason to stop watching; the next look retries.
                log.exception("schedule watch failed")
