"""From a fire (or a manual trigger) to a recorded run: overlap policy, the concurrency
wait, spawning, recording, notifying. The scheduler loop decides *when*; this decides
*whether* and carries it out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

import structlog

from jeeves_runner.clock import Clock
from jeeves_runner.control import JobAlreadyRunningError, JobNotFoundError, ShuttingDownError
from jeeves_runner.execution.executor import (
    PIPE_DRAIN_S,
    ProcessExecutor,
    RunningProcess,
    SpawnError,
)
from jeeves_runner.metrics import RunnerMetrics
from jeeves_runner.models import (
    STOPPED_BEFORE_RUN,
    STOPPED_DURING_RUN,
    Job,
    JobType,
    OverlapPolicy,
    RunResult,
    RunStatus,
    RunTrigger,
    format_instant,
)
from jeeves_runner.scheduling.overlap import FireDecision, JobActivity, decide
from jeeves_runner.scheduling.slots import ConcurrencySlots
from jeeves_runner.store import SqliteStore

log = structlog.get_logger("jeeves_runner.execution.dispatch")

# Rows of runs that started in the same instant are marked `running` in one commit,
# a few milliseconds after their children started (their started_at is the true start).
MARK_BATCH_S = 0.005


class SessionRunnerLike(Protocol):
    async def run(self, job: Job) -> RunResult: ...


class NotifierLike(Protocol):
    def notify_run_later(self, job: Job, result: RunResult) -> None: ...


@dataclass(slots=True)
class PreparedFire:
    job: Job
    run_id: int | None  # a `pending` row made ahead of the fire, when the job looked free
    taken: bool = False  # handled by fire(): its row, if any, now belongs to a run or a skip


class RunDispatcher:
    def __init__(
        self,
        *,
        store: SqliteStore,
        executor: ProcessExecutor,
        sessions: SessionRunnerLike | None,
        notifier: NotifierLike | None,
        clock: Clock,
        max_concurrency: int,
    ) -> None:
        self.store = store
        self.executor = executor
        self.sessions = sessions
        self.notifier = notifier
        self.clock = clock
        self.slots = ConcurrencySlots(max_concurrency)
        self.activity: dict[str, JobActivity] = {}
        self.processes: dict[int, RunningProcess] = {}
        self.executing = 0
        self.data_version = 0
        self.accepting = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._marks: list[tuple[int, str, str]] = []
        self._mark_handle: asyncio.TimerHandle | None = None
        self.metrics = RunnerMetrics(clock)  # runner.py shows it at /metrics

    # ---- scheduled fires -------------------------------------------------------------

    def prepare(self, job_ids: list[str], fire_at: datetime) -> list[PreparedFire]:
        """Ahead of a fire: re-read each job (edits apply to the next run) and make a
        `pending` row for those that look free, so the child gets its JR_RUN_ID without a
        database write between the fire instant and the spawn."""
        at = format_instant(fire_at)
        jobs: list[Job] = []
        likely_to_run: list[str] = []
        for job_id in job_ids:
            job = self.store.jobs.get_job(job_id)
            if job is None or not job.enabled:
                continue
            jobs.append(job)
            decision, _ = decide(job.overlap_policy, self._activity(job.id))
            if decision is not FireDecision.SKIP:
                likely_to_run.append(job.id)
        run_ids = dict(
            zip(
                likely_to_run,
                self.store.runs.create_pending_runs(likely_to_run, RunTrigger.SCHEDULE, at),
                strict=True,
            )
        )
        return [PreparedFire(job, run_ids.get(job.id)) for job in jobs]

    def discard(self, prepared: list[PreparedFire]) -> None:
        """Drop the rows of prepared fires that did not happen."""
        for p in prepared:
            if p.run_id is not None and not p.taken:
                self.store.runs.discard_pending(p.run_id)
                p.taken = True

    def fire(self, prepared: list[PreparedFire], fire_at: datetime) -> None:
        """At the fire instant: the final overlap decision, then start what runs."""
        if not self.accepting:
            self.discard(prepared)
            return
        at = format_instant(fire_at)
        self.metrics.fire_lateness((self.clock.now() - fire_at).total_seconds())
        for p in prepared:
            activity = self._activity(p.job.id)
            decision, reason = decide(p.job.overlap_policy, activity)
            if decision is FireDecision.SKIP:
                self.discard([p])
                assert reason is not None
                activity.skip_row = self.store.runs.record_skip(
                    p.job.id, at, reason, RunTrigger.SCHEDULE, activity.skip_row
                )
                self._changed()
                self.metrics.run_skipped(p.job.id)
                log.info("fire skipped", job_id=p.job.id, reason=reason)
                continue
            run_id = p.run_id
            if run_id is None:
                run_id = self.store.runs.create_run(
                    p.job.id, RunTrigger.SCHEDULE, RunStatus.PENDING, at
                )
            p.taken = True
            self._accept(p.job, run_id, RunTrigger.SCHEDULE, queued=decision is FireDecision.QUEUE)

    # ---- manual runs -----------------------------------------------------------------

    async def trigger(self, job_id: str) -> RunResult:
        """A manual run follows the job's overlap policy like a fire, except that `skip`
        answers "already running" instead of recording a skip, and under `queue` a manual
        run waits for the queued place rather than being skipped."""
        if not self.accepting:
            raise ShuttingDownError()
        job = self.store.jobs.get_job(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        activity = self._activity(job.id)
        while True:
            decision, _ = decide(job.overlap_policy, activity)
            if decision is FireDecision.SKIP and job.overlap_policy is OverlapPolicy.SKIP:
                raise JobAlreadyRunningError(job.id)
            if decision is not FireDecision.SKIP:
                break
            # `queue` with a run already queued: wait for that one to start, then take the
            # queued place ourselves (scheduled fires cannot starve us: they are skipped
            # while a run is queued).
            await activity.wait_release()
            if not self.accepting:
                raise ShuttingDownError()
        run_id = self.store.runs.create_run(
            job.id, RunTrigger.MANUAL, RunStatus.PENDING, format_instant(self.clock.now())
        )
        task = self._accept(job, run_id, RunTrigger.MANUAL, queued=decision is FireDecision.QUEUE)
        return cast(RunResult, await asyncio.shield(task))

    # ---- one run -----------------------------------------------------------------------

    def _accept(self, job: Job, run_id: int, trigger: RunTrigger, *, queued: bool) -> Any:
        activity = self._activity(job.id)
        activity.in_flight += 1
        activity.idle.clear()
        if queued:
            activity.queued = True
        else:
            activity.skip_row = None  # a new in-flight run starts a new collapse row
        task = asyncio.ensure_future(self._run(job, run_id, trigger, queued))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._changed()
        return task

    async def _run(self, job: Job, run_id: int, trigger: RunTrigger, queued: bool) -> RunResult:
        """One accepted run, from waiting for its turn to its recorded end. Whatever goes
        wrong on the way, the row is finished: no run is left `pending` or `running`."""
        activity = self._activity(job.id)
        started = False
        try:
            if queued:
                # Runs right after the current one: wait until it is the only one left.
                while activity.in_flight > 1:
                    await activity.wait_release()
            await self.slots.acquire()
            try:
                started = True
                if queued:
                    activity.queued = False
                    activity.skip_row = None
                # The job may have been edited while this run waited.
                job = self.store.jobs.get_job(job.id) or job
                result = await self._execute(job, run_id)
            finally:
                self.slots.release()
        except asyncio.CancelledError:
            text = STOPPED_DURING_RUN if started else STOPPED_BEFORE_RUN
            self._record(job, run_id, trigger, RunResult(RunStatus.ERROR, 0, error=text))
            raise
        except Exception as exc:
            log.exception("run failed inside the runner", job_id=job.id, run_id=run_id)
            result = RunResult(RunStatus.ERROR, 0, error=f"Runner error: {exc}")
        finally:
            activity.in_flight -= 1
            activity.released()
        self._record(job, run_id, trigger, result)
        return result

    def _record(self, job: Job, run_id: int, trigger: RunTrigger, result: RunResult) -> None:
        try:
            self.store.runs.finish_run(
                run_id, result, format_instant(self.clock.now()), started=self._take_mark(run_id)
            )
        except Exception:
            # Left for the next start to close as "runner stopped during this run".
            log.exception("could not record a run", job_id=job.id, run_id=run_id)
        self._changed()
        self.metrics.run_finished(job.id, result.status.value, result.duration_ms / 1000)
        log.info(
            "run finished",
            job_id=job.id,
            run_id=run_id,
            status=result.status.value,
            duration_ms=result.duration_ms,
            trigger=trigger.value,
        )
        if self.notifier is not None and result.status is not RunStatus.SKIPPED:
            self.notifier.notify_run_later(job, result)

    async def _execute(self, job: Job, run_id: int) -> RunResult:
        started_mono = self.clock.monotonic()
        if job.type is JobType.SESSION:
            return await self._execute_session(job, run_id)
        try:
            process = await self.executor.spawn(job, run_id)
        except SpawnError as exc:
            self._mark_running(run_id, job.id)
            elapsed = int((self.clock.monotonic() - started_mono) * 1000)
            return RunResult(status=RunStatus.ERROR, duration_ms=elapsed, error=str(exc))
        self._mark_running(run_id, job.id)
        self.processes[run_id] = process
        self.executing += 1
        try:
            return await process.wait()
        finally:
            self.executing -= 1
            self.processes.pop(run_id, None)

    async def _execute_session(self, job: Job, run_id: int) -> RunResult:
        self._mark_running(run_id, job.id)
        if self.sessions is None:
            return RunResult(
                status=RunStatus.ERROR, duration_ms=0, error="session jobs are not available"
            )
        self.executing += 1
        started = self.clock.monotonic()
        try:
            return await self.sessions.run(job)
        except asyncio.CancelledError:
            elapsed = int((self.clock.monotonic() - started) * 1000)
            return RunResult(
                status=RunStatus.ERROR,
                duration_ms=elapsed,
                error="The runner stopped during this session run",
            )
        finally:
            self.executing -= 1

    def _mark_running(self, run_id: int, job_id: str) -> None:
        self._marks.append((run_id, job_id, format_instant(self.clock.now())))
        if self._mark_handle is None:
            loop = asyncio.get_running_loop()
            self._mark_handle = loop.call_later(MARK_BATCH_S, self.flush_marks)

    def _take_mark(self, run_id: int) -> tuple[str, str] | None:
        """A short run can end before its `running` mark is written: hand the mark to the
        finishing commit instead (one commit, not two)."""
        for index, (marked_id, job_id, at) in enumerate(self._marks):
            if marked_id == run_id:
                del self._marks[index]
                return job_id, at
        return None

    def flush_marks(self) -> None:
        self._mark_handle = None
        if not self._marks:
            return
        marks, self._marks = self._marks, []
        self.store.runs.mark_running(marks)
        self._changed()

    # ---- shutdown ----------------------------------------------------------------------

    async def shutdown(self, grace_s: float) -> None:
        """Stop accepting; let in-flight runs finish for `grace_s`; then end the groups of
        what is left (TERM, KILL after 5 s) and let their runs be recorded."""
        self.accepting = False
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace_s)
            if still:
                reason = f"Killed at shutdown after the {int(grace_s * 1000)} ms grace period"
                await asyncio.gather(
                    *(p.stop(reason=reason) for p in list(self.processes.values())),
                    return_exceptions=True,
                )
                # Stopped runs record themselves once their pipes drain; give them that
                # moment before cancelling what is left (sessions, runs waiting for a slot).
                _, still = await asyncio.wait(still, timeout=PIPE_DRAIN_S + 1)
                for task in still:
                    task.cancel()
                if still:
                    await asyncio.wait(still, timeout=10)
        self.flush_marks()

    # ---- helpers -------------------------------------------------------------------------

    def _activity(self, job_id: str) -> JobActivity:
        activity = self.activity.get(job_id)
        if activity is None:
            activity = self.activity[job_id] = JobActivity()
            activity.idle.set()
        return activity

    def jobs_changed(self) -> None:
        """Job definitions changed (reconcile saw it): cached views of them are stale."""
        self._changed()

    def _changed(self) -> None:
        self.data_version += 1
