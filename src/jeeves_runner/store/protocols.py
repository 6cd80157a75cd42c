"""The store as a contract: what the scheduler, dispatch, maintenance, the API and the CLI may
ask of a database. Nothing outside `store/` knows which backend it has.

Every verb is synchronous and may block (a busy or slow database): code on the event loop
calls them through `store.gateway.StoreGateway`, never directly. Instants are
`models.format_instant` text. Each backend passes the one contract suite in `tests/store/`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from jeeves_runner.access_model import AuditEntry, StoredToken
from jeeves_runner.cluster_model import ClaimedRun, JobPlan, LostNode, NodeBeat, PlanOutcome
from jeeves_runner.models import (
    Job,
    LogChunk,
    LogStream,
    MissedFires,
    OpenRun,
    PendingRetry,
    RunLogWrite,
    RunResult,
    RunStatus,
    RunTrigger,
    ScheduleEntry,
)
from jeeves_runner.notify_model import NotifyStreak
from jeeves_runner.queue_model import ItemStatus, LeaseSweep, QueueDefinition, QueueItem
from jeeves_runner.state_model import ExpiredState, StateEntry
from jeeves_runner.store.jobs_list import JobsListView
from jeeves_runner.store.runs_list import RunsListView

# What `RunStore.get_run` gives beyond a listed run's fields (the same on every backend): the
# instant a scheduled fire or a retry was due, its try, the missed instants a `missed` row
# stands for, and the node that ran it.
RUN_DETAIL_COLUMNS = (
    "scheduled_for, attempt, retry_of, missed_count, missed_first, missed_last, node_id"
)


def output_as_text(run: dict[str, Any]) -> dict[str, Any]:
    """A run row as the API answers it: a run still going (or a skipped fire) has no output
    yet, and its `stdout`/`stderr` are empty text rather than null (in place)."""
    if run["stdout"] is None:
        run["stdout"] = ""
    if run["stderr"] is None:
        run["stderr"] = ""
    return run


class JobStore(Protocol):
    def add_job(self, job: Job, now: str) -> Job: ...

    def update_job(self, job: Job, now: str) -> bool: ...

    def delete_job(self, job_id: str) -> bool: ...

    def apply_jobs(self, add: list[Job], update: list[Job], delete: list[str], now: str) -> None:
        """Add, replace and delete jobs (with their runs) in one transaction: all or nothing.
        An id to add that exists raises JobExistsError and nothing is written."""
        ...

    def get_job(self, job_id: str) -> Job | None: ...

    def job_sources(self) -> dict[str, tuple[str | None, str | None]]:
        """Every job id with the file it came from and that file's digest when applied
        (None, None for a job added through the CLI or the API). Cheap: no job is built."""
        ...

    def list_jobs(self) -> list[Job]: ...

    def list_jobs_with_last_run(self) -> list[dict[str, Any]]:
        """Jobs as the API shows them, each with its latest executed run's status and start."""
        ...

    def jobs_list_json(self) -> bytes:
        """`{"jobs": [...]}` exactly as list_jobs_with_last_run() would encode, as bytes."""
        ...

    def refresh_jobs_list(self, view: JobsListView) -> bytes:
        """The same bytes as jobs_list_json(), with `view` brought up to date: only the jobs
        that changed since the view's last refresh are read, whoever changed them (this
        process, another one, another node, rows written by hand). Nothing changed: the
        view's body as it is."""
        ...

    def get_job_row(self, job_id: str) -> dict[str, Any] | None: ...

    def set_enabled(self, job_id: str, enabled: bool, now: str) -> bool: ...

    def enabled_schedules(self) -> list[ScheduleEntry]: ...

    def schedule_fingerprint(self) -> tuple[int, str]:
        """Changes whenever the set of enabled jobs or one of them changes (every write
        through the store bumps updated_at), at the cost of one aggregate query."""
        ...

    def count_jobs(self) -> int: ...

    def page_jobs(
        self, search: str | None, status: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """One page of jobs by id, and how many match in all: for the dashboard, paged in
        the database so 10,000 jobs cost one page's work. `search` matches a substring of the
        id or the name, or a whole tag (case-insensitive); `status` is a `JobState` but
        `late` (which needs the schedule): disabled, else running, failing (last run error,
        timeout or cancelled), ok, or new (never ran). Each row: id, name, schedule, timezone,
        enabled, tags (a list), source, created_at, last_status, last_run, last_duration_ms."""
        ...


class RunStore(Protocol):
    def create_run(
        self,
        job_id: str,
        trigger: RunTrigger,
        status: RunStatus,
        at: str,
        *,
        scheduled_for: str | None = None,
        attempt: int = 1,
        retry_of: int | None = None,
    ) -> int:
        """A new run row. `pending` rows are made ahead of the fire so the child can be
        given its JR_RUN_ID without a database write on the critical path."""
        ...

    def create_pending_runs(
        self,
        job_ids: list[str],
        trigger: RunTrigger,
        at: str,
        *,
        scheduled_for: str | None = None,
        marked: Collection[str] = (),
    ) -> list[int | None]:
        """Pending rows for several jobs in one commit (a fire of many jobs at one instant).
        With `scheduled_for`, the rows stand for that instant (one row per job and instant:
        a job whose instant already has its row, because someone else fired it, gets None
        and no row), and the jobs in `marked` have that instant stored as their last fired
        one, in the same commit (a mark only moves forward)."""
        ...

    def fire_marks(self) -> dict[str, str]:
        """Each job's last scheduled instant that was fired or recorded missed: what a start
        compares with to find the fires it missed. A disabled job has none."""
        ...

    def record_missed(self, gaps: Sequence[MissedFires], at: str) -> list[int | None]:
        """One `missed` row per gap (started_at its first instant, finished_at `at`), and
        each job's last fired instant moved to the gap's last, in one commit. None for a
        job that no longer exists."""
        ...

    def pending_retries(self) -> list[PendingRetry]:
        """Every retry waiting for its time (`pending`, trigger `retry`), earliest first."""
        ...

    def mark_running(
        self,
        started: list[tuple[int, str, str]],
        processes: Sequence[tuple[int, int, int, int | None]] = (),
    ) -> None:
        """(run id, job id, started_at) for runs whose children have started, and (run id,
        pid, pgid, process start ticks) of their processes (as `set_process`); one commit."""
        ...

    def discard_pending(self, run_id: int) -> None:
        """Drop a row made ahead of a fire that, in the end, did not run."""
        ...

    def finish_run(
        self,
        run_id: int,
        result: RunResult,
        finished_at: str,
        started: tuple[str, str] | None = None,
        log: RunLogWrite | None = None,
        retry: tuple[str, int, int] | None = None,
    ) -> int | None:
        """Record a run's end. `started` (job id, started_at) also marks it as having run,
        in the same commit, for a run that ended before its `running` mark was written;
        `log` is the rest of its log, written in that commit too. `retry` (due instant,
        attempt, first run's id) adds the run's retry as a `pending` row with that
        `scheduled_for`, in the same commit, and returns its id (else None)."""
        ...

    def record_skip(
        self,
        job_id: str,
        at: str,
        reason: str,
        trigger: RunTrigger,
        into: int | None,
        count: int = 1,
    ) -> int:
        """Record `count` fires skipped (the overlap policy, or a fire held up by the
        database past the job's next fire), the last at `at`. Skips during one in-flight
        run collapse into the row `into` (returned by the first skip), which counts them."""
        ...

    def list_runs(
        self,
        job_id: str,
        limit: int,
        *,
        statuses: Collection[RunStatus] = (),
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """A job's runs, newest first: only those in `statuses` (any when empty), only those
        with an id below `before` (the next page)."""
        ...

    def list_runs_json(
        self,
        job_id: str,
        limit: int,
        *,
        statuses: Collection[RunStatus] = (),
        before: int | None = None,
    ) -> bytes:
        """`{"runs": [...]}` of list_runs() as GET /jobs/:id/runs answers it, as bytes: the
        same runs and fields in the same order, output not yet written ('' for NULL) as
        empty text."""
        ...

    def refresh_runs_list(self, view: RunsListView, job_id: str, limit: int) -> bytes:
        """What `list_runs_json(job_id, limit)` answers (no filter, no `before`; `limit` at
        most `view.depth`), through `view`: a backend with a change log of runs reads only
        what changed since the view's last call (and the job's page when the view does not
        hold it); one without may read the page every time. `view` is used by one caller at
        a time."""
        ...

    def list_all_runs(
        self,
        limit: int,
        *,
        statuses: Collection[RunStatus] = (),
        since: str | None = None,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """Runs of every job, newest first, filtered as list_runs() does; with `since`, only
        runs that started (or, pending, were due) at or after that instant."""
        ...

    def get_run(self, run_id: int) -> dict[str, Any] | None: ...

    def tries_of(self, job_id: str, first_id: int, limit: int) -> list[dict[str, Any]]:
        """The tries of one first run of `job_id`: that run and the runs whose `retry_of` is
        its id, by id, at most `limit`; each {"id", "attempt", "status"} (the run page's
        links between tries)."""
        ...

    def recent_runs(self, job_ids: list[str], per_job: int) -> dict[str, list[tuple[str, int]]]:
        """For each job, its latest `per_job` finished runs (skipped and missed rows
        excluded) as (status, duration_ms), oldest first: the dashboard's sparklines and
        success rates."""
        ...

    def page_runs(
        self, job_id: str, statuses: list[str], before: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """A job's runs newest first, only those with one of `statuses` (all when empty),
        with an id below `before` when given; the fields of list_runs without the output."""
        ...

    def count_unfinished(self, job_id: str) -> int:
        """Runs of the job that are `pending` or `running` (in flight, or left open by a
        runner that stopped)."""
        ...

    def close_orphaned_runs(self, at: str, message: str, never_started: str | None = None) -> int:
        """Close runs a stopped runner left open: `running` ones with `message`, `pending`
        ones (which never started) with `never_started` (default: `message`). A retry
        waiting for its time is left alone: the next start runs it."""
        ...

    def set_process(self, run_id: int, pid: int, pgid: int, process_started: int | None) -> None:
        """Record the process a run started: its PID, its process group and its start time
        (clock ticks since boot; None where the system does not tell)."""
        ...

    def open_runs(self) -> list[OpenRun]:
        """Every run still `pending` or `running`, oldest first, with its recorded process."""
        ...

    def close_run(self, run_id: int, at: str, error: str) -> bool:
        """Close one open run as `error` with `error` as its message. False when the run is
        unknown or no longer open (someone else closed it first)."""
        ...

    def finished_since(self, since: str) -> dict[str, int]: ...

    def prune_runs(self, before: str, batch: int = 5000) -> int:
        """Delete finished runs older than `before`, in batches so a large prune does not
        hold the write lock for long. Never deletes a running run."""
        ...


class RunLogStore(Protocol):
    """Each run's full log: chunks of lines (`models.LogChunk`) in `seq` order, deleted with
    their run. Writes come in flushes that cover every run with new output: one commit."""

    def write_logs(self, writes: Sequence[RunLogWrite]) -> None:
        """Every run's new chunks, deletions and tails of one flush: one commit."""
        ...

    def read_log(
        self,
        run_id: int,
        *,
        streams: Collection[LogStream] | None = None,
        after_seq: int = -1,
        before_seq: int | None = None,
    ) -> list[LogChunk]:
        """A run's chunks in order, of the given streams (all when None), with
        after_seq < seq < before_seq."""
        ...

    def read_log_tail(
        self, run_id: int, lines: int, *, streams: Collection[LogStream] | None = None
    ) -> list[LogChunk]:
        """The newest chunks that hold at least `lines` lines (every chunk when the log has
        fewer), in order. The caller keeps the last `lines` of them."""
        ...


class StateStore(Protocol):
    """Domain verbs over `state` and `state_items`. Every call takes `now` as an instant
    string (`format_instant`), so expiry is decided by the caller's clock."""

    def get(self, namespace: str, key: str, now: str) -> str | None: ...

    def get_entry(self, namespace: str, key: str, now: str) -> StateEntry | None: ...

    def set(
        self, namespace: str, key: str, value: str | None, expires_at: str | None, now: str
    ) -> None:
        """Replace the value and its expiry (None = never expires)."""
        ...

    def delete(self, namespace: str, key: str, now: str) -> bool:
        """Delete the key and its items. True when a live value was there."""
        ...

    def has_item(self, namespace: str, key: str, item_key: str, now: str) -> bool: ...

    def get_item(self, namespace: str, key: str, item_key: str, now: str) -> str | None: ...

    def set_item(
        self, namespace: str, key: str, item_key: str, value: str | None, now: str
    ) -> None:
        """Create or replace an item; creates the parent key (value NULL, no expiry) when it is
        missing or expired."""
        ...

    def delete_item(self, namespace: str, key: str, item_key: str, now: str) -> bool:
        """True when a visible item was deleted."""
        ...

    def count_items(self, namespace: str, key: str, now: str) -> int: ...

    def list_item_keys(
        self, namespace: str, key: str, now: str, limit: int | None, descending: bool
    ) -> list[str]:
        """Item keys by last write, newest first when `descending`."""
        ...

    def prune_items(self, namespace: str, key: str, keep: int, now: str) -> int:
        """Keep the `keep` most recently written items, delete the rest; returns how many were
        deleted. Items under an expired key are already missing, so nothing is counted."""
        ...

    def namespaces(self, now: str) -> list[dict[str, Any]]:
        """Namespaces that hold at least one live key, with how many."""
        ...

    def count_keys(self, namespace: str, now: str) -> int: ...

    def list_keys(self, namespace: str, now: str, limit: int) -> list[dict[str, Any]]:
        """Live keys of a namespace in key order, each with its value and item count."""
        ...

    def list_items(self, namespace: str, key: str, now: str, limit: int) -> list[dict[str, Any]]:
        """Items under a live key, most recently written first."""
        ...

    def delete_expired(self, now: str, batch: int = 5000) -> ExpiredState:
        """Delete keys whose expiry has passed, with their items, in batches so a large sweep
        does not hold the write lock for long."""
        ...


class QueueStore(Protocol):
    """Domain verbs over `queues` and `queue_items`. `now` is always an instant string
    (`format_instant`) from the caller's clock."""

    def add_queue(
        self, definition: QueueDefinition, now: str, *, replace: bool = False
    ) -> QueueDefinition:
        """Store a definition. An existing queue raises QueueExistsError unless `replace`,
        which changes its settings in place (items and created_at are kept)."""
        ...

    def get_queue(self, queue_id: str) -> QueueDefinition | None: ...

    def list_queues(self) -> list[QueueDefinition]: ...

    def list_queues_with_counts(self) -> list[dict[str, Any]]:
        """Every definition with its pending, processing and failed counts."""
        ...

    def pending_summary(self) -> list[tuple[str, int, str | None]]:
        """For each defined queue: (id, pending items, created_at of the oldest pending
        item or None), by id. What /metrics shows as depth and age."""
        ...

    def enqueue(
        self,
        queue_id: str,
        payload_json: str,
        priority: int,
        max_attempts: int | None,
        now: str,
    ) -> int:
        """Add an item; returns its id, or -1 when the queue's dedup expression finds a
        duplicate in its scope. A queue without a definition gets the default one (as the
        original runner did), named after its id."""
        ...

    def claim(self, queue_id: str, count: int, now: str) -> list[QueueItem]:
        """Move up to `count` pending items to `processing` under a lease and return them,
        highest priority first, then oldest. One write transaction: atomic across processes."""
        ...

    def done(self, item_id: int, now: str, attempt: int | None = None) -> bool:
        """Mark a claimed item done. False when it is unknown or not `processing`, or, with
        `attempt`, when it is claimed under another attempt (someone else's claim now)."""
        ...

    def fail(
        self, item_id: int, error: str | None, now: str, attempt: int | None = None
    ) -> ItemStatus | None:
        """Give a claimed item back: `pending` while it has attempts left, else `failed`.
        None when it is unknown or not `processing` (under `attempt`, if given)."""
        ...

    def get_item(self, item_id: int) -> dict[str, Any] | None: ...

    def failed_items(self, queue_id: str, limit: int) -> list[dict[str, Any]]:
        """The latest failed items, newest first: id, payload (text), attempts, error,
        finished_at."""
        ...

    def peek(self, queue_id: str, limit: int) -> list[QueueItem]:
        """The next pending items in claim order, without claiming them."""
        ...

    def queue_status(self, queue_id: str, now: str) -> dict[str, Any] | None:
        """depth (pending), claimedCount (processing), failedCount, and oldestAge: how long
        the oldest pending item has waited, in ms (None when nothing is pending)."""
        ...

    def expire_leases(self, now: str) -> LeaseSweep:
        """Return every item whose lease has run out: to `pending` while it has attempts
        left, else to `failed`. Also starts a lease on items claimed without one."""
        ...

    def prune_finished(self, now: str, batch: int = 5000) -> int:
        """Delete done and failed items finished longer ago than their queue's retention, in
        batches so a large prune does not hold the write lock for long."""
        ...


class TokenStore(Protocol):
    """API access tokens. Only a hash of each secret is kept; the secret is shown once."""

    def create_token(self, token: StoredToken) -> None:
        """Raises `access_model.TokenExistsError` when the name is taken."""
        ...

    def list_tokens(self) -> list[StoredToken]:
        """Every token, by name."""
        ...

    def get_token(self, name: str) -> StoredToken | None: ...

    def revoke_token(self, name: str) -> bool:
        """False when no token has that name."""
        ...

    def count_tokens(self) -> int: ...


class AuditStore(Protocol):
    """Who changed what, when and from where."""

    def record(self, entry: AuditEntry) -> int:
        """Append one entry in its own commit; returns its id."""
        ...

    def list_entries(self, limit: int, since: str | None = None) -> list[dict[str, Any]]:
        """Newest first, at most `limit`, at or after `since` when given: each with id, at,
        actor, address, action, target, before and after (objects or null)."""
        ...

    def prune(self, before: str, batch: int = 5000) -> int:
        """Delete entries older than `before`, in batches; returns how many."""
        ...


class NotifyStateStore(Protocol):
    """Each job's streak of consecutive failures, for alerts on change (`notify: change`).
    Kept in the database so a restarted runner neither repeats a failure alert nor misses a
    recovery; deleted with its job."""

    def record_outcome(self, job_id: str, status: RunStatus, at: str) -> NotifyStreak | None:
        """Count a finished run into its job's streak and return the streak as it was before
        it (failures 0, last_status None for a job's first), in one atomic step: two
        processes recording at once each see the other's. `error` and `timeout` add one
        failure, `ok` sets the count back to 0; any other status changes nothing. None when
        there is no such job (deleted a moment ago): nothing is stored."""
        ...

    def get_streak(self, job_id: str) -> NotifyStreak | None:
        """The job's streak; None when none of its runs was recorded yet."""
        ...


class Store(Protocol):
    """One database: jobs, runs, state and queues."""

    @property
    def jobs(self) -> JobStore: ...

    @property
    def runs(self) -> RunStore: ...

    @property
    def logs(self) -> RunLogStore: ...

    @property
    def state(self) -> StateStore: ...

    @property
    def queues(self) -> QueueStore: ...

    @property
    def tokens(self) -> TokenStore: ...

    @property
    def audit(self) -> AuditStore: ...

    @property
    def notify_state(self) -> NotifyStateStore: ...

    @property
    def location(self) -> str:
        """Where the data lives, for messages (a file path; a URL without its password)."""
        ...

    def data_version(self) -> int:
        """Moves when any connection (this process's other threads, another process) commits
        a change; only equality means anything."""
        ...

    def write_probe(self) -> None:
        """A write that changes no data, to learn whether the database takes writes again
        (after a full disk, a lock): raises as a real write would."""
        ...

    def integrity_problem(self) -> str | None:
        """None when a quick integrity check passes, else one sentence naming the problem."""
        ...

    def translate_error(self, exc: Exception) -> Exception:
        """A database error as a `StoreError` with one sentence (`DatabaseBusyError` for a
        lock held too long, `DatabaseUnavailableError` for a full disk or a damaged file);
        any other exception is returned as it is."""
        ...

    def close(self) -> None: ...


class ClusterStore(Protocol):
    """What cluster mode asks of the database (README, "Cluster mode"): nodes and their
    heartbeats, the leader's plan, and the pool of due runs nodes claim. PostgreSQL only:
    the SQLite store has no `cluster` (one file has one runner), and the contract tests of
    these verbs run on PostgreSQL (`tests/store/postgres/test_postgres_cluster.py`)."""

    def beat(self, beat: NodeBeat) -> bool:
        """Record a node's heartbeat (a new node, or one starting again, is added) and adopt
        its in-flight runs that have no node yet. True when a peer had declared this very
        start of the node lost (its runs closed, its claims given back to the pool)."""
        ...

    def leave(self, node_id: str, at: str, reason: str) -> None:
        """A node stopped cleanly: no longer leader, `stopped_at` set."""
        ...

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every node known, by id: id, host, labels (a list), leader (bool: led at its last
        heartbeat), heartbeat_ms, started_at, last_heartbeat, stopped_at, stop_reason and
        running (its `running` runs now)."""
        ...

    def sweep_lost(self, now: str) -> list[LostNode]:
        """Nodes not stopped whose last heartbeat is older than LOST_AFTER_HEARTBEATS of
        their heartbeats at `now`: their `running` runs are closed as `error` ("Node x
        stopped during this run"), their claimed runs not yet started (their retries
        waiting for their time too) go back to the pool, and the node is marked stopped.
        Two sweepers never handle one node twice. Claims still held by a node already
        stopped or lost go back to the pool as well (none is ever stranded)."""
        ...

    def close_unowned(self, now: str, before: str) -> int:
        """Open manual runs no node adopted (their node died within a heartbeat of starting
        them) that started before `before`: closed as `error`."""
        ...

    def close_node_runs(
        self, node_id: str, at: str, during: str, before: str, *, keep_retries: bool = False
    ) -> int:
        """Close the node's own open runs (a start after a crash, the end of a stop):
        `running` ones with `during`; scheduled runs it claimed and never started go back
        to the pool; its other `pending` ones (manual) are closed with `before`. Its retries
        waiting for their time go back to the pool too, or with `keep_retries` (a start:
        the node takes them up itself, `node_retries`) stay its own. Answers how many it
        closed."""
        ...

    def node_retries(self, node_id: str) -> list[PendingRetry]:
        """The node's retries waiting for their time (`pending`, trigger `retry`, its node
        id), earliest due first."""
        ...

    def start_runs(self, node_id: str, run_ids: Collection[int], at: str) -> set[int]:
        """Mark runs `running` (started_at `at`, node_id this node) BEFORE their children
        start; answers the ids the node may start. Only a run still `pending` and still the
        node's (or a manual run of its own, with no node yet) is marked: a claim a peer
        gave back to the pool, or closed, is refused, so a run is started at most once
        across the cluster. A run this node already marked is answered again."""
        ...

    def depose_stale_leader(self, now: str, idle_s: float) -> int | None:
        """End the session holding the leader lock when its leader is gone without it
        (frozen, cut off): that session ran nothing for `idle_s` seconds and no node that
        is up wrote a heartbeat as leader within 3 of its heartbeats at `now`. Answers the
        backend pid ended, None when the leader is alive (or there is none)."""
        ...

    def node_open_runs(self, node_id: str) -> list[OpenRun]:
        """The node's runs still `pending` or `running`, with their recorded processes."""
        ...

    def plan_state(self) -> dict[str, str]:
        """Job id -> the last scheduled instant planned for it (jobs never planned, or
        disabled since, are absent)."""
        ...

    def write_plans(self, plans: Sequence[JobPlan], at: str) -> PlanOutcome:
        """Write the leader's plans in one transaction: per job, a compare-and-set of its
        planned_through (refused when another leader moved it), its due runs as `pending`
        with `scheduled_for` (an instant that already has its row is left alone), and a
        `missed` row for a gap. Wakes every node (NOTIFY) when a run was added."""
        ...

    def claim_runs(
        self, node_id: str, labels: Collection[str], due_before: str, limit: int
    ) -> list[ClaimedRun]:
        """Take up to `limit` runs of the pool for this node (oldest due first): scheduled
        ones due at or before `due_before` and manual ones sent to the pool, of jobs whose
        `run_on` labels all are in `labels`. `FOR UPDATE SKIP LOCKED`: two nodes never
        take one run."""
        ...

    def confirm_claims(self, node_id: str, run_ids: Collection[int]) -> set[int]:
        """Which of these runs are still this node's to start (`pending`, its node id)."""
        ...

    def unclaim(self, node_id: str, run_ids: Collection[int]) -> int:
        """Claimed runs the node will not start (it is stopping, or its start of them
        failed on the way): back to the pool, `pending` again, those it had marked
        `running` just before their instant too (the caller knows none of them started)."""
        ...

    def drop_claims(self, node_id: str, run_ids: Collection[int]) -> int:
        """Claimed runs that are no fire any more (their job was disabled before their
        instant) are deleted: only those still `pending` and still this node's (a claim a
        peer gave to another node meanwhile is that node's to decide). Answers how many."""
        ...

    def skip_claimed(self, run_id: int, at: str, reason: str, node_id: str) -> bool:
        """A claimed run of this node the overlap policy skips becomes `skipped` in place
        (its instant keeps its one row); a run no longer the node's is left alone."""
        ...

    def cancel_claimed(self, run_id: int, at: str, reason: str, node_id: str) -> bool:
        """A claimed run of this node cancelled before its child started (it waited for its
        instant, a slot or its turn) becomes `cancelled` in place, finished at `at` with
        `reason` as its error. Only a run still open and still the node's (`pending`, or
        marked `running` by it just before its instant) changes, or a manual run no node
        has adopted yet (start_runs lets it through too; it is recorded as this node's): a
        claim a peer gave to another node while this one looked dead (a freeze) is that
        node's to run and record, and is left alone. False when nothing changed."""
        ...

    def expire_pool(self, before: str, at: str, reason: str) -> int:
        """Scheduled runs still unclaimed whose instant is older than `before` (no node
        that may run them was free): recorded as `missed` with `reason`."""
        ...

    def request_run(self, job_id: str, at: str) -> int:
        """A manual run for another node (the job's run_on excludes the receiving one):
        `pending` in the pool, and every node woken."""
        ...


class ClusteredStore(Store, Protocol):
    """A store that can back cluster mode (PostgreSQL)."""

    @property
    def cluster(self) -> ClusterStore: ...


class ClusterLink(Protocol):
    """A node's own connections, outside the pool: the leader lock (held by a session, so
    leadership ends when the session does, a node killed with -9 included) and LISTEN."""

    # How many times this link has taken the lock: a leader that lost it and took it again
    # between two looks (its session ended meanwhile) sees a new term, and takes over
    # afresh from what the database holds.
    term: int

    def try_lead(self) -> bool:
        """Take the leader lock if free; True while this node holds it (a lost session
        answers False: leadership ended with it). Blocks."""
        ...

    def still_leads(self) -> bool:
        """True while the lock this node took is still held by its session (never takes
        the lock: a node that lost it must take over afresh). Blocks."""
        ...

    def resign(self) -> None:
        """Let the lock go (a stop): another node can lead at once."""
        ...

    def wait_notice(self, timeout_s: float) -> set[str]:
        """Block until a cluster notification arrives or `timeout_s` passes; the payloads
        ("runs", "jobs") seen. Reconnects (and answers at once) after a lost connection."""
        ...

    def close(self) -> None: ...
