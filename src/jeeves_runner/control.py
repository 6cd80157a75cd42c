"""What the HTTP API and the CLI may ask of a running runner. The runner implements it;
the API depends only on this protocol."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol

from jeeves_runner.execution.run_log import LogSubscription
from jeeves_runner.models import Job, RunResult
from jeeves_runner.scheduling.fire_schedule import FirePlan
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store


class JobNotFoundError(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job '{job_id}' not found")
        self.job_id = job_id


class JobAlreadyRunningError(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job '{job_id}' is already running")
        self.job_id = job_id


class JobInFlightError(Exception):
    """A delete without `force` of a job that has a run waiting or executing."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job '{job_id}' has a run in flight")
        self.job_id = job_id


class JobManagedByFileError(Exception):
    """An edit through the API or the CLI of a job a job file defines: the file is the truth."""

    def __init__(self, job_id: str, source: str) -> None:
        super().__init__(f"Job '{job_id}' is managed by {source}")
        self.job_id = job_id


class ShuttingDownError(Exception):
    def __init__(self) -> None:
        super().__init__("The runner is shutting down")


class RunnerControl(Protocol):
    @property
    def store(self) -> StoreGateway:
        """The store, reached in threads: `await control.store.read(lambda s: ...)`."""
        ...

    @property
    def failed_registrations(self) -> int: ...

    @property
    def running_count(self) -> int:
        """Runs executing now (two runs of one job count 2)."""
        ...

    def data_version(self, store: Store) -> Hashable:
        """Changes whenever jobs or runs change (through this runner or another process), so
        a response body built from them can be reused while it stays equal. Called off the
        loop, on the gateway's probe thread, with its store."""
        ...

    def uptime_seconds(self) -> float: ...

    def fire_plan(self) -> FirePlan:
        """Each job's next fire as the scheduler will fire it (the `next_run` of the job
        routes). From memory, on the loop; rebuilt only when a fire or a change moved it."""
        ...

    @property
    def stopping(self) -> bool:
        """A stop signal came: no new runs start."""
        ...

    def database_problem(self) -> str | None:
        """One sentence while the database refuses writes, else None. No I/O."""
        ...

    async def trigger(
        self, job_id: str, *, on_started: Callable[[int], None] | None = None
    ) -> RunResult:
        """Run a job now and wait for its end. Raises JobNotFoundError, JobAlreadyRunningError
        (overlap `skip` with a run in flight) or ShuttingDownError."""
        ...

    async def start_run(self, job_id: str) -> int:
        """Like trigger, but answers the new run's id as soon as its row exists."""
        ...

    async def set_enabled(self, job_id: str, enabled: bool) -> bool:
        """False when the job does not exist. Reconciles the schedule at once."""
        ...

    async def create_job(self, job: Job) -> dict[str, Any]:
        """Store a checked job and schedule it at once; the stored row as GET /jobs/:id
        shows it. Raises JobExistsError."""
        ...

    async def replace_job(self, job: Job) -> dict[str, Any] | None:
        """Replace a checked job's definition (its id names it) and reschedule it at once;
        the stored row, or None when the job does not exist."""
        ...

    async def delete_job(self, job_id: str, *, force: bool) -> bool:
        """Delete the job and its runs and unschedule it at once; False when it does not
        exist. A run in flight raises JobInFlightError unless `force`, which stops it first."""

    async def cancel_run(self, run_id: int, reason: str) -> bool:
        """Stop a run in flight in this runner (TERM, then KILL of its group after the
        grace; a run waiting for its turn never starts) and return once it is recorded as
        `cancelled` with `reason` as its error. False when this runner has no such run in
        flight (unknown, finished, or another node's)."""
        ...

    async def cluster_view(self) -> dict[str, Any]:
        """GET /cluster: {"enabled", "node_id", "nodes": [...]}; a single runner answers
        enabled false and no nodes."""
        ...

    def subscribe_log(self, run_id: int) -> LogSubscription | None:
        """A live reader of the log of a run in flight in this runner; None otherwise (the
        whole log is then in the store)."""
        ...
