"""What the HTTP API and the CLI may ask of a running runner. The runner implements it;
the API depends only on this protocol."""

from __future__ import annotations

from typing import Protocol

from jeeves_runner.execution.run_log import LogSubscription
from jeeves_runner.models import RunResult
from jeeves_runner.store.gateway import StoreGateway


class JobNotFoundError(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job '{job_id}' not found")
        self.job_id = job_id


class JobAlreadyRunningError(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job '{job_id}' is already running")
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

    async def data_version(self) -> int:
        """Changes whenever jobs or runs change (through this runner or another process), so
        a response body built from them can be reused while it stays equal."""
        ...

    def uptime_seconds(self) -> float: ...

    @property
    def stopping(self) -> bool:
        """A stop signal came: no new runs start."""
        ...

    def database_problem(self) -> str | None:
        """One sentence while the database refuses writes, else None. No I/O."""
        ...

    async def trigger(self, job_id: str) -> RunResult:
        """Run a job now and wait for its end. Raises JobNotFoundError, JobAlreadyRunningError
        (overlap `skip` with a run in flight) or ShuttingDownError."""
        ...

    async def start_run(self, job_id: str) -> int:
        """Like trigger, but answers the new run's id as soon as its row exists."""
        ...

    async def set_enabled(self, job_id: str, enabled: bool) -> bool:
        """False when the job does not exist. Reconciles the schedule at once."""
        ...

    async def cancel_run(self, run_id: int, reason: str) -> bool:
        """Stop a run in flight in this runner (TERM, then KILL of its group after the
        grace; a run waiting for its turn never starts) and return once it is recorded as
        `cancelled` with `reason` as its error. False when this runner has no such run in
        flight (unknown, finished, or another node's)."""
        ...

    def subscribe_log(self, run_id: int) -> LogSubscription | None:
        """A live reader of the log of a run in flight in this runner; None otherwise (the
        whole log is then in the store)."""
        ...
