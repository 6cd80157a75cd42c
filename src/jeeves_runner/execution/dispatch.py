"""From a fire (or a manual trigger) to a recorded run: overlap policy, the concurrency
wait, spawning, recording, notifying. The scheduler loop decides *when*; this decides
*whether* and carries it out."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

import structlog

from jeeves_runner.clock import Clock
from jeeves_runner.cluster_model import CLAIM_TAKEN_BACK
from jeeves_runner.control import JobAlreadyRunningError, JobNotFoundError, ShuttingDownError
from jeeves_runner.execution.executor import (
    KILL_GRACE_S,
    PIPE_DRAIN_S,
    ProcessExecutor,
    RunningProcess,
    SpawnError,
)
from jeeves_runner.execution.process_groups import process_start_ticks
from jeeves_runner.execution.run_log import DEFAULT_MAX_BYTES, LogSubscription, RunLogWriter
from jeeves_runner.metrics import RunnerMetrics
from jeeves_runner.models import (
    STOPPED_BEFORE_RUN,
    STOPPED_DURING_RUN,
    Job,
    JobType,
    LogStream,
    MissedFires,
    OverlapPolicy,
    PendingRetry,
    RunLogWrite,
    RunResult,
    RunStatus,
    RunTrigger,
    format_instant,
    parse_instant,
)
from jeeves_runner.notify.run_watch import RunWatch
from jeeves_runner.scheduling.overlap import FireDecision, JobActivity, decide
from jeeves_runner.scheduling.retry import retry_delay_ms, should_retry
from jeeves_runner.scheduling.slots import ConcurrencySlots
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store

log = structlog.get_logger("jeeves_runner.execution.dispatch")

T = TypeVar("T")

# Rows of runs that started in the same instant are marked `running` in one commit,
# a few milliseconds after their children started (their started_at is the instant before
# each child was spawned).
MARK_BATCH_S = 0.005
# A write the database refuses (locked by another process, disk full) is tried again, never
# dropped: first after RETRY_FIRST_S, doubling up to RETRY_MAX_S.
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0
JOB_DELETED_BEFORE_START = "The job was deleted before this run started"
# At the second stop signal: how long TERM has before KILL.
STOP_NOW_GRACE_S = 0.5
# A cancel of a row a prepare has just written waits this long at most for the prepare.
PENDING_WRITE_WAIT_S = 2.0


class SessionRunnerLike(Protocol):
    async def run(self, job: Job) -> RunResult: ...


class NotifierLike(Protocol):
    def notify_run_later(self, job: Job, result: RunResult, run_id: int | None = None) -> None:
        """A run's FINAL outcome: not sent for a failed try that will be retried."""
        ...

    def run_late(self, job: Job, run_id: int, scheduled_for: str, started_at: str) -> None: ...

    def run_overdue(self, job: Job, run_id: int, started_at: str, elapsed_ms: int) -> None: ...

    def runs_missed(self, job: Job, run_id: int, count: int, first: str, last: str) -> None:
        """Fires of the job that nothing ran (one `missed` row, `run_id`)."""
        ...


class StartGate(Protocol):
    """Cluster mode: a run's `running` mark, written (with the node's id) BEFORE its child
    starts. A node that dies after the mark leaves a `running` row a peer closes; one that
    dies before it leaves a `pending` claim a peer may give to another node, and no child
    was started: each run starts at most once across the cluster."""

    async def admit(self, run_id: int) -> bool:
        """True: marked `running`, start it. False: the run is not this node's any more
        (a peer gave its claim back to the pool, or closed it): do not start or record
        it. Raises StoreError while the database refuses."""
        ...

    async def cancel_claim(self, run_id: int, reason: str) -> bool:
        """A run the gate has not marked for a child cancelled: recorded as `cancelled`
        (with `reason`) only while it is still this node's claim. False: another node has
        it (a peer gave the claim away while this node looked dead), or it is closed;
        nothing is written. Raises StoreError while the database refuses."""
        ...


class StartRefused(Exception):
    """A run the start gate refused: another node has it, or it is closed."""


# What the task of a run answers when nothing of it was run or written here (cluster mode: its
# claim turned out to be another node's): a cancel of it answers False, as for a run not in
# flight here.
CLAIM_LOST = RunResult(RunStatus.ERROR, 0, error=CLAIM_TAKEN_BACK)


class ResultJournal(Protocol):
    """Where a result goes when the database cannot take it before the runner exits."""

    def append(
        self, run_id: int, result: RunResult, finished_at: str, started: tuple[str, str] | None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What a run stands for beyond its trigger: the instant it was due (a scheduled fire,
    a catch-up, a retry), and which try of which first run it is. A retry waits until
    `scheduled_for` before it takes its turn."""

    scheduled_for: str | None = None
    attempt: int = 1
    retry_of: int | None = None


@dataclass(slots=True)
class PreparedFire:
    job: Job
    run_id: int | None  # a `pending` row made ahead of the fire, when the job looked free
    taken: bool = False  # handled by fire(): its row, if any, now belongs to a run or a skip
    # Cluster mode: a skip is recorded by this (the claimed row becomes `skipped` in place,
    # so its instant keeps its one row) instead of a collapsed skip row.
    on_skip: Callable[[str], Awaitable[None]] | None = None


class RunDispatcher:
    def __init__(
        self,
        *,
        store: StoreGateway,
        executor: ProcessExecutor,
        sessions: SessionRunnerLike | None,
        notifier: NotifierLike | None,
        clock: Clock,
        max_concurrency: int,
        journal: ResultJournal | None = None,
        run_log_max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.store = store
        # Every run's full log, written in one commit per tick for all of them.
        self.logs = RunLogWriter(store, clock, max_bytes=run_log_max_bytes)
        self._run_tasks: dict[int, asyncio.Task[Any]] = {}
        self._cancel_reasons: dict[int, str] = {}
        self._recording: set[int] = set()  # ended, their result being written: past cancel
        # Rows made ahead of a fire (prepare) and not yet taken over by a run, by run id: a
        # cancel in the ~80 ms before the fire instant finds them here.
        self._prepared: dict[int, PreparedFire] = {}
        # Writes of pending rows under way: a cancel of a row just committed waits for them.
        self._pending_writes: set[asyncio.Future[None]] = set()
        self.journal = journal
        self.executor = executor
        self.sessions = sessions
        self.notifier = notifier
        self.clock = clock
        self.slots = ConcurrencySlots(max_concurrency)
        # Manual runs take slots through this gate first, so however many are asked for, a
        # scheduled fire never waits behind more than max_concurrency of them.
        self.manual_gate = asyncio.Semaphore(max_concurrency)
        self.activity: dict[str, JobActivity] = {}
        self.processes: dict[int, RunningProcess] = {}
        self.executing = 0
        self.data_version = 0
        self.accepting = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiting: set[asyncio.Task[Any]] = set()  # accepted, not yet started
        self._session_tasks: set[asyncio.Task[Any]] = set()  # run tasks inside a session
        self._task_jobs: dict[asyncio.Task[Any], str] = {}
        self._final = False  # the last chance to write has passed: results go to the journal
        self._final_event = asyncio.Event()
        self._stop_now = asyncio.Event()
        self._run_ids: dict[asyncio.Task[Any], asyncio.Future[int]] = {}
        self._manual_limit = max_concurrency
        self._tasks_keep: set[asyncio.Future[Any]] = set()
        self._marks: list[tuple[int, str, str]] = []
        self._identities: list[tuple[int, int, int, int | None]] = []
        self._mark_handle: asyncio.TimerHandle | None = None
        self.metrics = RunnerMetrics(clock)  # runner.py shows it at /metrics
        self.run_watch = RunWatch(clock, lambda: self.notifier)  # late and overdue alerts
        self._catchups: set[asyncio.Task[None]] = set()  # each job's catch-up runs in turn
        # The retries' full jitter; tests may seed or replace it.
        self.random: Callable[[], float] = random.random
        # Cluster mode: each run is marked `running` through this before its child starts.
        self.start_gate: StartGate | None = None
        self._through_gate: set[int] = set()  # runs the gate marked `running` for us

    # ---- scheduled fires -------------------------------------------------------------

    async def prepare(self, job_ids: list[str], fire_at: datetime) -> list[PreparedFire]:
        """Ahead of a fire: re-read each job (edits apply to the next run) and make a
        `pending` row for those that look free, so the child gets its JR_RUN_ID without a
        database write between the fire instant and the spawn. While the database refuses
        writes this waits (and retries); the caller decides whether the fire is still due."""
        at = format_instant(fire_at)

        def read(s: Store) -> list[Job]:
            found = (s.jobs.get_job(job_id) for job_id in job_ids)
            return [job for job in found if job is not None and job.enabled]

        jobs = await self._retrying(lambda: self.store.read(read), "read jobs for a fire")
        likely_to_run: list[str] = []
        for job in jobs:
            decision, _ = decide(job.overlap_policy, self._activity(job.id))
            if decision is not FireDecision.SKIP:
                likely_to_run.append(job.id)
        # Every job's instant is stored as its last fired one, in the commit of the rows:
        # what the next start (or a resume from suspend) compares with to find misses.
        marked = [job.id for job in jobs]
        if not likely_to_run:
            if marked:
                await self._retrying(
                    lambda: self.store.write(
                        lambda s: s.runs.create_pending_runs(
                            [], RunTrigger.SCHEDULE, at, scheduled_for=at, marked=marked
                        )
                    ),
                    "record a fire",
                )
            return [PreparedFire(job, None) for job in jobs]
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_writes.add(written)
        try:
            try:
                ids = await self._retrying(
                    lambda: self.store.write(
                        lambda s: s.runs.create_pending_runs(
                            likely_to_run, RunTrigger.SCHEDULE, at, scheduled_for=at, marked=marked
                        )
                    ),
                    "record a fire",
                )
            except StoreError:
                raise
            except Exception:
                # One job of the batch refused (deleted a moment ago): the others still fire,
                # each with its own row; a job whose row is refused does not fire.
                log.warning("a fire's rows were refused; made one by one", jobs=len(likely_to_run))
                run_ids = await self._pending_one_by_one(likely_to_run, at)
                made = [
                    PreparedFire(job, run_ids.get(job.id))
                    for job in jobs
                    if job.id in run_ids or job.id not in likely_to_run
                ]
            else:
                rows = dict(zip(likely_to_run, ids, strict=True))
                elsewhere = {job_id for job_id, run_id in rows.items() if run_id is None}
                if elsewhere:
                    # The instant has its row already: another scheduler on this database
                    # fired it.
                    log.info("fire already made elsewhere", jobs=sorted(elsewhere), at=at)
                made = [
                    PreparedFire(job, rows.get(job.id)) for job in jobs if job.id not in elsewhere
                ]
            for p in made:
                if p.run_id is not None:
                    self._prepared[p.run_id] = p
            return made
        finally:
            self._pending_writes.discard(written)
            written.set_result(None)

    async def _pending_one_by_one(self, job_ids: list[str], at: str) -> dict[str, int]:
        made: dict[str, int] = {}
        for job_id in job_ids:
            try:
                (run_id,) = await self._retrying(
                    _pending_writer(self.store, job_id, at), "record a fire"
                )
            except StoreError:
                raise
            except Exception:
                continue
            if run_id is not None:
                made[job_id] = run_id
        return made

    async def discard(self, prepared: list[PreparedFire], *, retry: bool = True) -> None:
        """Drop the rows of prepared fires that did not happen. Without `retry` (a stop), one
        try: a row left behind is closed by the stop's last sweep, or the next start."""
        run_ids = [p.run_id for p in prepared if p.run_id is not None and not p.taken]
        if not run_ids:
            return

        def call() -> Awaitable[None]:
            return self.store.write(lambda s: _discard_all(s, run_ids))

        for p in prepared:
            if p.run_id is not None:
                self._prepared.pop(p.run_id, None)
        if retry:
            await self._retrying(call, "discard a fire")
        else:
            await call()
        for p in prepared:
            p.taken = True

    async def fire(
        self,
        prepared: list[PreparedFire],
        fire_at: datetime,
        superseded: dict[str, str] | None = None,
    ) -> None:
        """At the fire instant: the final overlap decision, then start what runs.
        `superseded`: job id -> why this fire must not run any more (it came too late, the
        job's next fire is already due); such a fire is recorded as skipped."""
        if not self.accepting:
            await self.discard(prepared)
            return
        at = format_instant(fire_at)
        self.metrics.fire_lateness((self.clock.now() - fire_at).total_seconds())
        skips: list[tuple[PreparedFire, str]] = []
        # Decisions and acceptance happen without an await between them, so two fires of
        # one job can never both see it idle.
        for p in prepared:
            if p.taken:
                continue  # cancelled before its fire instant: recorded already
            activity = self._activity(p.job.id)
            late_reason = (superseded or {}).get(p.job.id)
            decision, reason = decide(p.job.overlap_policy, activity)
            if late_reason is not None:
                decision, reason = FireDecision.SKIP, late_reason
            if decision is FireDecision.SKIP:
                assert reason is not None
                skips.append((p, reason))
                self.metrics.run_skipped(p.job.id)
                continue
            p.taken = True
            # Its task takes the row over (and out of _prepared) at its first step.
            self._accept(
                p.job,
                p.run_id,
                RunTrigger.SCHEDULE,
                queued=decision is FireDecision.QUEUE,
                plan=RunPlan(scheduled_for=at),
            )
            self.run_watch.fire_accepted(p.job, p.run_id, fire_at)
        for p, reason in skips:
            if p.on_skip is not None:
                p.taken = True
                await p.on_skip(reason)
                self._changed()
                continue
            await self.discard([p])
            await self._record_skips(p.job.id, at, reason, 1)

    async def record_late(self, job_id: str, fire_at: datetime, count: int, reason: str) -> None:
        """`count` fires of a job, the last at `fire_at`, that never got a row of their own
        (held up behind an earlier fire of the job while the database refused writes) and
        came too late to run: counted in the job's skip row, with the reason."""
        await self._record_skips(job_id, format_instant(fire_at), reason, count)

    async def _record_skips(self, job_id: str, at: str, reason: str, count: int) -> None:
        activity = self._activity(job_id)
        previous = activity.skip_row
        row = await self._retrying(
            _skip_writer(self.store, job_id, at, reason, previous, count), "record a skipped fire"
        )
        if activity.skip_row == previous:
            activity.skip_row = row
        self._changed()
        # Once per in-flight run at info; the repeats (each second for a job on
        # `* * * * * *`) only bump the same row, so they are debug.
        (log.debug if row == previous else log.info)(
            "fire skipped", job_id=job_id, reason=reason, fires=count
        )

    def starts_at_once(self, job: Job) -> bool:
        """A fire of this job now would start without waiting behind another of its runs
        (its overlap policy decides `run`). Cluster mode marks such runs `running` just
        before their instant."""
        decision, _ = decide(job.overlap_policy, self._activity(job.id))
        return decision is FireDecision.RUN

    @property
    def in_flight_run_ids(self) -> tuple[int, ...]:
        """Runs of this runner with a row and no recorded end yet (cluster heartbeats adopt
        them for the node)."""
        return tuple(self._run_tasks)

    # ---- missed fires, catch-up and retries after a start ----------------------------

    async def record_missed(self, gaps: Sequence[tuple[Job, MissedFires]]) -> None:
        """One `missed` row per job and gap (and each job's last fired instant moved past
        it), in one commit; logged once per job, and told to the notifier."""
        if not gaps:
            return
        at = format_instant(self.clock.now())
        records = [gap for _, gap in gaps]
        ids = await self._retrying(
            lambda: self.store.write(lambda s: s.runs.record_missed(records, at)),
            "record missed fires",
        )
        self._changed()
        for (job, gap), run_id in zip(gaps, ids, strict=True):
            if run_id is None:
                continue  # deleted meanwhile
            log.warning(
                "scheduled fires missed",
                job_id=job.id,
                run_id=run_id,
                count=gap.count,
                first=gap.first,
                last=gap.last,
                catchup=job.catchup,
            )
            if self.notifier is not None:
                self.notifier.runs_missed(job, run_id, gap.count, gap.first, gap.last)

    async def catch_up(self, plans: Sequence[tuple[Job, Sequence[datetime]]]) -> None:
        """Run missed instants, each job's oldest first and one after another (never beside
        another run of the job). Each is a scheduled run with its instant as
        `scheduled_for`, so an instant someone else ran is not run again. The rows of all
        of them are made at once (a commit per instant, not per run): 1,000 jobs catching
        up drain at the concurrency limit, not at the pace of single writes."""
        wanted = [(job, list(instants)) for job, instants in plans if instants]
        if not wanted or not self.accepting:
            return
        at = format_instant(self.clock.now())
        by_instant: dict[str, list[str]] = {}
        for job, instants in wanted:
            for instant in instants:
                by_instant.setdefault(format_instant(instant), []).append(job.id)

        def write(s: Store) -> dict[tuple[str, str], int | None]:
            made: dict[tuple[str, str], int | None] = {}
            for due, job_ids in by_instant.items():
                ids = s.runs.create_pending_runs(
                    job_ids, RunTrigger.SCHEDULE, at, scheduled_for=due
                )
                made.update(
                    ((job_id, due), run_id) for job_id, run_id in zip(job_ids, ids, strict=True)
                )
            return made

        made = await self._retrying(lambda: self.store.write(write), "record catch-up runs")
        self._changed()
        for job, instants in wanted:
            rows: list[tuple[str, int]] = []
            for instant in instants:
                due = format_instant(instant)
                run_id = made.get((job.id, due))
                if run_id is None:
                    log.info("catch-up already run elsewhere", job_id=job.id, scheduled_for=due)
                else:
                    rows.append((due, run_id))
            if rows:
                task = asyncio.ensure_future(self._catch_up(job, rows))
                self._catchups.add(task)
                task.add_done_callback(self._catchups.discard)

    async def _catch_up(self, job: Job, rows: list[tuple[str, int]]) -> None:
        activity = self._activity(job.id)
        for index, (due, run_id) in enumerate(rows):
            while activity.in_flight > 0:
                await activity.idle.wait()
            if not self.accepting:
                # The rows not started are closed by the stop's last sweep as never started.
                return
            # No await between the idle check and the accept: no fire can slip in between.
            task = self._accept(
                job, run_id, RunTrigger.SCHEDULE, queued=False, plan=RunPlan(scheduled_for=due)
            )
            log.info("catch-up run", job_id=job.id, run_id=run_id, scheduled_for=due)
            if index + 1 < len(rows):
                with contextlib.suppress(BaseException):
                    await asyncio.shield(task)

    async def resume_retries(self, retries: Sequence[PendingRetry]) -> int:
        """At start: the retries a stopped runner left waiting, each run at its time (at
        once when overdue). Returns how many were taken up."""
        taken = 0
        wanted = {retry.job_id for retry in retries}

        def read(s: Store) -> dict[str, Job]:
            found = (s.jobs.get_job(job_id) for job_id in wanted)
            return {job.id: job for job in found if job is not None}

        jobs = await self.store.read(read) if wanted else {}
        for retry in retries:
            job = jobs.get(retry.job_id)
            if job is None:
                continue
            self._accept(
                job,
                retry.run_id,
                RunTrigger.RETRY,
                queued=False,
                plan=RunPlan(retry.scheduled_for, retry.attempt, retry.retry_of),
            )
            taken += 1
        if taken:
            log.info("retries left by the last stop taken up", count=taken)
        return taken

    # ---- manual runs -----------------------------------------------------------------

    async def trigger(
        self, job_id: str, *, on_started: Callable[[int], None] | None = None
    ) -> RunResult:
        """Run a job now and wait for its result, as stored. A manual run follows the job's
        overlap policy like a fire, except that `skip` answers "already running" instead of
        recording a skip, and under `queue` a manual run waits for the queued place rather
        than being skipped."""
        task, run_id = await self._begin_manual(job_id)
        if on_started is not None:
            run_id.add_done_callback(
                lambda known: (
                    on_started(known.result())
                    if not known.cancelled() and known.exception() is None
                    else None
                )
            )
        try:
            return cast(RunResult, await asyncio.shield(task))
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if task.cancelled() and not (me is not None and me.cancelling()):
                # The run was closed as never started because the runner is stopping; the
                # caller itself was not cancelled, so it gets the shutdown answer (503).
                raise ShuttingDownError() from None
            raise

    async def start_run(self, job_id: str) -> int:
        """Start a manual run and answer its id as soon as its row exists."""
        _, run_id = await self._begin_manual(job_id)
        return await asyncio.shield(run_id)

    async def _begin_manual(self, job_id: str) -> tuple[asyncio.Task[Any], asyncio.Future[int]]:
        if not self.accepting:
            raise ShuttingDownError()
        job = await self.store.read(lambda s: s.jobs.get_job(job_id))
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
        # Claimed before the row is written (an await), so a second manual run or a fire in
        # the meantime sees this one in flight.
        run_id: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = self._accept(
            job,
            None,
            RunTrigger.MANUAL,
            queued=decision is FireDecision.QUEUE,
            run_id_future=run_id,
        )
        return task, run_id

    # ---- one run -----------------------------------------------------------------------

    def _accept(
        self,
        job: Job,
        run_id: int | None,
        trigger: RunTrigger,
        *,
        queued: bool,
        run_id_future: asyncio.Future[int] | None = None,
        plan: RunPlan | None = None,
        held: bool = False,
    ) -> asyncio.Task[Any]:
        """`held`: the job's in-flight count already includes this run (a retry, counted
        from the moment its failed try ended, so no fire finds the job idle between)."""
        activity = self._activity(job.id)
        if not held:
            activity.in_flight += 1
        activity.idle.clear()
        if queued:
            activity.queued = True
        else:
            activity.skip_row = None  # a new in-flight run starts a new collapse row
        task = asyncio.ensure_future(self._run(job, run_id, trigger, queued, plan or RunPlan()))
        if run_id_future is not None:
            self._run_ids[task] = run_id_future
        self._task_jobs[task] = job.id
        task.add_done_callback(self._task_jobs.pop)
        self._tasks.add(task)
        self._waiting.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._waiting.discard)
        self._changed()
        return task

    async def _run(
        self, job: Job, run_id: int | None, trigger: RunTrigger, queued: bool, plan: RunPlan
    ) -> RunResult:
        """One accepted run, from waiting for its turn to its recorded end. Whatever goes
        wrong on the way, the row is finished: no run is left `pending` or `running` (but a
        retry stopped while it waited for its time: its row stays `pending`, for the next
        start to run at its time)."""
        activity = self._activity(job.id)
        me = asyncio.current_task()
        turn = _Turn()
        cancelled = False
        keep_pending = False
        refused = False
        cancel_claim = False  # cluster mode: a cancel written only while the claim is ours
        retry: tuple[str, int, int] | None = None
        try:
            if run_id is None:
                made = await self._create_row(job, trigger, plan)
                if made is None:
                    log.info("fire already made elsewhere", job_id=job.id, at=plan.scheduled_for)
                    self._resolve_run_id(me, JobAlreadyRunningError(job.id))
                    return RunResult(RunStatus.SKIPPED, 0)
                run_id = made
            self._resolve_run_id(me, run_id)
            self.logs.open(run_id)
            if me is not None:
                self._run_tasks[run_id] = me
            self._prepared.pop(run_id, None)
            try:
                if trigger is RunTrigger.RETRY and plan.scheduled_for is not None:
                    await self._wait_until(parse_instant(plan.scheduled_for))
                result = await self._take_turn(job, run_id, trigger, queued, turn)
            except StartRefused:
                refused = True
                result = CLAIM_LOST
            except asyncio.CancelledError:
                reason = self._cancel_reasons.get(run_id)
                if reason is not None:
                    # Cancelled through the API: not a shutdown, so the task goes on to
                    # record it.
                    if me is not None:
                        me.uncancel()
                    text = reason if turn.started else f"{reason} before it started"
                    result = RunResult(RunStatus.CANCELLED, 0, error=text)
                    # Cluster mode: no child started (the gate has not marked the run for
                    # this node), so the row may be a claim a peer gave to another node
                    # while this one was frozen: the cancel is written only if it is not.
                    cancel_claim = self.start_gate is not None and run_id not in self._through_gate
                else:
                    cancelled = True
                    # Cluster mode: a run the gate has not marked for this node is not
                    # written here (a peer may have given it to another node); the stop's
                    # last sweep closes or returns this node's own.
                    keep_pending = (trigger is RunTrigger.RETRY and not turn.started) or (
                        self.start_gate is not None and run_id not in self._through_gate
                    )
                    text = STOPPED_DURING_RUN if turn.started else STOPPED_BEFORE_RUN
                    result = RunResult(RunStatus.ERROR, 0, error=text)
            except Exception as exc:
                log.exception("run failed inside the runner", job_id=job.id, run_id=run_id)
                result = RunResult(RunStatus.ERROR, 0, error=f"Runner error: {exc}")
            if not cancelled and not refused and should_retry(job, trigger, plan.attempt, result):
                retry = self._plan_retry(job, run_id, plan)
                # The retry counts as in flight from now: a fire between this try's end and
                # the retry's row finds the job busy, as its overlap policy expects.
                activity.in_flight += 1
        except BaseException as exc:
            # Only the row's creation gets here (the database refused it): nothing ran.
            self._resolve_run_id(me, exc if isinstance(exc, Exception) else ShuttingDownError())
            raise
        finally:
            if queued and not turn.started:
                activity.queued = False
            activity.in_flight -= 1
            activity.released()
            self.run_watch.run_ended(run_id)
        if cancel_claim:
            return await self._cancel_claim(job, run_id, trigger, result)
        if keep_pending or refused:
            # Nothing of this run is written here: a retry's row waits for the next start;
            # a refused run's row is another node's (or closed).
            await self.logs.close(run_id)
            self._forget(run_id)
            if refused:
                log.warning("run not started: its claim went to another node", run_id=run_id)
                self._changed()
                return result
            if trigger is RunTrigger.RETRY:
                log.info("retry left for the next start", job_id=job.id, run_id=run_id)
            raise asyncio.CancelledError
        self._recording.add(run_id)
        retry_id: int | None = None
        try:
            try:
                rest_of_log = await self.logs.close(run_id)
            except asyncio.CancelledError:
                # Shutdown's last moment came while the log's last flush waited for the
                # database (another process holds its lock): the result is kept for the
                # next start all the same, never left for the stop's sweep to call
                # "stopped".
                finished = format_instant(self.clock.now())
                self._to_journal(run_id, result, finished, self._take_mark(run_id))
                raise
            retry_id = await self._record(job, run_id, trigger, result, rest_of_log, retry)
        finally:
            self._forget(run_id)
            if retry is not None:
                if retry_id is not None and self.accepting:
                    due, attempt, first = retry
                    self._accept(
                        job,
                        retry_id,
                        RunTrigger.RETRY,
                        queued=False,
                        plan=RunPlan(scheduled_for=due, attempt=attempt, retry_of=first),
                        held=True,
                    )
                else:
                    # No retry row (the result went to the journal), or the runner is
                    # stopping (the row waits for the next start): the hold ends here.
                    activity.in_flight -= 1
                    activity.released()
        if cancelled:
            raise asyncio.CancelledError
        return result

    async def _create_row(self, job: Job, trigger: RunTrigger, plan: RunPlan) -> int | None:
        """The run's row, made when its turn came (a manual run; a fire whose job looked
        busy ahead of it; a catch-up). None: a scheduled instant someone else fired."""
        at = format_instant(self.clock.now())
        try:
            if trigger is RunTrigger.SCHEDULE and plan.scheduled_for is not None:
                due = plan.scheduled_for
                (made,) = await self.store.write(
                    lambda s: s.runs.create_pending_runs([job.id], trigger, at, scheduled_for=due)
                )
                return made
            return await self.store.write(
                lambda s: s.runs.create_run(
                    job.id,
                    trigger,
                    RunStatus.PENDING,
                    at,
                    scheduled_for=plan.scheduled_for,
                    attempt=plan.attempt,
                    retry_of=plan.retry_of,
                )
            )
        except StoreError:
            raise
        except Exception:
            # The row refused for what it says (the job deleted a moment ago).
            raise JobNotFoundError(job.id) from None

    def _plan_retry(self, job: Job, run_id: int, plan: RunPlan) -> tuple[str, int, int]:
        """(due instant, attempt, first run's id) of the retry after this failed try."""
        delay = retry_delay_ms(job, plan.attempt, self.random)
        due = format_instant(self.clock.now() + timedelta(milliseconds=delay))
        first = plan.retry_of if plan.retry_of is not None else run_id
        log.info(
            "run will be retried",
            job_id=job.id,
            run_id=run_id,
            attempt=plan.attempt + 1,
            delay_ms=delay,
            due=due,
        )
        return due, plan.attempt + 1, first

    async def _wait_until(self, due: datetime) -> None:
        """Until the wall clock reads `due`: short sleeps measured against the clock each
        time, so a suspend or a wall clock stepped forward ends the wait at once."""
        while True:
            remaining = (due - self.clock.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 1.0))

    async def _take_turn(
        self, job: Job, run_id: int, trigger: RunTrigger, queued: bool, turn: _Turn
    ) -> RunResult:
        activity = self._activity(job.id)
        gate = self.manual_gate if trigger is RunTrigger.MANUAL else None
        if gate is not None:
            await gate.acquire()
        try:
            if queued:
                # Runs right after the current one: wait until it is the only one left.
                while activity.in_flight > 1:
                    turn.waited = True
                    await activity.wait_release()
            if self.slots.waiting or self.slots.in_use >= self.slots.limit:
                turn.waited = True
            await self.slots.acquire()
            try:
                if not self.accepting:
                    # Shutdown began while this run waited: no new child after that.
                    raise asyncio.CancelledError
                turn.started = True
                me = asyncio.current_task()
                if me is not None:
                    self._waiting.discard(me)
                if queued:
                    activity.queued = False
                    activity.skip_row = None
                if turn.waited:
                    # The job may have been edited, or deleted, while this run waited.
                    try:
                        current = await self.store.read(lambda s: s.jobs.get_job(job.id))
                    except StoreError:
                        current = job
                    if current is None:
                        return RunResult(RunStatus.ERROR, 0, error=JOB_DELETED_BEFORE_START)
                    job = current
                    if not self.accepting:
                        raise asyncio.CancelledError  # shutdown began during that read
                return await self._execute(job, run_id)
            finally:
                self.slots.release()
        finally:
            if gate is not None:
                gate.release()

    def _resolve_run_id(self, task: asyncio.Task[Any] | None, outcome: int | Exception) -> None:
        known = self._run_ids.pop(task, None) if task is not None else None
        if known is None or known.done():
            return
        if isinstance(outcome, Exception):
            known.set_exception(outcome)
        else:
            known.set_result(outcome)

    async def _record(
        self,
        job: Job,
        run_id: int,
        trigger: RunTrigger,
        result: RunResult,
        rest_of_log: RunLogWrite | None = None,
        retry: tuple[str, int, int] | None = None,
    ) -> int | None:
        """Store the result, and with `retry` the retry's `pending` row in the same commit
        (its id is returned); while the database refuses, try again. What the client of a
        manual run is told is what is stored: the answer waits for this. If the runner must
        exit first, the result goes to the journal, which the next start writes."""
        finished = format_instant(self.clock.now())
        started = self._take_mark(run_id)
        delay = RETRY_FIRST_S
        warned = False
        retry_id: int | None = None
        while True:
            if self._final:
                self._to_journal(run_id, result, finished, started)
                break
            try:
                retry_id = await self.store.write(
                    lambda s: s.runs.finish_run(
                        run_id, result, finished, started=started, log=rest_of_log, retry=retry
                    )
                )
                break
            except asyncio.CancelledError:
                # Shutdown's last moment came while the write waited: keep the result.
                self._to_journal(run_id, result, finished, started)
                raise
            except StoreError as exc:
                if not warned:
                    warned = True
                    log.warning(
                        "could not record a run yet; trying again",
                        job_id=job.id,
                        run_id=run_id,
                        reason=str(exc),
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._final_event.wait(), delay)
                delay = min(delay * 2, RETRY_MAX_S)
            except Exception:
                log.exception("could not record a run", job_id=job.id, run_id=run_id)
                self._to_journal(run_id, result, finished, started)
                break
        self._recorded(job, run_id, trigger, result, retry_id)
        return retry_id

    def _recorded(
        self,
        job: Job,
        run_id: int,
        trigger: RunTrigger,
        result: RunResult,
        retry_id: int | None = None,
    ) -> None:
        """A run's end is stored (or kept in the journal): counted, logged, notified."""
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
        # The final outcome only: a failed try that will be retried is not one.
        if self.notifier is not None and result.status is not RunStatus.SKIPPED and not retry_id:
            self.notifier.notify_run_later(job, result, run_id)

    def _to_journal(
        self, run_id: int, result: RunResult, finished: str, started: tuple[str, str] | None
    ) -> None:
        if self.journal is None:
            log.error("a run's result could not be stored", run_id=run_id)
            return
        try:
            self.journal.append(run_id, result, finished, started)
            log.warning("run result kept for the next start", run_id=run_id)
        except OSError as exc:
            log.error("a run's result could not be kept", run_id=run_id, reason=str(exc))

    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """A database call that must happen: tried again while the database refuses it,
        until the runner's last moment."""
        delay = RETRY_FIRST_S
        warned = False
        while True:
            try:
                return await call()
            except StoreError as exc:
                if self._final or (not self.accepting and self._stop_now.is_set()):
                    raise
                if not warned:
                    warned = True
                    log.warning("the database refused; trying again", what=what, reason=str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._final_event.wait(), delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _admit(self, run_id: int) -> None:
        """Cluster mode: the run's `running` mark, before anything starts (StartRefused
        when the run is not this node's any more)."""
        gate = self.start_gate
        if gate is None:
            return
        if not await self._retrying(lambda: gate.admit(run_id), "mark a run running"):
            raise StartRefused(run_id)
        self._through_gate.add(run_id)

    async def _execute(self, job: Job, run_id: int) -> RunResult:
        await self._admit(run_id)
        started_mono = self.clock.monotonic()
        if job.type is JobType.SESSION:
            return await self._execute_session(job, run_id)
        run_log = self.logs.live.get(run_id)
        # The start is the instant before the child exists: its output is read (and stamped)
        # in another thread from then on, possibly before spawn() hands the process back.
        started_at = format_instant(self.clock.now())
        try:
            process = await self.executor.spawn(job, run_id, log=run_log)
        except SpawnError as exc:
            if run_log is not None:
                run_log.warn(str(exc))
            self._mark_running(run_id, job.id, started_at)
            elapsed = int((self.clock.monotonic() - started_mono) * 1000)
            return RunResult(status=RunStatus.ERROR, duration_ms=elapsed, error=str(exc))
        self._mark_running(run_id, job.id, started_at)
        self.run_watch.run_started(job, run_id)
        # Its group id is its pid (a session of its own). Kept with the run, so a runner
        # killed with -9 leaves the next start what it needs to end this group.
        pid = process.pid
        self._identities.append((run_id, pid, pid, process_start_ticks(pid)))
        self.processes[run_id] = process
        self.executing += 1
        try:
            return await process.wait()
        finally:
            self.executing -= 1
            self.processes.pop(run_id, None)

    async def _execute_session(self, job: Job, run_id: int) -> RunResult:
        self._mark_running(run_id, job.id)
        self.run_watch.run_started(job, run_id)
        if self.sessions is None:
            return RunResult(
                status=RunStatus.ERROR, duration_ms=0, error="session jobs are not available"
            )
        self.executing += 1
        started = self.clock.monotonic()
        me = asyncio.current_task()
        if me is not None:
            self._session_tasks.add(me)
        try:
            result = await self.sessions.run(job)
            run_log = self.logs.live.get(run_id)
            if run_log is not None:
                # A session prints nothing while it runs; its answer is its log.
                if result.stdout:
                    run_log.feed(LogStream.STDOUT, result.stdout.encode())
                if result.error and result.status is not RunStatus.OK:
                    run_log.warn(result.error)
            return result
        except asyncio.CancelledError:
            elapsed = int((self.clock.monotonic() - started) * 1000)
            reason = self._cancel_reasons.get(run_id)
            if reason is not None:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                return RunResult(status=RunStatus.CANCELLED, duration_ms=elapsed, error=reason)
            return RunResult(
                status=RunStatus.ERROR,
                duration_ms=elapsed,
                error="The runner stopped during this session run",
            )
        finally:
            if me is not None:
                self._session_tasks.discard(me)
            self.executing -= 1

    def _mark_running(self, run_id: int, job_id: str, at: str | None = None) -> None:
        """Queue the run's `running` mark with its start (`at`; default: now)."""
        self._marks.append(
            (run_id, job_id, at if at is not None else format_instant(self.clock.now()))
        )
        if self._mark_handle is None:
            loop = asyncio.get_running_loop()
            self._mark_handle = loop.call_later(MARK_BATCH_S, self._flush_marks_soon)

    def _take_mark(self, run_id: int) -> tuple[str, str] | None:
        """A short run can end before its `running` mark is written: hand the mark to the
        finishing commit instead (one commit, not two)."""
        # The process of a run that has ended needs no record: nothing is left to end.
        self._identities = [i for i in self._identities if i[0] != run_id]
        for index, (marked_id, job_id, at) in enumerate(self._marks):
            if marked_id == run_id:
                del self._marks[index]
                return job_id, at
        return None

    def _flush_marks_soon(self) -> None:
        self._mark_handle = None
        task = asyncio.ensure_future(self.flush_marks())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush_marks(self) -> None:
        """Write the `running` marks taken so far in one commit. While the database refuses,
        they wait for the next flush (or for their run's finishing commit)."""
        if not self._marks and not self._identities:
            return
        marks, self._marks = self._marks, []
        identities, self._identities = self._identities, []

        def write(s: Store) -> None:
            s.runs.mark_running(marks, identities)

        try:
            await self.store.write(write)
        except StoreError:
            self._marks[:0] = marks
            self._identities[:0] = identities
            if self._mark_handle is None and not self._final:
                loop = asyncio.get_running_loop()
                self._mark_handle = loop.call_later(RETRY_MAX_S, self._flush_marks_soon)
            return
        self._changed()

    # ---- cancel and follow --------------------------------------------------------------

    async def cancel_run(self, run_id: int, reason: str) -> bool:
        """Stop a run of this runner: a child gets TERM, then KILL of its group after the
        grace; a run still waiting for its turn ends without starting. Returns once the run
        is recorded as `cancelled` (or as whatever it ended with first); False when this
        runner has no such run in flight."""
        prepared = self._prepared.get(run_id)
        if prepared is None and run_id not in self._run_tasks and self._pending_writes:
            # Its row may have just been committed by a prepare that has not resumed yet.
            await asyncio.wait(set(self._pending_writes), timeout=PENDING_WRITE_WAIT_S)
            prepared = self._prepared.get(run_id)
        if prepared is not None:
            if not prepared.taken:
                return await self._cancel_prepared(prepared, reason)
            # Accepted a moment ago: its task takes the run over at its first step.
            await asyncio.sleep(0)
        task = self._run_tasks.get(run_id)
        if task is None or task.done():
            return False
        if run_id in self._recording:
            # It has ended already; cancelling now would only interrupt the write of its
            # result. Let that finish: the caller finds the run finished.
            with contextlib.suppress(BaseException):
                await asyncio.shield(task)
            return False
        self._cancel_reasons.setdefault(run_id, reason)
        log.info("run cancel asked", run_id=run_id, reason=reason)
        process = self.processes.get(run_id)
        if process is not None:
            await process.cancel(reason)
        else:
            task.cancel()
        try:
            ended = await asyncio.shield(task)
        except BaseException:
            return True
        # Cluster mode: a claim another node had taken meanwhile was neither run nor
        # cancelled here.
        return ended is not CLAIM_LOST

    async def _cancel_prepared(self, prepared: PreparedFire, reason: str) -> bool:
        """A fire's row made ahead of its instant, cancelled before the instant: taken here,
        so the fire never starts its child, and recorded as cancelled before it started."""
        run_id = prepared.run_id
        assert run_id is not None
        prepared.taken = True
        self._prepared.pop(run_id, None)
        log.info("run cancel asked", run_id=run_id, reason=reason, started=False)
        self._recording.add(run_id)
        try:
            result = RunResult(RunStatus.CANCELLED, 0, error=f"{reason} before it started")
            await self._record(prepared.job, run_id, RunTrigger.SCHEDULE, result)
        finally:
            self._recording.discard(run_id)
        return True

    async def _cancel_claim(
        self, job: Job, run_id: int, trigger: RunTrigger, result: RunResult
    ) -> RunResult:
        """Cluster mode: the cancel of a run no child was started for, written through the
        gate's guarded write (never finish_run, which writes over whoever owns the row).
        Answers `result` once written; CLAIM_LOST when nothing was (the claim is another
        node's, or the runner's last moment came first)."""
        gate = self.start_gate
        assert gate is not None
        # Recording: a second cancel meanwhile waits for this write instead of cutting it.
        self._recording.add(run_id)
        try:
            await self.logs.close(run_id)  # empty: no child ever wrote to it
            try:
                mine = await self._retrying(
                    lambda: gate.cancel_claim(run_id, result.error or ""), "record a cancel"
                )
            except (StoreError, asyncio.CancelledError) as exc:
                # The database refused until the stop's last moment (or the stop ended this
                # task meanwhile): nothing is recorded, and cancel_run says so. The claim is
                # still this node's: the stop's last sweep (or the next start) closes it as
                # never started, as any claim of a stopping node.
                if isinstance(exc, asyncio.CancelledError) and (me := asyncio.current_task()):
                    me.uncancel()
                log.warning(
                    "could not record a cancel before the stop",
                    job_id=job.id,
                    run_id=run_id,
                    reason=str(exc) or "stopping",
                )
                return CLAIM_LOST
            if not mine:
                log.warning(
                    "cancel not recorded: the run's claim went to another node",
                    job_id=job.id,
                    run_id=run_id,
                )
                self._changed()
                return CLAIM_LOST
            self._recorded(job, run_id, trigger, result)
            return result
        finally:
            self._forget(run_id)

    def _forget(self, run_id: int) -> None:
        """The run's end is settled here (recorded, or another node's to record): its live
        log and the runner's bookkeeping of it go."""
        self.logs.recorded(run_id)
        self._run_tasks.pop(run_id, None)
        self._cancel_reasons.pop(run_id, None)
        self._recording.discard(run_id)
        self._through_gate.discard(run_id)

    def subscribe_log(self, run_id: int) -> LogSubscription | None:
        """A live reader of a run of this runner that has not been recorded yet; None for any
        other run (its log is all in the store)."""
        return self.logs.subscribe(run_id)

    # ---- shutdown ----------------------------------------------------------------------

    def cancel_waiting(self, job_id: str) -> None:
        """The job's runs that have not started (waiting for a slot or queued) never will:
        each is closed as stopped before it started."""
        for task in list(self._waiting):
            if self._task_jobs.get(task) == job_id:
                task.cancel()

    def stop_now(self) -> None:
        """The second stop signal: whatever shutdown() is waiting for, end it now."""
        self._stop_now.set()

    async def shutdown(self, grace_s: float) -> None:
        """Stop accepting; runs not yet started are closed as never started; in-flight runs
        get `grace_s` to finish (less after stop_now()); then their groups are ended (TERM,
        KILL after 5 s, or 0.5 s after stop_now()) and every run is recorded: in the
        database, or in the journal when it refuses until the end."""
        self.accepting = False
        for task in [*self._waiting, *self._catchups]:
            task.cancel()
        await self._wait_tasks(grace_s, interruptible=True)
        if self._live_tasks():
            now = self._stop_now.is_set()
            if now:
                reason = "Killed at shutdown: a second stop signal asked to stop now"
            else:
                reason = f"Killed at shutdown after the {int(grace_s * 1000)} ms grace period"
            kill_grace = STOP_NOW_GRACE_S if now else KILL_GRACE_S
            # Sessions have no process group: cancelled now, they record themselves as
            # stopped (while the database still takes writes), like the processes below.
            for task in list(self._session_tasks):
                task.cancel()
            stopping = asyncio.ensure_future(
                asyncio.gather(
                    *(p.stop(kill_grace, reason=reason) for p in list(self.processes.values())),
                    return_exceptions=True,
                )
            )
            waiter: asyncio.Future[Any] = asyncio.ensure_future(self._stop_now.wait())
            await asyncio.wait({stopping, waiter}, return_when=asyncio.FIRST_COMPLETED)
            now = self._stop_now.is_set()
            if not stopping.done():
                # A second signal during the kill grace: KILL at once.
                for p in list(self.processes.values()):
                    p.kill_now()
                await asyncio.wait({stopping}, timeout=STOP_NOW_GRACE_S)
            waiter.cancel()
            # Stopped runs record themselves once their pipes drain; give them that
            # moment.
            await self._wait_tasks(STOP_NOW_GRACE_S if now else PIPE_DRAIN_S + 1)
        # Whatever could not be written by now goes to the journal; then what is left
        # (sessions, writes stuck behind a lock) is cancelled and recorded the same way.
        self._final = True
        self._final_event.set()
        await self._wait_tasks(0.2)
        for task in self._live_tasks():
            task.cancel()
        await self._wait_tasks(2)
        with contextlib.suppress(StoreError):
            await self.flush_marks()
        await self.logs.stop()

    def _live_tasks(self) -> list[asyncio.Task[Any]]:
        return [t for t in self._tasks if not t.done()]

    async def _wait_tasks(self, timeout_s: float, *, interruptible: bool = False) -> None:
        """Until every run task is done or `timeout_s` passes (or, `interruptible`, until
        stop_now() is called)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        waiter: asyncio.Future[Any] = asyncio.ensure_future(
            self._stop_now.wait() if interruptible else asyncio.Event().wait()
        )
        try:
            while True:
                live: set[asyncio.Future[Any]] = set(self._live_tasks())
                remaining = deadline - loop.time()
                if not live or remaining <= 0 or waiter.done():
                    return
                await asyncio.wait(
                    live | {waiter}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            waiter.cancel()

    def set_max_concurrency(self, limit: int) -> None:
        """A new maxConcurrency (SIGHUP): more slots start waiting runs at once; fewer take
        effect as running ones end."""
        self.slots.set_limit(limit)
        extra = limit - self._manual_limit
        self._manual_limit = limit
        if extra > 0:
            for _ in range(extra):
                self.manual_gate.release()
        else:
            # Taken back as manual runs end; held for good.
            for _ in range(-extra):
                self._tasks_keep.add(asyncio.ensure_future(self.manual_gate.acquire()))

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


def _pending_writer(
    store: StoreGateway, job_id: str, at: str
) -> Callable[[], Awaitable[list[int | None]]]:
    def call() -> Awaitable[list[int | None]]:
        return store.write(
            lambda s: s.runs.create_pending_runs(
                [job_id], RunTrigger.SCHEDULE, at, scheduled_for=at, marked=[job_id]
            )
        )

    return call


def _discard_all(s: Store, run_ids: list[int]) -> None:
    for run_id in run_ids:
        s.runs.discard_pending(run_id)


def _skip_writer(
    store: StoreGateway, job_id: str, at: str, reason: str, previous: int | None, count: int
) -> Callable[[], Awaitable[int]]:
    def call() -> Awaitable[int]:
        return store.write(
            lambda s: s.runs.record_skip(job_id, at, reason, RunTrigger.SCHEDULE, previous, count)
        )

    return call


@dataclass(slots=True)
class _Turn:
    started: bool = False  # got its slot and began executing
    waited: bool = False  # for a slot or behind a queued run: the job may have changed
