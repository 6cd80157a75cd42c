"""Composition root: builds the store, scheduler, executor, notifier, API; owns start, stop
and signals. Tests build the same graph with a temp database (and a fake clock where time
logic is under test)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from dataclasses import dataclass, field

import structlog

from jeeves_runner.clock import Clock, SystemClock
from jeeves_runner.config import Config
from jeeves_runner.execution.dispatch import RunDispatcher
from jeeves_runner.execution.executor import ProcessExecutor
from jeeves_runner.execution.sessions import SessionRunner
from jeeves_runner.maintenance import Maintenance, MaintenanceReport
from jeeves_runner.models import (
    STOPPED_BEFORE_RUN,
    STOPPED_DURING_RUN,
    RunResult,
    format_instant,
)
from jeeves_runner.notify.slack import SlackNotifier
from jeeves_runner.process_lock import ProcessLock
from jeeves_runner.scheduling.cron import resolve_zone
from jeeves_runner.scheduling.loop import Scheduler, describe_zone
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.gateway import StoreGateway

log = structlog.get_logger("jeeves_runner.runner")


@dataclass
class Runner:
    """Implements `control.RunnerControl` for the HTTP API."""

    config: Config
    clock: Clock = field(default_factory=SystemClock)
    serve_api: bool = True

    def __post_init__(self) -> None:
        self._lock = ProcessLock(self.config.db_path)
        self._store: SqliteStore | None = None
        self._gateway: StoreGateway | None = None
        self._started_mono = self.clock.monotonic()
        self._stopping = asyncio.Event()
        self._stopped = False
        self._maintenance_task: asyncio.Task[None] | None = None
        self.api_server: object | None = None

    # ---- RunnerControl ------------------------------------------------------------------

    @property
    def store(self) -> StoreGateway:
        assert self._gateway is not None, "runner not started"
        return self._gateway

    @property
    def sync_store(self) -> SqliteStore:
        """The store itself, for code off the loop (tests, benchmarks). Blocks."""
        assert self._store is not None, "runner not started"
        return self._store

    @property
    def failed_registrations(self) -> int:
        return len(self.scheduler.failed_registrations)

    @property
    def running_count(self) -> int:
        return self.dispatcher.executing

    async def data_version(self) -> int:
        # Our own changes count in the dispatcher; changes by other processes (`add-job`,
        # job scripts) show in the store's data_version. Equal only when neither moved.
        return hash((self.dispatcher.data_version, await self.store.data_version()))

    def uptime_seconds(self) -> float:
        return round(self.clock.monotonic() - self._started_mono, 3)

    async def trigger(self, job_id: str) -> RunResult:
        return await self.dispatcher.trigger(job_id)

    async def set_enabled(self, job_id: str, enabled: bool) -> bool:
        at = format_instant(self.clock.now())
        found = await self.store.write(lambda s: s.jobs.set_enabled(job_id, enabled, at))
        if found:
            self.scheduler.refresh_job(job_id)
            self.dispatcher.jobs_changed()
        return found

    # ---- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Everything up to serving: lock, database, orphaned runs, maintenance, schedule,
        API. Raises (DatabaseInUseError, StoreError, OSError for the port) before firing
        anything if the runner cannot run."""
        config = self.config
        self._lock.acquire()
        try:
            self._store = SqliteStore(config.db_path)
            self._gateway = StoreGateway(self._store)
            closed = self._store.runs.close_orphaned_runs(
                format_instant(self.clock.now()), STOPPED_DURING_RUN, STOPPED_BEFORE_RUN
            )
            if closed:
                log.warning("closed runs left open by a stopped runner", count=closed)
            zone = resolve_zone(config.timezone)
            self.notifier = SlackNotifier(config.notifications)
            self.notifier.warn_if_token_missing()
            self.sessions = SessionRunner(config.gateway, self.clock)
            self.dispatcher = RunDispatcher(
                store=self._store,
                executor=ProcessExecutor(db_path=config.db_path, clock=self.clock),
                sessions=self.sessions,
                notifier=self.notifier,
                clock=self.clock,
                max_concurrency=config.max_concurrency,
            )
            self.scheduler = Scheduler(
                store=self._store,
                dispatcher=self.dispatcher,
                clock=self.clock,
                zone=zone,
                reconcile_interval_s=config.reconcile_interval_ms / 1000,
            )
            self.dispatcher.metrics.watch(
                self.dispatcher, self.scheduler, self._gateway, self.notifier
            )
            self.maintenance = Maintenance(
                self._store, self.clock, config.run_retention_days, config.audit_retention_days
            )
            self._run_maintenance()  # the dispatcher exists, so a prune can mark caches stale
            self.scheduler.reconcile()
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
            if self.serve_api:
                await self._start_api()
            self.scheduler.start()
            # Everything built so far lives as long as the process: move it out of the
            # collector's reach, so a full collection does not pause the loop for tens of
            # ms (measured 35 ms with 100,000 jobs) at some later fire.
            gc.collect()
            gc.freeze()
            self._maintenance_task = asyncio.ensure_future(self._maintenance_loop())
        except BaseException:
            await self._close_resources()
            raise
        log.info("runner started", db=config.db_path, host=config.host, port=self.port)

    async def _start_api(self) -> None:
        from jeeves_runner.api.app import create_app
        from jeeves_runner.api.server import ApiServer
        from jeeves_runner.auth import TokenGuard

        guard = await TokenGuard.start(self.store, self.config.host)  # InsecureBindError
        app = create_app(self, clock=self.clock, guard=guard, metrics=self.dispatcher.metrics)
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
        await self.scheduler.stop()
        await self.dispatcher.shutdown(self.config.shutdown_grace_ms / 1000)
        await self._close_resources()
        log.info("runner stopped")

    async def _close_resources(self) -> None:
        if self._maintenance_task is not None:
            self._maintenance_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance_task
        if self.api_server is not None:
            await self.api_server.stop()  # type: ignore[attr-defined]
            self.api_server = None
        notifier = getattr(self, "notifier", None)
        if notifier is not None:
            await notifier.drain(5.0)
            await notifier.aclose()
        if self._gateway is not None:
            self._gateway.close()
            self._gateway = None
        elif self._store is not None:
            self._store.close()
        self._lock.release()

    async def run_until_signalled(self) -> None:
        """start(), then wait for SIGTERM/SIGINT and stop()."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

    def request_stop(self) -> None:
        self._stopping.set()

    # ---- maintenance ----------------------------------------------------------------------

    def _run_maintenance(self) -> None:
        try:
            self._maintenance_done(self.maintenance.run_once())
        except Exception:
            log.exception("maintenance failed")

    def _maintenance_done(self, report: MaintenanceReport) -> None:
        log.info("maintenance done", **report.as_dict())
        if any(report.as_dict().values()):
            self.dispatcher.jobs_changed()  # cached run lists may show pruned rows

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
