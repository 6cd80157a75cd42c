"""The runner's side of a jobs folder: apply it at start, and again whenever a file in it
changes (watchfiles; a change is applied within about a second). Never prunes unless the
config says `jobsPrune: true`. A file with an error is logged with its path and line and
leaves its job as it was."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import structlog
import watchfiles

from jeeves_runner.clock import Clock
from jeeves_runner.jobs.apply import apply_folder
from jeeves_runner.jobs.plan import Plan
from jeeves_runner.scheduling.loop import Scheduler
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store

log = structlog.get_logger("jeeves_runner.jobs.folder_sync")

# watchfiles groups the events of this many ms into one change (an editor's save is several).
DEBOUNCE_MS = 200


class JobFolderSync:
    def __init__(
        self,
        *,
        folder: Path,
        prune: bool,
        gateway: StoreGateway,
        scheduler: Scheduler,
        clock: Clock,
        webhook_names: Callable[[], list[str]] = list,
    ) -> None:
        """`webhook_names`: the configured webhooks, asked at each apply (a SIGHUP may
        change them), that a file's on_failure/on_success may name."""
        self.folder = folder
        self.webhook_names = webhook_names
        self.prune = prune
        self.gateway = gateway
        self.scheduler = scheduler
        self.clock = clock
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.applied = 0  # applies that ran (for tests and logs)

    def apply_at_start(self, store: Store) -> Plan:
        """Before the schedule is first read, so the first reconcile sees the files' jobs."""
        return self._report(
            apply_folder(
                store,
                self.folder,
                self.clock.now(),
                prune=self.prune,
                webhook_names=self.webhook_names(),
            )
        )

    async def apply(self) -> Plan:
        now, names = self.clock.now(), self.webhook_names()
        plan = await self.gateway.write(
            lambda s: apply_folder(s, self.folder, now, prune=self.prune, webhook_names=names)
        )
        self._report(plan)
        await self.scheduler.reconcile_if_changed()  # in force now, not at the next watch
        return plan

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        async for _changes in watchfiles.awatch(
            self.folder, stop_event=self._stop, debounce=DEBOUNCE_MS, recursive=False
        ):
            try:
                await self.apply()
            except Exception:
                # A busy database or a file that vanished mid-read: the next change retries.
                log.exception("applying the jobs folder failed", folder=str(self.folder))

    def _report(self, plan: Plan) -> Plan:
        self.applied += 1
        for problem in plan.problems:
            log.warning("job file not applied", problem=str(problem))
        deleted = plan.without_file if self.prune else []
        if plan.added or plan.changed or deleted:
            log.info(
                "jobs folder applied",
                added=len(plan.added),
                changed=len(plan.changed),
                deleted=len(deleted),
                errors=len(plan.problems),
            )
        return plan
