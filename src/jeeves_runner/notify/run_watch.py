"""Late and overdue runs: the dispatcher tells this when a scheduled fire is accepted, when a
run starts and when it ends (one line each); this decides what to announce.

- late: a scheduled fire that started more than the job's `late_after_ms` after its instant
  (an overloaded runner: every slot busy, a queued run behind a long one, a stalled loop).
  Under `notify: change` the first late start in a row is announced, then every
  `notify_repeat`-th; an on-time start ends the streak (kept in memory: a restart forgets it).
- overdue: a run still going `max_duration_ms` after it started, before its timeout: one
  timer per run on the event loop, cancelled when the run ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import structlog

from jeeves_runner.clock import Clock
from jeeves_runner.models import Job, format_instant
from jeeves_runner.notify.change import late_due, policy_of

log = structlog.get_logger("jeeves_runner.notify")


class AlertSink(Protocol):
    def run_late(self, job: Job, run_id: int, scheduled_for: str, started_at: str) -> None: ...

    def run_overdue(self, job: Job, run_id: int, started_at: str, elapsed_ms: int) -> None: ...


class RunWatch:
    """`sink` is asked for at each alert: a SIGHUP may have replaced the notifier."""

    def __init__(self, clock: Clock, sink: Callable[[], AlertSink | None]) -> None:
        self.clock = clock
        self._sink = sink
        self._due: dict[int, datetime] = {}  # run id -> the fire instant it is for
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._late_in_a_row: dict[str, int] = {}

    @property
    def timers(self) -> int:
        return len(self._timers)

    def fire_accepted(self, job: Job, run_id: int | None, fire_at: datetime) -> None:
        if run_id is not None:
            self._due[run_id] = fire_at

    def run_started(self, job: Job, run_id: int) -> None:
        now = self.clock.now()
        started_at = format_instant(now)
        due = self._due.pop(run_id, None)
        if due is not None:
            self._check_late(job, run_id, due, now)
        limit = job.max_duration_ms
        # A limit at or past the timeout could never come first: the timeout ends the run.
        if limit is None or (job.timeout_ms is not None and limit >= job.timeout_ms):
            return
        began = self.clock.monotonic()
        loop = asyncio.get_running_loop()
        self._timers[run_id] = loop.call_later(
            max(limit, 0) / 1000, self._overdue, job, run_id, started_at, began
        )

    def run_ended(self, run_id: int | None) -> None:
        if run_id is None:
            return
        self._due.pop(run_id, None)
        timer = self._timers.pop(run_id, None)
        if timer is not None:
            timer.cancel()

    def _check_late(self, job: Job, run_id: int, due: datetime, now: datetime) -> None:
        late_ms = int((now - due).total_seconds() * 1000)
        if late_ms <= job.late_after_ms:
            self._late_in_a_row.pop(job.id, None)
            return
        count = self._late_in_a_row.get(job.id, 0) + 1
        self._late_in_a_row[job.id] = count
        if not late_due(policy_of(job.notify), job.notify_repeat, count):
            return
        sink = self._sink()
        if sink is None:
            return
        try:
            sink.run_late(job, run_id, format_instant(due), format_instant(now))
        except Exception:
            log.exception("late alert failed", job_id=job.id, run_id=run_id)

    def _overdue(self, job: Job, run_id: int, started_at: str, began: float) -> None:
        self._timers.pop(run_id, None)
        elapsed_ms = int((self.clock.monotonic() - began) * 1000)
        sink = self._sink()
        if sink is None:
            return
        try:
            sink.run_overdue(job, run_id, started_at, elapsed_ms)
        except Exception:
            log.exception("overdue alert failed", job_id=job.id, run_id=run_id)
