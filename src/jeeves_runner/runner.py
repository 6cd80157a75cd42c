"""Composition root: builds the store, scheduler, executor, notifier, API; owns start, stop
and signals. Tests build the same graph with a temp database (and a fake clock where time
logic is under test)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import signal
import socket
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any, cast

import structlog

from jeeves_runner import audit
from jeeves_runner.clock import Clock, SystemClock
from jeeves_runner.config import Config, ConfigError, load_config
from jeeves_runner.control import ShuttingDownError
from jeeves_runner.execution.dispatch import RunDispatcher
from jeeves_runner.execution.executor import KILL_GRACE_S, ProcessExecutor
from jeeves_runner.execution.orphans import kill_orphan_groups
from jeeves_runner.execution.result_journal import ResultJournal
from jeeves_runner.execution.run_log import LogSubscription
from jeeves_runner.execution.sessions import SessionRunner
from jeeves_runner.files import private_folder
from jeeves_runner.job_changes import JobChanges
from jeeves_runner.jobs.folder_sync import JobFolderSync
from jeeves_runner.logs import set_log_level
from jeeves_runner.maintenance import Maintenance, MaintenanceReport
from jeeves_runner.models import (
    STOPPED_BEFORE_RUN,
    STOPPED_DURING_RUN,
    Job,
    RunResult,
    format_instant,
)
from jeeves_runner.notify.alerts import Notifier
from jeeves_runner.process_limits import raise_fd_limit
from jeeves_runner.scheduling.cluster import ClusterNode, NodeIdentity
from jeeves_runner.scheduling.cron import resolve_zone
from jeeves_runner.scheduling.fire_schedule import FirePlan
from jeeves_runner.scheduling.loop import Scheduler, describe_zone
from jeeves_runner.scheduling.schedule_watch import ScheduleWatch
from jeeves_runner.store import StoreError
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.opening import open_store, runner_lock
from jeeves_runner.store.protocols import ClusteredStore, Store
from jeeves_runner.token_files import warn_readable_token_files

log = structlog.get_logger("jeeves_runner.runner")


@dataclass
class Runner:
    """Implements `control.RunnerControl` for the HTTP API."""

    config: Config
    clock: Clock = field(default_factory=SystemClock)
    serve_api: bool = True
    config_path: str | None = None  # read again on SIGHUP

    def __post_init__(self) -> None:
        # Cluster nodes share the runner lock: a single runner (cluster mode off) on the
        # same schema refuses to start beside them, and they beside it.
        self._lock = runner_lock(self.config.db_location, shared=self.config.cluster.enabled)
        self.cluster: ClusterNode | None = None
        self._store: Store | None = None
        self._gateway: StoreGateway | None = None
        self._started_mono = self.clock.monotonic()
        self._stopping = asyncio.Event()
        self._stopped = False
        self._stop_now = False
        self._now_signal = 0
        self._background: set[asyncio.Task[None]] = set()
        self._maintenance_task: asyncio.Task[None] | None = None
        self._lock_task: asyncio.Task[None] | None = None
        self._lost_lock = False
        self.api_server: object | None = None
        self._journal: ResultJournal | None = None

    # ---- RunnerControl ------------------------------------------------------------------

    @property
    def store(self) -> StoreGateway:
        assert self._gateway is not None, "runner not started"
        return self._gateway

    @property
    def sync_store(self) -> Store:
        """The store itself, for code off the loop (tests, benchmarks). Blocks."""
        assert self._store is not None, "runner not started"
        return self._store

    @property
    def failed_registrations(self) -> int:
        return len(self.scheduler.failed_registrations)

    @property
    def running_count(self) -> int:
        return self.dispatcher.executing

    def data_version(self, store: Store) -> Hashable:
        # Our own changes count in the dispatcher (some are not written yet); every commit,
        # ours or another process's (`add-job`, job scripts), shows in the store's
        # data_version. Equal only when neither moved. (An int read from another thread.)
        return (self.dispatcher.data_version, store.data_version())

    def uptime_seconds(self) -> float:
        return round(self.clock.monotonic() - self._started_mono, 3)

    def fire_plan(self) -> FirePlan:
        return self.scheduler.fires.plan()

    async def trigger(
        self, job_id: str, *, on_started: Callable[[int], None] | None = None
    ) -> RunResult:
        job = await self._job_for_elsewhere(job_id)
        if job is not None:
            assert self.cluster is not None
            run_id = await self.cluster.run_elsewhere(job)
            if on_started is not None:
                on_started(run_id)
            return await self.cluster.wait_result(run_id)
        return await self.dispatcher.trigger(job_id, on_started=on_started)

    async def start_run(self, job_id: str) -> int:
        job = await self._job_for_elsewhere(job_id)
        if job is not None:
            assert self.cluster is not None
            return await self.cluster.run_elsewhere(job)
        return await self.dispatcher.start_run(job_id)

    async def _job_for_elsewhere(self, job_id: str) -> Job | None:
        """In cluster mode, a job whose run_on this node does not satisfy: its manual run
        goes to the pool for a node that may run it. None: run it here."""
        cluster = self.cluster
        if cluster is None:
            return None
        if not self.dispatcher.accepting:
            raise ShuttingDownError()
        job = await self.store.read(lambda s: s.jobs.get_job(job_id))
        if job is None or cluster.identity.may_run(job):
            return None  # unknown: the dispatcher answers "not found"
        return job

    async def cluster_view(self) -> dict[str, Any]:
        cluster = self.cluster
        if cluster is None:
            return {"enabled": False, "node_id": None, "nodes": []}
        nodes = await self.store.read(lambda s: cast(ClusteredStore, s).cluster.list_nodes())
        for node in nodes:
            reason = node["stop_reason"] or ""
            if node["stopped_at"] is None:
                node["state"] = "up"
            else:
                node["state"] = "lost" if reason.startswith("lost") else "stopped"
                node["leader"] = False
        return {"enabled": True, "node_id": cluster.identity.node_id, "nodes": nodes}

    async def cancel_run(self, run_id: int, reason: str) -> bool:
        return await self.dispatcher.cancel_run(run_id, reason)

    def subscribe_log(self, run_id: int) -> LogSubscription | None:
        return self.dispatcher.subscribe_log(run_id)

    async def set_enabled(self, job_id: str, enabled: bool) -> bool:
        at = format_instant(self.clock.now())
        found = await self.store.write(lambda s: s.jobs.set_enabled(job_id, enabled, at))
        if found:
            await self.scheduler.refresh_job(job_id)
            self.dispatcher.jobs_changed()
        return found

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set() or self._stopped

    def database_problem(self) -> str | None:
        gateway = self._gateway
        return gateway.problem() if gateway is not None else None

    async def create_job(self, job: Job) -> dict[str, Any]:
        return await self.job_changes.add_job(job)

    async def replace_job(self, job: Job) -> dict[str, Any] | None:
        return await self.job_changes.update_job(job)

    async def delete_job(self, job_id: str, *, force: bool) -> bool:
        return await self.job_changes.delete_job(job_id, force=force)

    # ---- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Everything up to serving: lock, database, orphaned runs, maintenance, schedule,
        API. Raises (DatabaseInUseError, StoreError, OSError for the port) before firing
        anything if the runner cannot run."""
        config = self.config
        raise_fd_limit()
        self._lock.acquire()
        try:
            self._store = open_store(config.db_location)
            problem = self._store.integrity_problem()
            if problem is not None:
                raise StoreError(problem)
            self._gateway = StoreGateway(self._store)
            private_folder(Path(config.journal_path).parent)
            journal = self._journal = ResultJournal(config.journal_path)
            replayed = await self._gateway.write(journal.replay)
            if replayed:
                log.warning("results kept at the last stop written", count=replayed)
            # Groups a killed runner left alive are ended before anything new starts. A
            # cluster node ends and closes only its own: the other runs belong to live peers.
            node_id = self._node_id()
            open_runs = await self._gateway.read(
                lambda s: (
                    s.runs.open_runs()
                    if node_id is None
                    else cast(ClusteredStore, s).cluster.node_open_runs(node_id)
                )
            )
            ended = await kill_orphan_groups(open_runs, KILL_GRACE_S)
            if ended:
                at = format_instant(self.clock.now())
                await self._gateway.write(lambda s: _close_runs(s, ended, at))
                log.warning("ended process groups a stopped runner left", runs=sorted(ended))
            at = format_instant(self.clock.now())
            # A node's retries stay its own: the cluster node takes them up once it has
            # written its first heartbeat (ClusterNode.start).
            closed = await self._gateway.write(
                lambda s: _close_open_runs(s, node_id, at, keep_retries=True)
            )
            if closed:
                log.warning("closed runs left open by a stopped runner", count=closed)
            zone = resolve_zone(config.timezone)
            self.notifier = Notifier(config.notifications, store=self._gateway, clock=self.clock)
            self.notifier.warn_if_token_missing()
            warn_readable_token_files(config)
            self.sessions = SessionRunner(config.gateway, self.clock)
            self.dispatcher = RunDispatcher(
                store=self._gateway,
                journal=journal,
                executor=ProcessExecutor(
                    db_path=config.db_path,
                    db_url=config.db_url,
                    clock=self.clock,
                    secret_env=config.secret_env,
                ),
                sessions=self.sessions,
                notifier=self.notifier,
                clock=self.clock,
                max_concurrency=config.max_concurrency,
                run_log_max_bytes=config.run_log_max_bytes,
            )
            self.scheduler = Scheduler(
                store=self._gateway,
                dispatcher=self.dispatcher,
                clock=self.clock,
                zone=zone,
                reconcile_interval_s=config.reconcile_interval_ms / 1000,
            )
            self.job_changes = JobChanges(
                gateway=self._gateway,
                scheduler=self.scheduler,
                dispatcher=self.dispatcher,
                clock=self.clock,
            )
            # SQLite keeps `-wal` beside the real file; PostgreSQL has no file to look at.
            db_file = Path(config.db_path).resolve()
            self.schedule_watch = ScheduleWatch(
                self.scheduler,
                self._gateway,
                files=(
                    [db_file, db_file.with_name(db_file.name + "-wal")]
                    if config.db_url is None
                    else []
                ),
            )
            self.job_folder = (
                JobFolderSync(
                    folder=Path(config.jobs_dir),
                    prune=config.jobs_prune,
                    gateway=self._gateway,
                    scheduler=self.scheduler,
                    clock=self.clock,
                    webhook_names=lambda: self.config.notifications.webhook_names,
                )
                if config.jobs_dir is not None
                else None
            )
            if self.job_folder is not None:
                self.job_folder.apply_at_start(self._store)
            self.dispatcher.metrics.watch(
                self.dispatcher, self.scheduler, self._gateway, self.notifier
            )
            self.maintenance = Maintenance(
                self._store, self.clock, config.run_retention_days, config.audit_retention_days
            )
            await self._run_maintenance()  # the dispatcher exists: a prune marks caches stale
            await self.scheduler.reconcile()
            total = len(self.scheduler.fires) + self.failed_registrations
            log.info(
                "jobs scheduled",
                scheduled=len(self.scheduler.fires),
                failed=self.failed_registrations,
                timezone=describe_zone(zone),
            )
            if self.failed_registrations:
                failed = [(j, f.reason) for j, f in self.scheduler.failed_registrations.items()]
                # Sent in the background: Slack being slow must not delay the first fires.
                self.notifier.notify_registration_failures_later(total, failed)
            if config.cluster.enabled:
                self.cluster = self._make_cluster_node(zone)
            if self.serve_api:
                await self._start_api()
            if self.cluster is not None:
                # The cluster plans and claims fires; the scheduler's heap (kept fresh by the
                # schedule watch) only answers "next run" for the API.
                await self.cluster.start()
            else:
                # Before the first fire moves any job's last fired instant: what was missed
                # while the runner was stopped is recorded and caught up in the background.
                # Retries a stopped runner left waiting hold their jobs in flight from the
                # first fire on.
                retries = await self._gateway.read(lambda s: s.runs.pending_retries())
                await self.dispatcher.resume_retries(retries)
                await self.scheduler.catch_up_at_start()
                self.scheduler.start()
            self.schedule_watch.start()
            if self.job_folder is not None:
                self.job_folder.start()
            # Everything built so far lives as long as the process: move it out of the
            # collector's reach, so a full collection does not pause the loop for tens of
            # ms (measured 35 ms with 100,000 jobs) at some later fire.
            gc.collect()
            gc.freeze()
            self._maintenance_task = asyncio.ensure_future(self._maintenance_loop())
            if self._lock.watch_interval_s is not None:
                self._lock_task = asyncio.ensure_future(
                    self._watch_lock(self._lock.watch_interval_s)
                )
        except BaseException:
            await self._close_resources()
            raise
        log.info("runner started", db=self._store.location, host=config.host, port=self.port)

    def _node_id(self) -> str | None:
        """This node's id in cluster mode (config, else "<host name>-<port>"); else None."""
        cluster = self.config.cluster
        if not cluster.enabled:
            return None
        if cluster.node_id is not None:
            return cluster.node_id
        host = re.sub(r"[^A-Za-z0-9_.:-]", "-", socket.gethostname()).strip("-.") or "node"
        return f"{host[:50]}-{self.config.port}"

    def _make_cluster_node(self, zone: tzinfo) -> ClusterNode:
        from jeeves_runner.store.opening import open_cluster_link

        node_id = self._node_id()
        assert node_id is not None and self.config.db_url is not None
        cluster = self.config.cluster
        labels = tuple(dict.fromkeys([*cluster.labels, node_id]))
        return ClusterNode(
            store=cast(ClusteredStore, self._store),
            link=open_cluster_link(self.config.db_url, node_id),
            dispatcher=self.dispatcher,
            clock=self.clock,
            zone=zone,
            identity=NodeIdentity(
                node_id=node_id,
                host=socket.gethostname(),
                labels=labels,
                heartbeat_s=cluster.heartbeat_ms / 1000,
            ),
        )

    async def _start_api(self) -> None:
        from jeeves_runner.api.app import create_app
        from jeeves_runner.api.server import ApiServer
        from jeeves_runner.auth import TokenGuard

        guard = await TokenGuard.start(self.store, self.config.host)  # InsecureBindError
        app = create_app(
            self,
            clock=self.clock,
            zone=self.scheduler.fires.zone,
            guard=guard,
            metrics=self.dispatcher.metrics,
            webhook_names=lambda: self.config.notifications.webhook_names,  # after a SIGHUP too
        )
        server = ApiServer(app, self.config.host, self.config.port)
        await server.start()
        self.api_server = server

    @property
    def port(self) -> int | None:
        server = self.api_server
        return int(server.port) if server is not None else None  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop firing, refuse manual runs, give in-flight runs shutdownGraceMs, then end
        what is left and record it."""
        if self._stopped:
            return
        self._stopped = True
        log.info("runner stopping", running=self.dispatcher.executing)
        # First: from now on no child starts, whatever the steps below wait for.
        self.dispatcher.accepting = False
        if self.cluster is not None:
            await self.cluster.stop()
        await self.schedule_watch.stop()
        if self.job_folder is not None:
            await self.job_folder.stop()
        await self.scheduler.stop()
        await self.dispatcher.shutdown(self.config.shutdown_grace_ms / 1000)
        await self._close_leftovers()
        await self._close_resources()
        log.info("runner stopped")

    async def _close_leftovers(self) -> None:
        """The last sweep: a row still `pending` or `running` now (a fire's row whose discard
        was refused, a write that landed after its task gave up) is closed, so a stop ends
        with none open. Results kept in the journal during this stop (the database refused
        them until the end, then took writes again) are written first, as the next start
        would: a run the journal holds is closed with its own result, never as "stopped".
        One try, and only while the database takes writes; else the next start does it."""
        if self._gateway is None or self._gateway.problem() is not None:
            return
        at = format_instant(self.clock.now())
        journal = self._journal
        node_id = self._node_id()

        def sweep(s: Store) -> tuple[int, int]:
            replayed = journal.replay(s) if journal is not None else 0
            return replayed, _close_open_runs(s, node_id, at)

        try:
            replayed, closed = await asyncio.wait_for(self._gateway.write(sweep), 2.0)
        except (StoreError, TimeoutError):
            return
        if replayed:
            log.info("results kept during the stop written after all", count=replayed)
        if closed:
            log.warning("closed runs still open at the end of the stop", count=closed)

    def stop_now(self) -> None:
        """The second stop signal: end every group now, record, exit."""
        self._stop_now = True
        self._stopping.set()
        dispatcher = getattr(self, "dispatcher", None)
        if dispatcher is not None:
            dispatcher.stop_now()
        server = self.api_server
        if server is not None:
            server.cut_drain()  # type: ignore[attr-defined]

    async def _close_resources(self) -> None:
        if self._lock_task is not None:
            self._lock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lock_task
        if self._maintenance_task is not None:
            self._maintenance_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance_task
        if self.api_server is not None:
            await self.api_server.stop()  # type: ignore[attr-defined]
            self.api_server = None
        notifier = getattr(self, "notifier", None)
        if notifier is not None:
            await notifier.drain(0.5 if self._stop_now else 5.0)
            await notifier.aclose()
        if self._gateway is not None:
            self._gateway.close()
            self._gateway = None
        elif self._store is not None:
            self._store.close()
        self._lock.release()

    async def run_until_signalled(self) -> int:
        """start(), then wait for SIGTERM/SIGINT and stop(). A second SIGTERM/SIGINT stops
        now (groups killed at once, every run recorded); the exit code is then 128 + the
        signal's number, as a shell reports a process killed by it. SIGHUP re-reads the
        config file and applies what can change while running."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_hangup)
        try:
            await self.start()
            try:
                await self._stopping.wait()
            finally:
                await self.stop()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        if self._lost_lock:
            return 1
        return 128 + self._now_signal if self._now_signal else 0

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if not self._stopping.is_set():
            log.info("stop signal: finishing runs in flight", signal=sig.name)
            self._stopping.set()
            return
        log.warning("second stop signal: ending every run now", signal=sig.name)
        self._now_signal = int(sig)
        self.stop_now()

    def _on_hangup(self) -> None:
        task = asyncio.ensure_future(self.reload_config())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reload_config(self) -> None:
        """SIGHUP: read the config file again; apply log level, notifications, gateway,
        maxConcurrency and the reconcile interval at once; name what needs a restart."""
        if self.config_path is None:
            log.info("SIGHUP: no config file to read again (started without one)")
            return
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            log.error("SIGHUP: config not applied", problem=exc.render())
            return
        except OSError as exc:
            log.error("SIGHUP: config not applied", problem=str(exc))
            return
        old = self.config
        applied: list[str] = []
        if new.log.level != old.log.level:
            set_log_level(new.log.level)
            applied.append("log.level")
        if new.notifications != old.notifications:
            # Webhooks too: the new sender takes every event from now on; the old one
            # finishes what it has queued.
            notifier = Notifier(new.notifications, store=self._gateway, clock=self.clock)
            previous, self.notifier = self.notifier, notifier
            self.dispatcher.notifier = notifier
            self.dispatcher.metrics.watch(self.dispatcher, self.scheduler, self._gateway, notifier)
            await previous.drain(5.0)
            await previous.aclose()
            applied.append("notifications")
        if new.gateway != old.gateway:
            self.sessions.configure(new.gateway)
            applied.append("gateway")
        if new.max_concurrency != old.max_concurrency:
            self.dispatcher.set_max_concurrency(new.max_concurrency)
            applied.append("maxConcurrency")
        if new.reconcile_interval_ms != old.reconcile_interval_ms:
            self.scheduler.set_reconcile_interval(new.reconcile_interval_ms / 1000)
            applied.append("reconcileIntervalMs")
        if new.run_log_max_bytes != old.run_log_max_bytes:
            # For runs that start from now on; a run in flight keeps the cap it began with.
            self.dispatcher.logs.max_bytes = new.run_log_max_bytes
            applied.append("runLogMaxBytes")
        live = {
            "log",
            "notifications",
            "gateway",
            "max_concurrency",
            "reconcile_interval_ms",
            "run_log_max_bytes",
        }
        restart = [
            field_info.alias or name
            for name, field_info in type(new).model_fields.items()
            if name not in live and getattr(new, name) != getattr(old, name)
        ]
        if new.log.file != old.log.file:
            restart.append("log.file")
        self.config = old.model_copy(
            update={
                "log": old.log.model_copy(update={"level": new.log.level}),
                "notifications": new.notifications,
                "gateway": new.gateway,
                "max_concurrency": new.max_concurrency,
                "reconcile_interval_ms": new.reconcile_interval_ms,
                "run_log_max_bytes": new.run_log_max_bytes,
            }
        )
        log.info("SIGHUP: config read again", applied=applied, needs_restart=restart)
        await audit.record_reload(self.store, self.clock, self.config_path, applied, restart)

    def request_stop(self) -> None:
        self._stopping.set()

    # ---- maintenance ----------------------------------------------------------------------

    async def _run_maintenance(self) -> None:
        try:
            self._maintenance_done(await asyncio.to_thread(self.maintenance.run_once))
        except Exception:
            log.exception("maintenance failed")

    def _maintenance_done(self, report: MaintenanceReport) -> None:
        log.info("maintenance done", **report.as_dict())
        if any(report.as_dict().values()):
            self.dispatcher.jobs_changed()  # cached run lists may show pruned rows

    async def _watch_lock(self, interval: float) -> None:
        """A lock the database can take away (PostgreSQL's ends with its session): when
        another runner got it, stop as after SIGTERM, and exit 1."""
        while True:
            await asyncio.sleep(interval)
            try:
                held = await asyncio.to_thread(self._lock.still_held)
            except Exception:
                log.exception("checking the runner lock failed")
                continue
            if not held:
                log.error(
                    "another runner took over the database after this runner's lock "
                    "was lost; stopping",
                    db=self.config.db_location,
                )
                self._lost_lock = True
                self._stopping.set()
                return

    async def _maintenance_loop(self) -> None:
        interval = self.config.state_cleanup_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                # In a worker thread: pruning a large backlog must not stall fires or the API
                # (sqlite3 releases the GIL while SQLite works; the thread has its own
                # connection).
                report = await asyncio.to_thread(self.maintenance.run_once)
            except Exception:
                log.exception("maintenance failed")
                continue
            self._maintenance_done(report)


def _close_open_runs(
    store: Store, node_id: str | None, at: str, *, keep_retries: bool = False
) -> int:
    """Runs left open by this runner's previous life (or at the end of a stop): every open
    run for a single runner (its retries waiting for their time are kept); only this node's
    in a cluster, where its retries go back to the pool at a stop (a peer runs them at their
    time) and are kept at a start (`keep_retries`: the node takes them up)."""
    if node_id is None:
        return store.runs.close_orphaned_runs(at, STOPPED_DURING_RUN, STOPPED_BEFORE_RUN)
    return cast(ClusteredStore, store).cluster.close_node_runs(
        node_id, at, STOPPED_DURING_RUN, STOPPED_BEFORE_RUN, keep_retries=keep_retries
    )


def _close_runs(store: Store, errors: dict[int, str], at: str) -> None:
    for run_id, text in errors.items():
        store.runs.close_run(run_id, at, text)
