"""Notices job changes made by other processes (`edit-job`, `remove-job`, `enable`, ...,
or a second API) within WATCH_INTERVAL_S, instead of at the next periodic reconcile.

A look first asks the store's data version (a pragma, microseconds): while nothing at all was
committed, nothing is read. When it moved, the scheduler's own `reconcile_if_changed` runs:
the schedule fingerprint (one aggregate query, off the loop: 12 ms with 100,000 jobs, which
every 0.5 s would cost an idle runner 2 % of a core) and the full read of the enabled schedules
only when that moved. A look that lost a race with an in-process change (the scheduler then
leaves the fingerprint unapplied) is repeated at the latest FORCED_EVERY looks later. Changes
made through this runner's own API are in force before the API answers and need no watching.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

import structlog

from jeeves_runner.scheduling.loop import Scheduler
from jeeves_runner.store.gateway import StoreGateway

log = structlog.get_logger("jeeves_runner.scheduling.schedule_watch")

WATCH_INTERVAL_S = 0.5
FORCED_EVERY = 20  # looks: a fingerprint check at least every 10 s whatever the version says


class ScheduleWatch:
    def __init__(
        self,
        scheduler: Scheduler,
        gateway: StoreGateway,
        interval_s: float = WATCH_INTERVAL_S,
        files: Sequence[Path] = (),
    ) -> None:
        """`files`: where commits show on disk (an SQLite file and its `-wal`): while none of
        them changed size or time, a look asks nothing of the store, so an idle runner does
        not wake a thread twice a second."""
        self.scheduler = scheduler
        self.gateway = gateway
        self.interval_s = interval_s
        self.files = list(files)
        self._stamp: tuple[tuple[int, int], ...] | None = None
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.looks = 0
        self.checks = 0  # looks that went on to the fingerprint (tests see the gate work)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _files_stamp(self) -> tuple[tuple[int, int], ...]:
        # A stat of local files: microseconds, so done on the loop.
        stamps = []
        for path in self.files:
            try:
                info = path.stat()
            except OSError:
                stamps.append((-1, -1))
            else:
                stamps.append((info.st_mtime_ns, info.st_size))
        return tuple(stamps)

    async def look(self, forced: bool = False) -> None:
        self.looks += 1
        stamp = self._files_stamp() if self.files else None
        if stamp is not None and stamp == self._stamp and not forced:
            return
        version = await self.gateway.probe(lambda s: s.data_version())
        if version == self._version and not forced:
            self._stamp = stamp
            return
        self.checks += 1
        await self.scheduler.reconcile_if_changed()
        # Only now: a look that failed leaves the version unseen, so the next one retries.
        self._version = version
        self._stamp = stamp

    async def _loop(self) -> None:
        looks = 0
        while True:
            await asyncio.sleep(self.interval_s)
            looks += 1
            try:
                await self.look(forced=looks % FORCED_EVERY == 0)
            except Exception:
                # A busy database now is no reason to stop watching; the next look retries.
                log.exception("schedule watch failed")
