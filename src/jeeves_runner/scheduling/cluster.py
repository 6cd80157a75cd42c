"""Cluster mode: several runners on one PostgreSQL schema, each scheduled instant of each job
run exactly once across them (README, "Cluster mode").

- One node leads: it holds an advisory lock on a connection of its own (leadership ends with
  that session, a node killed with -9 included), plans each job's fires and inserts them as
  `pending` runs PLAN_AHEAD_S before their instant. The database refuses a second row for an
  instant, and each job's planned_through moves by compare-and-set: two nodes that both
  believe they lead cannot both plan one instant.
- Every node claims due runs of the pool while it has free slots (`SKIP LOCKED`, only jobs
  whose run_on labels it carries), waits for their instant and hands them to its dispatcher.
  LISTEN/NOTIFY wakes nodes when runs are added or jobs change; a poll every POLL_S is the
  safety net.
- At most once: a run is marked `running` for the node (a compare-and-set on a `pending`
  run still its own) before its child starts; the runs of an instant that will start at once
  are marked MARK_AHEAD_S before it, the others by the dispatcher's start gate (`admit`).
  Nothing that may have started is ever given back to the pool.
- Every node heartbeats; a node silent for LOST_AFTER_HEARTBEATS has its runs closed by a peer
  and its claims (retries included) returned to the pool. A node started again takes up its
  own retries; retries from the pool run as the same try, at their time.
- A leader frozen with its session open (SIGSTOP, a paused VM) keeps the lock: a peer ends
  that session once its lock session and its heartbeat as leader have been silent for
  LOST_AFTER_HEARTBEATS heartbeats, and takes the lock.
- A new leader plans from each job's last planned instant: fires due while nobody led are
  run late or recorded as `missed` by `catch_up`, never silently gone.

The single runner's scheduler loop (`loop.py`) and dispatch stay the single-node path; this
only adds what a cluster needs around the same dispatcher. The planner is pure (instants in,
plans out); the node is the thin loop around it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import TypeVar

import structlog

from jeeves_runner.clock import Clock
from jeeves_runner.cluster_model import (
    LOST_AFTER_HEARTBEATS,
    ClaimedRun,
    JobPlan,
    MissedGap,
    NodeBeat,
    PlanOutcome,
)
from jeeves_runner.execution.dispatch import PreparedFire, RunDispatcher
from jeeves_runner.models import (
    Job,
    PendingRetry,
    RunResult,
    RunStatus,
    RunTrigger,
    ScheduleEntry,
    format_instant,
)
from jeeves_runner.models import parse_instant as _parse
from jeeves_runner.scheduling.fire_schedule import FireSchedule, utc_from_timestamp
from jeeves_runner.scheduling.loop import wait_until
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.protocols import ClusteredStore, ClusterLink

log = structlog.get_logger("jeeves_runner.scheduling.cluster")

T = TypeVar("T")

# The leader inserts a fire's run up to this long before its instant: nodes claim it, read
# the job and wait, so the start is on time; and a new leader taking over within this time
# finds the next fires already planned. Not a whole second: the planning, the NOTIFY and the
# claims it sets off on every node then fall a quarter second away from the fires of a job
# on `* * * * * *`, instead of on them.
PLAN_AHEAD_S = 1.25
# A node claims runs due within this (they wait for their instant on the node).
CLAIM_AHEAD_S = 1.5
# The safety net under LISTEN/NOTIFY: the pool and the leader lock are looked at this often.
POLL_S = 0.5
# While the last claim took all it asked for, the pool is looked at again this soon.
BUSY_POLL_S = 0.02
# At most this many runs per claim: nodes woken by one NOTIFY share an instant's runs (a
# train of 20 spawns on one node starts its last child later than 3 trains of 7).
CLAIM_BATCH = 5
# A claimed fire whose job was disabled after its instant, before the claim could start it.
DISABLED_SINCE_DUE = "The job was disabled after this fire was due, before it could start"
# The leader re-reads the enabled jobs at least this often (a job change also notifies).
RECONCILE_S = 5.0
# catch_up: a fire missed while nobody led is run late when it is at most this old; older ones
# are recorded as one `missed` row per job and gap.
RUN_LATE_WITHIN_S = 30.0
# After ending a frozen leader's session: how long to try for its lock (the ended backend
# lets it go as it exits, within milliseconds).
DEPOSE_WAIT_S = 1.0
# The runs of an instant that will start at once are marked `running` this long before it
# (the mark must precede the child; made ahead, it costs no round trip at the instant). A
# node that dies within it leaves them closed as "stopped during this run", not run late.
MARK_AHEAD_S = 0.25
# A run left unclaimed this long (no node that may run it had a free slot, or none is up) is
# recorded as missed.
POOL_EXPIRE_S = 60.0
EXPIRED_REASON = "No node that may run this job took it within {seconds} s of its instant"
# A gap longer than this many instants is counted no further (a per-second job down a week).
MAX_CATCH_UP_SCAN = 100_000


def catch_up(
    job_id: str, missed: Sequence[datetime], now: datetime, *, complete: bool = True
) -> tuple[list[datetime], MissedGap | None]:
    """What becomes of fires a job missed while no node led: (instants to run late, the gap
    recorded as missed). The one place a job's catch-up rule (issue 13) will be consulted;
    until then: instants at most RUN_LATE_WITHIN_S old run late, older ones are recorded as
    one `missed` row. `complete` False: the scan stopped at MAX_CATCH_UP_SCAN."""
    del job_id  # the job's catch-up rule, once jobs have one
    late_from = now - timedelta(seconds=RUN_LATE_WITHIN_S)
    run_late = [instant for instant in missed if instant >= late_from]
    old = [instant for instant in missed if instant < late_from]
    if not old:
        return run_late, None
    count = len(old) if complete else max(len(old), MAX_CATCH_UP_SCAN)
    return run_late, MissedGap(format_instant(old[0]), format_instant(old[-1]), count)


class ClusterPlanner:
    """The leader's decisions, without I/O: which instants to insert for which job. It keeps
    the fire heap and what it knows of each job's planned_through."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self.fires = FireSchedule(zone)
        self.planned: dict[str, str] = {}

    def take_over(
        self, entries: Iterable[ScheduleEntry], state: dict[str, str], now: datetime
    ) -> list[JobPlan]:
        """A node became leader: start from each job's last planned instant in the database.
        Fires between it and now (due while no node led) go through `catch_up`."""
        self.fires = FireSchedule(self.zone)
        self.fires.reconcile(entries, now)
        self.planned = {job: at for job, at in state.items() if job in self.fires}
        plans: list[JobPlan] = []
        now_ts = now.timestamp()
        for job_id, through in sorted(self.planned.items()):
            missed: list[datetime] = []
            instant = _parse(through)
            complete = True
            while True:
                ts = self.fires.fire_after(job_id, instant)
                if ts is None or ts > now_ts:
                    break
                if len(missed) >= MAX_CATCH_UP_SCAN:
                    complete = False
                    break
                instant = utc_from_timestamp(ts)
                missed.append(instant)
            if not missed:
                continue
            run_late, gap = catch_up(job_id, missed, now, complete=complete)
            plans.append(
                JobPlan(
                    job_id,
                    through,
                    format_instant(missed[-1]),
                    tuple(format_instant(i) for i in run_late),
                    gap,
                )
            )
        return plans

    def apply_entries(self, entries: Iterable[ScheduleEntry], now: datetime) -> None:
        """The enabled jobs as they are now (an edit, a job added, disabled or deleted)."""
        report = self.fires.reconcile(entries, now)
        for job_id in report.removed:
            self.planned.pop(job_id, None)

    def due(self, now: datetime, ahead_s: float) -> list[JobPlan]:
        """The fires due up to `ahead_s` from now that are not planned yet."""
        horizon = now.timestamp() + ahead_s
        found: dict[str, list[str]] = {}
        while (ts := self.fires.next_due()) is not None and ts <= horizon:
            fire_at = utc_from_timestamp(ts)
            text = format_instant(fire_at)
            for job_id in self.fires.pop_due(ts):
                self.fires.reschedule(job_id, fire_at)
                known = self.planned.get(job_id)
                if known is not None and text <= known:
                    continue  # planned already (by us, or by the leader before us)
                found.setdefault(job_id, []).append(text)
        return [
            JobPlan(job_id, self.planned.get(job_id), instants[-1], tuple(instants))
            for job_id, instants in found.items()
        ]

    def written(
        self, plans: Sequence[JobPlan], outcome: PlanOutcome, state: dict[str, str]
    ) -> None:
        """After write_plans: what the database now holds. `state` (read again when a plan
        was refused: another node planned) corrects what this planner believed."""
        refused = set(outcome.refused)
        for plan in plans:
            if plan.job_id not in refused:
                self.planned[plan.job_id] = plan.through
        for job_id in refused:
            if job_id in state:
                self.planned[job_id] = state[job_id]
            else:
                self.planned.pop(job_id, None)


@dataclass
class NodeIdentity:
    node_id: str
    host: str
    labels: tuple[str, ...]  # configured labels and the node id
    heartbeat_s: float
    started_at: str = ""

    def may_run(self, job: Job) -> bool:
        return all(label in self.labels for label in job.run_on)


@dataclass
class _Claims:
    """Runs this node claimed and has not handed to its dispatcher yet."""

    run_ids: set[int] = field(default_factory=set)


class ClusterNode:
    """One node of the cluster: leads when it holds the lock, claims and starts due runs,
    heartbeats and sweeps lost peers. Database calls run in threads of its own (they must not
    queue behind the store gateway's writer, nor block the loop)."""

    def __init__(
        self,
        *,
        store: ClusteredStore,
        link: ClusterLink,
        dispatcher: RunDispatcher,
        clock: Clock,
        zone: tzinfo,
        identity: NodeIdentity,
    ) -> None:
        self.store = store
        self.link = link
        self.dispatcher = dispatcher
        self.clock = clock
        self.identity = identity
        self.planner = ClusterPlanner(zone)
        self.leading = False
        self._db_threads = ThreadPoolExecutor(max_workers=3, thread_name_prefix="cluster-db")
        # Each of the node's own connections is used by one thread at a time.
        self._lead_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster-lead")
        self._listen_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster-listen")
        self._tasks: list[asyncio.Task[None]] = []
        self._groups: set[asyncio.Task[None]] = set()
        self._claims = _Claims()
        self._wake_claims = asyncio.Event()
        self._wake_leader = asyncio.Event()
        self._stopping = False
        self._fingerprint: tuple[int, str] | None = None
        self._reconciled_mono = 0.0
        self._expired_mono = 0.0
        self._last_beat_mono: float | None = None
        self._confirm_claims = False
        # Runs waiting for their `running` mark (admit), written together.
        self._admits: dict[int, asyncio.Future[bool]] = {}
        self._admitted: set[int] = set()  # marked `running` ahead of their instant
        self._term = -1  # the link's term this node took over in
        # Instants at which this node took leadership (the failover benchmark reads them).
        self.led_since: str | None = None
        # Every run of this node is marked `running` before its child starts.
        dispatcher.start_gate = self

    # ---- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """First heartbeat (the node shows in GET /cluster), the retries a killed start of
        this node left waiting, then the loops."""
        self.identity.started_at = format_instant(self.clock.now())
        await self._beat()
        # After the heartbeat: from it on, no peer gives these back to the pool. One a peer
        # gave back before it is in the pool, and is not read here.
        node = self.identity.node_id
        retries = await self._db(lambda: self.store.cluster.node_retries(node))
        if retries:
            await self.dispatcher.resume_retries(retries)
        for loop in (self._listen_loop, self._lead_loop, self._claim_loop, self._beat_loop):
            self._tasks.append(asyncio.ensure_future(self._forever(loop)))

    async def stop(self) -> None:
        """Stop leading and claiming; claims not handed to the dispatcher go back to the
        pool; the node row says it stopped."""
        self._stopping = True
        self._wake_claims.set()
        self._wake_leader.set()
        for waiting in self._admits.values():
            if not waiting.done():
                waiting.set_result(False)
        left = list(self._claims.run_ids)  # before their tasks end and forget them
        for task in (*self._tasks, *self._groups):
            task.cancel()
        for task in (*self._tasks, *self._groups):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        at = format_instant(self.clock.now())
        with contextlib.suppress(StoreError):
            if left:
                await self._db(lambda: self.store.cluster.unclaim(self.identity.node_id, left))
            await self._db(lambda: self.store.cluster.leave(self.identity.node_id, at, "stopped"))
        await self._on(self._lead_thread, self.link.resign)
        # The listen thread returns within its wait (POLL_S) and the connection closes; those
        # waits are made off the loop, so the runs still being recorded are not held up.
        await asyncio.to_thread(self._listen_thread.shutdown, wait=True)
        await asyncio.to_thread(self.link.close)
        await asyncio.to_thread(self._lead_thread.shutdown, wait=True)
        await asyncio.to_thread(self._db_threads.shutdown, wait=True)

    async def _forever(self, step: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                log.warning(
                    "cluster step failed; trying again", step=step.__name__, reason=str(exc)
                )
                await asyncio.sleep(POLL_S)
            except Exception:
                log.exception("cluster step failed", step=step.__name__)
                await asyncio.sleep(POLL_S)

    # ---- threads ---------------------------------------------------------------------------

    async def _on(self, pool: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, fn)
        except StoreError:
            raise
        except Exception as exc:
            translated = self.store.translate_error(exc)
            if translated is exc:
                raise
            raise translated from exc

    async def _db(self, fn: Callable[[], T]) -> T:
        return await self._on(self._db_threads, fn)

    # ---- listen ----------------------------------------------------------------------------

    async def _listen_loop(self) -> None:
        seen = await self._on(self._listen_thread, lambda: self.link.wait_notice(POLL_S))
        if "runs" in seen:
            self._wake_claims.set()
        if "jobs" in seen:
            self._wake_leader.set()

    # ---- leader ----------------------------------------------------------------------------

    async def _lead_loop(self) -> None:
        if self._cut_off():
            with contextlib.suppress(StoreError):
                await self._beat()  # a node resumed after a freeze writes one at once
        if self._cut_off():
            # Its lock session still answers but nothing else does (the pool's connections
            # fail): peers see no heartbeat, and a leader that cannot write its plans would
            # hold the lock while nothing fires. Give the lock up until a heartbeat lands.
            if self.leading:
                log.warning(
                    "leadership given up: this node cannot write to the database",
                    node=self.identity.node_id,
                )
            self.leading = False
            self.led_since = None
            await self._on(self._lead_thread, self.link.resign)
            await _wait_event(self._wake_leader, POLL_S)
            return
        try:
            leading = await self._on(self._lead_thread, self.link.try_lead)
        except StoreError:
            leading = False
        if not leading and not self._stopping:
            leading = await self._depose_stale_leader()
        now = self.clock.now()
        if leading and (not self.leading or self.link.term != self._term):
            if self.leading:
                log.warning("leadership lost and taken again", node=self.identity.node_id)
                self.leading = False  # until the take-over is done
            await self._take_over(now)
            self._term = self.link.term
        elif self.leading and not leading:
            log.warning("leadership lost", node=self.identity.node_id)
            self.led_since = None
        self.leading = leading
        if leading:
            try:
                await self._plan(now)
            except BaseException:
                # Fires taken off the heap may not have been written: start again from what
                # the database holds (the next turn takes over afresh and catches them up).
                self.leading = False
                raise
            wait = POLL_S
            next_ts = self.planner.fires.next_due()
            if next_ts is not None:
                until_plan = next_ts - PLAN_AHEAD_S - self.clock.now().timestamp()
                wait = min(POLL_S, max(until_plan, 0.01))
        else:
            wait = POLL_S
        await _wait_event(self._wake_leader, wait)

    async def _depose_stale_leader(self) -> bool:
        """The lock is held by another session: when its leader is gone without it (frozen,
        cut off: its lock session silent and no fresh heartbeat as leader for 3 heartbeats),
        end that session and take the lock. True: this node leads now."""
        stale_s = self.identity.heartbeat_s * LOST_AFTER_HEARTBEATS
        at = format_instant(self.clock.now())
        try:
            pid = await self._db(lambda: self.store.cluster.depose_stale_leader(at, stale_s))
        except StoreError:
            return False
        if pid is None:
            return False
        log.warning(
            "the leader stopped answering while holding the lock; its session ended",
            node=self.identity.node_id,
            backend_pid=pid,
        )
        # The lock goes once the ended backend has exited (a few ms).
        deadline = self.clock.monotonic() + DEPOSE_WAIT_S
        while not self._stopping:
            try:
                if await self._on(self._lead_thread, self.link.try_lead):
                    return True
            except StoreError:
                return False
            if self.clock.monotonic() >= deadline:
                return False  # another peer took it
            await asyncio.sleep(0.02)
        return False

    async def _take_over(self, now: datetime) -> None:
        def read() -> tuple[tuple[int, str], list[ScheduleEntry], dict[str, str]]:
            jobs = self.store.jobs
            return (
                jobs.schedule_fingerprint(),
                jobs.enabled_schedules(),
                self.store.cluster.plan_state(),
            )

        fingerprint, entries, state = await self._db(read)
        self._fingerprint = fingerprint
        self._reconciled_mono = self.clock.monotonic()
        plans = self.planner.take_over(entries, state, now)
        self.led_since = format_instant(self.clock.now())
        log.info("leading the cluster", node=self.identity.node_id, jobs=len(self.planner.fires))
        if plans:
            outcome = await self._write(plans)
            log.warning(
                "fires due while no node led",
                jobs=len(plans),
                run_late=sum(len(p.run_at) for p in plans),
                recorded_missed=outcome.missed,
            )
        # Heartbeat now: GET /cluster shows the new leader at once.
        await self._beat(leader=True)

    async def _plan(self, now: datetime) -> None:
        mono = self.clock.monotonic()
        if self._wake_leader.is_set() or mono - self._reconciled_mono >= RECONCILE_S:
            self._wake_leader.clear()
            self._reconciled_mono = mono
            fingerprint = await self._db(self.store.jobs.schedule_fingerprint)
            if fingerprint != self._fingerprint:
                entries = await self._db(self.store.jobs.enabled_schedules)
                self.planner.apply_entries(entries, self.clock.now())
                self._fingerprint = fingerprint
        plans = self.planner.due(self.clock.now(), PLAN_AHEAD_S)
        if plans:
            await self._write(plans)
        if mono - self._expired_mono >= self.identity.heartbeat_s:
            self._expired_mono = mono
            at = self.clock.now()
            before = format_instant(at - timedelta(seconds=POOL_EXPIRE_S))
            reason = EXPIRED_REASON.format(seconds=int(POOL_EXPIRE_S))
            expired = await self._db(
                lambda: self.store.cluster.expire_pool(before, format_instant(at), reason)
            )
            if expired:
                log.warning("runs nobody claimed recorded as missed", count=expired)

    async def _write(self, plans: list[JobPlan]) -> PlanOutcome:
        at = format_instant(self.clock.now())
        outcome = await self._db(lambda: self.store.cluster.write_plans(plans, at))
        state: dict[str, str] = {}
        if outcome.refused:
            log.warning("another node planned these jobs first", jobs=outcome.refused)
            state = await self._db(self.store.cluster.plan_state)
        self.planner.written(plans, outcome, state)
        return outcome

    # ---- claims ----------------------------------------------------------------------------

    def free_slots(self) -> int:
        slots = self.dispatcher.slots
        return slots.limit - slots.in_use - slots.waiting - len(self._claims.run_ids)

    async def _claim_loop(self) -> None:
        self._wake_claims.clear()
        free = min(self.free_slots(), CLAIM_BATCH)
        full = False
        if free > 0 and self.dispatcher.accepting:
            due = format_instant(self.clock.now() + timedelta(seconds=CLAIM_AHEAD_S))
            node, labels = self.identity.node_id, self.identity.labels
            claimed = await self._db(lambda: self.store.cluster.claim_runs(node, labels, due, free))
            full = len(claimed) == free
            if claimed:
                self._start_groups(claimed)
        await _wait_event(self._wake_claims, BUSY_POLL_S if full else POLL_S)

    def _start_groups(self, claimed: list[ClaimedRun]) -> None:
        groups: dict[str | None, list[ClaimedRun]] = {}
        retries: list[ClaimedRun] = []
        for claim in claimed:
            self._claims.run_ids.add(claim.run_id)
            if claim.trigger is RunTrigger.RETRY:
                retries.append(claim)
                continue
            key = claim.scheduled_for if claim.trigger is RunTrigger.SCHEDULE else None
            groups.setdefault(key, []).append(claim)
        starts = [self._start_group(instant, claims) for instant, claims in groups.items()]
        if retries:
            starts.append(self._start_retries(retries))
        for start in starts:
            task = asyncio.ensure_future(start)
            self._groups.add(task)
            task.add_done_callback(self._groups.discard)

    async def _start_retries(self, claims: list[ClaimedRun]) -> None:
        """Retries of a lost or stopped node, from the pool: run as retries (their try
        number and first run kept), each at its time, like the retries a node resumes."""
        ids = [c.run_id for c in claims]
        try:
            if not self.dispatcher.accepting:
                node = self.identity.node_id
                await self._db(lambda: self.store.cluster.unclaim(node, ids))
                return
            retries = [
                PendingRetry(c.run_id, c.job_id, c.scheduled_for, c.attempt, c.retry_of)
                for c in claims
                if c.scheduled_for is not None and c.retry_of is not None
            ]
            for run_id in ids:
                self._claims.run_ids.discard(run_id)
            await self.dispatcher.resume_retries(retries)
        finally:
            for run_id in ids:
                self._claims.run_ids.discard(run_id)
            self._wake_claims.set()

    async def _start_group(self, instant: str | None, claims: list[ClaimedRun]) -> None:
        """Claimed runs of one instant: read their jobs now, mark those that will start at
        once `running` just before the instant, start them at the instant."""
        ids = [c.run_id for c in claims]
        early: set[int] = set()  # marked `running` ahead of the instant
        handed = False
        try:
            job_ids = sorted({c.job_id for c in claims})
            jobs = await self._db(lambda: {j: self.store.jobs.get_job(j) for j in job_ids})
            fire_at = _parse(instant) if instant is not None else self.clock.now()
            prepared: list[PreparedFire] = []
            gone: list[int] = []
            for claim in claims:
                job = jobs.get(claim.job_id)
                if job is not None and (instant is None or job.enabled):
                    prepared.append(
                        PreparedFire(job, claim.run_id, on_skip=self._skipper(claim.run_id))
                    )
                elif job is not None and (job.updated_at or "") >= (instant or ""):
                    # Disabled after its instant came (the claim was late: a loaded node):
                    # the instant was an enabled job's, so it keeps its row, as a skip.
                    await self._skipper(claim.run_id)(DISABLED_SINCE_DUE)
                else:
                    # Disabled before its instant, since it was planned (or deleted: its
                    # row went with it): the instant is no fire of an enabled job.
                    gone.append(claim.run_id)
            if gone:
                node = self.identity.node_id
                await self._db(lambda: self.store.cluster.drop_claims(node, gone))
            if instant is not None and prepared and self.dispatcher.accepting:
                prepared = await self._mark_ahead(prepared, fire_at, early)
                await wait_until(self.clock, fire_at.timestamp())
            if self._must_confirm():
                unsure = [p.run_id for p in prepared if p.run_id and p.run_id not in early]
                mine = await self._db(
                    lambda: self.store.cluster.confirm_claims(self.identity.node_id, unsure)
                )
                dropped = [run_id for run_id in unsure if run_id not in mine]
                if dropped:
                    log.warning("claims given to other nodes meanwhile; not started", runs=dropped)
                prepared = [p for p in prepared if p.run_id not in dropped]
            if not self.dispatcher.accepting:
                # Stopping: fire() would drop the rows, and the instants with them. Back to
                # the pool for a node that goes on (the `finally` below).
                return
            for run_id in ids:
                self._claims.run_ids.discard(run_id)
            handed = True  # the dispatcher starts them, or skips them
            if prepared:
                await self.dispatcher.fire(prepared, fire_at)
        finally:
            for run_id in ids:
                self._claims.run_ids.discard(run_id)
            if not handed:
                # A stop, or an error on the way: none of them started. Back to the pool
                # (those marked ahead too), for a node that goes on.
                self._admitted.difference_update(early)
                node = self.identity.node_id
                with contextlib.suppress(StoreError, RuntimeError):
                    await self._db(lambda: self.store.cluster.unclaim(node, ids))
            self._wake_claims.set()  # slots may have come free

    async def _mark_ahead(
        self, prepared: list[PreparedFire], fire_at: datetime, early: set[int]
    ) -> list[PreparedFire]:
        """MARK_AHEAD_S before the instant: the runs that will start at once (their job
        idle here, a slot free) are marked `running` for this node, so the `running` mark
        that must precede each child costs no round trip at the instant. A claim a peer
        gave to another node meanwhile is refused here and dropped."""
        delay = fire_at.timestamp() - MARK_AHEAD_S - self.clock.now().timestamp()
        if delay > 0:
            await asyncio.sleep(delay)
        slots = self.dispatcher.slots
        free = slots.limit - slots.in_use - slots.waiting - len(self._admitted)
        ahead = [
            p.run_id
            for p in prepared
            if p.run_id is not None and self.dispatcher.starts_at_once(p.job)
        ][: max(free, 0)]
        if not ahead:
            return prepared
        node, at = self.identity.node_id, format_instant(fire_at)
        mine = await self._db(lambda: self.store.cluster.start_runs(node, ahead, at))
        early.update(mine)
        self._admitted.update(mine)
        refused = [run_id for run_id in ahead if run_id not in mine]
        if refused:
            log.warning("claims given to other nodes meanwhile; not started", runs=refused)
        return [p for p in prepared if p.run_id not in refused]

    # ---- the `running` mark before a child starts ------------------------------------------

    async def admit(self, run_id: int) -> bool:
        """`dispatch.StartGate`: mark the run `running` for this node before its child
        starts; False when it is not this node's any more. The runs of one instant (asked
        in one turn of the loop) are marked in one statement."""
        if run_id in self._admitted:
            self._admitted.discard(run_id)
            if not self._must_confirm():
                return True  # marked just before its instant
            # This node may have looked dead since (a freeze): a peer may have closed the
            # run. Asked again below (a run still `running` here is answered yes).
        if self._stopping:
            return False
        loop = asyncio.get_running_loop()
        if not self._admits:
            loop.call_soon(self._write_admits)
        waiting = self._admits.get(run_id)
        if waiting is None:
            waiting = self._admits[run_id] = loop.create_future()
        return await asyncio.shield(waiting)

    def _write_admits(self) -> None:
        batch, self._admits = self._admits, {}
        task = asyncio.ensure_future(self._mark_started(batch))
        self._groups.add(task)
        task.add_done_callback(self._groups.discard)

    async def _mark_started(self, batch: dict[int, asyncio.Future[bool]]) -> None:
        node, ids = self.identity.node_id, list(batch)
        at = format_instant(self.clock.now())
        try:
            mine = await self._db(lambda: self.store.cluster.start_runs(node, ids, at))
        except BaseException as exc:
            for waiting in batch.values():
                if not waiting.done():
                    if isinstance(exc, Exception):
                        waiting.set_exception(exc)
                    else:
                        waiting.set_result(False)
            if not isinstance(exc, Exception):
                raise
            return
        refused = sorted(set(ids) - mine)
        if refused:
            log.warning("claims given to other nodes meanwhile; not started", runs=refused)
        for run_id, waiting in batch.items():
            if not waiting.done():
                waiting.set_result(run_id in mine)

    async def cancel_claim(self, run_id: int, reason: str) -> bool:
        """`dispatch.StartGate`: a run of this node cancelled before its child started is
        written `cancelled` only while it is still this node's claim: one a peer gave to
        another node while this node was frozen is that node's (cluster.cancel_claimed)."""
        self._admitted.discard(run_id)
        at, node = format_instant(self.clock.now()), self.identity.node_id
        return await self._db(lambda: self.store.cluster.cancel_claimed(run_id, at, reason, node))

    def _skipper(self, run_id: int) -> Callable[[str], Awaitable[None]]:
        async def skip(reason: str) -> None:
            self._admitted.discard(run_id)
            at, node = format_instant(self.clock.now()), self.identity.node_id
            await self._db(lambda: self.store.cluster.skip_claimed(run_id, at, reason, node))

        return skip

    def _cut_off(self) -> bool:
        """No heartbeat written for as long as peers wait before declaring a node lost."""
        last = self._last_beat_mono
        limit = LOST_AFTER_HEARTBEATS * self.identity.heartbeat_s
        return last is not None and self.clock.monotonic() - last > limit

    def _must_confirm(self) -> bool:
        """Claims are checked again before they start when this node may have looked dead
        to its peers (no heartbeat written for 2 of them, or a peer said so)."""
        if self._confirm_claims:
            return True
        last = self._last_beat_mono
        return last is None or self.clock.monotonic() - last > 2 * self.identity.heartbeat_s

    # ---- heartbeats ------------------------------------------------------------------------

    async def _beat_loop(self) -> None:
        await asyncio.sleep(self.identity.heartbeat_s)
        await self._beat()
        at = self.clock.now()
        lost = await self._db(lambda: self.store.cluster.sweep_lost(format_instant(at)))
        for node in lost:
            log.warning(
                "node lost: its runs closed, its claims back in the pool",
                node=node.node_id,
                closed=node.closed_runs,
                returned=node.returned_runs,
            )
        grace = timedelta(seconds=self.identity.heartbeat_s * LOST_AFTER_HEARTBEATS)
        closed = await self._db(
            lambda: self.store.cluster.close_unowned(format_instant(at), format_instant(at - grace))
        )
        if closed:
            log.warning("closed runs whose node stopped before adopting them", count=closed)

    async def _beat(self, *, leader: bool | None = None) -> None:
        """`leader` None: as the lock says now. A leader asks its lock here too, so its lock
        session runs a statement every heartbeat even while its leader loop is busy (a
        long take-over): peers end only a lock session silent for 3 heartbeats. A node
        resumed after a freeze finds its session ended here, and never writes itself as
        leader from what it believed before."""
        if leader is None:
            leader = False
            if self.leading:
                with contextlib.suppress(StoreError):
                    leader = await self._on(self._lead_thread, self.link.still_leads)
        identity = self.identity
        beat = NodeBeat(
            identity.node_id,
            identity.host,
            identity.labels,
            int(identity.heartbeat_s * 1000),
            identity.started_at,
            format_instant(self.clock.now()),
            leader,
            self.dispatcher.in_flight_run_ids,
        )
        declared_lost = await self._db(lambda: self.store.cluster.beat(beat))
        self._last_beat_mono = self.clock.monotonic()
        if declared_lost:
            log.error(
                "peers declared this node lost (no heartbeat for too long); its runs were "
                "closed and its claims given to others",
                node=identity.node_id,
            )
            self._confirm_claims = True
        else:
            self._confirm_claims = False

    # ---- manual runs for other nodes -------------------------------------------------------

    async def run_elsewhere(self, job: Job) -> int:
        """A manual run of a job this node may not run (its run_on): into the pool, for a
        node that may."""
        at = format_instant(self.clock.now())
        return await self._db(lambda: self.store.cluster.request_run(job.id, at))

    async def wait_result(self, run_id: int) -> RunResult:
        """The stored result of a run another node carries out (polled)."""
        while True:
            row = await self._db(lambda: self.store.runs.get_run(run_id))
            if row is None:
                return RunResult(RunStatus.ERROR, 0, error="The run was deleted")
            status = RunStatus(row["status"])
            if status not in (RunStatus.PENDING, RunStatus.RUNNING):
                return RunResult(
                    status=status,
                    duration_ms=int(row["duration_ms"] or 0),
                    exit_code=row["exit_code"],
                    stdout=row["stdout"] or "",
                    stderr=row["stderr"] or "",
                    error=row["error"],
                    tokens=row["tokens"],
                    result_meta=row["result_meta"],
                )
            await asyncio.sleep(0.2)


async def _wait_event(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
