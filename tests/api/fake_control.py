"""A RunnerControl over a REAL SqliteStore whose manual runs are scripted.

It stands in for the runner where the API is under test: reads come from the store as they
would, and `trigger` writes run rows through the store (so GET runs shows them) but returns
a scripted RunResult instead of starting a process. Gates hold a run open, so tests can see
it running, collide with it, or make it outlast a timeout.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jeeves_runner.clock import Clock
from jeeves_runner.control import (
    JobAlreadyRunningError,
    JobInFlightError,
    JobNotFoundError,
    ShuttingDownError,
)
from jeeves_runner.models import (
    Job,
    OverlapPolicy,
    RunResult,
    RunStatus,
    RunTrigger,
    format_instant,
)
from jeeves_runner.scheduling.cron import resolve_zone
from jeeves_runner.scheduling.fire_schedule import FirePlan, FireSchedule
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # where the tests' clock stands
INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")  # how the API writes one
OK_RESULT = RunResult(status=RunStatus.OK, duration_ms=1234, exit_code=0, stdout="done\n")
GATE_LIMIT_S = 30.0  # a gate a test forgot to open lets go by itself


class FakeControl:
    def __init__(self, store: SqliteStore, clock: Clock) -> None:
        self._store = store
        self.clock = clock
        self.failed_registrations = 0
        self.version = 0  # what data_version() answers; tests move it by hand
        # Closed with the store by whoever made the store (the fixture).
        self.gateway = StoreGateway(store)
        self.version_moves_on_read = False  # as if something changed at every look
        self.uptime = 12.5
        self.zone = resolve_zone(None)  # the app's zone in these tests
        self._plan: tuple[int, FirePlan] | None = None
        self.shutting_down = False
        self.results: dict[str, RunResult] = {}
        self.errors: dict[str, Exception] = {}
        self.gates: dict[str, threading.Event] = {}
        self.enabled_calls: list[tuple[str, bool]] = []
        self.changed_jobs: list[str] = []  # ids the API asked to (re)schedule, in order
        self.forced_deletes: list[str] = []
        self._in_flight: Counter[str] = Counter()
        self.log_follows = 0
        self._open: dict[int, str] = {}  # manual runs in flight: run id -> job id
        self._cancels: dict[int, str] = {}
        self._recorded: dict[int, asyncio.Event] = {}
        self.cancel_calls: list[tuple[int, str]] = []
        self._background: set[asyncio.Task[RunResult]] = set()

    # ---- RunnerControl ------------------------------------------------------------------

    @property
    def store(self) -> StoreGateway:
        return self.gateway

    def data_version(self, store: Store) -> int:
        if self.version_moves_on_read:
            self.version += 1
        return self.version

    @property
    def running_count(self) -> int:
        return sum(self._in_flight.values())

    def uptime_seconds(self) -> float:
        return self.uptime

    def fire_plan(self) -> FirePlan:
        # The scheduler's plan, as a runner that reconciled at the clock's now when the data
        # version last moved (a change behind its back is not seen, as in a runner).
        if self._plan is None or self._plan[0] != self.version:
            fires = FireSchedule(self.zone)
            fires.reconcile(self._store.jobs.enabled_schedules(), self.clock.now())
            self._plan = (self.version, FirePlan(self.version, fires.plan().next))
        return self._plan[1]

    @property
    def stopping(self) -> bool:
        return self.shutting_down

    def database_problem(self) -> str | None:
        return self.gateway.problem()

    async def cluster_view(self) -> dict[str, Any]:
        return {"enabled": False, "node_id": None, "nodes": []}

    async def trigger(
        self, job_id: str, *, on_started: Callable[[int], None] | None = None
    ) -> RunResult:
        run_id = self._begin(job_id)
        if on_started is not None:
            on_started(run_id)
        return await self._finish(job_id, run_id)

    async def start_run(self, job_id: str) -> int:
        run_id = self._begin(job_id)
        task = asyncio.ensure_future(self._finish(job_id, run_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return run_id

    def _begin(self, job_id: str) -> int:
        if self.shutting_down:
            raise ShuttingDownError()
        if job_id in self.errors:
            raise self.errors[job_id]
        job = self._store.jobs.get_job(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        if self._in_flight[job_id] and job.overlap_policy is OverlapPolicy.SKIP:
            raise JobAlreadyRunningError(job_id)
        run_id = self._store.runs.create_run(
            job_id, RunTrigger.MANUAL, RunStatus.RUNNING, self._now()
        )
        self.version += 1
        self._in_flight[job_id] += 1
        self._open[run_id] = job_id
        self._recorded[run_id] = asyncio.Event()
        return run_id

    async def _finish(self, job_id: str, run_id: int) -> RunResult:
        try:
            gate = self.gates.get(job_id)
            if gate is not None:
                await asyncio.to_thread(gate.wait, GATE_LIMIT_S)
            result = self.results.get(job_id, OK_RESULT)
            if run_id in self._cancels:
                result = RunResult(RunStatus.CANCELLED, 10, error=self._cancels[run_id])
        finally:
            self._in_flight[job_id] -= 1
            self._open.pop(run_id, None)
        self._store.runs.finish_run(run_id, result, self._now())
        self.version += 1
        self._recorded.pop(run_id).set()
        return result

    async def cancel_run(self, run_id: int, reason: str) -> bool:
        self.cancel_calls.append((run_id, reason))
        job_id = self._open.get(run_id)
        if job_id is None:
            return False
        self._cancels[run_id] = reason
        recorded = self._recorded[run_id]
        gate = self.gates.get(job_id)
        if gate is not None:
            gate.set()
        await recorded.wait()
        return True

    def subscribe_log(self, run_id: int) -> None:
        self.log_follows += 1  # tests see a follower arrive
        return None  # no live feed here: followers read the store

    async def set_enabled(self, job_id: str, enabled: bool) -> bool:
        self.enabled_calls.append((job_id, enabled))
        found = self._store.jobs.set_enabled(job_id, enabled, self._now())
        if found:
            self.version += 1
        return found

    async def create_job(self, job: Job) -> dict[str, Any]:
        self._store.jobs.add_job(job, self._now())
        self.changed_jobs.append(job.id)
        self.version += 1
        row = self._store.jobs.get_job_row(job.id)
        assert row is not None
        return row

    async def replace_job(self, job: Job) -> dict[str, Any] | None:
        if not self._store.jobs.update_job(job, self._now()):
            return None
        self.changed_jobs.append(job.id)
        self.version += 1
        return self._store.jobs.get_job_row(job.id)

    async def delete_job(self, job_id: str, *, force: bool) -> bool:
        if self._in_flight[job_id]:
            if not force:
                raise JobInFlightError(job_id)
            self.forced_deletes.append(job_id)
            self.gates[job_id].set()  # a forced delete ends the held run first
        found = self._store.jobs.delete_job(job_id)
        if found:
            self.changed_jobs.append(job_id)
            self.version += 1
        return found

    # ---- what tests use -----------------------------------------------------------------

    def hold(self, job_id: str) -> threading.Event:
        """Manual runs of `job_id` stay running until the returned event is set."""
        gate = self.gates[job_id] = threading.Event()
        return gate

    def release_all(self) -> None:
        for gate in self.gates.values():
            gate.set()

    def add_job(self, job_id: str, **fields: object) -> Job:
        job = Job(
            id=job_id,
            name=str(fields.pop("name", f"Job {job_id}")),
            schedule=str(fields.pop("schedule", "3 * * * *")),
            script=str(fields.pop("script", f"/opt/scripts/{job_id}.py")),
            **fields,  # type: ignore[arg-type]
        )
        stored = self._store.jobs.add_job(job, self._now())
        self.version += 1
        return stored

    def add_run(
        self,
        job_id: str,
        status: RunStatus,
        started: datetime,
        finished: datetime | None = None,
        result: RunResult | None = None,
    ) -> int:
        """A run as the runner records it: a running row, then (unless still running) its end."""
        run_id = self._store.runs.create_run(
            job_id, RunTrigger.SCHEDULE, RunStatus.RUNNING, format_instant(started)
        )
        if status is not RunStatus.RUNNING:
            assert finished is not None
            outcome = result or RunResult(status=status, duration_ms=100, exit_code=0)
            self._store.runs.finish_run(run_id, outcome, format_instant(finished))
        self.version += 1
        return run_id

    def add_skip(self, job_id: str, at: datetime) -> int:
        run_id = self._store.runs.record_skip(
            job_id, format_instant(at), "previous run still going", RunTrigger.SCHEDULE, None
        )
        self.version += 1
        return run_id

    def _now(self) -> str:
        return format_instant(self.clock.now())
